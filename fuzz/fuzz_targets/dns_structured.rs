//! Structure-aware DNS target: the fuzzer picks a question and an upstream answer section; a
//! builder writes both messages (names from a small pool so that CNAME chains, loops and forks
//! happen often).
//!
//! Properties:
//! - a question of valid host-name labels is accepted by `parse_query`, with the name
//!   lower-cased and dotted, and the question bytes kept as sent;
//! - `filter_answer` returns only addresses that some record of the queried type carries, of
//!   the queried family, without duplicates, TTL at most `MAX_TTL`;
//! - when every record is an address record of the queried type owned by the queried name, the
//!   result is exactly those addresses, deduplicated, in order;
//! - a non-zero rcode gives no addresses.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use stepjail::proxy::dns::{MAX_TTL, TYPE_A, TYPE_AAAA, TYPE_CNAME, filter_answer, parse_query};

const POOL: [&str; 4] = ["a.example", "B.example", "c.d.example", "x"];

#[derive(Debug, Arbitrary)]
struct Spec {
    id: u16,
    rd: bool,
    /// Question name: a pool name, or labels.
    name: NameSpec,
    aaaa: bool,
    rcode: u8,
    records: Vec<Rec>,
}

#[derive(Debug, Arbitrary)]
enum NameSpec {
    Pool(u8),
    Labels(Vec<Vec<u8>>),
}

#[derive(Debug, Arbitrary)]
struct Rec {
    /// None: a compression pointer to the question name.
    owner: Option<u8>,
    ttl: u32,
    data: RecData,
}

#[derive(Debug, Arbitrary)]
enum RecData {
    A([u8; 4]),
    Aaaa([u8; 16]),
    Cname(u8),
    Other(u16, Vec<u8>),
}

fn labels_of(spec: &NameSpec) -> Vec<Vec<u8>> {
    match spec {
        NameSpec::Pool(i) => pool_labels(*i),
        NameSpec::Labels(l) => l
            .iter()
            .map(|l| {
                l.iter()
                    .map(|b| {
                        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
                            [usize::from(*b) % 64]
                    })
                    .take(63)
                    .collect()
            })
            .collect(),
    }
}

fn pool_labels(i: u8) -> Vec<Vec<u8>> {
    POOL[usize::from(i) % POOL.len()]
        .split('.')
        .map(|l| l.as_bytes().to_vec())
        .collect()
}

fn encode(labels: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in labels {
        out.push(l.len() as u8);
        out.extend_from_slice(l);
    }
    out.push(0);
    out
}

fn dotted(labels: &[Vec<u8>]) -> String {
    labels
        .iter()
        .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(".")
}

fuzz_target!(|spec: Spec| {
    let labels = labels_of(&spec.name);
    let qtype = if spec.aaaa { TYPE_AAAA } else { TYPE_A };
    let mut question = encode(&labels);
    question.extend_from_slice(&qtype.to_be_bytes());
    question.extend_from_slice(&1u16.to_be_bytes());
    let mut query_msg = spec.id.to_be_bytes().to_vec();
    query_msg.extend_from_slice(&[u8::from(spec.rd), 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    query_msg.extend_from_slice(&question);

    let valid = !labels.iter().any(Vec::is_empty) && question.len() - 4 <= 255;
    let query = match parse_query(&query_msg) {
        // An empty label is a zero byte that ends the name early: the builder wrote another
        // message than it meant, so only the no-panic property holds.
        Ok(_) if !valid => return,
        Ok(q) => q,
        Err(e) => {
            assert!(!valid, "valid query refused: {e}");
            return;
        }
    };
    assert_eq!(query.name, dotted(&labels));
    assert_eq!(query.raw_question, question);
    assert_eq!(query.rd, spec.rd);

    let rcode = spec.rcode % 6;
    let mut resp = spec.id.to_be_bytes().to_vec();
    resp.extend_from_slice(&[0x81, 0x80 | rcode, 0, 1]);
    resp.extend_from_slice(&(spec.records.len().min(64) as u16).to_be_bytes());
    resp.extend_from_slice(&[0, 0, 0, 0]);
    resp.extend_from_slice(&question);
    let mut carried: Vec<IpAddr> = Vec::new();
    let mut simple = true;
    let mut simple_addrs: Vec<IpAddr> = Vec::new();
    for r in spec.records.iter().take(64) {
        match r.owner {
            None => resp.extend_from_slice(&[0xc0, 0x0c]),
            Some(i) => {
                simple = false;
                resp.extend_from_slice(&encode(&pool_labels(i)));
            }
        }
        let (rtype, rdata) = match &r.data {
            RecData::A(a) => (TYPE_A, a.to_vec()),
            RecData::Aaaa(a) => (TYPE_AAAA, a.to_vec()),
            RecData::Cname(i) => (TYPE_CNAME, encode(&pool_labels(*i))),
            RecData::Other(t, d) => (*t, d.iter().take(64).copied().collect()),
        };
        let addr = match &r.data {
            RecData::A(a) if qtype == TYPE_A => Some(IpAddr::V4(Ipv4Addr::from(*a))),
            RecData::Aaaa(a) if qtype == TYPE_AAAA => Some(IpAddr::V6(Ipv6Addr::from(*a))),
            // An address record spelled as "other" (the fuzzer picks type 1 or 28 itself).
            RecData::Other(t, _) if *t == qtype && rdata.len() == 4 && qtype == TYPE_A => Some(
                IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(&rdata[..]).unwrap())),
            ),
            RecData::Other(t, _) if *t == qtype && rdata.len() == 16 && qtype == TYPE_AAAA => Some(
                IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&rdata[..]).unwrap())),
            ),
            _ => None,
        };
        if matches!(r.data, RecData::Other(..)) {
            simple = false;
        }
        match addr {
            Some(a) => {
                carried.push(a);
                if r.owner.is_none() && !simple_addrs.contains(&a) {
                    simple_addrs.push(a);
                }
            }
            None => simple = false,
        }
        resp.extend_from_slice(&rtype.to_be_bytes());
        resp.extend_from_slice(&1u16.to_be_bytes());
        resp.extend_from_slice(&r.ttl.to_be_bytes());
        resp.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        resp.extend_from_slice(&rdata);
    }

    let Ok(answer) = filter_answer(&query, &resp) else {
        return;
    };
    assert!(answer.ttl <= MAX_TTL);
    if rcode != 0 {
        assert!(answer.addrs.is_empty(), "addresses with rcode {rcode}");
    }
    for (i, a) in answer.addrs.iter().enumerate() {
        assert!(carried.contains(a), "address {a} not in the answer");
        assert!(!answer.addrs[..i].contains(a), "duplicate address");
    }
    if simple && rcode == 0 {
        assert_eq!(answer.addrs, simple_addrs, "direct answer");
        assert!(answer.cnames.is_empty());
    }
});
