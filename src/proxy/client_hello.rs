//! The first bytes of a tunnel: a TLS ClientHello (its server name and whether it asks for
//! ECH), or something else. Shared by the explicit proxy's CONNECT tunnels and captured TCP.

use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::sni::{Peek, parse_client_hello};

/// How long a tunnel may stay silent before its first bytes (the ClientHello) arrive.
pub const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(30);

/// What a tunnel's first bytes are.
pub enum FirstBytes {
    Tls { sni: Option<String>, ech: bool },
    NotTls,
    Closed,
    Bad(String),
}

/// Reads from `s` into `buf` until a whole ClientHello is there, or it is clearly not TLS.
pub async fn read_client_hello<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut Vec<u8>,
) -> FirstBytes {
    let deadline = tokio::time::Instant::now() + FIRST_BYTES_TIMEOUT;
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
            Err(_) => {
                return if buf.is_empty() {
                    FirstBytes::NotTls
                } else {
                    FirstBytes::Bad("ClientHello incomplete".into())
                };
            }
        }
    }
}
