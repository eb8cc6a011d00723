//! GitHub Actions integration, on a simulated runner: a `RUNNER_TEMP` with the runner's
//! file-command files and step scripts, the variables the runner sets, and `stepjail step --
//! bash --noprofile --norc -eo pipefail <script>` invoked exactly as the runner does, as an
//! unprivileged user (and as root, as on a self-hosted runner that runs as root).
//!
//! Between steps the simulated runner does what the real one does after a step exits: it reads
//! the step's `GITHUB_ENV` and `GITHUB_PATH` files into the next steps' environment.

mod common;

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::inet::{self, Internet};
use common::{Dir, Out, bin, chown, users};
use stepjail::ci::github::filecmd;

const SHELL: [&str; 4] = ["bash", "--noprofile", "--norc", "-eo"];

struct Runner {
    dir: Dir,
    temp: PathBuf,
    job: String,
    /// The job's environment as later steps get it (GITHUB_ENV entries applied).
    env: BTreeMap<String, String>,
    /// GITHUB_PATH entries applied, newest first.
    path: Vec<String>,
    n: usize,
    /// `ip netns exec NS` for steps that need the fake internet.
    netns: Option<String>,
    /// Give steps one file for stdout and stderr, as the runner's log merges both (the step's
    /// `Out` then holds everything as stdout).
    merged: bool,
}

/// What one step left behind.
struct Step {
    out: Out,
    output_file: String,
    summary: String,
}

impl Runner {
    fn new(owner: u32, policy: &str) -> Runner {
        let dir = Dir::new(owner);
        dir.write("ws/.github/stepjail.yml", policy);
        let temp = dir.root.join("_temp");
        std::fs::create_dir_all(temp.join("_runner_file_commands")).unwrap();
        chown(&temp, owner);
        chown(&temp.join("_runner_file_commands"), owner);
        Runner {
            dir,
            temp,
            job: "test".into(),
            env: BTreeMap::new(),
            path: Vec::new(),
            n: 0,
            netns: None,
            merged: false,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]);
                if self.dir.owner != 0 {
                    let id = self.dir.owner.to_string();
                    c.args(["setpriv", "--reuid", &id, "--regid", &id, "--clear-groups"]);
                }
                c.arg(bin());
                c
            }
            None => {
                let mut c = Command::new(bin());
                if self.dir.owner != 0 {
                    c.uid(self.dir.owner).gid(self.dir.owner);
                }
                c
            }
        };
        let mut path = self.path.join(":");
        if !path.is_empty() {
            path.push(':');
        }
        path.push_str("/usr/local/bin:/usr/bin:/bin");
        cmd.args(args)
            .env_clear()
            .envs(&self.env)
            .env("PATH", path)
            .env("HOME", &self.dir.home)
            .env("CI", "true")
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_JOB", &self.job)
            .env("GITHUB_WORKSPACE", &self.dir.ws)
            .env("RUNNER_TEMP", &self.temp)
            .current_dir(&self.dir.ws)
            .stdin(Stdio::null());
        cmd
    }

    fn file(&self, name: &str) -> PathBuf {
        let p = self.temp.join("_runner_file_commands").join(name);
        std::fs::write(&p, "").unwrap();
        chown(&p, self.dir.owner);
        p
    }

    /// The action's setup step (`stepjail setup`), with its own GITHUB_ENV applied afterwards.
    fn setup(&mut self, extra: &[&str], secrets_json: Option<&str>) -> Out {
        self.n += 1;
        let env_file = self.file(&format!("set_env_{}", self.n));
        let mut args = vec!["setup"];
        args.extend_from_slice(extra);
        let mut cmd = self.command(&args);
        cmd.env("GITHUB_ENV", &env_file)
            .env("GITHUB_ACTION", "__stepjail");
        if let Some(s) = secrets_json {
            cmd.env("STEPJAIL_SECRETS_JSON", s);
            cmd.args(["--secrets-env", "STEPJAIL_SECRETS_JSON"]);
        }
        let out = Out(cmd.output().unwrap());
        self.apply(&env_file, None);
        out
    }

    /// Reads a step's GITHUB_ENV / GITHUB_PATH into the job's environment, as the runner does.
    fn apply(&mut self, env_file: &PathBuf, path_file: Option<&PathBuf>) {
        let text = std::fs::read_to_string(env_file).unwrap();
        for e in filecmd::parse_env_file(&text).expect("the runner would fail on this GITHUB_ENV") {
            // The runner refuses NODE_OPTIONS; everything else is applied.
            self.env.insert(e.name, e.value);
        }
        if let Some(p) = path_file {
            for line in std::fs::read_to_string(p).unwrap().lines() {
                if !line.trim().is_empty() {
                    self.path.insert(0, line.trim().to_string());
                }
            }
        }
    }

    /// One `run:` step with id `id` (None: the runner's `__run_N`) and script `script`.
    fn step(&mut self, id: Option<&str>, script: &str, extra_env: &[(&str, &str)]) -> Step {
        self.n += 1;
        let n = self.n;
        let files = [
            ("GITHUB_ENV", self.file(&format!("set_env_{n}"))),
            ("GITHUB_OUTPUT", self.file(&format!("set_output_{n}"))),
            ("GITHUB_PATH", self.file(&format!("add_path_{n}"))),
            ("GITHUB_STATE", self.file(&format!("save_state_{n}"))),
            (
                "GITHUB_STEP_SUMMARY",
                self.file(&format!("step_summary_{n}")),
            ),
        ];
        // The runner writes the script to RUNNER_TEMP/<guid>, without an extension for a
        // custom shell.
        let script_path = self.temp.join(format!("0000-step-{n}-guid"));
        std::fs::write(&script_path, script).unwrap();
        chown(&script_path, self.dir.owner);
        let action = id
            .map(str::to_string)
            .unwrap_or_else(|| format!("__run_{n}"));
        let mut args = vec!["step", "--"];
        args.extend_from_slice(&SHELL);
        args.push("pipefail");
        let sp = script_path.to_str().unwrap().to_string();
        args.push(&sp);
        let mut cmd = self.command(&args);
        cmd.env("GITHUB_ACTION", &action);
        for (k, v) in &files {
            cmd.env(k, v);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let out = if self.merged {
            let log = self.dir.root.join(format!("step-{n}.log"));
            let file = std::fs::File::create(&log).unwrap();
            cmd.stdout(file.try_clone().unwrap()).stderr(file);
            let status = cmd.status().unwrap();
            Out(std::process::Output {
                status,
                stdout: std::fs::read(&log).unwrap(),
                stderr: Vec::new(),
            })
        } else {
            Out(cmd.output().unwrap())
        };
        let read = |k: &str| {
            let p = &files.iter().find(|(n, _)| *n == k).unwrap().1;
            std::fs::read_to_string(p).unwrap()
        };
        let step = Step {
            output_file: read("GITHUB_OUTPUT"),
            summary: read("GITHUB_STEP_SUMMARY"),
            out,
        };
        let (env_file, path_file) = (files[0].1.clone(), files[2].1.clone());
        self.apply(&env_file, Some(&path_file));
        step
    }

    fn state(&self) -> PathBuf {
        self.temp.join("stepjail")
    }
}

const POLICY: &str = "version: 1
default: offline
profiles:
  deps-profile:
    description: the deps step
    extends: default
    env: { set: { MARK: deps-profile } }
  test-profile:
    description: the test step
    extends: default
    env: { set: { MARK: test-profile } }
jobs:
  test:
    steps:
      deps: { profile: deps-profile }
      test: { profile: test-profile }
";

#[test]
fn profile_is_chosen_by_job_and_step_id_and_the_default_otherwise() {
    for uid in users() {
        let mut r = Runner::new(uid, POLICY);
        let out = r.setup(&[], None);
        let text = out.ok();
        assert!(text.contains("test/deps -> deps-profile"), "{text}");
        assert!(
            text.contains("any other step -> offline (no network)"),
            "{text}"
        );
        assert_eq!(
            r.env.get("STEPJAIL_STATE").map(String::as_str),
            r.state().to_str()
        );
        assert_eq!(r.env["STEPJAIL_POLICY_SHA256"].len(), 64);

        let script = "echo \"mark=${MARK:-none}\"";
        let s = r.step(Some("deps"), script, &[]);
        assert!(s.out.ok().contains("mark=deps-profile"), "uid {uid}");
        assert!(
            s.summary.contains(
                "#### stepjail · `test/deps` · profile `deps-profile` · no network · exit 0"
            ),
            "{}",
            s.summary
        );
        let s = r.step(Some("test"), script, &[]);
        assert!(s.out.ok().contains("mark=test-profile"));
        // Not listed, or listed under another job: the default.
        let s = r.step(None, script, &[]);
        assert!(s.out.ok().contains("mark=none"));
        assert!(s.summary.contains("profile `offline`"), "{}", s.summary);
        r.job = "lint".into();
        let s = r.step(Some("deps"), script, &[]);
        assert!(s.out.ok().contains("mark=none"));

        // The audit log says which step ran under what.
        let log = std::fs::read_to_string(r.state().join("audit.jsonl")).unwrap();
        let starts: Vec<serde_json::Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|e: &serde_json::Value| e["event"] == "step_start")
            .collect();
        assert_eq!(starts.len(), 4);
        assert_eq!(starts[0]["ci_job"], "test");
        assert_eq!(starts[0]["ci_step"], "deps");
        assert_eq!(starts[0]["profile"], "deps-profile");
        assert_eq!(starts[3]["ci_job"], "lint");
        assert_eq!(starts[3]["profile"], "offline");
        // `stepjail audit summarize` on the job's log names the steps by job and step id.
        let out = Out(Command::new(bin())
            .args(["audit", "summarize"])
            .arg(r.state().join("audit.jsonl"))
            .output()
            .unwrap());
        let text = out.ok();
        assert!(text.contains("job/step"), "{text}");
        for (ci, profile) in [
            ("test/deps", "deps-profile"),
            ("test/test", "test-profile"),
            ("lint/deps", "offline"),
        ] {
            assert!(
                text.lines().any(|l| l.contains(ci) && l.contains(profile)),
                "{ci} {profile}: {text}"
            );
        }
    }
}

#[test]
fn outputs_and_env_reach_later_steps_but_poison_is_removed_and_reported() {
    for uid in users() {
        let mut r = Runner::new(
            uid,
            "version: 1\njobs:\n  test:\n    steps:\n      lib: { profile: default, allow_env: [LD_LIBRARY_PATH] }\n",
        );
        r.setup(&[], None).ok();
        std::fs::create_dir_all(r.dir.ws.join("bin")).unwrap();
        let s = r.step(
            Some("write"),
            "echo 'FOO=bar' >> \"$GITHUB_ENV\"
             printf 'MULTI<<EOF\\nline one\\nline two\\nEOF\\n' >> \"$GITHUB_ENV\"
             echo 'LD_PRELOAD=/tmp/evil.so' >> \"$GITHUB_ENV\"
             echo 'BASH_ENV=/tmp/evil.sh' >> \"$GITHUB_ENV\"
             echo 'STEPJAIL_STATE=/tmp/fake' >> \"$GITHUB_ENV\"
             echo 'result=42' >> \"$GITHUB_OUTPUT\"
             echo \"$HOME/.local/bin\" >> \"$GITHUB_PATH\"
             echo 'relative/bin' >> \"$GITHUB_PATH\"
             echo \"$GITHUB_WORKSPACE/bin\" >> \"$GITHUB_PATH\"",
            &[],
        );
        let stdout = s.out.ok();
        assert_eq!(s.output_file, "result=42\n");
        assert!(
            stdout.contains("::error title=stepjail removed a GITHUB_ENV entry::step test/write wrote LD_PRELOAD to GITHUB_ENV (line 6): changes how later programs load code; removed"),
            "{stdout}"
        );
        assert!(stdout.contains("wrote BASH_ENV to GITHUB_ENV"), "{stdout}");
        assert!(
            stdout.contains("wrote STEPJAIL_STATE to GITHUB_ENV"),
            "{stdout}"
        );
        assert!(
            stdout.contains("::error title=stepjail removed a GITHUB_PATH entry::step test/write added relative/bin"),
            "{stdout}"
        );
        assert!(
            s.summary
                .contains("removed from file commands: GITHUB_ENV: LD_PRELOAD (line 6)"),
            "{}",
            s.summary
        );
        // The removals are in the job's audit log (names, never values) and its summary.
        let log = std::fs::read_to_string(r.state().join("audit.jsonl")).unwrap();
        let removed: Vec<serde_json::Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|e: &serde_json::Value| e["event"] == "file_command")
            .collect();
        assert_eq!(removed.len(), 5, "{log}");
        assert_eq!(removed[0]["file"], "GITHUB_ENV");
        assert_eq!(removed[0]["name"], "LD_PRELOAD");
        assert_eq!(removed[0]["line"], 6);
        assert!(!log.contains("/tmp/evil.so"), "a value reached the log");
        assert_eq!(removed[3]["file"], "GITHUB_PATH");
        assert_eq!(removed[3]["name"], "relative/bin");
        let out = Out(Command::new(bin())
            .args(["audit", "summarize"])
            .arg(r.state().join("audit.jsonl"))
            .output()
            .unwrap());
        let text = out.ok();
        assert!(
            text.contains("removed from file commands\n  GITHUB_ENV LD_PRELOAD (line 6): changes how later programs load code"),
            "{text}"
        );
        // What the runner applied for the next steps.
        assert_eq!(r.env.get("FOO").map(String::as_str), Some("bar"));
        assert_eq!(
            r.env.get("MULTI").map(String::as_str),
            Some("line one\nline two")
        );
        assert!(!r.env.contains_key("LD_PRELOAD"));
        assert!(!r.env.contains_key("BASH_ENV"));
        assert_eq!(r.env["STEPJAIL_STATE"], r.state().to_str().unwrap());
        // Not the workspace: a later step could plant a `stepjail` there for the runner to run.
        assert_eq!(r.path, vec![format!("{}/.local/bin", r.dir.home.display())]);
        assert_eq!(removed[4]["name"], format!("{}/bin", r.dir.ws.display()));
        assert!(
            removed[4]["reason"]
                .as_str()
                .unwrap()
                .contains("which sandboxed steps may write"),
            "{removed:?}"
        );

        // A policy exception by name.
        let s = r.step(
            Some("lib"),
            "echo 'LD_LIBRARY_PATH=/opt/lib' >> \"$GITHUB_ENV\"",
            &[],
        );
        assert!(!s.out.ok().contains("::error"));
        assert_eq!(r.env["LD_LIBRARY_PATH"], "/opt/lib");
        // An unparsable GITHUB_ENV is discarded whole and fails the step (the runner would).
        let s = r.step(
            Some("bad"),
            "echo 'A=1' >> $GITHUB_ENV; echo 'B<<EOF' >> $GITHUB_ENV",
            &[],
        );
        assert_eq!(s.out.code(), 1);
        assert!(
            s.out
                .stdout()
                .contains("::error title=stepjail discarded GITHUB_ENV::")
        );
        assert!(!r.env.contains_key("A"));
    }
}

#[test]
fn the_step_reaches_its_own_files_only() {
    for uid in users() {
        let mut r = Runner::new(uid, POLICY);
        r.setup(&[], Some(r#"{"TOKEN":"s3cr3t-value-123"}"#)).ok();
        let other = r.file("set_env_other_step");
        std::fs::write(&other, "SECRET_OF_OTHER=1\n").unwrap();
        std::fs::write(r.temp.join("checkout-credentials"), "token").unwrap();
        let event = r
            .dir
            .write("_temp/_github_workflow/event.json", "{\"number\": 7}");
        let s = r.step(
            Some("peek"),
            "ls -A \"$RUNNER_TEMP\" | tr '\\n' ' '; echo
             ls -A \"$RUNNER_TEMP/_runner_file_commands\" | tr '\\n' ' '; echo
             cat \"$RUNNER_TEMP/stepjail/secrets.json\" 2>&1 || true
             cat \"$RUNNER_TEMP/_runner_file_commands/set_env_other_step\" 2>&1 || true
             touch \"$RUNNER_TEMP/new\" 2>&1 || true
             echo written >> \"$GITHUB_STEP_SUMMARY\"
             echo \"script=$(head -c 2 \"$0\")\"
             echo \"event=$(cat \"$GITHUB_EVENT_PATH\")\"
             { echo x >> \"$GITHUB_EVENT_PATH\"; } 2>&1 || true",
            &[("GITHUB_EVENT_PATH", event.to_str().unwrap())],
        );
        let out = s.out.ok();
        let mut lines = out.lines();
        // The script, the event payload and this step's own file-command directory, nothing
        // else.
        assert_eq!(
            lines.next().unwrap().trim(),
            format!(
                "0000-step-{}-guid _github_workflow _runner_file_commands",
                r.n
            )
        );
        let n = r.n;
        assert_eq!(
            lines.next().unwrap().trim(),
            format!("add_path_{n} save_state_{n} set_env_{n} set_output_{n} step_summary_{n}")
        );
        assert!(
            out.contains("secrets.json: No such file or directory"),
            "{out}"
        );
        assert!(
            out.contains("set_env_other_step: No such file or directory"),
            "{out}"
        );
        assert!(out.contains("Read-only file system"), "{out}");
        assert!(out.contains("script=ls"), "{out}");
        assert!(out.contains("event={\"number\": 7}"), "{out}");
        assert_eq!(out.matches("Read-only file system").count(), 2, "{out}");
        assert!(s.summary.starts_with("written\n"), "{}", s.summary);
    }
}

#[test]
fn editing_the_workspace_policy_changes_nothing_for_later_steps() {
    for uid in users() {
        let mut r = Runner::new(uid, POLICY);
        r.setup(&[], None).ok();
        let s = r.step(
            Some("deps"),
            "sed -i 's/deps-profile }/test-profile }/; s/default: offline/default: cargo/' .github/stepjail.yml
             grep -q 'deps: { profile: test-profile }' .github/stepjail.yml && echo edited",
            &[],
        );
        assert_eq!(s.out.ok().trim(), "edited");
        let s = r.step(Some("deps"), "echo mark=$MARK", &[]);
        assert!(s.out.ok().contains("mark=deps-profile"));

        // Changing the frozen copy (which no sandboxed step can reach) is refused, not obeyed.
        std::fs::write(r.state().join("policy.yml"), "version: 1\ndefault: cargo\n").unwrap();
        let s = r.step(Some("deps"), "echo ran", &[]);
        assert_eq!(s.out.code(), 125);
        assert!(!s.out.stdout().contains("ran\n"));
        assert!(
            s.out
                .stderr()
                .contains("was changed after setup; refusing to run the step"),
            "{}",
            s.out.stderr()
        );
    }
}

#[test]
fn without_setup_no_step_runs() {
    let mut r = Runner::new(users()[users().len() - 1], POLICY);
    let s = r.step(Some("deps"), "echo ran", &[]);
    assert_eq!(s.out.code(), 125);
    assert!(!s.out.stdout().contains("ran\n"));
    assert!(
        s.out
            .stdout()
            .contains("::error title=stepjail::no frozen policy in"),
        "{}",
        s.out.stdout()
    );
}

#[test]
fn secrets_reach_only_the_steps_that_declare_them() {
    let policy = "version: 1
jobs:
  test:
    steps:
      publish:
        profile: default
        secrets: { NPM_TOKEN: {} }
      upload:
        profile: codecov
        secrets: { CODECOV_TOKEN: { broker: [codecov.io] } }
      gh:
        profile: default
        secrets: { GITHUB_TOKEN: {} }
";
    let npm = "npm_AbCdEf0123456789AbCdEf0123456789AbCd";
    let codecov = "0c9a1b2c-3d4e-4f50-8a6b-7c8d9e0f1a2b";
    let json = format!(
        r#"{{"NPM_TOKEN":"{npm}","CODECOV_TOKEN":"{codecov}","github_token":"ghs_xyz0123456789"}}"#
    );
    let hash = |s: &str| {
        let o = Command::new("sha256sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        o.stdin.as_ref().unwrap().write_all(s.as_bytes()).unwrap();
        String::from_utf8(o.wait_with_output().unwrap().stdout).unwrap()[..64].to_string()
    };
    for uid in users() {
        let mut r = Runner::new(uid, policy);
        let out = r.setup(&[], Some(&json)).ok();
        assert!(out.contains(&format!("::add-mask::{npm}")), "{out}");
        assert!(out.contains(&format!("::add-mask::{codecov}")));
        let script = "for v in NPM_TOKEN CODECOV_TOKEN github_token; do
               printf '%s=' $v; printf '%s' \"${!v-}\" | sha256sum | cut -c1-64; done
             echo \"raw=$NPM_TOKEN\"";
        // Job-level `env:` puts the secrets in every step's environment; only declared ones pass.
        let job_env = [("NPM_TOKEN", npm), ("CODECOV_TOKEN", codecov)];
        let empty = hash("");
        let s = r.step(Some("publish"), script, &job_env);
        let o = s.out.ok();
        assert!(o.contains(&format!("NPM_TOKEN={}", hash(npm))), "{o}");
        assert!(o.contains(&format!("CODECOV_TOKEN={empty}")), "{o}");
        assert!(o.contains(&format!("github_token={empty}")), "{o}");
        assert!(o.contains("raw=***"), "the value is masked in the log: {o}");
        let s = r.step(Some("upload"), script, &job_env);
        let o = s.out.ok();
        // Brokered: the step holds a placeholder, not the value.
        assert!(o.contains(&format!("NPM_TOKEN={empty}")), "{o}");
        assert!(!o.contains(&format!("CODECOV_TOKEN={empty}")), "{o}");
        assert!(
            !o.contains(&format!("CODECOV_TOKEN={}", hash(codecov))),
            "{o}"
        );
        let s = r.step(None, script, &job_env);
        let o = s.out.ok();
        assert!(o.contains(&format!("NPM_TOKEN={empty}")), "{o}");
        assert!(o.contains(&format!("CODECOV_TOKEN={empty}")), "{o}");
        // `toJSON(secrets)` calls the job's token `github_token`; a step declares it by the
        // name tools read, and only that step gets it.
        let gh =
            "printf 'GITHUB_TOKEN='; printf '%s' \"${GITHUB_TOKEN-}\" | sha256sum | cut -c1-64";
        let o = r.step(Some("gh"), gh, &[]).out.ok();
        assert_eq!(o, format!("GITHUB_TOKEN={}\n", hash("ghs_xyz0123456789")));
        let o = r
            .step(
                Some("publish"),
                gh,
                &[("GITHUB_TOKEN", "ghs_xyz0123456789")],
            )
            .out
            .ok();
        assert_eq!(o, format!("GITHUB_TOKEN={empty}\n"));
        // The frozen secrets file is the runner user's alone.
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(r.state().join("secrets.json"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o077, 0);
    }
}

#[test]
fn a_secret_split_across_stdout_and_stderr_is_masked_in_the_merged_log() {
    let policy = "version: 1
jobs:
  test:
    steps:
      split:
        profile: default
        secrets: { T: {} }
";
    let value = "tok3nPrefixXsuffix0123456789";
    let json = format!(r#"{{"T":"{value}"}}"#);
    for uid in users() {
        let mut r = Runner::new(uid, policy);
        r.setup(&[], Some(&json)).ok();
        r.merged = true;
        let script = "printf '%s' \"${T%%X*}\"; printf '%s\\n' \"X${T#*X}\" >&2";
        let s = r.step(Some("split"), script, &[]);
        let log = s.out.ok();
        assert!(
            !log.contains(value),
            "uid {uid}: the runner's log shows {log:?}"
        );
        assert!(!log.contains("suffix0123456789"), "uid {uid}: {log:?}");
        assert!(log.contains("***"), "uid {uid}: {log:?}");
    }
}

#[test]
fn file_command_and_summary_paths_that_link_elsewhere_are_not_written() {
    for uid in users() {
        let mut r = Runner::new(uid, POLICY);
        let victim = r.dir.write("elsewhere/victim", "precious\n");
        // setup appends to GITHUB_ENV: a symbolic link there is refused, its target untouched.
        let env_link = r.temp.join("_runner_file_commands/set_env_link");
        std::os::unix::fs::symlink(&victim, &env_link).unwrap();
        chown(&env_link, uid);
        let out = Out(r
            .command(&["setup"])
            .env("GITHUB_ENV", &env_link)
            .env("GITHUB_ACTION", "__stepjail")
            .output()
            .unwrap());
        assert_ne!(out.code(), 0, "uid {uid}: {}", out.stdout());
        assert!(
            out.stdout().contains("a symbolic link"),
            "uid {uid}: {}",
            out.stdout()
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        r.setup(&[], None).ok();
        // The step summary as a hard link to a file elsewhere: the summary is not appended.
        let summary = r.temp.join("_runner_file_commands/step_summary_hard");
        std::fs::hard_link(&victim, &summary).unwrap();
        let s = r.step(
            None,
            "true",
            &[("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())],
        );
        // The runner named a file the step must not get: the step is not run, with an
        // annotation saying which and why.
        assert_eq!(s.out.code(), 125, "uid {uid}: {}", s.out.stderr());
        assert!(
            s.out
                .stdout()
                .contains("::error title=stepjail::GITHUB_STEP_SUMMARY=")
                && s.out.stdout().contains("has 2 hard links"),
            "uid {uid}: {}",
            s.out.stdout()
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    }
}

#[test]
fn a_secret_named_like_a_variable_stepjail_sets_is_refused_by_setup() {
    let uid = users()[users().len() - 1];
    let policy = "version: 1
jobs:
  test:
    steps:
      deps:
        profile: default
        secrets: { SSL_CERT_FILE: {} }
";
    let mut r = Runner::new(uid, policy);
    let out = r.setup(&[], Some(r#"{"SSL_CERT_FILE":"/tmp/evil.pem"}"#));
    assert_eq!(out.code(), 2, "{}", out.stdout());
    assert!(
        out.stdout()
            .contains(".github/stepjail.yml:7:20: `jobs.test.steps.deps.secrets.SSL_CERT_FILE`")
            && out.stdout().contains("stepjail sets this variable itself"),
        "{}",
        out.stdout()
    );
    assert!(!r.state().join("state.json").exists());
}

#[test]
fn the_exit_code_is_the_scripts() {
    for uid in users() {
        let mut r = Runner::new(uid, POLICY);
        r.setup(&[], None).ok();
        assert_eq!(r.step(None, "exit 3", &[]).out.code(), 3);
        // -e: the first failing command ends the script with its status.
        let s = r.step(None, "false\necho not-reached", &[]);
        assert_eq!(s.out.code(), 1);
        assert!(!s.out.stdout().contains("not-reached"));
        // pipefail
        assert_eq!(r.step(None, "false | true", &[]).out.code(), 1);
        let s = r.step(None, "exit 0", &[]);
        assert_eq!(s.out.code(), 0);
        assert!(s.summary.contains("exit 0"));
    }
}

#[test]
fn summary_and_annotations_report_denials_enforce_and_audit() {
    if !inet::needs_root() {
        return;
    }
    let net = Internet::new();
    let policy = "version: 1
profiles:
  web:
    description: the allowed test host
    extends: default
    network: { allow: [allowed.test:443] }
jobs:
  test:
    steps:
      fetch: { profile: web }
";
    let script = "curl -sSk -o /dev/null https://allowed.test/ && echo fetched
                  curl -sk -o /dev/null https://other.test/ || echo refused";
    for uid in inet::egress_users() {
        let mut r = Runner::new(uid, policy);
        r.netns = Some(net.ns.clone());
        r.setup(&[], None).ok();
        let resolver = [("STEPJAIL_RESOLVER", "192.0.2.53:53")];
        let s = r.step(Some("fetch"), script, &resolver);
        let o = s.out.ok();
        assert!(o.contains("fetched") && o.contains("refused"), "{o}");
        assert!(
            o.contains("::error title=stepjail denied egress::step test/fetch: denied other.test:443 (not allowed by profile; profile 'web')"),
            "{o}"
        );
        assert!(
            s.summary
                .contains("#### stepjail · `test/fetch` · profile `web` · enforce · exit 0"),
            "{}",
            s.summary
        );
        assert!(
            s.summary.contains("Reached 1 hosts (1 connections"),
            "{}",
            s.summary
        );
        assert!(
            s.summary.contains("| allowed.test | 443 | 1 |"),
            "{}",
            s.summary
        );
        assert!(s.summary.contains("**Denied (1):**"), "{}", s.summary);
        assert!(
            s.summary
                .contains("| other.test | 443 | 1 | not allowed by profile |"),
            "{}",
            s.summary
        );
        assert!(net.log("attacker").is_empty());

        // Audit mode: the request goes through, the annotation is a warning, and the summary
        // gives the allowlist line that would let it pass.
        let mut r = Runner::new(uid, policy);
        r.netns = Some(net.ns.clone());
        r.setup(&["--mode", "audit"], None).ok();
        let s = r.step(
            Some("fetch"),
            "curl -sSk -o /dev/null https://other.test/ && echo through",
            &resolver,
        );
        let o = s.out.ok();
        assert!(o.contains("through"), "{o}");
        assert!(
            o.contains("::warning title=stepjail would deny egress::step test/fetch: would deny other.test:443"),
            "{o}"
        );
        assert!(s.summary.contains("· audit · exit 0"), "{}", s.summary);
        assert!(s.summary.contains("**Would deny (1):**"), "{}", s.summary);
        assert!(
            s.summary.contains("```yaml\n- other.test:443\n```"),
            "{}",
            s.summary
        );
    }
}

#[test]
fn policy_from_the_base_branch() {
    let uid = users()[users().len() - 1];
    let mut r = Runner::new(uid, POLICY);
    let git = |args: &[&str]| {
        let mut c = Command::new("git");
        c.args(args)
            .current_dir(&r.dir.ws)
            .env("HOME", &r.dir.home)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t");
        if uid != 0 {
            c.uid(uid).gid(uid);
        }
        let o = c.output().unwrap();
        assert!(
            o.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "base"]);
    // The pull request loosens its own policy in the working tree.
    r.dir.write(
        "ws/.github/stepjail.yml",
        &POLICY.replace(
            "deps: { profile: deps-profile }",
            "deps: { profile: cargo }",
        ),
    );
    let out = r.setup(&["--policy-ref", "main"], None).ok();
    assert!(out.contains("main:./.github/stepjail.yml"), "{out}");
    assert!(out.contains("test/deps -> deps-profile"), "{out}");
    let s = r.step(Some("deps"), "echo mark=$MARK", &[]);
    assert!(s.out.ok().contains("mark=deps-profile"));
    // A bad ref is an error, and nothing is frozen from it.
    let mut r2 = Runner::new(uid, POLICY);
    let out = r2.setup(&["--policy-ref", "no-such-branch"], None);
    assert_eq!(out.code(), 2);
    assert!(!r2.state().join("state.json").exists());
}

#[test]
fn setup_refuses_an_invalid_policy_and_freezes_nothing() {
    let uid = users()[users().len() - 1];
    let mut r = Runner::new(
        uid,
        "version: 1\njobs:\n  test:\n    steps:\n      deps: { profile: nmp }\n",
    );
    let out = r.setup(&[], None);
    assert_eq!(out.code(), 2);
    assert!(out.stdout().contains("::error title=stepjail setup::.github/stepjail.yml:5:24: `jobs.test.steps.deps.profile`: unknown profile `nmp`"), "{}", out.stdout());
    assert!(!r.state().join("state.json").exists());
    assert!(!r.env.contains_key("STEPJAIL_STATE"));
}

#[test]
fn an_audit_mode_job_log_suggests_a_policy_that_enforces_what_the_steps_did() {
    if !inet::needs_root() {
        return;
    }
    let net = Internet::new();
    let policy = "version: 1\njobs:\n  test:\n    steps:\n      fetch: { profile: default }\n      build: { profile: default }\n";
    let fetch = "curl -sSk -o /dev/null https://allowed.test/ && curl -sSk -o /dev/null https://other.test/ && echo fetched";
    let resolver = [("STEPJAIL_RESOLVER", "192.0.2.53:53")];
    let uid = common::NOBODY;
    let mut r = Runner::new(uid, policy);
    r.netns = Some(net.ns.clone());
    r.setup(&["--mode", "audit"], None).ok();
    assert!(
        r.step(Some("fetch"), fetch, &resolver)
            .out
            .ok()
            .contains("fetched")
    );
    assert!(
        r.step(Some("build"), "echo built", &resolver)
            .out
            .ok()
            .contains("built")
    );

    let out = Out(Command::new(bin())
        .args(["audit", "suggest", "--policy"])
        .arg(r.state().join("audit.jsonl"))
        .output()
        .unwrap());
    let suggested = out.ok();
    assert!(
        suggested.contains("      fetch: { profile: test-fetch }"),
        "{suggested}"
    );
    assert!(
        suggested.contains("      build: { profile: default }"),
        "{suggested}"
    );
    assert!(suggested.contains("    extends: default"), "{suggested}");
    assert!(suggested.contains("- allowed.test:443"), "{suggested}");
    assert!(suggested.contains("- other.test:443"), "{suggested}");

    // Enforced as it is, the suggestion lets the same step through and nothing else.
    let mut r2 = Runner::new(uid, &suggested);
    r2.netns = Some(net.ns.clone());
    let checked = Out(Command::new(bin())
        .arg("check")
        .arg(r2.dir.ws.join(".github/stepjail.yml"))
        .output()
        .unwrap());
    checked.ok();
    r2.setup(&[], None).ok();
    assert!(
        r2.step(Some("fetch"), fetch, &resolver)
            .out
            .ok()
            .contains("fetched")
    );
    let s = r2.step(
        Some("fetch"),
        "curl -sk -o /dev/null https://a.wild.test/ || echo refused",
        &resolver,
    );
    let o = s.out.ok();
    assert!(
        o.contains("refused") && o.contains("denied a.wild.test:443"),
        "{o}"
    );
    // Without CI step ids there is nothing to key a policy on.
    let plain = r.dir.write("plain.jsonl", "");
    let out = Out(Command::new(bin())
        .args(["audit", "suggest", "--policy"])
        .arg(&plain)
        .output()
        .unwrap());
    assert_eq!(out.code(), 1);
    assert!(
        out.stderr()
            .contains("none of these records comes from `stepjail step`")
    );
}

#[test]
fn a_shell_line_naming_stepjail_state_does_not_expose_it() {
    let uid = users()[users().len() - 1];
    let mut r = Runner::new(uid, POLICY);
    r.setup(&[], Some(r#"{"TOKEN":"s3cr3t-value-123"}"#)).ok();
    let script = r.temp.join("0000-extra-arg");
    std::fs::write(&script, "cat \"$1\" 2>&1 || true\n").unwrap();
    chown(&script, uid);
    let secrets = r.state().join("secrets.json");
    let out = Out(r
        .command(&[
            "step",
            "--",
            "bash",
            "--noprofile",
            "--norc",
            script.to_str().unwrap(),
            secrets.to_str().unwrap(),
        ])
        .env("GITHUB_ACTION", "peek")
        .output()
        .unwrap());
    let o = out.ok();
    assert!(o.contains("No such file or directory"), "{o}");
    assert!(!o.contains("s3cr3t"), "{o}");
}

/// A JavaScript action, as `run-action` fetches it, run by `stepjail action` under a step's
/// policy entry: inputs arrive as the runner would pass them, outputs go to the step's
/// GITHUB_OUTPUT, and the action is as confined as a `run:` step.
#[test]
fn a_javascript_action_runs_in_the_sandbox_under_its_step_entry() {
    if Command::new("node").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "CI needs node");
        eprintln!("skipped: no node");
        return;
    }
    for uid in users() {
        let mut r = Runner::new(
            uid,
            "version: 1\nprofiles:\n  act:\n    description: the action\n    extends: default\n    env: { set: { MARK: act-profile } }\njobs:\n  test:\n    steps:\n      greet: { profile: act }\n",
        );
        r.setup(&[], None).ok();
        r.dir.write(
            "actions/greet/action.yml",
            "name: greet\ndescription: says hello\ninputs:\n  who:\n    default: world\n  num-octocats:\n    required: true\n  token:\n    default: ${{ github.token }}\noutputs:\n  greeting: { description: the greeting }\nruns:\n  using: node20\n  main: dist/index.js\n  post: dist/post.js\n",
        );
        r.dir.write(
            "actions/greet/dist/index.js",
            r#"const fs = require('fs');
const out = process.env.GITHUB_OUTPUT;
fs.appendFileSync(out, `greeting=hello ${process.env.INPUT_WHO}\n`);
console.log(`octocats=${process.env['INPUT_NUM-OCTOCATS']} token=${process.env.INPUT_TOKEN || 'unset'} mark=${process.env.MARK}`);
console.log(`path=${process.env.GITHUB_ACTION_PATH}`);
console.log(`server=${process.env.GITHUB_SERVER_URL} token=${process.env.GITHUB_TOKEN || 'unset'}`);
try { fs.readFileSync('/proc/1/environ'); console.log('environ=read'); } catch (e) { console.log('environ=' + e.code); }
try { fs.writeFileSync(process.env.GITHUB_ACTION_PATH + '/dist/index.js', 'x'); console.log('tamper=ok'); } catch (e) { console.log('tamper=' + e.code); }
fs.appendFileSync(process.env.GITHUB_ENV, 'NODE_OPTIONS=--require /tmp/evil.js\n');
process.exit(3);
"#,
        );
        let action_dir = r.dir.root.join("actions/greet");
        let n = r.n + 1;
        let out_file = r.file(&format!("set_output_{n}"));
        let env_file = r.file(&format!("set_env_{n}"));
        r.n = n;
        let out = Out(r
            .command(&[
                "action",
                "--step",
                "greet",
                "--input",
                "who=stepjail",
                "--input",
                "NUM-OCTOCATS=2",
                action_dir.to_str().unwrap(),
            ])
            .env("GITHUB_ACTION", "__stepjail_run-action")
            .env("GITHUB_OUTPUT", &out_file)
            .env("GITHUB_ENV", &env_file)
            .env("GITHUB_SERVER_URL", "https://github.com")
            .env("GITHUB_TOKEN", "ghs_jobtoken0123456789")
            .output()
            .unwrap());
        assert_eq!(out.code(), 3, "{}\n{}", out.stdout(), out.stderr());
        let o = out.stdout();
        assert!(o.contains("octocats=2 token=unset mark=act-profile"), "{o}");
        assert!(o.contains(&format!("path={}", action_dir.display())), "{o}");
        assert!(o.contains("environ=EACCES"), "{o}");
        // The action's context, never the job token.
        assert!(o.contains("server=https://github.com token=unset"), "{o}");
        assert!(o.contains("tamper=EROFS"), "{o}");
        assert!(
            o.contains("::warning title=stepjail action::the action's `post` script (dist/post.js) is not run"),
            "{o}"
        );
        assert!(o.contains("wrote NODE_OPTIONS to GITHUB_ENV"), "{o}");
        assert_eq!(
            std::fs::read_to_string(&out_file).unwrap(),
            "greeting=hello stepjail\n"
        );
        assert_eq!(std::fs::read_to_string(&env_file).unwrap(), "");
    }
    // Only JavaScript actions.
    let mut r = Runner::new(users()[0], POLICY);
    r.setup(&[], None).ok();
    r.dir.write(
        "actions/dock/action.yml",
        "name: d\nruns:\n  using: docker\n  image: Dockerfile\n",
    );
    let out = Out(r
        .command(&[
            "action",
            "--step",
            "x",
            r.dir.root.join("actions/dock").to_str().unwrap(),
        ])
        .output()
        .unwrap());
    assert_eq!(out.code(), 2);
    assert!(
        out.stderr().contains("only JavaScript actions"),
        "{}",
        out.stderr()
    );
    r.dir.write(
        "actions/esc/action.yml",
        "name: e\nruns:\n  using: node20\n  main: ../../ws/x.js\n",
    );
    r.dir.write("ws/x.js", "");
    let out = Out(r
        .command(&[
            "action",
            "--step",
            "x",
            r.dir.root.join("actions/esc").to_str().unwrap(),
        ])
        .output()
        .unwrap());
    assert_eq!(out.code(), 2);
    assert!(
        out.stderr().contains("is not a file inside the action"),
        "{}",
        out.stderr()
    );
}

/// `run-action/action.yml`'s script, run as the runner would run it (bash, its env), with a
/// stand-in `git` that "fetches" a local copy of the action instead of github.com.
#[test]
fn the_run_action_composite_fetches_and_runs_the_action_in_stepjail() {
    if Command::new("node").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "CI needs node");
        return;
    }
    let yml: serde_json::Value = serde_saphyr::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/run-action/action.yml"
        ))
        .unwrap(),
    )
    .unwrap();
    let script = yml["runs"]["steps"][0]["run"].as_str().unwrap().to_string();
    let uid = users()[users().len() - 1];
    let mut r = Runner::new(
        uid,
        "version: 1\njobs:\n  test:\n    steps:\n      hello: { profile: default }\n",
    );
    r.setup(&[], None).ok();
    r.dir.write(
        "src-action/sub/action.yml",
        "name: hello\ninputs:\n  who: { default: world }\nruns: { using: node20, main: index.js }\n",
    );
    r.dir.write(
        "src-action/sub/index.js",
        "require('fs').appendFileSync(process.env.GITHUB_OUTPUT, `said=hi ${process.env.INPUT_WHO}\\n`);\n",
    );
    // The stand-in tools: `git` copies the local action, `stepjail` is the binary under test.
    let tools = r.dir.write(
        "tools/git",
        &format!(
            "#!/bin/sh\nset -e\nif [ \"$1\" = -C ]; then cd \"$2\"; shift 2; fi\ncase \"$1\" in fetch) cp -R {}/. . ;; esac\n",
            r.dir.root.join("src-action").display()
        ),
    );
    std::fs::set_permissions(&tools, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(bin(), r.dir.root.join("tools/stepjail")).unwrap();
    r.path
        .insert(0, r.dir.root.join("tools").display().to_string());
    let script_file = r.dir.write("run-action.sh", &script);
    let n = r.n + 1;
    let out_file = r.file(&format!("set_output_{n}"));
    let mut cmd = r.command(&[]);
    cmd.env("GITHUB_OUTPUT", &out_file)
        .env("GITHUB_ACTION", "__stepjail_run-action")
        .env("STEPJAIL_STEP", "hello")
        .env("STEPJAIL_ACTION", "acme/hello/sub@v1")
        .env("STEPJAIL_WITH", "who: composite\n");
    // `command()` runs stepjail; run bash instead, with the same environment.
    let mut cmd = cmd_with_program(cmd, "bash", &[script_file.to_str().unwrap()]);
    if uid != 0 {
        cmd.uid(uid).gid(uid);
    }
    let out = Out(cmd.output().unwrap());
    let o = out.ok();
    assert!(o.contains("is not pinned to a full commit SHA"), "{o}");
    assert_eq!(
        std::fs::read_to_string(&out_file).unwrap(),
        "said=hi composite\n"
    );
    assert!(
        r.dir
            .root
            .join("_stepjail_actions/acme/hello/v1/.stepjail-fetched")
            .exists()
    );
}

/// A copy of `cmd`'s environment and directory, running `program args` instead.
fn cmd_with_program(cmd: Command, program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args).env_clear().stdin(Stdio::null());
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    if let Some(d) = cmd.get_current_dir() {
        c.current_dir(d);
    }
    c
}

/// The same policy entry on a laptop: no runner, no RUNNER_TEMP, an explicit state directory.
#[test]
fn a_ci_step_reproduces_locally_under_its_policy_entry() {
    let uid = users()[users().len() - 1];
    let dir = Dir::new(uid);
    dir.write("ws/.github/stepjail.yml", POLICY);
    let state = dir.root.join("state");
    let local = |args: &[&str]| {
        let mut c = Command::new(bin());
        c.args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &dir.home)
            .env("GITHUB_JOB", "test")
            .env("GITHUB_ACTION", "deps")
            .current_dir(&dir.ws)
            .stdin(Stdio::null());
        if uid != 0 {
            c.uid(uid).gid(uid);
        }
        Out(c.output().unwrap())
    };
    local(&["setup", "--state-dir", state.to_str().unwrap()]).ok();
    let out = local(&[
        "step",
        "--state-dir",
        state.to_str().unwrap(),
        "--",
        "bash",
        "-c",
        "echo mark=$MARK; cat \"$0\" 2>&1 || true",
        state.join("policy.yml").to_str().unwrap(),
    ]);
    let o = out.ok();
    assert!(o.contains("mark=deps-profile"), "{o}");
    assert!(o.contains("policy.yml: Permission denied"), "{o}");
}

#[test]
fn a_writable_directory_on_the_runners_path_is_reported() {
    let uid = users()[users().len() - 1];
    let mut r = Runner::new(uid, POLICY);
    r.setup(&[], None).ok();
    // As if an unsandboxed step had put the workspace's bin/ on PATH.
    r.path.insert(0, format!("{}/bin", r.dir.ws.display()));
    let o = r.step(None, "true", &[]).out.ok();
    assert!(
        o.contains("::warning title=stepjail%3A writable PATH directory::")
            && o.contains("this step could put programs there that later unsandboxed steps run"),
        "{o}"
    );
    r.path.clear();
    assert!(!r.step(None, "true", &[]).out.ok().contains("writable PATH"));
}

/// act keeps the file-command files in a workflow directory of its own, outside RUNNER_TEMP:
/// they are bound writable where they are. One the step could replace (in the workspace) or
/// a symbolic link is refused, and the step is not run.
#[test]
fn file_command_files_outside_runner_temp_are_writable_and_checked() {
    for uid in users() {
        let mut r = Runner::new(uid, POLICY);
        r.setup(&[], None).ok();
        let wf = r.dir.root.join("act/workflow");
        std::fs::create_dir_all(&wf).unwrap();
        chown(&wf, uid);
        let file = |name: &str| {
            let p = wf.join(name);
            std::fs::write(&p, "").unwrap();
            chown(&p, uid);
            p
        };
        let (out, env) = (file("outputcmd.txt"), file("envs.txt"));
        let s = r.step(
            None,
            "echo x=y >> \"$GITHUB_OUTPUT\"\necho K=v >> \"$GITHUB_ENV\"\necho done",
            &[
                ("GITHUB_OUTPUT", out.to_str().unwrap()),
                ("GITHUB_ENV", env.to_str().unwrap()),
            ],
        );
        assert_eq!(s.out.code(), 0, "uid {uid}: {}", s.out.stderr());
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "x=y\n");
        assert_eq!(std::fs::read_to_string(&env).unwrap(), "K=v\n");

        // In the workspace: the step could plant a link there for stepjail to follow.
        let in_ws = r.dir.write("ws/outputcmd.txt", "");
        let s = r.step(
            None,
            "echo ran",
            &[("GITHUB_OUTPUT", in_ws.to_str().unwrap())],
        );
        assert_eq!(s.out.code(), 125, "uid {uid}: {}", s.out.stderr());
        assert!(
            s.out
                .stdout()
                .contains("::error title=stepjail::GITHUB_OUTPUT=")
                && s.out.stdout().contains("inside the workspace"),
            "uid {uid}: {}",
            s.out.stdout()
        );
        assert!(!s.out.stdout().contains("ran"), "uid {uid}: the step ran");

        // A symbolic link to another file.
        let link = wf.join("envs-link.txt");
        std::os::unix::fs::symlink(&env, &link).unwrap();
        let s = r.step(None, "echo ran", &[("GITHUB_ENV", link.to_str().unwrap())]);
        assert_eq!(s.out.code(), 125, "uid {uid}: {}", s.out.stderr());
        assert!(
            s.out
                .stdout()
                .contains("::error title=stepjail::GITHUB_ENV=")
                && s.out.stdout().contains("a symbolic link"),
            "uid {uid}: {}",
            s.out.stdout()
        );
    }
}

/// `stepjail step` takes the upstream proxy from `STEPJAIL_UPSTREAM_PROXY`, or from the
/// runner's `HTTPS_PROXY` with `STEPJAIL_UPSTREAM_PROXY_FROM_ENV=1` (tests/upstream_proxy.rs
/// tests the proxying itself with `stepjail run`). The proxy here does not exist, so an allowed
/// connection fails with 502 naming it: it was used, and nothing went direct.
#[test]
fn step_takes_the_upstream_proxy_from_the_runners_environment() {
    if !inet::needs_root() {
        return;
    }
    let net = Internet::new();
    let policy = "version: 1
profiles:
  web:
    description: the allowed test host
    extends: default
    network: { allow: [allowed.test:443] }
    env: { pass: [STEPJAIL_*] }
jobs:
  test:
    steps:
      fetch: { profile: web }
";
    let script = "curl -sk -o /dev/null -w '%{http_connect}\\n' https://allowed.test/ || true
                  env | grep -c '^STEPJAIL_UPSTREAM_PROXY=' || true";
    let dead = "http://u:pw-never-shown@198.51.100.20:3999";
    let cases: [&[(&str, &str)]; 2] = [
        &[("STEPJAIL_UPSTREAM_PROXY", dead)],
        &[
            ("STEPJAIL_UPSTREAM_PROXY_FROM_ENV", "1"),
            ("HTTPS_PROXY", dead),
        ],
    ];
    for env in cases {
        let mut r = Runner::new(inet::egress_users()[0], policy);
        r.netns = Some(net.ns.clone());
        r.setup(&[], None).ok();
        let mut env = env.to_vec();
        env.push(("STEPJAIL_RESOLVER", "192.0.2.53:53"));
        let s = r.step(Some("fetch"), script, &env);
        let o = s.out.ok();
        // 502, and the credential-bearing variable is not in the step's environment.
        assert!(
            o.starts_with("502\n0\n"),
            "{env:?}: {o}\n{}",
            s.out.stderr()
        );
        let err = s.out.stderr();
        assert!(
            err.contains("upstream proxy http://198.51.100.20:3999: cannot connect"),
            "{env:?}: {err}"
        );
        assert!(!err.contains("pw-never-shown") && !o.contains("pw-never-shown"));
        assert_eq!(net.log("web.log"), "");
    }
}
