//! The DNS stub's wire logic: read the step's queries, ask the upstream resolver, and answer
//! with only the addresses stepjail checked.
//!
//! The stub is the step's only resolver, so it is also an exfiltration channel unless it is
//! careful about what it passes on. Its rules:
//! - A name the policy does not allow is answered NXDOMAIN without asking upstream (the caller
//!   uses [`nxdomain`]), so the query's name carries nothing out.
//! - For an allowed name only A and AAAA are ever resolved. Answers are rebuilt from scratch
//!   ([`build_answer`]): the queried name as owner, the checked addresses, nothing else. CNAME
//!   chains are followed here and flattened, so the client never sees (and never caches) a name
//!   the policy did not decide on.
//! - Every other type for an allowed name (TXT, MX, SRV, HTTPS/SVCB, ANY, ...) gets NOERROR with
//!   no records (NODATA) and is never forwarded: TXT and NULL records are the classic tunnelling
//!   channel, and HTTPS/SVCB records can carry ECH configurations and alternative endpoints
//!   (other names, other ports, address hints) that would sidestep the name-based checks.
//!
//! Parsing upstream answers uses `hickory-proto` (the wire codec of the hickory resolver,
//! fuzzed upstream), read record by record so nothing is allocated from the counts in the
//! header. Queries are parsed by hand: a query is a header and one uncompressed question, and
//! the stub needs its exact bytes to echo them.

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::Query as WireQuery;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

pub use super::sni::Peek;

pub const TYPE_A: u16 = 1;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_AAAA: u16 = 28;
pub const CLASS_IN: u16 = 1;
/// Answers carry at most this TTL, so a policy change or a re-resolution is seen soon.
pub const MAX_TTL: u32 = 300;
/// CNAME hops followed inside one answer before giving up.
pub const MAX_CNAME_HOPS: usize = 8;
/// The largest message the TCP framing can carry (its length prefix is 16 bits).
pub const MAX_TCP_MESSAGE: usize = 65_535;

const HEADER_LEN: usize = 12;
/// Without EDNS a UDP answer must fit in 512 bytes; the stub answers without an OPT record, so
/// [`build_answer`] stops adding addresses at this size.
const MAX_PLAIN_UDP: usize = 512;
/// The EDNS payload size the stub offers upstream (the DNS Flag Day 2020 value).
const UPSTREAM_EDNS_PAYLOAD: u16 = 1232;
/// Address and CNAME records kept from one upstream answer; a real answer has a handful.
const MAX_KEPT_RECORDS: usize = 256;
const MAX_NAME_WIRE_LEN: usize = 255;
const MAX_LABEL_LEN: usize = 63;

/// A query from the step, accepted for further decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    /// The name, lower-cased, without a trailing dot; empty for the root.
    pub name: String,
    pub qtype: u16,
    /// `A`, `AAAA`, `TXT`, ... or `TYPE123` for types without a mnemonic (RFC 3597).
    pub qtype_name: String,
    /// Recursion desired, echoed in the answer.
    pub rd: bool,
    /// The question section exactly as received (name case preserved, for clients that
    /// randomise case and check the echo).
    pub raw_question: Vec<u8>,
}

/// DNS response codes the stub reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    NoError,
    FormErr,
    ServFail,
    NxDomain,
    NotImp,
    Refused,
    Other(u8),
}

impl Rcode {
    pub fn code(self) -> u8 {
        match self {
            Rcode::NoError => 0,
            Rcode::FormErr => 1,
            Rcode::ServFail => 2,
            Rcode::NxDomain => 3,
            Rcode::NotImp => 4,
            Rcode::Refused => 5,
            Rcode::Other(c) => c & 0x0f,
        }
    }

    pub fn from_code(code: u8) -> Self {
        match code & 0x0f {
            0 => Rcode::NoError,
            1 => Rcode::FormErr,
            2 => Rcode::ServFail,
            3 => Rcode::NxDomain,
            4 => Rcode::NotImp,
            5 => Rcode::Refused,
            c => Rcode::Other(c),
        }
    }
}

/// What an upstream answer says about the queried name, after filtering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Addresses of the end of the CNAME chain, deduplicated, in answer order.
    pub addrs: Vec<IpAddr>,
    /// The smallest TTL of the records used, at most [`MAX_TTL`]; 0 when none were used.
    pub ttl: u32,
    /// The CNAME targets followed, in order, lower-cased without trailing dot.
    pub cnames: Vec<String>,
    /// The upstream's response code.
    pub rcode: Rcode,
}

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("DNS message of {0} bytes is shorter than a header")]
    TooShort(usize),
    #[error("DNS message is a response where a query was expected")]
    NotAQuery,
    #[error("DNS opcode {0} is not supported")]
    OpcodeNotImplemented(u8),
    #[error("DNS class {0} is not supported")]
    ClassNotImplemented(u16),
    #[error("DNS query has {0} questions, exactly one is supported")]
    QuestionCount(u16),
    #[error("malformed DNS message: {0}")]
    Malformed(&'static str),
    #[error("DNS name is not a host name: {0}")]
    BadName(&'static str),
    #[error("upstream answer has id {got:#06x}, expected {expected:#06x}")]
    IdMismatch { expected: u16, got: u16 },
    #[error("upstream answer is for a different question")]
    QuestionMismatch,
    #[error("upstream answer is truncated")]
    Truncated,
    #[error("CNAME chain longer than {MAX_CNAME_HOPS} hops or looping")]
    CnameChain,
    #[error("upstream resolver {upstream} did not answer within {timeout:?}")]
    Timeout {
        upstream: SocketAddr,
        timeout: Duration,
    },
    #[error("talking to upstream resolver {upstream}: {source}")]
    Io {
        upstream: SocketAddr,
        source: io::Error,
    },
}

impl DnsError {
    /// The response code to send to the step for this error, or `None` when the message must be
    /// dropped unanswered (too short to echo an id, or itself a response: answering responses
    /// invites loops and reflection).
    pub fn rcode(&self) -> Option<Rcode> {
        match self {
            DnsError::TooShort(_) | DnsError::NotAQuery => None,
            DnsError::OpcodeNotImplemented(_) | DnsError::ClassNotImplemented(_) => {
                Some(Rcode::NotImp)
            }
            DnsError::QuestionCount(_) | DnsError::Malformed(_) => Some(Rcode::FormErr),
            DnsError::BadName(_) => Some(Rcode::Refused),
            DnsError::IdMismatch { .. }
            | DnsError::QuestionMismatch
            | DnsError::Truncated
            | DnsError::CnameChain
            | DnsError::Timeout { .. }
            | DnsError::Io { .. } => Some(Rcode::ServFail),
        }
    }
}

/// Parses a query from the step: opcode QUERY, exactly one question of class IN whose name is
/// made of letters, digits, `-` and `_`, no answer or authority records (additional records
/// such as EDNS OPT are ignored).
pub fn parse_query(msg: &[u8]) -> Result<Query, DnsError> {
    if msg.len() < HEADER_LEN {
        return Err(DnsError::TooShort(msg.len()));
    }
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    if msg[2] & 0x80 != 0 {
        return Err(DnsError::NotAQuery);
    }
    let opcode = (msg[2] >> 3) & 0x0f;
    if opcode != 0 {
        return Err(DnsError::OpcodeNotImplemented(opcode));
    }
    let rd = msg[2] & 0x01 != 0;
    let qdcount = u16::from_be_bytes([msg[4], msg[5]]);
    if qdcount != 1 {
        return Err(DnsError::QuestionCount(qdcount));
    }
    if msg[6..10] != [0, 0, 0, 0] {
        return Err(DnsError::Malformed(
            "query carries answer or authority records",
        ));
    }
    let (labels, end) = question_labels(msg)?;
    let qtype = u16::from_be_bytes([msg[end - 4], msg[end - 3]]);
    let qclass = u16::from_be_bytes([msg[end - 2], msg[end - 1]]);
    if qclass != CLASS_IN {
        return Err(DnsError::ClassNotImplemented(qclass));
    }
    let name = host_name_from_labels(labels.iter().map(|l| &msg[l.clone()]))?;
    Ok(Query {
        id,
        name,
        qtype,
        qtype_name: type_name(qtype),
        rd,
        raw_question: msg[HEADER_LEN..end].to_vec(),
    })
}

/// The mnemonic of a record type, or `TYPEn` (RFC 3597 section 5).
pub fn type_name(qtype: u16) -> String {
    match RecordType::from(qtype) {
        RecordType::Unknown(_) => format!("TYPE{qtype}"),
        known => known.to_string(),
    }
}

/// Walks the single question after the header. Returns the label ranges and the offset just
/// past QTYPE and QCLASS. Compression is refused: a query has nothing earlier to point at.
fn question_labels(msg: &[u8]) -> Result<(Vec<std::ops::Range<usize>>, usize), DnsError> {
    let mut pos = HEADER_LEN;
    let mut labels = Vec::new();
    let mut wire_len = 1;
    loop {
        let Some(&len) = msg.get(pos) else {
            return Err(DnsError::Malformed("truncated question name"));
        };
        let len = usize::from(len);
        if len == 0 {
            pos += 1;
            break;
        }
        if len > MAX_LABEL_LEN {
            return Err(DnsError::Malformed(
                "compressed or oversized label in question",
            ));
        }
        wire_len += 1 + len;
        if wire_len > MAX_NAME_WIRE_LEN {
            return Err(DnsError::Malformed("question name longer than 255 bytes"));
        }
        if pos + 1 + len > msg.len() {
            return Err(DnsError::Malformed("truncated question name"));
        }
        labels.push(pos + 1..pos + 1 + len);
        pos += 1 + len;
    }
    if pos + 4 > msg.len() {
        return Err(DnsError::Malformed("truncated question type or class"));
    }
    Ok((labels, pos + 4))
}

/// Joins labels into the stub's canonical text form, refusing bytes that would make the text
/// ambiguous (a `.` inside a label) or that no host name contains.
fn host_name_from_labels<'a>(labels: impl Iterator<Item = &'a [u8]>) -> Result<String, DnsError> {
    let mut name = String::new();
    for label in labels {
        if label.is_empty() {
            return Err(DnsError::BadName("empty label"));
        }
        if !label
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        {
            return Err(DnsError::BadName(
                "label has characters outside [A-Za-z0-9_-]",
            ));
        }
        if !name.is_empty() {
            name.push('.');
        }
        name.extend(label.iter().map(|b| char::from(b.to_ascii_lowercase())));
    }
    Ok(name)
}

fn wire_name_text(name: &Name) -> Option<String> {
    host_name_from_labels(name.iter()).ok()
}

/// Encodes a text name (trailing dot optional) as uncompressed wire labels.
fn encode_name(name: &str) -> Result<Vec<u8>, DnsError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut out = Vec::with_capacity(name.len() + 2);
    if !name.is_empty() {
        for label in name.split('.') {
            if label.is_empty() || label.len() > MAX_LABEL_LEN {
                return Err(DnsError::BadName("empty or oversized label"));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
            {
                return Err(DnsError::BadName(
                    "label has characters outside [A-Za-z0-9_-]",
                ));
            }
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
    }
    out.push(0);
    if out.len() > MAX_NAME_WIRE_LEN {
        return Err(DnsError::BadName("name longer than 255 bytes"));
    }
    Ok(out)
}

/// A response header and, when the query has one readable question, that question echoed.
/// Messages too short to hold an id get id 0 (callers drop those; see [`DnsError::rcode`]).
fn error_response(query_msg: &[u8], rcode: Rcode) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_LEN];
    let id_len = query_msg.len().min(2);
    out[..id_len].copy_from_slice(&query_msg[..id_len]);
    let flags = query_msg.get(2).copied().unwrap_or(0);
    let flags2 = query_msg.get(3).copied().unwrap_or(0);
    // QR, the query's opcode and RD; RA, the query's CD, the rcode.
    out[2] = 0x80 | (flags & 0x78) | (flags & 0x01);
    out[3] = 0x80 | (flags2 & 0x10) | rcode.code();
    let opcode_is_query = flags & 0x78 == 0;
    let one_question = query_msg.get(4..6) == Some(&[0, 1][..]);
    if opcode_is_query
        && one_question
        && let Ok((_, end)) = question_labels(query_msg)
    {
        out[5] = 1;
        out.extend_from_slice(&query_msg[HEADER_LEN..end]);
    }
    out
}

/// NXDOMAIN for a name the policy does not allow.
pub fn nxdomain(query_msg: &[u8]) -> Vec<u8> {
    error_response(query_msg, Rcode::NxDomain)
}

/// REFUSED, e.g. for a name that is not a host name.
pub fn refused(query_msg: &[u8]) -> Vec<u8> {
    error_response(query_msg, Rcode::Refused)
}

/// SERVFAIL when the upstream resolver failed or answered nonsense.
pub fn servfail(query_msg: &[u8]) -> Vec<u8> {
    error_response(query_msg, Rcode::ServFail)
}

/// FORMERR for a query that [`parse_query`] could not accept.
pub fn formerr(query_msg: &[u8]) -> Vec<u8> {
    error_response(query_msg, Rcode::FormErr)
}

/// NOTIMP for an opcode or class the stub does not serve.
pub fn notimp(query_msg: &[u8]) -> Vec<u8> {
    error_response(query_msg, Rcode::NotImp)
}

/// The response for a query [`parse_query`] rejected, or `None` when it must be dropped.
pub fn error_answer(query_msg: &[u8], err: &DnsError) -> Option<Vec<u8>> {
    err.rcode().map(|rcode| error_response(query_msg, rcode))
}

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

/// The parts of an upstream response's header the stub looks at.
struct ResponseHeader {
    id: u16,
    truncated: bool,
    rcode: Rcode,
    qdcount: u16,
    ancount: u16,
}

fn response_header(msg: &[u8]) -> Result<ResponseHeader, DnsError> {
    if msg.len() < HEADER_LEN {
        return Err(DnsError::Malformed("upstream answer shorter than a header"));
    }
    if msg[2] & 0x80 == 0 {
        return Err(DnsError::Malformed("upstream message is not a response"));
    }
    if (msg[2] >> 3) & 0x0f != 0 {
        return Err(DnsError::Malformed("upstream answer has another opcode"));
    }
    Ok(ResponseHeader {
        id: u16::from_be_bytes([msg[0], msg[1]]),
        truncated: msg[2] & 0x02 != 0,
        rcode: Rcode::from_code(msg[3]),
        qdcount: u16::from_be_bytes([msg[4], msg[5]]),
        ancount: u16::from_be_bytes([msg[6], msg[7]]),
    })
}

/// Checks that a response carries exactly the question (name case-insensitively, type, class
/// IN) and returns a decoder positioned at the answer section.
fn check_question<'a>(
    msg: &'a [u8],
    hdr: &ResponseHeader,
    name: &str,
    qtype: u16,
) -> Result<BinDecoder<'a>, DnsError> {
    if hdr.qdcount != 1 {
        return Err(DnsError::QuestionMismatch);
    }
    let mut decoder = BinDecoder::new(msg);
    decoder
        .read_slice(HEADER_LEN)
        .map_err(|_| DnsError::Malformed("upstream answer shorter than a header"))?;
    let q = WireQuery::read(&mut decoder)
        .map_err(|_| DnsError::Malformed("unreadable question in upstream answer"))?;
    let wanted = name.strip_suffix('.').unwrap_or(name);
    let same_name = wire_name_text(&q.name).is_some_and(|n| n.eq_ignore_ascii_case(wanted));
    if !same_name || u16::from(q.query_type) != qtype || q.query_class != DNSClass::IN {
        return Err(DnsError::QuestionMismatch);
    }
    Ok(decoder)
}

/// One record kept from the answer section.
enum Kept {
    Addr(IpAddr),
    /// `None`: the target is not a host name, so it can never be allowed; the chain ends.
    Cname(Option<String>),
}

/// Reduces an upstream response to the addresses of the queried name.
///
/// Only the answer section is read (authority and additional records are ignored: glue and
/// referrals are not the stub's business). From it, CNAME and A/AAAA records of class IN are
/// kept; starting at the queried name, CNAMEs are followed (at most [`MAX_CNAME_HOPS`], loops
/// and forks refused) and the addresses owned by the end of the chain are returned — A for an
/// A query, AAAA for an AAAA query. Records for any other owner are dropped. A non-NOERROR
/// rcode is returned with no addresses. The response's id is not checked here (the upstream id
/// differs from the step's); [`resolve_upstream`] checks it.
pub fn filter_answer(query: &Query, upstream_response: &[u8]) -> Result<Answer, DnsError> {
    let hdr = response_header(upstream_response)?;
    if hdr.truncated {
        return Err(DnsError::Truncated);
    }
    let mut decoder = check_question(upstream_response, &hdr, &query.name, query.qtype)?;
    if hdr.rcode != Rcode::NoError {
        return Ok(Answer {
            addrs: Vec::new(),
            ttl: 0,
            cnames: Vec::new(),
            rcode: hdr.rcode,
        });
    }
    // Each record read consumes at least 11 bytes, so this loop is bounded by the message.
    let mut kept: Vec<(String, u32, Kept)> = Vec::new();
    for _ in 0..hdr.ancount {
        let record = Record::read(&mut decoder)
            .map_err(|_| DnsError::Malformed("unreadable record in upstream answer"))?;
        if record.dns_class != DNSClass::IN {
            continue;
        }
        let item = match (&record.data, query.qtype) {
            (RData::A(a), TYPE_A) => Kept::Addr(IpAddr::V4(a.0)),
            (RData::AAAA(a), TYPE_AAAA) => Kept::Addr(IpAddr::V6(a.0)),
            (RData::CNAME(c), _) => Kept::Cname(wire_name_text(&c.0)),
            _ => continue,
        };
        let Some(owner) = wire_name_text(&record.name) else {
            continue;
        };
        if kept.len() == MAX_KEPT_RECORDS {
            return Err(DnsError::Malformed("too many records in upstream answer"));
        }
        kept.push((owner, record.ttl, item));
    }

    let mut current = query.name.clone();
    let mut seen = HashSet::from([current.clone()]);
    let mut cnames = Vec::new();
    let mut ttl = MAX_TTL;
    loop {
        let mut targets = kept.iter().filter_map(|(owner, ttl, item)| match item {
            Kept::Cname(t) if *owner == current => Some((t, *ttl)),
            _ => None,
        });
        let Some((target, cname_ttl)) = targets.next() else {
            break;
        };
        if targets.next().is_some() {
            return Err(DnsError::Malformed("several CNAMEs for one name"));
        }
        let Some(target) = target else {
            return Ok(Answer {
                addrs: Vec::new(),
                ttl: ttl.min(cname_ttl),
                cnames,
                rcode: Rcode::NoError,
            });
        };
        if cnames.len() == MAX_CNAME_HOPS || !seen.insert(target.clone()) {
            return Err(DnsError::CnameChain);
        }
        ttl = ttl.min(cname_ttl);
        cnames.push(target.clone());
        current = target.clone();
    }
    let mut addrs = Vec::new();
    for (owner, rr_ttl, item) in &kept {
        if let Kept::Addr(addr) = item
            && *owner == current
            && !addrs.contains(addr)
        {
            ttl = ttl.min(*rr_ttl);
            addrs.push(*addr);
        }
    }
    if addrs.is_empty() && cnames.is_empty() {
        ttl = 0;
    }
    Ok(Answer {
        addrs,
        ttl,
        cnames,
        rcode: Rcode::NoError,
    })
}

/// The answer the step receives for an allowed name: NOERROR, the original question, and one
/// record per address with the queried name as owner — A records (IPv4 addresses only) for an
/// A query, AAAA (IPv6 only) for an AAAA query, none for every other type (NODATA). TTL is
/// capped at [`MAX_TTL`]. Addresses are added while the message fits in 512 bytes (no EDNS in
/// the answer), which leaves room for at least 15 A or 8 AAAA records.
///
/// The header's id, RD and CD come from `query`/`query_msg`, the message `query` was parsed from.
pub fn build_answer(query_msg: &[u8], query: &Query, addrs: &[IpAddr], ttl: u32) -> Vec<u8> {
    let cd = query_msg.get(3).copied().unwrap_or(0) & 0x10;
    let mut out = Vec::with_capacity(MAX_PLAIN_UDP);
    out.extend_from_slice(&query.id.to_be_bytes());
    out.push(0x80 | u8::from(query.rd));
    out.push(0x80 | cd);
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&query.raw_question);
    let ttl = ttl.min(MAX_TTL).to_be_bytes();
    let mut count: u16 = 0;
    for addr in addrs {
        let (rtype, rdata): (u16, Vec<u8>) = match (query.qtype, addr) {
            (TYPE_A, IpAddr::V4(v4)) => (TYPE_A, v4.octets().to_vec()),
            (TYPE_AAAA, IpAddr::V6(v6)) => (TYPE_AAAA, v6.octets().to_vec()),
            _ => continue,
        };
        // Owner: a compression pointer to the question name at offset 12.
        let rr_len = 2 + 2 + 2 + 4 + 2 + rdata.len();
        if out.len() + rr_len > MAX_PLAIN_UDP {
            break;
        }
        out.extend_from_slice(&[0xc0, 0x0c]);
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&ttl);
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
        count += 1;
    }
    out[6..8].copy_from_slice(&count.to_be_bytes());
    out
}

/// Prefixes a message with its two-byte length (RFC 7766). Messages longer than
/// [`MAX_TCP_MESSAGE`] are cut to that length; nothing this module builds comes close.
pub fn tcp_frame(msg: &[u8]) -> Vec<u8> {
    let msg = &msg[..msg.len().min(MAX_TCP_MESSAGE)];
    let mut out = Vec::with_capacity(2 + msg.len());
    out.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    out.extend_from_slice(msg);
    out
}

/// Takes one length-prefixed message from the front of `buf`: `Done((message, bytes
/// consumed))`, `NeedMore` until the whole message is there, `Malformed` for a length that
/// cannot hold a DNS header. The length prefix itself caps a message at 64 KiB.
pub fn tcp_unframe(buf: &[u8]) -> Peek<(Vec<u8>, usize)> {
    let Some(len) = buf.get(..2) else {
        return Peek::NeedMore;
    };
    let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
    if len < HEADER_LEN {
        return Peek::Malformed("DNS message shorter than a header");
    }
    match buf.get(2..2 + len) {
        Some(msg) => Peek::Done((msg.to_vec(), 2 + len)),
        None => Peek::NeedMore,
    }
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
fn check_response(msg: &[u8], id: u16, name: &str, qtype: u16) -> Result<bool, DnsError> {
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
fn random_id() -> u16 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_round_trip() {
        let msg = build_upstream_query("WWW.Example.com.", TYPE_AAAA, 0x1234);
        let q = parse_query(&msg).unwrap();
        assert_eq!(q.id, 0x1234);
        assert_eq!(q.name, "www.example.com");
        assert_eq!(q.qtype, TYPE_AAAA);
        assert_eq!(q.qtype_name, "AAAA");
        assert!(q.rd);
        assert_eq!(&q.raw_question[..4], b"\x03WWW");
    }

    #[test]
    fn type_names() {
        assert_eq!(type_name(16), "TXT");
        assert_eq!(type_name(65), "HTTPS");
        assert_eq!(type_name(65_280), "TYPE65280");
    }

    #[test]
    fn query_rejections() {
        let good = build_upstream_query("a.example", TYPE_A, 7);
        assert!(matches!(
            parse_query(&good[..11]),
            Err(DnsError::TooShort(11))
        ));
        let mut resp = good.clone();
        resp[2] |= 0x80;
        assert!(matches!(parse_query(&resp), Err(DnsError::NotAQuery)));
        let mut update = good.clone();
        update[2] |= 5 << 3;
        let err = parse_query(&update).unwrap_err();
        assert_eq!(err.rcode(), Some(Rcode::NotImp));
        let mut two = good.clone();
        two[5] = 2;
        assert_eq!(parse_query(&two).unwrap_err().rcode(), Some(Rcode::FormErr));
        let mut chaos = good.clone();
        let class_at = HEADER_LEN + "a.example".len() + 2 + 2;
        chaos[class_at + 1] = 3;
        assert!(matches!(
            parse_query(&chaos),
            Err(DnsError::ClassNotImplemented(3))
        ));
        // A dot inside a label would make "a.b" ambiguous with two labels.
        let mut dotted = good.clone();
        dotted[HEADER_LEN + 1] = b'.';
        assert_eq!(
            parse_query(&dotted).unwrap_err().rcode(),
            Some(Rcode::Refused)
        );
        let mut compressed = good;
        compressed[HEADER_LEN] = 0xc0;
        assert!(matches!(
            parse_query(&compressed),
            Err(DnsError::Malformed(_))
        ));
    }

    #[test]
    fn resolv_conf() {
        let text = "# comment\nsearch x\nnameserver fe80::1%eth0\nnameserver 127.0.0.53\nnameserver 192.0.2.1\n";
        assert_eq!(
            first_nameserver(text),
            Some("127.0.0.53:53".parse().unwrap())
        );
        assert_eq!(
            first_nameserver("nameserver 2001:db8::53"),
            Some("[2001:db8::53]:53".parse().unwrap())
        );
        assert_eq!(first_nameserver("options ndots:5\n"), None);
    }

    #[test]
    fn unframe_rejects_tiny_lengths() {
        assert_eq!(
            tcp_unframe(&[0, 3, 1, 2, 3]),
            Peek::Malformed("DNS message shorter than a header")
        );
        assert_eq!(tcp_unframe(&[0]), Peek::NeedMore);
    }
}
