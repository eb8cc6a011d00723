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

mod answer;
mod cache;
mod codec;
mod filter;
mod limit;
#[cfg(test)]
mod tests;
mod upstream;

pub use answer::{build_answer, error_answer, formerr, notimp, nxdomain, refused, servfail};
pub use cache::{CACHE_TTL, Cache};
pub use codec::{
    CLASS_IN, DnsError, MAX_CNAME_HOPS, MAX_TCP_MESSAGE, MAX_TTL, Peek, Query, Rcode, TYPE_A,
    TYPE_AAAA, TYPE_CNAME, parse_query, tcp_frame, tcp_unframe, type_name,
};
pub use filter::{Answer, filter_answer};
pub use limit::{BURST, Class, Limiter, RATE, Report};
pub use upstream::{
    build_upstream_query, first_nameserver, host_resolver, lookup, lookup_answer, resolve_upstream,
};
