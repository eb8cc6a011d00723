//! What the stub sends the step: error responses (NXDOMAIN, REFUSED, SERVFAIL, FORMERR,
//! NOTIMP) and answers rebuilt from scratch from the checked addresses.

use std::net::IpAddr;

use super::codec::*;

/// Without EDNS a UDP answer must fit in 512 bytes; the stub answers without an OPT record, so
/// [`build_answer`] stops adding addresses at this size.
pub(super) const MAX_PLAIN_UDP: usize = 512;

/// A response header and, when the query has one readable question, that question echoed.
/// Messages too short to hold an id get id 0 (callers drop those; see [`DnsError::rcode`]).
pub(super) fn error_response(query_msg: &[u8], rcode: Rcode) -> Vec<u8> {
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
