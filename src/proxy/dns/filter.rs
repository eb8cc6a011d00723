//! Reducing an upstream response to the addresses of the queried name: CNAME chains followed
//! and flattened, every other record dropped. Upstream answers are parsed with `hickory-proto`,
//! record by record, so nothing is allocated from the counts in the header.

use std::collections::HashSet;
use std::net::IpAddr;

use hickory_proto::op::Query as WireQuery;
use hickory_proto::rr::{DNSClass, RData, Record};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::codec::*;

/// Address and CNAME records kept from one upstream answer; a real answer has a handful.
pub(super) const MAX_KEPT_RECORDS: usize = 256;

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

/// The parts of an upstream response's header the stub looks at.
pub(super) struct ResponseHeader {
    pub(super) id: u16,
    pub(super) truncated: bool,
    pub(super) rcode: Rcode,
    pub(super) qdcount: u16,
    pub(super) ancount: u16,
}

pub(super) fn response_header(msg: &[u8]) -> Result<ResponseHeader, DnsError> {
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
pub(super) fn check_question<'a>(
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
pub(super) enum Kept {
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
/// differs from the step's); [`super::resolve_upstream`] checks it.
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
