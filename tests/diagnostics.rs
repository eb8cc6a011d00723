//! Diagnostics (`stepjail -v`, `STEPJAIL_LOG`) end to end: the real binary, a real sandbox.
//! By default a run prints nothing it did not print before; `-v` and `STEPJAIL_LOG` add
//! `stepjail: LEVEL module: ...` lines on stderr and leave stdout alone.

mod common;

use common::*;

fn run(dir: &Dir, top: &[&str], env: Option<&str>) -> Out {
    let mut args: Vec<&str> = top.to_vec();
    args.extend_from_slice(&["run", "--", "sh", "-c", "echo out"]);
    let sj = Sj::new(dir, &args);
    match env {
        Some(v) => sj.env("STEPJAIL_LOG", v),
        None => sj,
    }
    .output()
}

#[test]
fn a_run_prints_no_diagnostics_by_default() {
    for uid in users() {
        let dir = Dir::new(uid);
        let out = run(&dir, &[], None);
        assert_eq!(out.ok(), "out\n");
        assert_eq!(out.stderr(), "", "as uid {uid}");
    }
}

#[test]
fn v_and_vv_add_the_supervisors_events_on_stderr() {
    let dir = Dir::new(users()[0]);
    let out = run(&dir, &["-v"], None);
    assert_eq!(out.ok(), "out\n");
    let err = out.stderr();
    assert!(
        err.contains("stepjail: INFO sandbox: sandbox child cloned pid="),
        "{err}"
    );
    assert!(
        err.contains("stepjail: INFO sandbox: the step ended; its init is exiting code=0"),
        "{err}"
    );
    assert!(!err.contains("DEBUG"), "{err}");
    let out = run(&dir, &["-vv"], None);
    assert_eq!(out.ok(), "out\n");
    assert!(
        out.stderr()
            .contains("stepjail: DEBUG sandbox: identity maps written; releasing the child"),
        "{}",
        out.stderr()
    );
}

#[test]
fn stepjail_log_selects_modules_and_a_bad_directive_is_named_and_ignored() {
    let dir = Dir::new(users()[0]);
    let out = run(&dir, &[], Some("stepjail::sandbox=debug"));
    assert_eq!(out.ok(), "out\n");
    assert!(
        out.stderr().contains("stepjail: DEBUG sandbox: "),
        "{}",
        out.stderr()
    );
    let out = run(&dir, &[], Some("stepjail::proxy=debug"));
    assert_eq!(out.ok(), "out\n");
    assert_eq!(out.stderr(), "", "no proxy runs without a network");
    let out = run(&dir, &[], Some("stepjail=loud"));
    assert_eq!(out.ok(), "out\n");
    let err = out.stderr();
    assert!(
        err.starts_with("stepjail: ignoring STEPJAIL_LOG=\"stepjail=loud\": "),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// `-v` is one global flag: after the subcommand it is the same `-v` as before it (the
/// tracing level and what the sandbox applied), while anything after `--` is the step's own.
#[test]
fn v_works_anywhere_before_the_command_and_after_it_belongs_to_the_step() {
    let dir = Dir::new(users()[0]);
    for args in [
        &["-vv", "run", "--"][..],
        &["run", "-vv", "--"],
        &["run", "-v", "-v", "--"],
        &["run", "--verbose", "-v", "--"],
    ] {
        let mut args = args.to_vec();
        args.extend_from_slice(&["sh", "-c", "echo out"]);
        let out = Sj::new(&dir, &args).output();
        assert_eq!(out.ok(), "out\n", "{args:?}");
        let err = out.stderr();
        for line in [
            "stepjail: profile default (builtin:default), step runs as uid ",
            "stepjail: INFO sandbox: sandbox child cloned pid=",
            "stepjail: DEBUG sandbox: identity maps written; releasing the child",
            "stepjail: landlock: ABI ",
        ] {
            assert!(err.contains(line), "{args:?}: no {line:?} in {err}");
        }
    }
    // After `--`, `-v` is an argument of the step's command, and stepjail says nothing.
    let out = Sj::run(&dir, &[], &["sh", "-c", "echo \"$@\"", "sh", "-v", "-vv"]).output();
    assert_eq!(out.ok(), "-v -vv\n");
    assert_eq!(out.stderr(), "");
    // Every other subcommand takes it too, and it changes none of their output.
    let out = Sj::new(&dir, &["check", "-v", "default"]).output();
    assert_eq!(out.ok(), "default: ok\n");
    let out = Sj::new(&dir, &["profiles", "-v"]).output();
    assert_eq!(out.code(), 0, "{}", out.stderr());
}

/// stderr a pipe nobody reads any more (`stepjail run ... 2>&1 | head` once `head` is done):
/// the lines stepjail writes there are lost, the run is not. It once panicked on the first
/// denial line (EPIPE) and aborted, killing the step.
#[test]
fn a_closed_stderr_loses_lines_not_the_run() {
    let dir = Dir::new(users()[0]);
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let script = "import socket\n\
        s = socket.create_connection(('127.0.0.1', 3128))\n\
        s.sendall(b'CONNECT denied.example:443 HTTP/1.1\\r\\n\\r\\n')\n\
        print(s.recv(100).split(b'\\r\\n')[0].decode())\n\
        print('still here')\n";
    let mut sj = Sj::run(&dir, &["--mode", "enforce"], &["python3", "-c", script]);
    sj.cmd.stderr(writer);
    let out = sj.output();
    assert_eq!(out.0.status.code(), Some(0), "{:?}", out.0.status);
    assert_eq!(out.stdout(), "HTTP/1.1 403 Forbidden\nstill here\n");
}
