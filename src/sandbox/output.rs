//! The step's stdout and stderr, when they must be filtered (secret values masked): the step
//! writes into pipes and the supervisor copies them to its own stdout and stderr through a
//! filter. Without a filter the step inherits stepjail's descriptors directly (a terminal stays
//! a terminal); with one, the step sees pipes.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// Transforms a byte stream in pieces (e.g. masking secret values split across writes).
pub trait Filter: Send {
    /// Bytes safe to emit after `chunk`.
    fn feed(&mut self, chunk: &[u8]) -> Vec<u8>;
    /// Whatever was held back, at end of stream.
    fn finish(&mut self) -> Vec<u8>;
}

/// The read end of one output pipe and where its filtered bytes go.
pub struct Relay {
    from: std::fs::File,
    to: Box<dyn Write + Send>,
    filter: Box<dyn Filter>,
    pub open: bool,
}

impl Relay {
    pub fn new(from: OwnedFd, to: Box<dyn Write + Send>, filter: Box<dyn Filter>) -> Relay {
        Relay {
            from: std::fs::File::from(from),
            to,
            filter,
            open: true,
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.from.as_fd()
    }

    /// Copies what is available now; marks the relay closed at end of stream.
    pub fn pump(&mut self) {
        let mut chunk = [0u8; 16 * 1024];
        match self.from.read(&mut chunk) {
            Ok(0) | Err(_) => {
                let tail = self.filter.finish();
                let _ = self.to.write_all(&tail);
                let _ = self.to.flush();
                self.open = false;
            }
            Ok(n) => {
                let out = self.filter.feed(&chunk[..n]);
                let _ = self.to.write_all(&out);
                let _ = self.to.flush();
            }
        }
    }

    /// Copies everything left until end of stream (every writer is gone).
    pub fn drain(&mut self) {
        while self.open {
            self.pump();
        }
    }
}

/// Pipes for the step's stdout and stderr: (read ends for the supervisor, stdout's first, write
/// ends for the child, which puts them on descriptors 1 and 2). `merged`: one pipe for both,
/// so the supervisor gets one read end.
pub fn pipes(merged: bool) -> std::io::Result<(Vec<OwnedFd>, [OwnedFd; 2])> {
    let (r1, w1) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    if merged {
        let w2 = w1.try_clone()?;
        return Ok((vec![r1], [w1, w2]));
    }
    let (r2, w2) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    Ok((vec![r1, r2], [w1, w2]))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Upper;
    impl Filter for Upper {
        fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
            chunk.to_ascii_uppercase()
        }
        fn finish(&mut self) -> Vec<u8> {
            b"!".to_vec()
        }
    }

    #[derive(Clone, Default)]
    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn relays_through_the_filter_until_end_of_stream() {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let sink = Sink::default();
        let mut relay = Relay::new(r, Box::new(sink.clone()), Box::new(Upper));
        let mut w = std::fs::File::from(w);
        w.write_all(b"abc").unwrap();
        drop(w);
        relay.drain();
        assert_eq!(sink.0.lock().unwrap().as_slice(), b"ABC!");
    }
}
