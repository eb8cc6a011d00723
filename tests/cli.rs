//! The command line around the sandbox: bad profiles are refused before anything runs,
//! `check` reports precise errors, `profiles` lists the built-ins.

mod common;

use common::*;

/// Runs `stepjail run --profile FILE -- touch MARKER` and asserts it failed with exit code 2,
/// the given message on stderr, and that the command never ran.
fn refused(yaml: &str, want: &str) {
    let dir = Dir::new(users()[users().len() - 1]);
    let p = dir.write("ws/p.yml", yaml);
    let marker = dir.ws.join("ran");
    let out = Sj::run(
        &dir,
        &["--profile", p.to_str().unwrap()],
        &["touch", marker.to_str().unwrap()],
    )
    .output();
    assert_eq!(out.code(), 2, "{}", out.stderr());
    let want = want.replace("FILE", p.to_str().unwrap());
    assert_eq!(out.stderr(), format!("stepjail: {want}\n"));
    assert!(!marker.exists(), "the command ran despite a bad profile");
    assert_eq!(out.stdout(), "");
}

#[test]
fn unknown_key_is_refused_with_file_line_column_and_expected_keys() {
    refused(
        "name: a\ndescription: x\nfilesystem:\n  read_wrte: [$WORKSPACE]\n",
        "FILE:4:3: unknown key `read_wrte` in `filesystem` (expected one of: read_write, read_only, hidden, files)",
    );
}

#[test]
fn duplicate_key_is_refused() {
    refused(
        "name: a\ndescription: x\nname: b\n",
        "FILE:3:1: duplicate key `name` in the top level (first written at line 1)",
    );
}

#[test]
fn wrong_type_is_refused() {
    refused(
        "name: a\ndescription: x\nprocess:\n  timeout: [1]\n",
        "FILE:4:12: `process.timeout`: expected a duration like 90s, 30m or 2h, found a list",
    );
}

#[test]
fn unknown_variable_is_refused() {
    refused(
        "name: a\ndescription: x\nfilesystem:\n  hidden: [$FOO/x]\n",
        "FILE:4:12: `filesystem.hidden[0]`: unknown variable `$FOO` (allowed: $WORKSPACE, $HOME, \
         $TMPDIR, $RUNNER_TEMP, or ${NAME} for one of those; write $$ for a literal $)",
    );
}

#[test]
fn unset_variable_is_refused_at_run_time() {
    let dir = Dir::new(users()[users().len() - 1]);
    let p = dir.write(
        "ws/p.yml",
        "name: a\ndescription: x\nfilesystem:\n  read_write: [$RUNNER_TEMP]\n",
    );
    let out = Sj::run(&dir, &["--profile", p.to_str().unwrap()], &["true"]).output();
    assert_eq!(out.code(), 2, "{}", out.stderr());
    assert!(out.stderr().contains(":4:16:"), "{}", out.stderr());
    assert!(out.stderr().contains("$RUNNER_TEMP"), "{}", out.stderr());
    assert!(
        out.stderr().contains("has no value in this run"),
        "{}",
        out.stderr()
    );
}

#[test]
fn extends_cycle_is_refused_with_the_chain() {
    let dir = Dir::new(users()[users().len() - 1]);
    let a = dir.write("ws/a.yml", "name: a\ndescription: x\nextends: ./b.yml\n");
    let b = dir.write("ws/b.yml", "name: b\ndescription: y\nextends: ./a.yml\n");
    let marker = dir.ws.join("ran");
    let out = Sj::run(
        &dir,
        &["--profile", a.to_str().unwrap()],
        &["touch", marker.to_str().unwrap()],
    )
    .output();
    assert_eq!(out.code(), 2, "{}", out.stderr());
    let err = out.stderr();
    assert!(err.contains("extends cycle"), "{err}");
    let (a, b) = (a.display(), b.display());
    assert!(
        err.contains(&format!("extends cycle: {a} -> {b} -> {a}")),
        "{err}"
    );
    assert!(!marker.exists());
}

#[test]
fn contradictions_are_refused() {
    let dir = Dir::new(users()[users().len() - 1]);
    let p = dir.write(
        "ws/c.yml",
        "name: c\ndescription: x\nfilesystem:\n  read_write: [$HOME/.ssh]\n  hidden: [$HOME/.ssh]\n",
    );
    let out = Sj::run(&dir, &["--profile", p.to_str().unwrap()], &["true"]).output();
    assert_eq!(out.code(), 2);
    assert!(
        out.stderr().contains("cannot be both hidden and writable"),
        "{}",
        out.stderr()
    );
    let p = dir.write(
        "ws/r.yml",
        "name: r\ndescription: x\nfilesystem:\n  read_write: [/]\n",
    );
    let out = Sj::run(&dir, &["--profile", p.to_str().unwrap()], &["true"]).output();
    assert_eq!(out.code(), 2);
    assert!(
        out.stderr().contains("whole host writable"),
        "{}",
        out.stderr()
    );
}

#[test]
fn a_secret_named_like_a_variable_stepjail_sets_is_refused_by_check() {
    let dir = Dir::new(users()[users().len() - 1]);
    for name in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "no_proxy",
        "SSL_CERT_FILE",
        "NODE_EXTRA_CA_CERTS",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "GIT_SSL_CAINFO",
        "PATH",
        "HOME",
        "TMPDIR",
        "USER",
        "LOGNAME",
    ] {
        let p = dir.write(
            "ws/p.yml",
            &format!("name: p\ndescription: x\nsecrets:\n  {name}: {{}}\n"),
        );
        let out = Sj::new(&dir, &["check", p.to_str().unwrap()]).output();
        assert_eq!(out.code(), 1, "{name}: {}", out.stderr());
        let want = format!("stepjail: {}:4:3: `secrets.{name}`", p.display());
        assert!(
            out.stderr().starts_with(&want)
                && out.stderr().contains("stepjail sets this variable itself"),
            "{name}: {}",
            out.stderr()
        );
    }
}

#[test]
fn check_reports_each_file_and_fails_if_any_is_bad() {
    let dir = Dir::new(users()[users().len() - 1]);
    let good = dir.write(
        "ws/good.yml",
        "name: g\ndescription: fine\nextends: default\n",
    );
    let bad = dir.write(
        "ws/bad.yml",
        "name: b\ndescription: x\nnetwork:\n  mode: open\n",
    );
    let out = Sj::new(
        &dir,
        &["check", good.to_str().unwrap(), bad.to_str().unwrap()],
    )
    .output();
    assert_eq!(out.code(), 1);
    assert_eq!(out.stdout(), format!("{}: ok\n", good.display()));
    assert!(
        out.stderr()
            .starts_with(&format!("stepjail: {}:4:9:", bad.display())),
        "{}",
        out.stderr()
    );
    let out = Sj::new(&dir, &["check", good.to_str().unwrap()]).output();
    assert_eq!(out.code(), 0);
}

#[test]
fn builtin_profiles_are_listed_and_valid() {
    let dir = Dir::new(users()[users().len() - 1]);
    let out = Sj::new(&dir, &["profiles"]).output().ok();
    let names: Vec<&str> = out
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert!(
        names.contains(&"default") && names.contains(&"offline"),
        "{out}"
    );
    assert!(out.contains(
        "no network; workspace read-write; everything else read-only; credentials hidden"
    ));
    let files: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/profiles"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    assert_eq!(
        files.len(),
        names.len(),
        "every file in profiles/ is a built-in"
    );
    let mut args = vec!["check"];
    args.extend(files.iter().map(String::as_str));
    Sj::new(&dir, &args).output().ok();
    for name in names {
        Sj::run(&dir, &["--profile", name], &["true"]).output().ok();
    }
}

#[test]
fn unknown_builtin_names_the_available_ones() {
    let dir = Dir::new(users()[users().len() - 1]);
    let out = Sj::run(&dir, &["--profile", "nosuch"], &["true"]).output();
    assert_eq!(out.code(), 2);
    assert!(
        out.stderr().contains("available: default, offline"),
        "{}",
        out.stderr()
    );
}

#[test]
fn every_example_profile_is_valid() {
    let dir = Dir::new(users()[users().len() - 1]);
    let mut files: Vec<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"))
            .unwrap()
            .map(|e| e.unwrap().path().display().to_string())
            .filter(|p| p.ends_with(".yml"))
            .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    let mut args = vec!["check"];
    args.extend(files.iter().map(String::as_str));
    let out = Sj::new(&dir, &args).output().ok();
    assert_eq!(out.lines().count(), files.len());
    assert!(out.lines().all(|l| l.ends_with(": ok")), "{out}");
}

#[test]
fn profiles_show_prints_a_builtin_profile_as_embedded() {
    let dir = Dir::new(users()[users().len() - 1]);
    let out = Sj::new(&dir, &["profiles", "show", "npm"]).output();
    let file =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/npm.yml")).unwrap();
    assert_eq!(out.ok(), file);
    let out = Sj::new(&dir, &["profiles", "show", "nosuch"]).output();
    assert_eq!(out.code(), 2);
    assert!(
        out.stderr().starts_with("stepjail: ")
            && out.stderr().contains("available: default, offline"),
        "{}",
        out.stderr()
    );
    assert_eq!(out.stdout(), "");
}

#[test]
fn check_accepts_a_builtin_name_and_a_file_of_that_name_wins() {
    let dir = Dir::new(users()[users().len() - 1]);
    let out = Sj::new(&dir, &["check", "npm", "pip"]).output();
    assert_eq!(out.ok(), "npm: ok\npip: ok\n");
    let out = Sj::new(&dir, &["check", "nosuch"]).output();
    assert_eq!(out.code(), 1);
    assert!(out.stderr().contains("nosuch"), "{}", out.stderr());
    // A file named like a built-in, in the working directory, is the file.
    dir.write(
        "ws/npm",
        "name: npm\ndescription: x\nnetwork:\n  mode: open\n",
    );
    let out = Sj::new(&dir, &["check", "npm"]).output();
    assert_eq!(out.code(), 1);
    assert!(
        out.stderr().starts_with("stepjail: npm:4:9:"),
        "{}",
        out.stderr()
    );
}

#[test]
fn every_subcommand_help_describes_every_argument() {
    let dir = Dir::new(users()[users().len() - 1]);
    for sub in [
        &["run"][..],
        &["profiles"],
        &["profiles", "show"],
        &["check"],
        &["audit", "summarize"],
        &["audit", "suggest"],
        &["setup"],
        &["step"],
        &["action"],
    ] {
        let mut args = sub.to_vec();
        args.push("--help");
        let help = Sj::new(&dir, &args).output().ok();
        // clap lists an argument without help as a bare name: a line of only `<NAME>`,
        // `[NAME]...` or `--flag`.
        for line in help.lines() {
            let t = line.trim();
            let bare = (t.starts_with('<') || t.starts_with('[') || t.starts_with('-'))
                && !t.contains("  ");
            assert!(
                !bare,
                "stepjail {}: `{t}` has no help text:\n{help}",
                sub.join(" ")
            );
        }
    }
}

/// `stepjail profiles | head -1` once `head` has gone: the listing ends on SIGPIPE, quietly,
/// as `cat` would (it panicked on the write error before: "failed printing to stdout").
#[test]
fn a_listing_into_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = Dir::new(users()[0]);
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut sj = Sj::new(&dir, &["profiles"]);
    sj.cmd.stdout(writer);
    let out = sj.output();
    assert_eq!(
        out.0.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}",
        out.0.status
    );
    assert_eq!(out.stderr(), "");
}
