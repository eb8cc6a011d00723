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
/// Empty pipes kept for the next tunnels, at most, per thread.
const SPARE_PIPES: usize = 16;

/// A pipe between the two splices of one direction: its read end, then its write end.
type Pipe = (OwnedFd, OwnedFd);

thread_local! {
    /// Pipes of finished relays, empty: a tunnel takes two (one per direction) instead of
    /// creating and closing them (six system calls per short tunnel).
    static SPARE: std::cell::RefCell<Vec<Pipe>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn take_pipe() -> io::Result<Pipe> {
    match SPARE.with(|s| s.borrow_mut().pop()) {
        Some(p) => Ok(p),
        None => Ok(nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?),
    }
}

/// Keeps `pipe` for another tunnel. Only a pipe known to be empty comes back here: one whose
/// direction ended cleanly, every byte spliced in having been spliced out.
fn give_back(pipe: Pipe) {
    SPARE.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < SPARE_PIPES {
            s.push(pipe);
        }
    });
}

/// Moves everything from `from` to `to` until `from` reaches end of stream. Returns the number
/// of bytes moved; passing the half-close on is the caller's ([`relay`]).
async fn one_way(from: &TcpStream, to: &TcpStream, moved: &AtomicU64) -> io::Result<u64> {
    let (pipe_r, pipe_w) = take_pipe()?;
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
            give_back((pipe_r, pipe_w));
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

/// End of stream from one side while the other still sends: passed on as a half-close.
fn half_close(to: &TcpStream) {
    let _ = nix::sys::socket::shutdown(
        std::os::fd::AsRawFd::as_raw_fd(to),
        nix::sys::socket::Shutdown::Write,
    );
}

/// Relays both directions until both are finished (or one fails), then closes both sockets.
/// Returns (step -> upstream, upstream -> step) byte counts; `counters` follow them as they
/// move (`written` up, `read` down), so they are right even when the relay is dropped
/// half-way. The direction that ends first is passed on with `shutdown(SHUT_WR)`; the one
/// that ends last needs no shutdown: the close right after sends its FIN (every byte that
/// side sent was read, so nothing unread turns the close into a reset). One system call
/// fewer per tunnel, on the thread that serves the next connection.
pub async fn relay(
    step: TcpStream,
    upstream: TcpStream,
    counters: &super::counting::Counters,
) -> (u64, u64) {
    let (mut u, mut d) = (None, None);
    {
        let up = one_way(&step, &upstream, &counters.written);
        let down = one_way(&upstream, &step, &counters.read);
        tokio::pin!(up, down);
        while u.is_none() || d.is_none() {
            tokio::select! {
                r = &mut up, if u.is_none() => match r {
                    Ok(n) => {
                        u = Some(n);
                        if d.is_none() {
                            half_close(&upstream);
                        }
                    }
                    Err(_) => break, // a reset or error ends the whole tunnel
                },
                r = &mut down, if d.is_none() => match r {
                    Ok(n) => {
                        d = Some(n);
                        if u.is_none() {
                            half_close(&step);
                        }
                    }
                    Err(_) => break,
                },
            }
        }
    }
    // The closes wait for the runtime's next turn: a client that ends one tunnel and opens the
    // next makes both ready at once (this one's end, the new connection), and the new one's
    // CONNECT is then answered first (its upstream connect needs no turn when it completes in
    // the call), with these four calls after its `200` instead of before.
    tokio::task::yield_now().await;
    drop((step, upstream));
    (u.unwrap_or(0), d.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A connected pair of kernel TCP sockets on loopback.
    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b)
    }

    /// One tunnel: `up` from the step, `down` from the server, both ends closed after sending.
    async fn tunnel(up: &[u8], down: &[u8]) -> (Vec<u8>, Vec<u8>, (u64, u64)) {
        let (mut step, step_side) = pair().await;
        let (up_side, mut server) = pair().await;
        let counters = crate::proxy::counting::Counters::default();
        let relay = relay(step_side, up_side, &counters);
        let step_end = async {
            step.write_all(up).await.unwrap();
            step.shutdown().await.unwrap();
            let mut got = Vec::new();
            step.read_to_end(&mut got).await.unwrap();
            got
        };
        let server_end = async {
            server.write_all(down).await.unwrap();
            server.shutdown().await.unwrap();
            let mut got = Vec::new();
            server.read_to_end(&mut got).await.unwrap();
            got
        };
        let ends = async {
            let (at_step, at_server) = tokio::join!(step_end, server_end);
            (at_server, at_step)
        };
        let (moved, (at_server, at_step)) = tokio::join!(relay, ends);
        (at_server, at_step, moved)
    }

    /// A server that answers only once the request is complete (`nc -q`, an rsync daemon):
    /// the step's half-close reaches it while the tunnel is still open the other way, and the
    /// answer after it reaches the step, then end of stream.
    #[tokio::test(flavor = "current_thread")]
    async fn a_half_close_is_passed_on_and_the_answer_after_it_arrives() {
        let (mut step, step_side) = pair().await;
        let (up_side, mut server) = pair().await;
        let counters = crate::proxy::counting::Counters::default();
        // The server closes without a shutdown of its own (dropped at the end of the block).
        let server_end = async move {
            let mut req = Vec::new();
            server.read_to_end(&mut req).await.unwrap();
            server.write_all(b"answer to ").await.unwrap();
            server.write_all(&req).await.unwrap();
        };
        let step_end = async {
            step.write_all(b"question").await.unwrap();
            step.shutdown().await.unwrap();
            let mut got = Vec::new();
            step.read_to_end(&mut got).await.unwrap();
            got
        };
        let ends = async {
            let ((), got) = tokio::join!(server_end, step_end);
            got
        };
        let all = async { tokio::join!(relay(step_side, up_side, &counters), ends) };
        let (moved, got) = tokio::time::timeout(std::time::Duration::from_secs(5), all)
            .await
            .expect("the half-close did not reach the server");
        assert_eq!(got, b"answer to question");
        assert_eq!(moved, (8, 18));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_pipes_of_a_finished_tunnel_carry_the_next_one() {
        SPARE.with(|s| s.borrow_mut().clear());
        let (at_server, at_step, moved) = tunnel(b"hello upstream", b"hello step").await;
        assert_eq!(at_server, b"hello upstream");
        assert_eq!(at_step, b"hello step");
        assert_eq!(moved, (14, 10));
        // Both directions ended cleanly: both pipes are kept, empty.
        let kept: Vec<i32> = SPARE.with(|s| {
            use std::os::fd::AsRawFd;
            s.borrow().iter().map(|(r, _)| r.as_raw_fd()).collect()
        });
        assert_eq!(kept.len(), 2);
        let big = vec![7u8; 300 * 1024];
        let (at_server, at_step, moved) = tunnel(&big, b"ok").await;
        assert_eq!(at_server, big);
        assert_eq!(at_step, b"ok");
        assert_eq!(moved, (big.len() as u64, 2));
        // The second tunnel took the kept pipes and gave them back: no new pipe.
        let again: Vec<i32> = SPARE.with(|s| {
            use std::os::fd::AsRawFd;
            s.borrow().iter().map(|(r, _)| r.as_raw_fd()).collect()
        });
        let (mut a, mut b) = (kept, again);
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }
}
