//! Messages from the sandbox child to the supervisor, one line each over a close-on-exec pipe.
//!
//! EOF without a failure message means the step's command was exec'd: the write end is held
//! only by the child and the step (close-on-exec), so it closes exactly when exec succeeds.

use std::os::fd::BorrowedFd;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Something the user may want to know (`-v`): the landlock ABI applied, for instance.
    Info(String),
    /// Something the user must know even without `-v` (a degraded but closed setup).
    Warning(String),
    /// A setup step failed; nothing of the step ran.
    SetupFailed(String),
    /// The command could not be executed.
    ExecFailed { command: String, error: String },
    /// A process of the step sent this signal to the step's PID 1 (which forwards it to the
    /// step): the step signalled itself, the runner did not cancel it.
    InitSignalled(i32),
    /// The step's first process exited with this code (128+N for signal N) and every other
    /// process of the step was killed and reaped: all that is left is the PID 1's own exit,
    /// which the supervisor need not wait for before stopping the proxy.
    StepEnded(i32),
}

fn clean(s: &str) -> String {
    s.replace(['\n', '\t'], " ")
}

impl Message {
    pub fn encode(&self) -> String {
        match self {
            Message::Info(s) => format!("info\t{}\n", clean(s)),
            Message::Warning(s) => format!("warning\t{}\n", clean(s)),
            Message::SetupFailed(s) => format!("setup\t{}\n", clean(s)),
            Message::ExecFailed { command, error } => {
                format!("exec\t{}\t{}\n", clean(command), clean(error))
            }
            Message::InitSignalled(sig) => format!("initsig\t{sig}\n"),
            Message::StepEnded(code) => format!("ended\t{code}\n"),
        }
    }

    pub fn decode(line: &str) -> Option<Message> {
        let mut parts = line.splitn(3, '\t');
        match (parts.next()?, parts.next(), parts.next()) {
            ("info", Some(s), None) => Some(Message::Info(s.into())),
            ("warning", Some(s), None) => Some(Message::Warning(s.into())),
            ("initsig", Some(n), None) => n.parse().ok().map(Message::InitSignalled),
            ("ended", Some(n), None) => n.parse().ok().map(Message::StepEnded),
            ("setup", Some(s), None) => Some(Message::SetupFailed(s.into())),
            ("exec", Some(c), Some(e)) => Some(Message::ExecFailed {
                command: c.into(),
                error: e.into(),
            }),
            _ => None,
        }
    }
}

/// Best effort: if the supervisor is gone there is nobody left to tell.
pub fn send(fd: BorrowedFd<'_>, m: &Message) {
    let _ = crate::sys::write_all(fd, m.encode().as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_stay_on_one_line() {
        for m in [
            Message::Info("landlock: ABI 6".into()),
            Message::Warning("capture off".into()),
            Message::SetupFailed("mount\nfailed".into()),
            Message::ExecFailed {
                command: "no such".into(),
                error: "No such file".into(),
            },
            Message::InitSignalled(15),
            Message::StepEnded(137),
        ] {
            let line = m.encode();
            assert_eq!(line.matches('\n').count(), 1);
            let back = Message::decode(line.trim_end_matches('\n')).unwrap();
            match (&m, &back) {
                (Message::SetupFailed(_), Message::SetupFailed(s)) => assert_eq!(s, "mount failed"),
                _ => assert_eq!(m, back),
            }
        }
    }
}
