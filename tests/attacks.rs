//! Attacks on the host side of a run, from the attacker's-eye review in issue 10: files stepjail
//! writes on the host reached through links the workspace holds, the audit log replaced
//! through its directory, socket families that bypass the network namespace, and a step that
//! signals its own init to look cancelled. Each test replays the attack and checks the specific
//! outcome, as root and as an unprivileged user.

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;

use common::*;

/// The events of an audit log, each line parsed; panics on a line that is not JSON.
fn events(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

#[test]
fn an_audit_log_path_that_is_a_link_out_of_the_workspace_is_refused() {
    for uid in users() {
        let dir = Dir::new(uid);
        let victim = dir.write("elsewhere/victim.txt", "precious\n");
        let before = std::fs::read(&victim).unwrap();
        // A checked-out repository can hold a symbolic link...
        let planted = dir.ws.join("planted.jsonl");
        symlink(&victim, &planted).unwrap();
        chown(&planted, uid);
        // ...and a hard link to a file of the same user on the same filesystem.
        let hard = dir.ws.join("hard.jsonl");
        std::fs::hard_link(&victim, &hard).unwrap();
        for (log, why) in [(&planted, "a symbolic link"), (&hard, "has 2 hard links")] {
            let out = Sj::run(&dir, &["--audit-log", log.to_str().unwrap()], &["true"]).output();
            assert_eq!(
                std::fs::read(&victim).unwrap(),
                before,
                "uid {uid}: stepjail wrote through {}",
                log.display()
            );
            assert_eq!(out.code(), 125, "uid {uid}: {}", out.stderr());
            assert!(
                out.stderr().contains(&log.display().to_string()) && out.stderr().contains(why),
                "uid {uid}: {}",
                out.stderr()
            );
        }
        // A dangling link is refused too, and nothing is created at its target.
        let dangling = dir.ws.join("dangling.jsonl");
        let target = dir.root.join("elsewhere/new.jsonl");
        symlink(&target, &dangling).unwrap();
        chown(&dangling, uid);
        let out = Sj::run(
            &dir,
            &["--audit-log", dangling.to_str().unwrap()],
            &["true"],
        )
        .output();
        assert_eq!(out.code(), 125, "uid {uid}: {}", out.stderr());
        assert!(!target.exists(), "uid {uid}: created {}", target.display());
    }
}

#[test]
fn the_audit_log_cannot_be_replaced_through_its_directory() {
    for uid in users() {
        let dir = Dir::new(uid);
        dir.write("ws/logs/.keep", "");
        let log = dir.ws.join("logs/a.jsonl");
        let out = Sj::run(
            &dir,
            &["--audit-log", log.to_str().unwrap()],
            &[
                "sh",
                "-c",
                "mv logs logs.old; rm -rf logs; mkdir -p logs; echo forged > logs/a.jsonl; \
                 mv logs/a.jsonl logs/b.jsonl; echo forged > logs/a.jsonl; true",
            ],
        )
        .output();
        assert_eq!(out.code(), 0, "uid {uid}: {}", out.stderr());
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(!text.contains("forged"), "uid {uid}: the log is {text:?}");
        let ev = events(&log);
        let kinds: Vec<&str> = ev.iter().map(|e| e["event"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["step_start", "step_end"], "uid {uid}: {text}");
        assert_eq!(ev[0]["step"], ev[1]["step"]);
        // The step could still write elsewhere in the directory.
        let out = Sj::run(
            &dir,
            &["--audit-log", log.to_str().unwrap()],
            &["sh", "-c", "echo mine > logs/other.txt"],
        )
        .output();
        assert_eq!(out.code(), 0, "uid {uid}: {}", out.stderr());
        assert_eq!(events(&log).len(), 4);

        // A directory on the way that is a symbolic link inside the workspace could be swapped
        // by the step (`rm link; mkdir link`): refused before anything runs.
        std::fs::create_dir(dir.ws.join("real")).unwrap();
        chown(&dir.ws.join("real"), uid);
        let link = dir.ws.join("link");
        symlink("real", &link).unwrap();
        chown(&link, uid);
        let marker = dir.ws.join("ran");
        let via = dir.ws.join("link/a.jsonl");
        let out = Sj::run(
            &dir,
            &["--audit-log", via.to_str().unwrap()],
            &["touch", marker.to_str().unwrap()],
        )
        .output();
        assert_eq!(out.code(), 2, "uid {uid}: {}", out.stderr());
        assert!(
            out.stderr().contains(&link.display().to_string())
                && out.stderr().contains("symbolic link"),
            "uid {uid}: {}",
            out.stderr()
        );
        assert!(!marker.exists());
    }
}

#[test]
fn only_unix_inet_inet6_and_netlink_sockets_can_be_created() {
    // Every family number up to past AF_MAX (46 on 6.x kernels), each with the usual types,
    // through socket(2) and socketpair(2); and the four allowed families still work.
    let code = "import ctypes,os
libc=ctypes.CDLL(None,use_errno=True)
allowed={1,2,10,16}
bad=[]
for f in list(range(0,64))+[0xffff,0x7fffffff,-1]:
  for t in (1,2,3,5):
    ctypes.set_errno(0)
    r=libc.socket(f,t,0); e=ctypes.get_errno()
    if r>=0: os.close(r)
    if f in allowed: continue
    if not (r==-1 and e==97): bad.append(('socket',f,t,r,e))
    sv=(ctypes.c_int*2)()
    ctypes.set_errno(0)
    r=libc.socketpair(f,t,0,sv); e=ctypes.get_errno()
    if r==0: os.close(sv[0]); os.close(sv[1])
    if not (r==-1 and e==97): bad.append(('socketpair',f,t,r,e))
print('refused-wrongly', bad)
ok=[]
for f,t in ((1,1),(2,1),(2,2),(10,1),(16,3)):
  ctypes.set_errno(0)
  r=libc.socket(f,t,0); ok.append((f,t,r>=0,ctypes.get_errno()))
  if r>=0: os.close(r)
sv=(ctypes.c_int*2)()
ok.append(('pair',libc.socketpair(1,1,0,sv)))
print('allowed', ok)";
    for uid in users() {
        let dir = Dir::new(uid);
        let out = Sj::run(&dir, &[], &[PYTHON, "-c", code]).output();
        let o = out.ok();
        assert!(o.contains("refused-wrongly []\n"), "uid {uid}: {o}");
        assert!(
            o.contains(
                "allowed [(1, 1, True, 0), (2, 1, True, 0), (2, 2, True, 0), (10, 1, True, 0), \
                 (16, 3, True, 0), ('pair', 0)]"
            ),
            "uid {uid}: {o}"
        );
    }
}

#[test]
fn a_step_that_signals_its_own_init_is_not_reported_as_cancelled() {
    for uid in users() {
        let dir = Dir::new(uid);
        let log = dir.root.join("audit.jsonl");
        let out = Sj::run(
            &dir,
            &["--audit-log", log.to_str().unwrap()],
            &["sh", "-c", "kill -TERM 1; sleep 5"],
        )
        .output();
        assert_eq!(out.code(), 123, "uid {uid}: {}", out.stderr());
        assert!(
            out.stderr()
                .contains("the step sent SIGTERM to its own init"),
            "uid {uid}: {}",
            out.stderr()
        );
        let ev = events(&log);
        let end = ev.last().unwrap();
        assert_eq!(end["event"], "step_end", "{end}");
        assert_eq!(end["exit_code"], 123, "{end}");
        assert_eq!(end["init_signal"], 15, "{end}");
        assert!(end.get("cancel_signal").is_none(), "{end}");

        // A real cancellation (the runner signals stepjail) still ends with 128+N, and says so.
        let log2 = dir.root.join("audit2.jsonl");
        let mut child = Sj::run(
            &dir,
            &["--audit-log", log2.to_str().unwrap()],
            &["sleep", "30"],
        )
        .cmd
        .spawn()
        .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(500));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(143));
        let end = events(&log2).pop().unwrap();
        assert_eq!(end["exit_code"], 143, "{end}");
        assert_eq!(end["cancel_signal"], 15, "{end}");
        assert!(end.get("init_signal").is_none(), "{end}");
    }
}
