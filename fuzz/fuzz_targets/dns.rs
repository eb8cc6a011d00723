//! The DNS stub's parsers on raw bytes: `parse_query`, `build_answer`, `filter_answer` and
//! `tcp_unframe`, checked against hickory-proto.
//!
//! Properties:
//! - a query we accept is a message hickory decodes (header and question; see below), with one question of the same name
//!   (lower-cased, no trailing dot) and type;
//! - the answer `build_answer` writes for it decodes with hickory: same id, the question
//!   echoed, one record per address of the queried family, owned by the queried name;
//! - `filter_answer` on the same bytes (as an upstream response) only returns addresses of the
//!   queried family, without duplicates, with a TTL of at most `MAX_TTL`;
//! - `tcp_unframe` takes exactly the framed message: re-framing it gives the bytes consumed.
#![no_main]

use std::net::IpAddr;

use hickory_proto::op::Message;
use hickory_proto::rr::RData;
use libfuzzer_sys::fuzz_target;
use stepjail::proxy::dns::{
    MAX_TTL, TYPE_A, TYPE_AAAA, build_answer, filter_answer, parse_query, tcp_frame, tcp_unframe,
};
use stepjail::proxy::sni::Peek;

fuzz_target!(|data: &[u8]| {
    if let Peek::Done((msg, used)) = tcp_unframe(data) {
        assert_eq!(used, msg.len() + 2);
        assert_eq!(tcp_frame(&msg), data[..used]);
    }
    let Ok(query) = parse_query(data) else {
        return;
    };
    // We read the header and the question only: the additional section (EDNS) of a query is
    // ignored, not validated, so hickory is given the same message without it. (A query
    // whose ARCOUNT promises records that are not there is accepted by us and refused by
    // hickory; that is a deliberate difference: the stub answers with the question only.)
    let mut header_and_question = data[..12 + query.raw_question.len()].to_vec();
    header_and_question[10..12].copy_from_slice(&[0, 0]);
    let theirs = Message::from_vec(&header_and_question)
        .expect("hickory cannot decode the question of a query we accepted");
    assert_eq!(theirs.queries.len(), 1);
    let q = &theirs.queries[0];
    // Label by label: hickory's text form escapes some characters we accept (`\\-`).
    let name: Vec<String> = q
        .name
        .iter()
        .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
        .collect();
    assert_eq!(name.join("."), query.name, "name");
    assert_eq!(u16::from(q.query_type), query.qtype, "type");
    assert_eq!(theirs.metadata.id, query.id, "id");

    let addrs: Vec<IpAddr> = vec![
        "192.0.2.1".parse().unwrap(),
        "2001:db8::1".parse().unwrap(),
        "192.0.2.2".parse().unwrap(),
    ];
    let answer = build_answer(data, &query, &addrs, u32::from_be_bytes([0, 1, 2, 3]));
    let decoded = Message::from_vec(&answer).expect("hickory cannot decode our answer");
    assert_eq!(decoded.metadata.id, query.id);
    assert_eq!(decoded.queries.len(), 1);
    assert_eq!(decoded.queries[0].name, q.name, "question echoed");
    let want: Vec<IpAddr> = match query.qtype {
        TYPE_A => addrs.iter().filter(|a| a.is_ipv4()).copied().collect(),
        TYPE_AAAA => addrs.iter().filter(|a| a.is_ipv6()).copied().collect(),
        _ => Vec::new(),
    };
    let mut got = Vec::new();
    for r in &decoded.answers {
        assert_eq!(r.name, q.name, "answer owner");
        assert!(r.ttl <= MAX_TTL);
        match &r.data {
            RData::A(a) => got.push(IpAddr::V4(a.0)),
            RData::AAAA(a) => got.push(IpAddr::V6(a.0)),
            other => panic!("unexpected record {other:?}"),
        }
    }
    assert_eq!(got, want, "answer addresses");

    if let Ok(filtered) = filter_answer(&query, data) {
        assert!(filtered.ttl <= MAX_TTL);
        for (i, a) in filtered.addrs.iter().enumerate() {
            match query.qtype {
                TYPE_A => assert!(a.is_ipv4()),
                TYPE_AAAA => assert!(a.is_ipv6()),
                _ => panic!("address for a query of type {}", query.qtype),
            }
            assert!(!filtered.addrs[..i].contains(a), "duplicate address");
        }
    }
});
