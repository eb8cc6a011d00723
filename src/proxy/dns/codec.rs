//! The DNS wire format as the stub reads and writes it: query parsing (by hand: a query is a
//! header and one uncompressed question, and the stub needs its exact bytes to echo them),
//! names, response codes, errors and the TCP length framing.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::rr::{Name, RecordType};

pub use crate::proxy::sni::Peek;

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

pub(super) const HEADER_LEN: usize = 12;

pub(super) const MAX_NAME_WIRE_LEN: usize = 255;

pub(super) const MAX_LABEL_LEN: usize = 63;

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
pub(super) fn question_labels(
    msg: &[u8],
) -> Result<(Vec<std::ops::Range<usize>>, usize), DnsError> {
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
pub(super) fn host_name_from_labels<'a>(
    labels: impl Iterator<Item = &'a [u8]>,
) -> Result<String, DnsError> {
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

pub(super) fn wire_name_text(name: &Name) -> Option<String> {
    host_name_from_labels(name.iter()).ok()
}

/// Encodes a text name (trailing dot optional) as uncompressed wire labels.
pub(super) fn encode_name(name: &str) -> Result<Vec<u8>, DnsError> {
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
