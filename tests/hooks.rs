//! `stepjail hooks` on a simulated self-hosted GitHub runner with container hooks enabled.
//!
//! The simulated runner does what actions/runner does (src/Runner.Worker/Container/
//! ContainerHooks/ContainerHookManager.cs, Handlers/StepHost.cs, ContainerOperationProvider.cs):
//! it keeps the runner's file layout (`externals/`, `_work/<repo>/<repo>`, `_work/_temp` with
//! `_runner_file_commands`, `_runner_hook_responses`, `_github_home`, `_github_workflow`,
//! `_work/_actions`), runs the hook file `hooks/index.js` with node, one line of camelCase JSON
//! on stdin shaped like runner-container-hooks' examples/*.json, creates the response file
//! empty before each hook and reads it after, translates every path it sends to container paths
//! (`/__w`, `/__e`, `/github/home`, `/github/workflow`), keeps the hook `state` between calls,
//! and applies a step's GITHUB_ENV / GITHUB_PATH to later steps. As root and as an
//! unprivileged runner user; steps that use the network run in the tests' fake internet.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::inet::{self, Internet};
use common::{Dir, Out, bin, chown, users};
use serde_json::{Value, json};
use stepjail::ci::github::filecmd;

const REPO: &str = "acme/app";

struct Runner {
    dir: Dir,
    root: PathBuf,
    work: PathBuf,
    temp: PathBuf,
    ws: PathBuf,
    config: PathBuf,
    audit: PathBuf,
    hook: PathBuf,
    state: Value,
    /// The job's variables as later steps get them (GITHUB_ENV applied), container paths.
    env: BTreeMap<String, String>,
    path: Vec<String>,
    n: usize,
    netns: Option<String>,
}

fn mkdir(p: &Path, owner: u32) {
    std::fs::create_dir_all(p).unwrap();
    chown(p, owner);
}

impl Runner {
    fn new(owner: u32, config: &str) -> Runner {
        let dir = Dir::new(owner);
        let root = dir.root.join("runner");
        let work = root.join("_work");
        let temp = work.join("_temp");
        let ws = work.join("app").join("app");
        for d in [
            root.join("externals/node24/bin"),
            ws.clone(),
            temp.join("_runner_file_commands"),
            temp.join("_runner_hook_responses"),
            temp.join("_github_home"),
            temp.join("_github_workflow"),
            work.join("_actions/acme/hello/v1"),
            work.join("_tool"),
        ] {
            mkdir(&d, owner);
        }
        for d in [
            &root,
            &work,
            &temp,
            &root.join("externals"),
            &work.join("app"),
        ] {
            chown(d, owner);
        }
        std::os::unix::fs::symlink("/usr/bin/node", root.join("externals/node24/bin/node"))
            .unwrap();
        std::fs::write(
            temp.join("_github_workflow/event.json"),
            "{\"ref\": \"refs/heads/main\"}",
        )
        .unwrap();
        // A JavaScript action, where the runner downloads actions.
        std::fs::write(
            work.join("_actions/acme/hello/v1/index.js"),
            "const fs = require('fs');\n\
             console.log(`hello ${process.env.INPUT_WHO} from ${process.env.GITHUB_ACTION}`);\n\
             console.log(`token:${process.env.NPM_TOKEN === undefined ? 'absent' : 'present'}`);\n\
             console.log(`runtime:${process.env.ACTIONS_RUNTIME_TOKEN === undefined ? 'absent' : 'present'}`);\n\
             console.log('files: ' + fs.readdirSync(process.env.RUNNER_TEMP + '/_runner_file_commands').sort().join(' '));\n\
             fs.appendFileSync(process.env.GITHUB_OUTPUT, 'greeting=hi\\n');\n",
        )
        .unwrap();
        let audit = dir.root.join("audit");
        mkdir(&audit, owner);
        let cfg = dir.root.join("github.yml");
        std::fs::write(&cfg, config.replace("@AUDIT@", audit.to_str().unwrap())).unwrap();
        // The hook file as the operator installs it: its constants name the binary and file.
        let hook = dir.root.join("hooks/index.js");
        std::fs::create_dir_all(hook.parent().unwrap()).unwrap();
        let js = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/hooks/index.js"))
            .unwrap()
            .replace("'/usr/local/bin/stepjail'", &format!("'{}'", bin()))
            .replace(
                "'/etc/stepjail/github.yml'",
                &format!("'{}'", cfg.display()),
            );
        std::fs::write(&hook, js).unwrap();
        std::fs::set_permissions(&dir.root, std::fs::Permissions::from_mode(0o755)).unwrap();
        Runner {
            dir,
            root,
            work,
            temp,
            ws,
            config: cfg,
            audit,
            hook,
            state: json!({}),
            env: BTreeMap::new(),
            path: Vec::new(),
            n: 0,
            netns: None,
        }
    }

    /// The runner's system mounts (ContainerOperationProvider.MountWellKnownDirectories).
    fn mounts(&self) -> Value {
        let m = |s: &Path, t: &str, ro: bool| json!({"sourceVolumePath": s, "targetVolumePath": t, "readOnly": ro});
        json!([
            m(
                Path::new("/var/run/docker.sock"),
                "/var/run/docker.sock",
                false
            ),
            m(&self.work, "/__w", false),
            m(&self.root.join("externals"), "/__e", true),
            m(&self.temp, "/__w/_temp", false),
            m(&self.work.join("_actions"), "/__w/_actions", false),
            m(&self.work.join("_tool"), "/__w/_tool", false),
            m(&self.temp.join("_github_home"), "/github/home", false),
            m(
                &self.temp.join("_github_workflow"),
                "/github/workflow",
                false
            ),
        ])
    }

    /// Runs the hook with `input` (the runner fills in `responseFile` and `state`); returns
    /// its output and the response file's content.
    fn hook(&mut self, input: Value, hook_env: &[(&str, &str)]) -> (Out, String) {
        let (child, response) = self.spawn_hook(input, hook_env);
        let out = Out(child.wait_with_output().unwrap());
        let body = std::fs::read_to_string(&response).unwrap_or_default();
        (out, body)
    }

    /// Starts the hook; returns it and its response file.
    fn spawn_hook(
        &mut self,
        mut input: Value,
        hook_env: &[(&str, &str)],
    ) -> (std::process::Child, PathBuf) {
        self.n += 1;
        let response = self
            .temp
            .join(format!("_runner_hook_responses/{:04}-guid.json", self.n));
        std::fs::write(&response, "").unwrap();
        chown(&response, self.dir.owner);
        input["responseFile"] = json!(response);
        input["state"] = self.state.clone();
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]);
                if self.dir.owner != 0 {
                    let id = self.dir.owner.to_string();
                    c.args(["setpriv", "--reuid", &id, "--regid", &id, "--clear-groups"]);
                }
                c.arg("/usr/bin/node");
                c
            }
            None => {
                let mut c = Command::new("/usr/bin/node");
                if self.dir.owner != 0 {
                    c.uid(self.dir.owner).gid(self.dir.owner);
                }
                c
            }
        };
        cmd.arg(&self.hook)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &self.dir.home)
            .env("GITHUB_REPOSITORY", REPO)
            .env("GITHUB_JOB", "build")
            .env("GITHUB_RUN_ID", "1234")
            .env("GITHUB_RUN_ATTEMPT", "1")
            .env("GITHUB_WORKSPACE", &self.ws)
            .env("RUNNER_TEMP", &self.temp)
            .envs(hook_env.iter().copied())
            .current_dir(&self.ws)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            // One line, then the runner closes stdin (ProcessInvoker, keepStandardInOpen false).
            writeln!(stdin, "{input}").unwrap();
        }
        (child, response)
    }

    fn prepare(&mut self, image: &str) -> (Out, String) {
        let input = json!({
            "command": "prepare_job",
            "args": {
                "container": {
                    "image": image,
                    "workingDirectory": "/__w/app/app",
                    "createOptions": "",
                    "environmentVariables": {"HOME": "/github/home", "JOB_CONTAINER_VAR": "from-container"},
                    "userMountVolumes": [],
                    "systemMountVolumes": self.mounts(),
                    "registry": null,
                    "portMappings": []
                },
                "services": []
            }
        });
        let (out, body) = self.hook(input, &[]);
        if out.code() == 0 {
            let v: Value = serde_json::from_str(&body).unwrap();
            self.state = v["state"].clone();
        }
        (out, body)
    }

    fn file(&self, name: &str) -> PathBuf {
        let p = self.temp.join("_runner_file_commands").join(name);
        std::fs::write(&p, "").unwrap();
        chown(&p, self.dir.owner);
        p
    }

    /// One step through `run_script_step`: `entry` and `args` in container paths.
    fn step(&mut self, id: &str, entry: &str, args: &[&str], step_env: &[(&str, &str)]) -> Step {
        let n = self.n + 1;
        let names = [
            ("GITHUB_ENV", format!("set_env_{n}")),
            ("GITHUB_OUTPUT", format!("set_output_{n}")),
            ("GITHUB_PATH", format!("add_path_{n}")),
            ("GITHUB_STATE", format!("save_state_{n}")),
            ("GITHUB_STEP_SUMMARY", format!("step_summary_{n}")),
        ];
        let mut env: BTreeMap<String, String> = self.env.clone();
        for (k, f) in &names {
            self.file(f);
            env.insert(
                k.to_string(),
                format!("/__w/_temp/_runner_file_commands/{f}"),
            );
        }
        for (k, v) in [
            ("CI", "true"),
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_ACTION", id),
            ("GITHUB_JOB", "build"),
            ("GITHUB_REPOSITORY", REPO),
            ("GITHUB_WORKSPACE", "/__w/app/app"),
            ("GITHUB_EVENT_PATH", "/github/workflow/event.json"),
            ("RUNNER_TEMP", "/__w/_temp"),
        ] {
            env.insert(k.into(), v.into());
        }
        for (k, v) in step_env {
            env.insert(k.to_string(), v.to_string());
        }
        let input = json!({
            "command": "run_script_step",
            "args": {
                "entryPoint": entry,
                "entryPointArgs": args,
                "environmentVariables": env,
                "prependPath": self.path,
                "workingDirectory": "/__w/app/app"
            }
        });
        let (out, response) = self.hook(input, &[("GITHUB_ACTION", id)]);
        let read = |k: &str| {
            let f = &names.iter().find(|(n, _)| *n == k).unwrap().1;
            std::fs::read_to_string(self.temp.join("_runner_file_commands").join(f)).unwrap()
        };
        let step = Step {
            env_file: read("GITHUB_ENV"),
            output_file: read("GITHUB_OUTPUT"),
            summary: read("GITHUB_STEP_SUMMARY"),
            out,
            response,
        };
        // The runner applies the step's files to later steps.
        for e in filecmd::parse_env_file(&step.env_file).expect("the runner would fail") {
            self.env.insert(e.name, e.value);
        }
        for line in read("GITHUB_PATH").lines().filter(|l| !l.is_empty()) {
            self.path.insert(0, line.into());
        }
        step
    }

    /// A `run:` step: the runner writes the script to RUNNER_TEMP and sends the shell.
    fn run(&mut self, id: &str, script: &str, step_env: &[(&str, &str)]) -> Step {
        let name = format!("{:04}-script-guid.sh", self.n + 1);
        let p = self.temp.join(&name);
        std::fs::write(&p, script).unwrap();
        chown(&p, self.dir.owner);
        let arg = format!("/__w/_temp/{name}");
        self.step(
            id,
            "bash",
            &["--noprofile", "--norc", "-e", "-o", "pipefail", &arg],
            step_env,
        )
    }

    fn cleanup(&mut self) -> Out {
        self.hook(json!({"command": "cleanup_job", "args": {}}), &[])
            .0
    }

    fn job_dir(&self) -> PathBuf {
        PathBuf::from(self.state["stepjailJob"].as_str().unwrap())
    }

    fn audit_events(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.audit).unwrap() {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
            out.extend(
                text.lines()
                    .map(|l| serde_json::from_str::<Value>(l).unwrap()),
            );
        }
        out
    }
}

struct Step {
    out: Out,
    response: String,
    env_file: String,
    output_file: String,
    summary: String,
}

const CONFIG: &str = "version: 1
audit_dir: @AUDIT@
images: { \"ubuntu:24.04\": host }
resolver: 192.0.2.53:53
default: offline
profiles:
  fetch:
    description: reaches allowed.test only
    extends: default
    network: { allow: [allowed.test:443] }
  publish:
    description: holds the npm token
    extends: default
    secrets: { NPM_TOKEN: {} }
  npm-settings:
    description: passes npm's settings, by pattern
    extends: default
    env: { pass: [NPM_*] }
repositories:
  acme/app:
    jobs:
      build:
        steps:
          fetch: { profile: fetch }
          publish: { profile: publish }
          hello: { profile: offline }
          test: { profile: npm-settings }
";

/// The pids of processes whose command line holds `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline"))
            && String::from_utf8_lossy(&cmd)
                .replace('\0', " ")
                .contains(marker)
        {
            out.push(name);
        }
    }
    out
}

#[test]
fn a_job_is_prepared_its_steps_run_under_the_operators_policy_and_cleanup_leaves_nothing() {
    if !inet::needs_root() {
        return;
    }
    let net = Internet::new();
    for owner in users() {
        let mut r = Runner::new(owner, CONFIG);
        r.netns = Some(net.ns.clone());
        let (out, body) = r.prepare("ubuntu:24.04");
        assert_eq!(out.code(), 0, "{}{}", out.stdout(), out.stderr());
        let resp: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(resp["isAlpine"], false, "{body}");
        assert!(
            resp["context"]["container"]["id"]
                .as_str()
                .unwrap()
                .starts_with("stepjail-"),
            "{body}"
        );
        assert_eq!(resp["context"]["services"], json!([]), "{body}");
        let job = r.job_dir();
        let mode = std::fs::metadata(&job).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{}", job.display());

        // A `run:` step: the allowed host works, the denied one does not and is logged.
        let s = r.run(
            "fetch",
            "curl -sSk https://allowed.test/ >/dev/null && echo reached-allowed\n\
             curl -sSk https://denied.test/ >/dev/null 2>&1 || echo denied-denied\n\
             echo \"home=$HOME ws=$GITHUB_WORKSPACE pwd=$(pwd) cv=$JOB_CONTAINER_VAR\"\n\
             ls -A \"$RUNNER_TEMP\" | tr '\\n' ' '; echo\n\
             touch \"$HOME/.gitconfig\" 2>/dev/null && echo home-writable || echo home-not-writable\n",
            &[],
        );
        let text = s.out.stdout();
        assert_eq!(s.out.code(), 0, "{text}{}", s.out.stderr());
        assert!(text.contains("reached-allowed"), "{text}");
        assert!(text.contains("denied-denied"), "{text}");
        let home = r.temp.join("_github_home");
        assert!(
            text.contains(&format!(
                // The job container's own variables pass only as the profile says (here: not).
                "home={} ws={} pwd={} cv=\n",
                home.display(),
                r.ws.display(),
                r.ws.display()
            )),
            "{text}"
        );
        // RUNNER_TEMP holds only the script, the event and the step's own files; not the
        // job's state, the hook responses or other steps' files.
        assert!(!text.contains("_stepjail_hooks"), "{text}");
        assert!(text.contains("home-not-writable"), "{text}");
        assert!(!text.contains("_runner_hook_responses"), "{text}");
        assert!(
            text.contains(
                "::error title=stepjail denied egress::step build/fetch: denied denied.test:443"
            ),
            "{text}"
        );
        assert!(s.summary.contains("denied.test"), "{}", s.summary);
        assert_eq!(s.response, "", "run_script_step writes no response");
        let ev = r.audit_events();
        let denied = inet::find(
            &ev,
            "connect",
            &[("dest_name", "denied.test"), ("decision", "deny")],
        );
        assert_eq!(denied.len(), 1, "{ev:#?}");
        let start = inet::find(
            &ev,
            "step_start",
            &[
                ("profile", "fetch"),
                ("ci_job", "build"),
                ("ci_step", "fetch"),
            ],
        );
        assert_eq!(start.len(), 1, "{ev:#?}");
        assert_eq!(denied[0]["step"], start[0]["step"], "{ev:#?}");

        // A JavaScript action: the runner's node from /__e, the action from /__w/_actions.
        let s = r.step(
            "hello",
            "/__e/node24/bin/node",
            &["/__w/_actions/acme/hello/v1/index.js"],
            &[
                ("INPUT_WHO", "octocat"),
                ("NPM_TOKEN", "npm-secret-value"),
                ("ACTIONS_RUNTIME_TOKEN", "runtime-secret"),
            ],
        );
        let text = s.out.stdout();
        assert_eq!(s.out.code(), 0, "{text}{}", s.out.stderr());
        assert!(text.contains("hello octocat from hello"), "{text}");
        assert!(text.contains("token:absent"), "{text}");
        assert!(text.contains("runtime:absent"), "{text}");
        // Its own file-command files only, not those of the step before.
        let n = r.n;
        assert!(
            text.contains(&format!(
                "files: add_path_{n} save_state_{n} set_env_{n} set_output_{n} step_summary_{n}\n"
            )),
            "{text}"
        );
        assert_eq!(s.output_file, "greeting=hi\n");

        // A step leaves a process behind; cleanup_job leaves none, and no job state.
        let marker = format!("31337.{owner}");
        let s = r.run(
            "bg",
            &format!(
                "(setsid sleep {marker} >/dev/null 2>&1 &)\nsleep 0.3\n\
                 echo \"running:$(cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | grep -o 'slee[p] {marker}' | wc -l)\"\n"
            ),
            &[],
        );
        assert_eq!(s.out.code(), 0, "{}{}", s.out.stdout(), s.out.stderr());
        assert!(s.out.stdout().contains("running:1"), "{}", s.out.stdout());
        let out = r.cleanup();
        assert_eq!(out.code(), 0, "{}{}", out.stdout(), out.stderr());
        assert!(!job.exists(), "{} is left", job.display());
        assert_eq!(
            processes_with(&format!("sleep {marker}")),
            Vec::<String>::new()
        );
        // The audit log stays where the operator keeps logs.
        assert_eq!(std::fs::read_dir(&r.audit).unwrap().count(), 1);
    }
}

#[test]
fn a_secret_reaches_only_the_step_that_declares_it() {
    for owner in users() {
        let mut r = Runner::new(owner, CONFIG);
        let (out, _) = r.prepare("ubuntu:24.04");
        assert_eq!(out.code(), 0, "{}{}", out.stdout(), out.stderr());
        // The workflow puts NPM_TOKEN in the job's `env:`: every step's environment has it.
        // `test` passes NPM_* by pattern, yet does not get it: `publish` declares it.
        let token = [("NPM_TOKEN", "npm-secret-value")];
        let script = "if [ \"$NPM_TOKEN\" = npm-secret-value ]; then echo has-token; else echo no-token; fi\n\
                      echo \"value:$NPM_TOKEN level:$NPM_CONFIG_LOGLEVEL\"\n";
        let s = r.run("test", script, &[token[0], ("NPM_CONFIG_LOGLEVEL", "warn")]);
        let text = s.out.stdout();
        assert_eq!(s.out.code(), 0, "{text}{}", s.out.stderr());
        assert!(
            text.contains("no-token") && text.contains("value: level:warn\n"),
            "{text}"
        );
        let s = r.run("publish", script, &token);
        let text = s.out.stdout();
        assert_eq!(s.out.code(), 0, "{text}{}", s.out.stderr());
        assert!(text.contains("has-token"), "{text}");
        // Masked in the step's output.
        assert!(
            text.contains("value:***") && !text.contains("npm-secret-value"),
            "{text}"
        );
        assert_eq!(r.cleanup().code(), 0);
    }
}

#[test]
fn github_env_poisoning_is_removed_before_the_runner_reads_it() {
    for owner in users() {
        let mut r = Runner::new(owner, CONFIG);
        let (out, _) = r.prepare("ubuntu:24.04");
        assert_eq!(out.code(), 0, "{}{}", out.stdout(), out.stderr());
        let s = r.run(
            "poison",
            "echo 'LD_PRELOAD=/__w/app/app/evil.so' >> \"$GITHUB_ENV\"\n\
             echo 'NODE_OPTIONS=--require /__w/app/app/evil.js' >> \"$GITHUB_ENV\"\n\
             echo 'KEPT=yes' >> \"$GITHUB_ENV\"\n\
             echo \"$RUNNER_TEMP/../app/app/bin\" >> \"$GITHUB_PATH\"\n\
             echo \"home=$HOME\"\n",
            // A workflow's `env:` naming a library for the loader: never stepjail's own.
            // Nor a HOME of its choosing for the sandbox's `$HOME` paths.
            &[("LD_PRELOAD", "/nonexistent/preload.so"), ("HOME", "/")],
        );
        let text = s.out.stdout();
        assert_eq!(s.out.code(), 0, "{text}{}", s.out.stderr());
        let kept: Vec<(String, String)> = filecmd::parse_env_file(&s.env_file)
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.value))
            .collect();
        assert_eq!(kept, [("KEPT".to_string(), "yes".to_string())]);
        assert!(
            text.contains("LD_PRELOAD") && text.contains("NODE_OPTIONS"),
            "{text}"
        );
        let home = r.temp.join("_github_home");
        assert!(
            text.contains(&format!("home={}\n", home.display())),
            "{text}"
        );
        // A directory the steps can write never goes on later steps' PATH.
        let path_file = r
            .temp
            .join(format!("_runner_file_commands/add_path_{}", r.n));
        assert_eq!(std::fs::read_to_string(path_file).unwrap(), "", "{text}");
        assert!(text.contains("to GITHUB_PATH (line 1)"), "{text}");
        assert!(
            !s.out.stderr().contains("cannot be preloaded"),
            "{}",
            s.out.stderr()
        );
        let ev = r.audit_events();
        for name in ["LD_PRELOAD", "NODE_OPTIONS"] {
            assert_eq!(
                inet::find(
                    &ev,
                    "file_command",
                    &[("file", "GITHUB_ENV"), ("name", name)]
                )
                .len(),
                1,
                "{ev:#?}"
            );
        }
        assert_eq!(r.cleanup().code(), 0);
    }
}

#[test]
fn the_repository_policy_narrows_but_cannot_widen_the_operators() {
    if !inet::needs_root() {
        return;
    }
    let net = Internet::new();
    let config = CONFIG.replace(
        "default: offline\n",
        "default: offline\nrepository_policy: narrow\n",
    );
    for owner in users() {
        let mut r = Runner::new(owner, &config);
        r.netns = Some(net.ns.clone());
        let (out, _) = r.prepare("ubuntu:24.04");
        assert_eq!(out.code(), 0, "{}{}", out.stdout(), out.stderr());
        // Checked out by an earlier step: asks for more than the operator gives `fetch`, and
        // for less for `narrowed`.
        std::fs::create_dir_all(r.ws.join(".github")).unwrap();
        std::fs::write(
            r.ws.join(".github/stepjail.yml"),
            "version: 1\n\
             default: default\n\
             profiles:\n\
             \x20 wide:\n\
             \x20   description: more than the operator's\n\
             \x20   extends: default\n\
             \x20   network: { allow: [allowed.test:443, denied.test:443] }\n\
             jobs:\n\
             \x20 build:\n\
             \x20   steps:\n\
             \x20     fetch: { profile: wide }\n",
        )
        .unwrap();
        let s = r.run(
            "fetch",
            "curl -sSk https://denied.test/ && echo reached\n",
            &[],
        );
        let text = s.out.stdout();
        assert_ne!(s.out.code(), 0, "{text}");
        assert!(!text.contains("reached"), "{text}");
        assert!(
            text.contains(&format!(
                "{}:7:",
                r.ws.join(".github/stepjail.yml").display()
            )) && text.contains("denied.test:443")
                && text.contains("may only narrow"),
            "{text}"
        );
        // Rewriting the file later changes nothing: it was frozen when first read.
        std::fs::write(
            r.ws.join(".github/stepjail.yml"),
            "version: 1\ndefault: offline\n",
        )
        .unwrap();
        let s = r.run(
            "fetch",
            "curl -sSk https://allowed.test/ >/dev/null && echo reached\n",
            &[],
        );
        assert_ne!(s.out.code(), 0, "{}", s.out.stdout());
        let mut r = Runner::new(owner, &config);
        r.netns = Some(net.ns.clone());
        let (out, _) = r.prepare("ubuntu:24.04");
        assert_eq!(out.code(), 0, "{}{}", out.stdout(), out.stderr());
        std::fs::create_dir_all(r.ws.join(".github")).unwrap();
        // Narrower: no network for `fetch`, although the operator allows allowed.test.
        std::fs::write(
            r.ws.join(".github/stepjail.yml"),
            "version: 1\ndefault: offline\n",
        )
        .unwrap();
        let s = r.run(
            "fetch",
            "curl -sSk https://allowed.test/ >/dev/null 2>&1 && echo reached || echo refused\n",
            &[],
        );
        let text = s.out.stdout();
        assert_eq!(s.out.code(), 0, "{text}{}", s.out.stderr());
        assert!(
            text.contains("refused") && !text.contains("reached"),
            "{text}"
        );
        assert_eq!(r.cleanup().code(), 0);
    }
}

#[test]
fn unmapped_images_services_and_container_actions_are_refused() {
    let owner = *users().last().unwrap();
    let mut r = Runner::new(owner, CONFIG);
    let (out, body) = r.prepare("node:22");
    assert_eq!(out.code(), 1);
    assert!(
        out.stdout().contains("\"node:22\" is not mapped to `host`"),
        "{}",
        out.stdout()
    );
    assert_eq!(body, "");
    assert_eq!(
        std::fs::read_dir(r.temp.join("_runner_hook_responses"))
            .unwrap()
            .count(),
        1
    );
    let input = json!({"command": "prepare_job", "args": {
        "container": {"image": "ubuntu:24.04", "workingDirectory": "/__w/app/app", "systemMountVolumes": r.mounts()},
        "services": [{"contextName": "redis", "image": "redis"}]}});
    let (out, _) = r.hook(input, &[]);
    assert_eq!(out.code(), 1);
    assert!(
        out.stdout().contains("service containers"),
        "{}",
        out.stdout()
    );
    let (out, _) = r.hook(
        json!({"command": "run_container_step", "args": {"image": "alpine"}}),
        &[],
    );
    assert_eq!(out.code(), 1);
    assert!(
        out.stdout().contains("Docker container actions"),
        "{}",
        out.stdout()
    );
    // The operator checks the file before using it.
    let check = Command::new(bin())
        .args(["hooks", "--check", "--config", r.config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0), "{check:?}");
    // A mistake in the operator's file fails the job with its position.
    std::fs::write(&r.config, "version: 1\naudit_dir: /x\nimagez: {}\n").unwrap();
    let check = Command::new(bin())
        .args(["hooks", "--check", "--config", r.config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(2), "{check:?}");
    assert!(
        String::from_utf8_lossy(&check.stderr).contains(&format!("{}:3:1", r.config.display())),
        "{check:?}"
    );
    let (out, _) = r.prepare("ubuntu:24.04");
    assert_eq!(out.code(), 1);
    assert!(
        out.stdout()
            .contains(&format!("{}:3:1", r.config.display())),
        "{}",
        out.stdout()
    );
}

#[test]
fn the_operators_secrets_file_reaches_only_declaring_steps_and_no_step_reads_it() {
    for owner in users() {
        let config = CONFIG
            .replace(
                "default: offline\n",
                "default: offline\nsecrets_file: @SECRETS@\n",
            )
            .replace(
                "          test: { profile: npm-settings }\n",
                "          test: { profile: npm-settings }\n          deploy: { profile: offline, secrets: { DEPLOY_KEY: {} } }\n",
            );
        let mut r = Runner::new(owner, "");
        let secrets = r.dir.root.join("github-secrets.env");
        std::fs::write(&secrets, "DEPLOY_KEY=operator-deploy-key\n").unwrap();
        std::fs::write(
            &r.config,
            config
                .replace("@AUDIT@", r.audit.to_str().unwrap())
                .replace("@SECRETS@", secrets.to_str().unwrap()),
        )
        .unwrap();
        let (out, _) = r.prepare("ubuntu:24.04");
        assert_eq!(out.code(), 0, "{}{}", out.stdout(), out.stderr());
        let script = format!(
            "[ \"$DEPLOY_KEY\" = operator-deploy-key ] && echo has-key || echo no-key\n\
             cat {} >/dev/null 2>&1 && echo read-file || echo cannot-read-file\n",
            secrets.display()
        );
        // The workflow cannot put its own value in place of the operator's either.
        let s = r.run("deploy", &script, &[("DEPLOY_KEY", "from-the-workflow")]);
        let text = s.out.stdout();
        assert_eq!(s.out.code(), 0, "{text}{}", s.out.stderr());
        assert!(
            text.contains("has-key") && text.contains("cannot-read-file"),
            "{text}"
        );
        let s = r.run("test", &script, &[]);
        let text = s.out.stdout();
        assert_eq!(s.out.code(), 0, "{text}{}", s.out.stderr());
        assert!(
            text.contains("no-key") && text.contains("cannot-read-file"),
            "{text}"
        );
        assert_eq!(r.cleanup().code(), 0);
    }
}

#[test]
fn a_cancelled_step_leaves_no_process() {
    for owner in users() {
        let mut r = Runner::new(owner, CONFIG);
        let (out, _) = r.prepare("ubuntu:24.04");
        assert_eq!(out.code(), 0, "{}{}", out.stdout(), out.stderr());
        let marker = format!("4242.{owner}");
        let script = r.temp.join("0099-long-guid.sh");
        std::fs::write(&script, format!("sleep {marker}\n")).unwrap();
        chown(&script, owner);
        let input = json!({"command": "run_script_step", "args": {
            "entryPoint": "bash",
            "entryPointArgs": ["--noprofile", "--norc", "-e", "-o", "pipefail", "/__w/_temp/0099-long-guid.sh"],
            "environmentVariables": {"GITHUB_ACTION": "long", "GITHUB_WORKSPACE": "/__w/app/app", "RUNNER_TEMP": "/__w/_temp"},
            "prependPath": [],
            "workingDirectory": "/__w/app/app"}});
        let (child, _) = r.spawn_hook(input, &[("GITHUB_ACTION", "long")]);
        let pattern = format!("sleep {marker}");
        let start = std::time::Instant::now();
        while processes_with(&pattern).is_empty() {
            assert!(start.elapsed().as_secs() < 20, "the step never started");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        // The runner cancels a step with SIGINT to the hook it started (ProcessInvoker).
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        let mut child = child;
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break Some(st);
            }
            if start.elapsed().as_secs() > 20 {
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let left = processes_with(&pattern);
        // Whatever happened, end what this test started before asserting.
        for pid in &left {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid.parse().unwrap()),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = child.kill();
        let status = status.expect("the hook did not end within 20 s of SIGINT");
        assert_ne!(status.code(), Some(0), "{status:?}");
        assert_eq!(
            left,
            Vec::<String>::new(),
            "the step outlived its cancelled hook"
        );
        assert_eq!(r.cleanup().code(), 0);
    }
}
