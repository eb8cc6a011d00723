//! Asking the upstream resolver: the query sent, the exchange (UDP, then TCP when truncated),
//! the host's resolver from resolv.conf, and lookups returning filtered answers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use super::codec::*;
use super::filter::*;

/// The EDNS payload size the stub offers upstream (the DNS Flag Day 2020 value).
pub(super) const UPSTREAM_EDNS_PAYLOAD: u16 = 1232;

/// A recursive query for `name` (text, trailing dot optional) and `qtype`, with an EDNS OPT
/// record offering a 1232-byte UDP payload. A name [`parse_query`] would reject is sent as the
/// root name; [`resolve_upstream`] checks names before calling this.
pub fn build_upstream_query(name: &str, qtype: u16, id: u16) -> Vec<u8> {
    let qname = encode_name(name).unwrap_or_else(|_| vec![0]);
    let mut out = Vec::with_capacity(HEADER_LEN + qname.len() + 4 + 11);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00]); // RD
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 1]);
    out.extend_from_slice(&qname);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    // OPT: root owner, type 41, class = payload size, TTL = extended rcode/flags 0, no options.
    out.push(0);
    out.extend_from_slice(&41u16.to_be_bytes());
    out.extend_from_slice(&UPSTREAM_EDNS_PAYLOAD.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    out
}

/// Asks `upstream` for `name`/`qtype` and returns its raw response, once the response's id and
/// question match the query. Over UDP from a connected socket (so only the upstream's address
/// is read from), with a random id; datagrams that do not match are ignored until `timeout`
/// expires, then the last mismatch (or a timeout) is reported. A truncated (TC) answer is asked
/// again over TCP within the same deadline.
pub async fn resolve_upstream(
    upstream: SocketAddr,
    name: &str,
    qtype: u16,
    timeout: Duration,
) -> Result<Vec<u8>, DnsError> {
    encode_name(name)?;
    let deadline = Instant::now() + timeout;
    let timed_out = || DnsError::Timeout { upstream, timeout };
    let io_err = |source| DnsError::Io { upstream, source };

    let id = random_id();
    let query = build_upstream_query(name, qtype, id);
    let bind: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(bind).await.map_err(io_err)?;
    socket.connect(upstream).await.map_err(io_err)?;
    socket.send(&query).await.map_err(io_err)?;

    let mut buf = vec![0u8; MAX_TCP_MESSAGE];
    let mut last_mismatch = None;
    let udp_answer = loop {
        let n = match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
            Ok(Ok(n)) => n,
            // ICMP port unreachable shows up as a refused receive on a connected socket.
            Ok(Err(e)) => return Err(io_err(e)),
            Err(_) => return Err(last_mismatch.unwrap_or_else(timed_out)),
        };
        match check_response(&buf[..n], id, name, qtype) {
            Ok(truncated) => break (buf[..n].to_vec(), truncated),
            Err(e) => last_mismatch = Some(e),
        }
    };
    let (answer, truncated) = udp_answer;
    if !truncated {
        return Ok(answer);
    }

    let tcp = async {
        let mut stream = TcpStream::connect(upstream).await.map_err(io_err)?;
        stream.write_all(&tcp_frame(&query)).await.map_err(io_err)?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await.map_err(io_err)?;
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut msg).await.map_err(io_err)?;
        match check_response(&msg, id, name, qtype)? {
            true => Err(DnsError::Truncated),
            false => Ok(msg),
        }
    };
    tokio::time::timeout_at(deadline, tcp)
        .await
        .unwrap_or_else(|_| Err(timed_out()))
}

/// Checks id and question; returns whether the answer is truncated.
pub(super) fn check_response(
    msg: &[u8],
    id: u16,
    name: &str,
    qtype: u16,
) -> Result<bool, DnsError> {
    let hdr = response_header(msg)?;
    if hdr.id != id {
        return Err(DnsError::IdMismatch {
            expected: id,
            got: hdr.id,
        });
    }
    check_question(msg, &hdr, name, qtype)?;
    Ok(hdr.truncated)
}

/// A query id from the OS random source. Ids only need to be unpredictable to an off-path
/// spoofer; if the random source is unavailable the clock's nanoseconds still vary per query.
pub(super) fn random_id() -> u16 {
    match getrandom::u32() {
        Ok(r) => r as u16,
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u16)
            .unwrap_or(0),
    }
}

/// The host's resolver: the first parseable `nameserver` line of /etc/resolv.conf, port 53.
/// Loopback resolvers (systemd-resolved's 127.0.0.53) are returned too; the caller decides.
pub fn host_resolver() -> Option<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    first_nameserver(&text)
}

/// The first `nameserver ADDR` in resolv.conf text. Addresses with a zone (`fe80::1%eth0`) are
/// skipped: a zone needs an interface index this pure function cannot look up.
pub fn first_nameserver(resolv_conf: &str) -> Option<SocketAddr> {
    resolv_conf.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            return None;
        }
        let addr: IpAddr = words.next()?.parse().ok()?;
        Some(SocketAddr::new(addr, 53))
    })
}

/// Resolves `name` upstream and returns the filtered answer (CNAMEs followed, only A/AAAA).
pub async fn lookup_answer(
    upstream: SocketAddr,
    name: &str,
    qtype: u16,
    timeout: Duration,
) -> Result<Answer, DnsError> {
    let resp = resolve_upstream(upstream, name, qtype, timeout).await?;
    let q = parse_query(&build_upstream_query(name, qtype, 0))?;
    filter_answer(&q, &resp)
}

/// The addresses of `name` for `qtype` (1 = A, 28 = AAAA) according to `upstream`.
pub async fn lookup(
    upstream: SocketAddr,
    name: &str,
    qtype: u16,
    timeout: Duration,
) -> Result<Vec<IpAddr>, DnsError> {
    Ok(lookup_answer(upstream, name, qtype, timeout).await?.addrs)
}
