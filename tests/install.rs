//! `install.sh --version`: installs a release tarball only when its SHA-256 matches the pinned
//! checksum, and never installs (or disturbs an installed binary) otherwise. Runs offline
//! against a local `python3 -m http.server` on 127.0.0.1. Also checks the committed
//! `checksums.txt` and the shape of `action.yml`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = "1.2.3";
const MARKER: &str = "fake-stepjail-release-7f3a";

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sj-install-")
        .tempdir_in("/var/tmp")
        .unwrap()
}

fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// The release architecture the tests download: this machine's when it has releases, else
/// x86_64 via the installer's test override.
fn arch() -> (&'static str, Option<&'static str>) {
    match std::env::consts::ARCH {
        a @ ("x86_64" | "aarch64") => (a, None),
        _ => ("x86_64", Some("x86_64")),
    }
}

fn asset_name(version: &str) -> String {
    format!("stepjail-{version}-{}-unknown-linux-musl.tar.gz", arch().0)
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

fn sh(cwd: &Path, script: &str) {
    let st = Command::new("sh")
        .args(["-ec", script])
        .current_dir(cwd)
        .status()
        .unwrap();
    assert!(st.success(), "failed: {script}");
}

/// `python3 -m http.server` on a free loopback port, killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(dir: &Path) -> Server {
        // Port 0: the kernel picks a free port and http.server prints it.
        let mut child = Command::new(python())
            .args(["-u", "-m", "http.server", "--bind", "127.0.0.1", "0"])
            .arg("--directory")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3 -m http.server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
        let port = line
            .split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .and_then(|p| p.parse().ok());
        let mut server = Server { child, port: 0 };
        server.port = port.unwrap_or_else(|| panic!("http.server said: {line:?}"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", server.port)).is_err() {
            assert!(Instant::now() < deadline, "http.server does not answer");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temp tree: `pkg/` (what goes into the tarball), `srv/` (served), `prefix/` (install
/// target, not created), `tmp/` (the installer's TMPDIR) and `checksums.txt`.
struct Env {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    pkg: PathBuf,
    tmpdir: PathBuf,
    prefix: PathBuf,
    checksums: PathBuf,
    server: Server,
}

impl Env {
    fn new() -> Env {
        let tmp = tempdir();
        let root = tmp.path().to_path_buf();
        let pkg = root.join("pkg");
        let srv = root.join("srv");
        let tmpdir = root.join("tmp");
        for d in [&pkg, &srv.join(format!("v{VERSION}")), &tmpdir] {
            std::fs::create_dir_all(d).unwrap();
        }
        let server = Server::start(&srv);
        Env {
            _tmp: tmp,
            pkg,
            tmpdir,
            prefix: root.join("prefix"),
            checksums: root.join("checksums.txt"),
            root,
            server,
        }
    }

    /// Where the release tarball is served from.
    fn asset(&self) -> PathBuf {
        self.root
            .join("srv")
            .join(format!("v{VERSION}"))
            .join(asset_name(VERSION))
    }

    /// Writes the fake binary (a script printing MARKER) at `pkg/REL`.
    fn fake_binary(&self, rel: &str, mode: u32) {
        let p = self.pkg.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, format!("#!/bin/sh\necho \"{MARKER} $*\"\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// `tar czf ASSET TAR_ARGS` run in `pkg/`.
    fn pack(&self, tar_args: &str) {
        sh(
            &self.pkg,
            &format!("tar czf '{}' {tar_args}", self.asset().display()),
        );
    }

    /// Writes the checksums file with `lines` (plus a comment, as committed).
    fn pin(&self, lines: &[String]) {
        let mut text = String::from("# pinned checksums\n\n");
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        std::fs::write(&self.checksums, text).unwrap();
    }

    fn pin_actual(&self) -> String {
        let hash = sha256(&self.asset());
        self.pin(&[format!("{hash}  {}", asset_name(VERSION))]);
        hash
    }

    fn install_with(&self, extra_env: &[(&str, &str)]) -> Output {
        let mut cmd = installer();
        cmd.args(["--version", VERSION, "--base-url", &self.server.url()])
            .arg("--checksums")
            .arg(&self.checksums)
            .arg("--prefix")
            .arg(&self.prefix)
            .env("TMPDIR", &self.tmpdir)
            .env("HOME", self.root.join("home"));
        if let Some(a) = arch().1 {
            cmd.env("STEPJAIL_INSTALL_ARCH", a);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn install(&self) -> Output {
        self.install_with(&[])
    }

    fn installed(&self) -> PathBuf {
        self.prefix.join("bin/stepjail")
    }

    /// Asserts the installer left no temp files behind, in TMPDIR or in the bin dir.
    fn assert_clean(&self) {
        let left: Vec<_> = std::fs::read_dir(&self.tmpdir).unwrap().collect();
        assert!(left.is_empty(), "temp files left: {left:?}");
        if let Ok(rd) = std::fs::read_dir(self.prefix.join("bin")) {
            let names: Vec<String> = rd
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            assert!(
                names.iter().all(|n| n == "stepjail"),
                "unexpected files in bin: {names:?}"
            );
        }
    }

    /// Puts an "old" binary in place, as a previous install would have.
    fn preinstall_old(&self) -> Vec<u8> {
        let old = b"#!/bin/sh\necho old-stepjail\n".to_vec();
        std::fs::create_dir_all(self.prefix.join("bin")).unwrap();
        std::fs::write(self.installed(), &old).unwrap();
        std::fs::set_permissions(self.installed(), std::fs::Permissions::from_mode(0o755)).unwrap();
        old
    }
}

/// `bash install.sh` with no proxy settings (the tests only talk to 127.0.0.1).
fn installer() -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(Path::new(ROOT).join("install.sh"));
    for v in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        cmd.env_remove(v);
    }
    cmd
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_refused(out: &Output, wants: &[&str]) {
    assert!(
        !out.status.success(),
        "install.sh succeeded; stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        stderr(out)
    );
    let err = stderr(out);
    for want in wants {
        assert!(err.contains(want), "stderr lacks {want:?}: {err}");
    }
}

#[test]
fn matching_checksum_installs_an_executable_that_runs() {
    let env = Env::new();
    env.fake_binary("stepjail", 0o755);
    env.pack("stepjail");
    env.pin_actual();
    let old = env.preinstall_old();

    let out = env.install();
    assert!(out.status.success(), "{}", stderr(&out));
    let bin = env.installed();
    let mode = std::fs::metadata(&bin).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    assert_ne!(std::fs::read(&bin).unwrap(), old, "old binary not replaced");
    let ran = Command::new(&bin).arg("hello").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&ran.stdout),
        format!("{MARKER} hello\n")
    );
    env.assert_clean();

    // Idempotent: a second run installs the same bytes again.
    let out = env.install();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        std::fs::read(&bin)
            .unwrap()
            .starts_with(b"#!/bin/sh\necho \"fake")
    );
    env.assert_clean();
}

#[test]
fn binary_inside_one_directory_is_accepted() {
    let env = Env::new();
    env.fake_binary(&format!("stepjail-{VERSION}/stepjail"), 0o755);
    env.fake_binary(&format!("stepjail-{VERSION}/README"), 0o644);
    env.pack(&format!("stepjail-{VERSION}"));
    env.pin_actual();

    let out = env.install();
    assert!(out.status.success(), "{}", stderr(&out));
    let ran = Command::new(env.installed()).output().unwrap();
    assert!(String::from_utf8_lossy(&ran.stdout).starts_with(MARKER));
    env.assert_clean();
}

#[test]
fn checksum_mismatch_installs_nothing() {
    let env = Env::new();
    env.fake_binary("stepjail", 0o755);
    env.pack("stepjail");
    let actual = sha256(&env.asset());
    let wrong = "ab".repeat(32);
    env.pin(&[format!("{wrong}  {}", asset_name(VERSION))]);

    let out = env.install();
    assert_refused(&out, &["checksum", &wrong, &actual]);
    assert!(!env.installed().exists(), "a binary was installed");
    env.assert_clean();
}

#[test]
fn checksum_mismatch_leaves_the_installed_binary_untouched() {
    let env = Env::new();
    env.fake_binary("stepjail", 0o755);
    env.pack("stepjail");
    let actual = sha256(&env.asset());
    // Off by one hex digit.
    let mut wrong = actual.clone().into_bytes();
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    let wrong = String::from_utf8(wrong).unwrap();
    env.pin(&[format!("{wrong}  {}", asset_name(VERSION))]);
    let old = env.preinstall_old();
    let before = std::fs::metadata(env.installed()).unwrap();

    let out = env.install();
    assert_refused(&out, &["checksum mismatch", &wrong, &actual]);
    assert_eq!(std::fs::read(env.installed()).unwrap(), old);
    let after = std::fs::metadata(env.installed()).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(before.ino(), after.ino(), "the old binary was replaced");
    env.assert_clean();
}

#[test]
fn no_pinned_line_is_refused() {
    let env = Env::new();
    env.fake_binary("stepjail", 0o755);
    env.pack("stepjail");
    let hash = sha256(&env.asset());
    // Pinned for another version and for the other architecture only.
    let other_arch = if arch().0 == "x86_64" {
        "aarch64"
    } else {
        "x86_64"
    };
    env.pin(&[
        format!("{hash}  {}", asset_name("1.2.2")),
        format!("{hash}  stepjail-{VERSION}-{other_arch}-unknown-linux-musl.tar.gz"),
    ]);
    let old = env.preinstall_old();

    let out = env.install();
    assert_refused(
        &out,
        &[
            &format!("no pinned checksum for version {VERSION} on {}", arch().0),
            "--from-source",
        ],
    );
    assert_eq!(std::fs::read(env.installed()).unwrap(), old);
    env.assert_clean();
}

#[test]
fn malformed_checksums_file_is_refused() {
    let env = Env::new();
    env.fake_binary("stepjail", 0o755);
    env.pack("stepjail");
    let hash = sha256(&env.asset());
    env.pin(&[
        format!("{hash}  {}", asset_name(VERSION)),
        format!("{}  {}", &hash[..63], asset_name("1.2.2")),
    ]);
    let out = env.install();
    assert_refused(&out, &["checksums.txt:4:"]);
    assert!(!env.installed().exists());
    env.assert_clean();
}

#[test]
fn archive_with_dotdot_path_is_refused() {
    let env = Env::new();
    env.fake_binary("stepjail", 0o755);
    std::fs::write(env.root.join("evil"), "#!/bin/sh\necho evil\n").unwrap();
    // -P keeps the `../` that tar would otherwise strip.
    env.pack("-P stepjail ../evil");
    let listing = Command::new("tar")
        .arg("tzf")
        .arg(env.asset())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listing.stdout).contains("../evil"));
    env.pin_actual();

    let out = env.install();
    assert_refused(&out, &["..", "../evil"]);
    assert!(!env.installed().exists());
    env.assert_clean();
}

#[test]
fn archive_with_absolute_path_is_refused() {
    let env = Env::new();
    env.fake_binary("stepjail", 0o755);
    let abs = env.root.join("abs-evil");
    std::fs::write(&abs, "x").unwrap();
    env.pack(&format!("-P stepjail '{}'", abs.display()));
    env.pin_actual();

    let out = env.install();
    assert_refused(&out, &["absolute path"]);
    assert!(!env.installed().exists());
    env.assert_clean();
}

#[test]
fn symlink_instead_of_a_binary_is_refused() {
    let env = Env::new();
    std::os::unix::fs::symlink("/bin/sh", env.pkg.join("stepjail")).unwrap();
    env.pack("stepjail");
    env.pin_actual();

    let out = env.install();
    assert_refused(&out, &["symbolic link"]);
    assert!(!env.installed().exists());
    env.assert_clean();
}

#[test]
fn non_executable_file_is_refused() {
    let env = Env::new();
    env.fake_binary("stepjail", 0o644);
    env.pack("stepjail");
    env.pin_actual();

    let out = env.install();
    assert_refused(&out, &["not executable"]);
    assert!(!env.installed().exists());
    env.assert_clean();
}

#[test]
fn archive_without_the_binary_is_refused() {
    let env = Env::new();
    env.fake_binary("a/b/stepjail", 0o755);
    env.pack("a");
    env.pin_actual();

    let out = env.install();
    assert_refused(&out, &["has no 'stepjail'"]);
    assert!(!env.installed().exists());
    env.assert_clean();
}

#[test]
fn unknown_architecture_is_refused_with_a_hint() {
    let env = Env::new();
    env.fake_binary("stepjail", 0o755);
    env.pack("stepjail");
    env.pin_actual();

    let out = env.install_with(&[("STEPJAIL_INSTALL_ARCH", "riscv64")]);
    assert_refused(&out, &["architecture 'riscv64'", "--from-source"]);
    assert!(!env.installed().exists());
    env.assert_clean();
}

#[test]
fn missing_release_is_refused() {
    let env = Env::new();
    // Pinned, but nothing is served.
    env.pin(&[format!("{}  {}", "cd".repeat(32), asset_name(VERSION))]);
    let out = env.install();
    assert_refused(&out, &["download of http://127.0.0.1:"]);
    assert!(!env.installed().exists());
    env.assert_clean();
}

#[test]
fn bad_arguments_are_refused() {
    for (args, want) in [
        (
            &["--version", "1.2.3", "--from-source"][..],
            "exclude each other",
        ),
        (&["--base-url", "http://127.0.0.1:9"][..], "needs --version"),
        (&["--checksums", "x"][..], "needs --version"),
        (&["--version", "1.2"][..], "like 1.2.3"),
        (&["--version", "1.2.3; rm -rf /"][..], "like 1.2.3"),
        (
            &["--version", "1.2.3", "--base-url", "file:///etc"][..],
            "https:// or http://",
        ),
        (&["--bogus"][..], "unknown argument"),
    ] {
        let tmp = tempdir();
        let sums = tmp.path().join("sums");
        // A pin for the file:// case, so the URL check is reached.
        std::fs::write(
            &sums,
            format!("{}  {}\n", "0".repeat(64), asset_name(VERSION)),
        )
        .unwrap();
        let mut cmd = installer();
        cmd.args(args)
            .arg("--prefix")
            .arg(tmp.path().join("p"))
            .env("TMPDIR", tmp.path());
        if args.contains(&"file:///etc") {
            cmd.arg("--checksums").arg(&sums);
        }
        let out = cmd.output().unwrap();
        assert_refused(&out, &[want]);
        assert!(
            !tmp.path().join("p").exists(),
            "{args:?} created the prefix"
        );
    }
}

#[test]
fn help_documents_both_modes() {
    let out = installer().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for want in [
        "--prefix",
        "--from-source",
        "--version X.Y.Z",
        "--base-url",
        "--checksums",
        "checksums.txt",
        "sha256sum",
        "-unknown-linux-musl.tar.gz",
        "https://github.com/stepjail/stepjail/releases/download",
    ] {
        assert!(help.contains(want), "--help lacks {want:?}:\n{help}");
    }
}

/// Every line of the committed checksums.txt is a comment, blank, or a valid pin.
#[test]
fn committed_checksums_file_parses() {
    let text = std::fs::read_to_string(Path::new(ROOT).join("checksums.txt")).unwrap();
    assert!(
        text.starts_with('#'),
        "checksums.txt should start with its header comment"
    );
    let mut seen = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let (hash, name) = line
            .split_once("  ")
            .unwrap_or_else(|| panic!("line {}: not `<hash>  <name>`: {line}", i + 1));
        assert!(
            hash.len() == 64
                && hash
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "line {}: not 64 lowercase hex digits: {hash}",
            i + 1
        );
        let rest = name
            .strip_prefix("stepjail-")
            .and_then(|r| {
                r.strip_suffix("-x86_64-unknown-linux-musl.tar.gz")
                    .or_else(|| r.strip_suffix("-aarch64-unknown-linux-musl.tar.gz"))
            })
            .unwrap_or_else(|| panic!("line {}: unexpected file name {name}", i + 1));
        let core = rest.split('-').next().unwrap();
        let parts: Vec<_> = core.split('.').collect();
        assert!(
            parts.len() == 3
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())),
            "line {}: bad version in {name}",
            i + 1
        );
        assert!(
            seen.insert(name.to_string(), hash.to_string()).is_none(),
            "line {}: {name} pinned twice",
            i + 1
        );
    }

    // install.sh reads it (default --checksums) and finds no pin for an unreleased version,
    // before trying any download (the base URL is a closed loopback port anyway).
    let tmp = tempdir();
    let out = installer()
        .args([
            "--version",
            "0.0.0-never",
            "--base-url",
            "http://127.0.0.1:9",
        ])
        .arg("--prefix")
        .arg(tmp.path().join("p"))
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert_refused(&out, &["no pinned checksum for version 0.0.0-never"]);
}

fn action() -> serde_json::Value {
    action_at("action.yml")
}

fn action_at(rel: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(Path::new(ROOT).join(rel)).unwrap();
    serde_saphyr::from_str::<serde_json::Value>(&text).expect("action.yml parses")
}

#[test]
fn action_is_a_composite_with_the_documented_inputs_and_outputs() {
    let a = action();
    assert_eq!(a["runs"]["using"], "composite");

    let inputs = a["inputs"].as_object().expect("inputs");
    let want = [
        ("policy", ".github/stepjail.yml"),
        ("mode", "enforce"),
        ("secrets", ""),
        ("version", ""),
        ("from-source", "auto"),
        ("policy-from", "head"),
    ];
    let mut names: Vec<_> = inputs.keys().map(String::as_str).collect();
    names.sort_unstable();
    let mut want_names: Vec<_> = want.iter().map(|(n, _)| *n).collect();
    want_names.sort_unstable();
    assert_eq!(names, want_names);
    for (name, default) in want {
        assert_eq!(inputs[name]["default"], default, "default of input {name}");
        assert!(
            inputs[name]["description"].is_string(),
            "input {name} has no description"
        );
    }

    let outputs = a["outputs"].as_object().expect("outputs");
    for name in ["audit-log", "binary"] {
        assert!(outputs[name]["value"].is_string(), "output {name}");
    }

    // Secrets reach only the setup command, through the environment.
    let steps = a["runs"]["steps"].as_array().unwrap();
    assert!(
        steps
            .iter()
            .any(|s| s["env"]["STEPJAIL_SECRETS_JSON"] == "${{ inputs.secrets }}")
    );
}

/// Inputs and contexts reach scripts only through `env:`: `${{ }}` inside `run:` is a
/// script-injection hole. Every script also parses with `bash -n`.
#[test]
fn action_scripts_use_bash_and_no_expression_interpolation() {
    check_scripts(&action(), 3);
    check_scripts(&action_at("run-action/action.yml"), 1);
}

#[test]
fn run_action_is_a_composite_with_step_action_and_with() {
    let a = action_at("run-action/action.yml");
    assert_eq!(a["runs"]["using"], "composite");
    let inputs = a["inputs"].as_object().expect("inputs");
    assert_eq!(inputs["step"]["required"], true);
    assert_eq!(inputs["action"]["required"], true);
    assert_eq!(inputs["with"]["default"], "");
    assert_eq!(
        a["outputs"]["outputs"]["value"],
        "${{ toJSON(steps.run.outputs) }}"
    );
}

fn check_scripts(a: &serde_json::Value, min_runs: usize) {
    let steps = a["runs"]["steps"].as_array().unwrap();
    let tmp = tempdir();
    let mut runs = 0;
    for (i, step) in steps.iter().enumerate() {
        let Some(script) = step["run"].as_str() else {
            continue;
        };
        runs += 1;
        assert_eq!(step["shell"], "bash", "step {i} needs `shell: bash`");
        assert!(
            !script.contains("${{ inputs."),
            "step {i} interpolates an input into its script"
        );
        assert!(
            !script.contains("${{"),
            "step {i} interpolates an expression into its script"
        );
        let file = tmp.path().join(format!("step{i}.sh"));
        std::fs::write(&file, script).unwrap();
        let out = Command::new("bash").arg("-n").arg(&file).output().unwrap();
        assert!(out.status.success(), "step {i}: {}", stderr(&out));
    }
    assert!(runs >= min_runs, "expected at least {min_runs} run steps");
}

/// Every `${{` in an action file at a path where runners evaluate expressions; none elsewhere.
///
/// A runner loads `action.yml` before any step runs and evaluates `${{ }}` wherever it finds
/// one. In metadata that is not a template (names, descriptions, input defaults) that fails
/// the whole job at "Set up job": act refuses the file (`expressions are not allowed here`)
/// and GitHub's runner stops with `Unrecognized named-value`. The places meant for
/// expressions are the composite's steps (`runs.steps[*]`: `env`, `with`, `if`, ...) and an
/// output's `value`. (Inside a step, `run:` itself must still not interpolate: see
/// `action_scripts_use_bash_and_no_expression_interpolation`.)
#[test]
fn expressions_appear_only_where_runners_evaluate_them() {
    fn walk(v: &serde_json::Value, path: &str, bad: &mut Vec<String>) {
        let allowed = path.starts_with("runs.steps[")
            || (path.starts_with("outputs.") && path.ends_with(".value"));
        match v {
            serde_json::Value::String(s) if s.contains("${{") && !allowed => {
                bad.push(format!("{path}: {s}"));
            }
            serde_json::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &format!("{path}[{i}]"), bad);
                }
            }
            serde_json::Value::Object(map) => {
                for (k, item) in map {
                    // A key with an expression is never valid.
                    if k.contains("${{") {
                        bad.push(format!("{path}: key {k}"));
                    }
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(item, &p, bad);
                }
            }
            _ => {}
        }
    }
    for file in ["action.yml", "run-action/action.yml"] {
        let mut bad = Vec::new();
        walk(&action_at(file), "", &mut bad);
        assert!(
            bad.is_empty(),
            "{file}: expressions where a runner refuses them: {bad:#?}"
        );
        // And the check sees one when it is there (the description act refused in 0.2.89).
        let mut planted = action_at(file);
        planted["inputs"]["x"] =
            serde_json::json!({"description": "usually ${{ toJSON(secrets) }}"});
        let mut bad = Vec::new();
        walk(&planted, "", &mut bad);
        assert_eq!(
            bad,
            ["inputs.x.description: usually ${{ toJSON(secrets) }}"]
        );
    }
}
