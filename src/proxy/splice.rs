//! Zero-copy relaying of an allowed tunnel between two kernel TCP sockets with splice(2):
//! bytes move socket -> pipe -> socket inside the kernel, never through our memory. Used for
//! CONNECT tunnels and connections captured on kernel sockets once their first bytes have been
//! checked; the userspace-stack fallback of transparent capture and anything not backed by a
//! socket use the copying relay.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{OFlag, SpliceFFlags, splice};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// How much one splice call moves at most (the pipe's default capacity).
const CHUNK: usize = 64 * 1024;

/// Moves everything from `from` to `to` until `from` reaches end of stream, then shuts down
/// `to`'s write side. Returns the number of bytes moved.
async fn one_way(from: &TcpStream, to: &TcpStream, moved: &AtomicU64) -> io::Result<u64> {
    let (pipe_r, pipe_w): (OwnedFd, OwnedFd) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
    let mut total = 0u64;
    loop {
        let n = from
            .async_io(Interest::READABLE, || {
                splice(from.as_fd(), None, pipe_w.as_fd(), None, CHUNK, flags)
                    .map_err(io::Error::from)
            })
            .await?;
        if n == 0 {
            // End of stream from this side: pass the half-close on.
            let _ = nix::sys::socket::shutdown(
                std::os::fd::AsRawFd::as_raw_fd(to),
                nix::sys::socket::Shutdown::Write,
            );
            return Ok(total);
        }
        let mut left = n;
        while left > 0 {
            let m = to
                .async_io(Interest::WRITABLE, || {
                    splice(pipe_r.as_fd(), None, to.as_fd(), None, left, flags)
                        .map_err(io::Error::from)
                })
                .await?;
            left -= m;
            moved.fetch_add(m as u64, Ordering::Relaxed);
        }
        total += n as u64;
    }
}

/// Relays both directions until both are finished (or one fails). Returns (step -> upstream,
/// upstream -> step) byte counts; `counters` follow them as they move (`written` up, `read`
/// down), so they are right even when the relay is dropped half-way.
pub async fn relay(
    step: &TcpStream,
    upstream: &TcpStream,
    counters: &super::counting::Counters,
) -> (u64, u64) {
    let up = one_way(step, upstream, &counters.written);
    let down = one_way(upstream, step, &counters.read);
    tokio::pin!(up, down);
    let (mut u, mut d) = (None, None);
    while u.is_none() || d.is_none() {
        tokio::select! {
            r = &mut up, if u.is_none() => match r {
                Ok(n) => u = Some(n),
                Err(_) => break, // a reset or error ends the whole tunnel
            },
            r = &mut down, if d.is_none() => match r {
                Ok(n) => d = Some(n),
                Err(_) => break,
            },
        }
    }
    (u.unwrap_or(0), d.unwrap_or(0))
}
