//! The first bytes of a tunnel: a TLS ClientHello (its server name and whether it asks for
//! ECH), or something else. Shared by the explicit proxy's CONNECT tunnels and captured TCP.

use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::sni::{Peek, parse_client_hello};

/// How long a tunnel may stay silent before its first bytes (the ClientHello) arrive.
pub const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(30);

/// What a tunnel's first bytes are.
pub enum FirstBytes {
    Tls {
        sni: Option<String>,
        ech: bool,
    },
    NotTls,
    Closed,
    Bad(String),
    /// `wait` passed first: `buf` holds what arrived (perhaps nothing, perhaps part of a
    /// ClientHello); the caller decides.
    TimedOut,
}

/// Reads from `s` into `buf` until a whole ClientHello is there, or it is clearly not TLS, for
/// at most `wait`. One timer for the whole read (a timer is a system call for a runtime with
/// none pending).
pub async fn read_client_hello<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut Vec<u8>,
    wait: Duration,
) -> FirstBytes {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match parse_client_hello(buf) {
            Peek::Done(info) => {
                return FirstBytes::Tls {
                    sni: info.sni,
                    ech: info.ech,
                };
            }
            Peek::NotThis => return FirstBytes::NotTls,
            Peek::Malformed(why) => {
                return FirstBytes::Bad(format!("malformed TLS ClientHello: {why}"));
            }
            Peek::NeedMore => {}
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(0)) => {
                return if buf.is_empty() {
                    FirstBytes::Closed
                } else {
                    FirstBytes::NotTls
                };
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(_)) => return FirstBytes::Closed,
            Err(_) => return FirstBytes::TimedOut,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    const WAIT: Duration = Duration::from_millis(50);

    #[tokio::test]
    async fn a_silent_peer_times_out_with_nothing_read() {
        let (mut ours, _theirs) = tokio::io::duplex(64);
        let mut buf = Vec::new();
        let started = std::time::Instant::now();
        let got = read_client_hello(&mut ours, &mut buf, WAIT).await;
        assert!(matches!(got, FirstBytes::TimedOut));
        assert!(buf.is_empty());
        assert!(started.elapsed() >= WAIT);
    }

    #[tokio::test]
    async fn part_of_a_client_hello_times_out_with_its_bytes_kept() {
        let (mut ours, mut theirs) = tokio::io::duplex(64);
        // A handshake record header announcing 512 bytes, and the first bytes of a ClientHello.
        let part = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc];
        theirs.write_all(&part).await.unwrap();
        let mut buf = Vec::new();
        let got = read_client_hello(&mut ours, &mut buf, WAIT).await;
        assert!(matches!(got, FirstBytes::TimedOut));
        assert_eq!(buf, part);
    }

    #[tokio::test]
    async fn other_bytes_are_not_tls_at_once_and_a_close_is_closed() {
        let (mut ours, mut theirs) = tokio::io::duplex(64);
        theirs.write_all(b"SSH-2.0-x\r\n").await.unwrap();
        let mut buf = Vec::new();
        let got = read_client_hello(&mut ours, &mut buf, Duration::from_secs(30)).await;
        assert!(matches!(got, FirstBytes::NotTls));
        assert_eq!(buf, b"SSH-2.0-x\r\n");

        let (mut ours, theirs) = tokio::io::duplex(64);
        drop(theirs);
        let mut buf = Vec::new();
        let got = read_client_hello(&mut ours, &mut buf, Duration::from_secs(30)).await;
        assert!(matches!(got, FirstBytes::Closed));
    }
}
