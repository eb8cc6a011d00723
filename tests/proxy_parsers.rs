//! The egress proxy's pure parsers against real and hostile input: TLS ClientHello (generated
//! by rustls), HTTP request heads, and the DNS stub's wire logic, including a resolver round
//! trip against a tiny server on 127.0.0.1 (never a real resolver).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use stepjail::proxy::dns::{
    self, Answer, DnsError, Query, Rcode, TYPE_A, TYPE_AAAA, TYPE_CNAME, build_answer,
    build_upstream_query, filter_answer, parse_query, resolve_upstream, tcp_frame, tcp_unframe,
};
use stepjail::proxy::http_head::{
    Form, MAX_HEAD_LEN, RequestHead, host_matches_target, parse_request_head, target_authority,
};
use stepjail::proxy::sni::{ClientHelloInfo, MAX_PEEK, Peek, parse_client_hello};

/// A deterministic xorshift generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// TLS ClientHello
// ---------------------------------------------------------------------------------------------

/// The first flight of a real rustls client: one TLS record holding the ClientHello.
fn rustls_hello(server_name: &str, sni: bool, alpn: &[&[u8]]) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    config.enable_sni = sni;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = rustls::pki_types::ServerName::try_from(server_name.to_owned()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

/// Appends an extension to a single-record ClientHello, fixing the three enclosing lengths.
fn add_extension(hello: &[u8], ext_type: u16, data: &[u8]) -> Vec<u8> {
    let mut pos = 5 + 4 + 2 + 32;
    pos += 1 + usize::from(hello[pos]); // session id
    pos += 2 + usize::from(u16::from_be_bytes([hello[pos], hello[pos + 1]])); // suites
    pos += 1 + usize::from(hello[pos]); // compression
    let ext_len_at = pos;
    let mut out = hello.to_vec();
    let mut ext = ext_type.to_be_bytes().to_vec();
    ext.extend_from_slice(&(data.len() as u16).to_be_bytes());
    ext.extend_from_slice(data);
    out.extend_from_slice(&ext);
    let grow = ext.len();
    let bump16 = |out: &mut Vec<u8>, at: usize| {
        let v = u16::from_be_bytes([out[at], out[at + 1]]) as usize + grow;
        out[at..at + 2].copy_from_slice(&(v as u16).to_be_bytes());
    };
    bump16(&mut out, 3);
    bump16(&mut out, ext_len_at);
    let hs = (usize::from(out[6]) << 16 | usize::from(out[7]) << 8 | usize::from(out[8])) + grow;
    out[6..9].copy_from_slice(&(hs as u32).to_be_bytes()[1..]);
    out
}

fn done(p: Peek<ClientHelloInfo>) -> ClientHelloInfo {
    match p {
        Peek::Done(info) => info,
        other => panic!("expected a parsed ClientHello, got {other:?}"),
    }
}

#[test]
fn rustls_hello_yields_sni_and_alpn() {
    let hello = rustls_hello("pkg.example.com", true, &[b"h2", b"http/1.1"]);
    let info = done(parse_client_hello(&hello));
    assert_eq!(info.sni.as_deref(), Some("pkg.example.com"));
    assert_eq!(info.alpn, ["h2", "http/1.1"]);
    assert!(!info.ech);
}

#[test]
fn trailing_application_bytes_do_not_matter() {
    let mut hello = rustls_hello("pkg.example.com", true, &[]);
    hello.extend_from_slice(&[0x17, 0x03, 0x03, 0x00, 0x10]);
    hello.extend_from_slice(&[0xaa; 100]);
    assert_eq!(
        done(parse_client_hello(&hello)).sni.as_deref(),
        Some("pkg.example.com")
    );
}

#[test]
fn hello_without_sni() {
    let info = done(parse_client_hello(&rustls_hello(
        "pkg.example.com",
        false,
        &[],
    )));
    assert_eq!(info.sni, None);
    assert!(info.alpn.is_empty());
    // An IP address as server name: rustls sends no SNI at all (RFC 6066 forbids literals).
    let info = done(parse_client_hello(&rustls_hello("192.0.2.7", true, &[])));
    assert_eq!(info.sni, None);
}

#[test]
fn ech_extension_is_flagged() {
    let hello = rustls_hello("public.example.com", true, &[]);
    let with_ech = add_extension(&hello, 0xfe0d, &[0x00, 0x00, 0x01, 0x00, 0x01]);
    let info = done(parse_client_hello(&with_ech));
    assert!(info.ech);
    assert_eq!(info.sni.as_deref(), Some("public.example.com"));
    // And a second server_name extension spliced into a real hello is refused.
    let sni = [
        0, 12, 0, 0, 9, b'e', b'v', b'i', b'l', b'.', b't', b'e', b's', b't',
    ];
    assert_eq!(
        parse_client_hello(&add_extension(&hello, 0, &sni)),
        Peek::Malformed("duplicate server_name extension")
    );
}

#[test]
fn every_prefix_needs_more() {
    let hello = rustls_hello("pkg.example.com", true, &[b"h2"]);
    for n in 0..hello.len() {
        assert_eq!(
            parse_client_hello(&hello[..n]),
            Peek::NeedMore,
            "prefix of {n} of {} bytes",
            hello.len()
        );
    }
}

#[test]
fn hello_longer_than_its_record_is_fragmented() {
    let hello = rustls_hello("pkg.example.com", true, &[]);
    // Split the handshake message over two records: the first record ends early.
    let body = &hello[5..];
    let first = &body[..100];
    let mut split = vec![0x16, 0x03, 0x01];
    split.extend_from_slice(&(first.len() as u16).to_be_bytes());
    split.extend_from_slice(first);
    split.extend_from_slice(&[0x16, 0x03, 0x01]);
    split.extend_from_slice(&((body.len() - 100) as u16).to_be_bytes());
    split.extend_from_slice(&body[100..]);
    assert_eq!(
        parse_client_hello(&split),
        Peek::Malformed("fragmented ClientHello")
    );
    // Decided from the headers alone, before the rest arrives.
    assert_eq!(
        parse_client_hello(&split[..9]),
        Peek::Malformed("fragmented ClientHello")
    );
}

#[test]
fn oversized_record_and_peek_cap() {
    assert_eq!(
        parse_client_hello(&[0x16, 0x03, 0x01, 0x40, 0x01]),
        Peek::Malformed("bad TLS record length")
    );
    // A record of exactly 16 KiB whose hello never completes: only MAX_PEEK bytes are read.
    let mut big = vec![0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x00, 0x3f, 0xfc];
    big.resize(MAX_PEEK + 1000, 0);
    assert!(matches!(parse_client_hello(&big), Peek::Malformed(_)));
}

#[test]
fn not_tls_and_garbage_never_panic() {
    assert_eq!(parse_client_hello(b"GET / HTTP/1.1\r\n\r\n"), Peek::NotThis);
    assert_eq!(
        parse_client_hello(b"SSH-2.0-OpenSSH_9.6\r\n"),
        Peek::NotThis
    );
    assert_eq!(
        parse_client_hello(&[0x16, 0x03, 0x03, 0x00, 0x04, 0x02, 0, 0, 0]),
        Peek::Malformed("first handshake message is not a ClientHello")
    );
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for _ in 0..10_000 {
        let len = rng.below(600);
        let mut buf = rng.bytes(len);
        // Make half of them look like TLS so the deeper code is reached.
        if rng.below(2) == 0 && buf.len() > 9 {
            buf[..3].copy_from_slice(&[0x16, 0x03, 0x01]);
            let rec = (buf.len() - 5) as u16;
            buf[3..5].copy_from_slice(&rec.to_be_bytes());
            buf[5] = 1;
            let hs = (buf.len() - 9) as u32;
            buf[6..9].copy_from_slice(&hs.to_be_bytes()[1..]);
        }
        let _ = parse_client_hello(&buf);
    }
    // Single-byte corruptions and every truncation of a real hello.
    let hello = rustls_hello("pkg.example.com", true, &[b"h2"]);
    for i in 0..hello.len() {
        for v in [0x00, 0x01, 0x7f, 0x80, 0xff] {
            let mut bad = hello.clone();
            bad[i] = v;
            let _ = parse_client_hello(&bad);
            let _ = parse_client_hello(&bad[..rng.below(bad.len())]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP request heads
// ---------------------------------------------------------------------------------------------

fn head(raw: &str) -> RequestHead {
    match parse_request_head(raw.as_bytes()) {
        Peek::Done(h) => h,
        other => panic!("expected a parsed head for {raw:?}, got {other:?}"),
    }
}

#[test]
fn absolute_form() {
    let h = head("GET http://pkg.example.com/a/b?x=1 HTTP/1.1\r\nHost: pkg.example.com\r\n\r\n");
    assert_eq!(h.method, "GET");
    assert_eq!(h.version, 1);
    assert_eq!(h.host.as_deref(), Some("pkg.example.com"));
    assert_eq!(h.host_headers, 1);
    assert_eq!(
        target_authority(&h),
        Ok(("pkg.example.com".into(), 80, Form::Absolute))
    );
    assert!(host_matches_target(&h));

    let h = head("GET http://Pkg.Example.com:8080 HTTP/1.0\r\nHost: pkg.example.COM.:8080\r\n\r\n");
    assert_eq!(h.version, 0);
    assert_eq!(
        target_authority(&h),
        Ok(("Pkg.Example.com".into(), 8080, Form::Absolute))
    );
    assert!(host_matches_target(&h));
}

#[test]
fn head_len_counts_only_the_head() {
    let raw = "POST http://a.example/ HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3\r\n\r\nabc";
    assert_eq!(head(raw).head_len, raw.len() - 3);
}

#[test]
fn default_ports_match() {
    let h = head("GET http://a.example/ HTTP/1.1\r\nHost: a.example:80\r\n\r\n");
    assert!(host_matches_target(&h));
    let h = head("GET http://a.example:80/ HTTP/1.1\r\nHost: a.example\r\n\r\n");
    assert!(host_matches_target(&h));
    let h = head("GET http://a.example:8080/ HTTP/1.1\r\nHost: a.example\r\n\r\n");
    assert!(!host_matches_target(&h), "Host without port means 80");
}

#[test]
fn host_mismatch_is_fronting() {
    let h = head("GET http://allowed.example/ HTTP/1.1\r\nHost: evil.example\r\n\r\n");
    assert_eq!(
        target_authority(&h),
        Ok(("allowed.example".into(), 80, Form::Absolute))
    );
    assert!(!host_matches_target(&h));
    let h = head("GET http://allowed.example@evil.example/ HTTP/1.1\r\n\r\n");
    assert_eq!(target_authority(&h), Err("user info in request target"));
    assert!(!host_matches_target(&h));
    // No Host at all in absolute form is fine: the target is authoritative.
    let h = head("GET http://allowed.example/ HTTP/1.1\r\n\r\n");
    assert!(host_matches_target(&h));
}

#[test]
fn duplicate_host_headers() {
    let h = head("GET / HTTP/1.1\r\nHost: a.example\r\nhost: b.example\r\n\r\n");
    assert_eq!(h.host_headers, 2);
    assert_eq!(h.host.as_deref(), Some("a.example"));
    assert_eq!(target_authority(&h), Err("more than one Host header"));
    assert!(!host_matches_target(&h));
    let h = head("GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nHost: a.example\r\n\r\n");
    assert!(!host_matches_target(&h));
}

#[test]
fn origin_form_uses_host() {
    let h = head("GET /simple/ HTTP/1.1\r\nHost: a.example:8080\r\nAccept: */*\r\n\r\n");
    assert_eq!(
        target_authority(&h),
        Ok(("a.example".into(), 8080, Form::Origin))
    );
    assert!(host_matches_target(&h));
    let h = head("GET / HTTP/1.1\r\nHost:  a.example \r\n\r\n");
    assert_eq!(
        target_authority(&h),
        Ok(("a.example".into(), 80, Form::Origin))
    );
    let h = head("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n");
    assert_eq!(target_authority(&h), Err("missing Host header"));
    assert!(!host_matches_target(&h));
}

#[test]
fn authority_form() {
    let h = head("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n");
    assert_eq!(
        target_authority(&h),
        Ok(("a.example".into(), 443, Form::Authority))
    );
    assert!(host_matches_target(&h));
    let h = head("CONNECT a.example HTTP/1.1\r\n\r\n");
    assert_eq!(target_authority(&h), Err("port required"));
    let h = head("CONNECT a.example:443 HTTP/1.1\r\nHost: b.example:443\r\n\r\n");
    assert!(!host_matches_target(&h));
    let h = head("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example\r\n\r\n");
    assert!(host_matches_target(&h));
}

#[test]
fn ipv6_literals() {
    let h = head("CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:DB8:0::1]:443\r\n\r\n");
    assert_eq!(
        target_authority(&h),
        Ok(("2001:db8::1".into(), 443, Form::Authority))
    );
    assert!(host_matches_target(&h));
    let h = head("GET http://[2001:db8::2]/x HTTP/1.1\r\nHost: [2001:db8::2]\r\n\r\n");
    assert_eq!(
        target_authority(&h),
        Ok(("2001:db8::2".into(), 80, Form::Absolute))
    );
    assert!(host_matches_target(&h));
    let h = head("GET / HTTP/1.1\r\nHost: [2001:db8::3]:8443\r\n\r\n");
    assert_eq!(
        target_authority(&h),
        Ok(("2001:db8::3".into(), 8443, Form::Origin))
    );
    let h = head("CONNECT 2001:db8::1:443 HTTP/1.1\r\n\r\n");
    assert_eq!(
        target_authority(&h),
        Err("bare IPv6 literal or extra colon")
    );
}

#[test]
fn other_targets_refused() {
    let h = head("OPTIONS * HTTP/1.1\r\nHost: a.example\r\n\r\n");
    assert_eq!(target_authority(&h), Err("unrecognised request target"));
    let h = head("GET https://a.example/ HTTP/1.1\r\n\r\n");
    assert_eq!(
        target_authority(&h),
        Err("unsupported scheme in request target")
    );
    let h = head("GET / HTTP/1.1\r\nHost: a.example:0\r\n\r\n");
    assert_eq!(target_authority(&h), Err("bad port"));
}

#[test]
fn partial_oversize_and_garbage_heads() {
    let raw = b"GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n";
    for n in 0..raw.len() {
        assert_eq!(parse_request_head(&raw[..n]), Peek::NeedMore, "prefix {n}");
    }
    let mut big = b"GET / HTTP/1.1\r\nHost: a.example\r\nX-Pad: ".to_vec();
    big.resize(MAX_HEAD_LEN + 10, b'a');
    assert_eq!(
        parse_request_head(&big),
        Peek::Malformed("request head too large")
    );
    let mut many = String::from("GET / HTTP/1.1\r\n");
    for i in 0..65 {
        many.push_str(&format!("X-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(
        parse_request_head(many.as_bytes()),
        Peek::Malformed("too many headers")
    );
    assert_eq!(parse_request_head(b"\x16\x03\x01\x02\x00"), Peek::NotThis);
    assert_eq!(
        parse_request_head(b"GET / HTTP/2.0\r\n\r\n"),
        Peek::Malformed("not HTTP/1.x")
    );
    assert_eq!(
        parse_request_head(b"GET / HTTP/1.1\r\nHost: a\xc3\xa9.example\r\n\r\n"),
        Peek::Malformed("Host header is not ASCII")
    );
    let mut rng = Rng(42);
    for _ in 0..10_000 {
        let len = rng.below(300);
        let mut buf = rng.bytes(len);
        if !buf.is_empty() {
            buf[0] = b'G';
        }
        if let Peek::Done(h) = parse_request_head(&buf) {
            let _ = target_authority(&h);
            let _ = host_matches_target(&h);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// DNS
// ---------------------------------------------------------------------------------------------

fn wire_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

enum Rr<'a> {
    A(&'a str, u32, Ipv4Addr),
    Aaaa(&'a str, u32, Ipv6Addr),
    Cname(&'a str, u32, &'a str),
    Txt(&'a str, u32, &'a str),
}

/// A response to `query` (its question echoed, uncompressed records) built by hand.
fn response(query: &[u8], id: u16, flags: [u8; 2], answers: &[Rr<'_>]) -> Vec<u8> {
    let q = parse_query(query).unwrap();
    let mut out = id.to_be_bytes().to_vec();
    out.extend_from_slice(&flags);
    out.extend_from_slice(&[0, 1]);
    out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&q.raw_question);
    for rr in answers {
        let (owner, ty, ttl, rdata) = match rr {
            Rr::A(o, t, a) => (*o, TYPE_A, *t, a.octets().to_vec()),
            Rr::Aaaa(o, t, a) => (*o, TYPE_AAAA, *t, a.octets().to_vec()),
            Rr::Cname(o, t, target) => (*o, TYPE_CNAME, *t, wire_name(target)),
            Rr::Txt(o, t, s) => {
                let mut d = vec![s.len() as u8];
                d.extend_from_slice(s.as_bytes());
                (*o, 16, *t, d)
            }
        };
        out.extend_from_slice(&wire_name(owner));
        out.extend_from_slice(&ty.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    out
}

const NOERROR: [u8; 2] = [0x81, 0x80];

fn query_for(name: &str, qtype: u16) -> (Vec<u8>, Query) {
    let msg = build_upstream_query(name, qtype, 0x4242);
    let q = parse_query(&msg).unwrap();
    (msg, q)
}

#[test]
fn parse_query_built_by_build_upstream_query() {
    let (msg, q) = query_for("Registry.NPMJS.org.", TYPE_A);
    assert_eq!(q.id, 0x4242);
    assert_eq!(q.name, "registry.npmjs.org");
    assert_eq!((q.qtype, q.qtype_name.as_str()), (TYPE_A, "A"));
    assert!(q.rd);
    assert_eq!(&msg[12..12 + q.raw_question.len()], &q.raw_question[..]);
    let (_, q) = query_for("example.com", 65);
    assert_eq!(q.qtype_name, "HTTPS");
}

#[test]
fn nxdomain_echoes_id_and_question() {
    let (msg, q) = query_for("tunnel.evil.example", 16);
    let resp = dns::nxdomain(&msg);
    assert_eq!(&resp[..2], &0x4242u16.to_be_bytes());
    assert_eq!(resp[2], 0x81, "QR and RD");
    assert_eq!(resp[3], 0x80 | 3, "RA and NXDOMAIN");
    assert_eq!(&resp[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&resp[12..], &q.raw_question[..]);
    assert_eq!(dns::refused(&msg)[3] & 0x0f, 5);
    assert_eq!(dns::servfail(&msg)[3] & 0x0f, 2);
    assert_eq!(dns::formerr(&msg)[3] & 0x0f, 1);
    assert_eq!(dns::notimp(&msg)[3] & 0x0f, 4);
    // A message with an unreadable question is answered with the header only.
    let resp = dns::formerr(&msg[..14]);
    assert_eq!(&resp[4..6], &[0, 0]);
    assert_eq!(resp.len(), 12);
    // Errors say what to answer, or to drop.
    let err = parse_query(&msg[..5]).unwrap_err();
    assert!(dns::error_answer(&msg[..5], &err).is_none());
}

#[test]
fn filter_follows_cname_chain_and_drops_other_names() {
    let (msg, q) = query_for("www.example.com", TYPE_A);
    let up = response(
        &msg,
        9,
        NOERROR,
        &[
            Rr::A("unrelated.example", 60, Ipv4Addr::new(198, 51, 100, 66)),
            Rr::Cname("WWW.example.com", 600, "edge.cdn.example"),
            Rr::Cname("edge.cdn.example", 120, "a1.cdn.example"),
            Rr::A("a1.cdn.example", 200, Ipv4Addr::new(203, 0, 113, 10)),
            Rr::A("a1.CDN.example", 50, Ipv4Addr::new(203, 0, 113, 11)),
            Rr::A("www.example.com", 60, Ipv4Addr::new(198, 51, 100, 99)),
            Rr::Aaaa("a1.cdn.example", 10, "2001:db8::1".parse().unwrap()),
            Rr::Txt("a1.cdn.example", 10, "exfil"),
        ],
    );
    let answer = filter_answer(&q, &up).unwrap();
    assert_eq!(
        answer,
        Answer {
            addrs: vec![
                IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10)),
                IpAddr::V4(Ipv4Addr::new(203, 0, 113, 11)),
            ],
            ttl: 50,
            cnames: vec!["edge.cdn.example".into(), "a1.cdn.example".into()],
            rcode: Rcode::NoError,
        }
    );
}

#[test]
fn filter_ttl_is_capped_and_aaaa_kept_for_aaaa() {
    let (msg, q) = query_for("a.example", TYPE_AAAA);
    let up = response(
        &msg,
        1,
        NOERROR,
        &[
            Rr::Aaaa("a.example", 86_400, "2001:db8::5".parse().unwrap()),
            Rr::A("a.example", 86_400, Ipv4Addr::new(192, 0, 2, 5)),
        ],
    );
    let answer = filter_answer(&q, &up).unwrap();
    assert_eq!(answer.addrs, ["2001:db8::5".parse::<IpAddr>().unwrap()]);
    assert_eq!(answer.ttl, 300);
}

#[test]
fn filter_cname_loop_and_long_chain_are_bounded() {
    let (msg, q) = query_for("a.example", TYPE_A);
    let looping = response(
        &msg,
        1,
        NOERROR,
        &[
            Rr::Cname("a.example", 60, "b.example"),
            Rr::Cname("b.example", 60, "a.example"),
        ],
    );
    assert!(matches!(
        filter_answer(&q, &looping),
        Err(DnsError::CnameChain)
    ));
    let names: Vec<String> = (0..12).map(|i| format!("c{i}.example")).collect();
    let mut rrs = vec![Rr::Cname("a.example", 60, &names[0])];
    for w in names.windows(2) {
        rrs.push(Rr::Cname(&w[0], 60, &w[1]));
    }
    rrs.push(Rr::A(&names[11], 60, Ipv4Addr::new(192, 0, 2, 1)));
    assert!(matches!(
        filter_answer(&q, &response(&msg, 1, NOERROR, &rrs)),
        Err(DnsError::CnameChain)
    ));
    let forked = response(
        &msg,
        1,
        NOERROR,
        &[
            Rr::Cname("a.example", 60, "b.example"),
            Rr::Cname("a.example", 60, "c.example"),
        ],
    );
    assert!(matches!(
        filter_answer(&q, &forked),
        Err(DnsError::Malformed(_))
    ));
}

#[test]
fn filter_rejects_wrong_question_and_passes_rcode() {
    let (msg, q) = query_for("a.example", TYPE_A);
    let (other, _) = query_for("b.example", TYPE_A);
    let up = response(
        &other,
        1,
        NOERROR,
        &[Rr::A("a.example", 60, Ipv4Addr::LOCALHOST)],
    );
    assert!(matches!(
        filter_answer(&q, &up),
        Err(DnsError::QuestionMismatch)
    ));
    let nx = response(&msg, 1, [0x81, 0x83], &[]);
    let answer = filter_answer(&q, &nx).unwrap();
    assert_eq!(answer.rcode, Rcode::NxDomain);
    assert!(answer.addrs.is_empty());
    let tc = response(&msg, 1, [0x83, 0x80], &[]);
    assert!(matches!(filter_answer(&q, &tc), Err(DnsError::Truncated)));
}

#[test]
fn filter_reads_compressed_names() {
    // Owner of the CNAME and the A record point back into the question / earlier rdata.
    let (msg, q) = query_for("www.example.com", TYPE_A);
    let mut up = response(&msg, 1, NOERROR, &[]);
    up[7] = 2;
    // CNAME: owner -> question name (offset 12), target "cdn" + pointer to "example.com".
    up.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 6, 3, b'c', b'd', b'n']);
    up.extend_from_slice(&[0xc0, 16]);
    let cname_target_at = (up.len() - 6) as u8;
    up.extend_from_slice(&[0xc0, cname_target_at, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4]);
    up.extend_from_slice(&[192, 0, 2, 77]);
    let answer = filter_answer(&q, &up).unwrap();
    assert_eq!(answer.cnames, ["cdn.example.com"]);
    assert_eq!(answer.addrs, [IpAddr::V4(Ipv4Addr::new(192, 0, 2, 77))]);
    assert_eq!(answer.ttl, 30);
}

#[test]
fn filter_never_panics_on_garbage() {
    let (msg, q) = query_for("a.example", TYPE_A);
    let good = response(
        &msg,
        1,
        NOERROR,
        &[
            Rr::Cname("a.example", 60, "b.example"),
            Rr::A("b.example", 60, Ipv4Addr::new(192, 0, 2, 1)),
        ],
    );
    let mut rng = Rng(7);
    for _ in 0..10_000 {
        let mut bad = good.clone();
        for _ in 0..=rng.below(4) {
            let i = rng.below(bad.len());
            bad[i] = rng.next() as u8;
        }
        bad.truncate(rng.below(bad.len() + 1));
        let _ = filter_answer(&q, &bad);
        let _ = parse_query(&bad);
        let _ = dns::nxdomain(&bad);
    }
    // Counts claiming 65535 records in a tiny message fail fast.
    let mut lying = good;
    lying[6..8].copy_from_slice(&[0xff, 0xff]);
    let e = filter_answer(&q, &lying).unwrap_err();
    assert!(
        e.to_string()
            .contains("unreadable record in upstream answer"),
        "{e}"
    );
}

#[test]
fn build_answer_has_only_checked_records_under_the_query_name() {
    let (msg, q) = query_for("www.example.com", TYPE_A);
    let addrs: Vec<IpAddr> = vec![
        "203.0.113.10".parse().unwrap(),
        "2001:db8::1".parse().unwrap(),
        "203.0.113.11".parse().unwrap(),
    ];
    let resp = build_answer(&msg, &q, &addrs, 3600);
    // Parse it back as an upstream response would be.
    let answer = filter_answer(&q, &resp).unwrap();
    assert_eq!(answer.addrs, [addrs[0], addrs[2]]);
    assert!(answer.cnames.is_empty());
    assert_eq!(answer.ttl, 300);
    assert_eq!(&resp[..2], &0x4242u16.to_be_bytes());
    assert_eq!(&resp[6..8], &[0, 2], "two A records, no AAAA");
    assert_eq!(&resp[8..12], &[0, 0, 0, 0], "no authority or additional");

    let (msg6, q6) = query_for("www.example.com", TYPE_AAAA);
    let resp = build_answer(&msg6, &q6, &addrs, 60);
    assert_eq!(filter_answer(&q6, &resp).unwrap().addrs, [addrs[1]]);

    // Any other type of an allowed name: NODATA.
    for qtype in [16, 15, 65, 64, 255] {
        let (m, qq) = query_for("www.example.com", qtype);
        let resp = build_answer(&m, &qq, &addrs, 60);
        assert_eq!(resp[3] & 0x0f, 0, "NOERROR");
        assert_eq!(
            &resp[6..12],
            &[0, 0, 0, 0, 0, 0],
            "no records for type {qtype}"
        );
    }

    // Many addresses: the answer stays within 512 bytes.
    let many: Vec<IpAddr> = (0..200u8)
        .map(|i| IpAddr::V4(Ipv4Addr::new(192, 0, 2, i)))
        .collect();
    let resp = build_answer(&msg, &q, &many, 60);
    assert!(resp.len() <= 512);
    assert!(filter_answer(&q, &resp).unwrap().addrs.len() >= 15);
}

#[test]
fn tcp_framing_round_trip_and_partial() {
    let (msg, _) = query_for("a.example", TYPE_A);
    let mut stream = tcp_frame(&msg);
    stream.extend(tcp_frame(&msg));
    for n in 0..msg.len() + 2 {
        assert_eq!(tcp_unframe(&stream[..n]), Peek::NeedMore, "prefix {n}");
    }
    let Peek::Done((first, used)) = tcp_unframe(&stream) else {
        panic!("not framed");
    };
    assert_eq!(first, msg);
    assert_eq!(used, msg.len() + 2);
    assert_eq!(
        tcp_unframe(&stream[used..]),
        Peek::Done((msg.clone(), used))
    );
    // A declared 64 KiB message is waited for, not allocated up front.
    assert_eq!(tcp_unframe(&[0xff, 0xff, 0, 0]), Peek::NeedMore);
}

// --- resolve_upstream against a server on 127.0.0.1 -------------------------------------------

#[derive(Clone, Copy)]
enum Behaviour {
    Answer,
    WrongIdThenAnswer,
    OnlyWrongId,
    WrongQuestion,
    TruncatedThenTcp,
    Silent,
}

/// Serves one query on UDP (and, for TruncatedThenTcp, one on TCP at the same port).
async fn fake_resolver(behaviour: Behaviour) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let udp = tokio::net::UdpSocket::bind(addr).await.unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        let (n, peer) = udp.recv_from(&mut buf).await.unwrap();
        let query = buf[..n].to_vec();
        let q = parse_query(&query).unwrap();
        let records = [Rr::A("a.example", 60, Ipv4Addr::new(192, 0, 2, 53))];
        match behaviour {
            Behaviour::Answer => {
                let r = response(&query, q.id, NOERROR, &records);
                udp.send_to(&r, peer).await.unwrap();
            }
            Behaviour::WrongIdThenAnswer => {
                let spoof = [Rr::A("a.example", 60, Ipv4Addr::new(198, 51, 100, 6))];
                let r = response(&query, q.id.wrapping_add(1), NOERROR, &spoof);
                udp.send_to(&r, peer).await.unwrap();
                let r = response(&query, q.id, NOERROR, &records);
                udp.send_to(&r, peer).await.unwrap();
            }
            Behaviour::OnlyWrongId => {
                let r = response(&query, q.id ^ 0x8000, NOERROR, &records);
                udp.send_to(&r, peer).await.unwrap();
            }
            Behaviour::WrongQuestion => {
                let other = build_upstream_query("b.example", TYPE_A, q.id);
                let r = response(&other, q.id, NOERROR, &records);
                udp.send_to(&r, peer).await.unwrap();
            }
            Behaviour::TruncatedThenTcp => {
                let r = response(&query, q.id, [0x83, 0x80], &[]);
                udp.send_to(&r, peer).await.unwrap();
                let (mut conn, _) = tcp.accept().await.unwrap();
                let mut len = [0u8; 2];
                conn.read_exact(&mut len).await.unwrap();
                let mut tq = vec![0u8; usize::from(u16::from_be_bytes(len))];
                conn.read_exact(&mut tq).await.unwrap();
                let tcp_records = [Rr::A("a.example", 60, Ipv4Addr::new(192, 0, 2, 54))];
                let r = response(&tq, q.id, NOERROR, &tcp_records);
                conn.write_all(&tcp_frame(&r)).await.unwrap();
            }
            Behaviour::Silent => {}
        }
        // Keep the sockets open until the client is done.
        tokio::time::sleep(Duration::from_secs(3)).await;
    });
    addr
}

async fn resolve(behaviour: Behaviour, timeout_ms: u64) -> Result<Vec<IpAddr>, DnsError> {
    let upstream = fake_resolver(behaviour).await;
    let raw = resolve_upstream(
        upstream,
        "A.example",
        TYPE_A,
        Duration::from_millis(timeout_ms),
    )
    .await?;
    let (_, q) = query_for("a.example", TYPE_A);
    Ok(filter_answer(&q, &raw)?.addrs)
}

#[tokio::test]
async fn resolve_upstream_udp() {
    assert_eq!(
        resolve(Behaviour::Answer, 2000).await.unwrap(),
        [IpAddr::V4(Ipv4Addr::new(192, 0, 2, 53))]
    );
}

#[tokio::test]
async fn resolve_upstream_ignores_spoofed_id() {
    assert_eq!(
        resolve(Behaviour::WrongIdThenAnswer, 2000).await.unwrap(),
        [IpAddr::V4(Ipv4Addr::new(192, 0, 2, 53))]
    );
    assert!(matches!(
        resolve(Behaviour::OnlyWrongId, 300).await,
        Err(DnsError::IdMismatch { .. })
    ));
    assert!(matches!(
        resolve(Behaviour::WrongQuestion, 300).await,
        Err(DnsError::QuestionMismatch)
    ));
}

#[tokio::test]
async fn resolve_upstream_retries_truncated_over_tcp() {
    assert_eq!(
        resolve(Behaviour::TruncatedThenTcp, 2000).await.unwrap(),
        [IpAddr::V4(Ipv4Addr::new(192, 0, 2, 54))]
    );
}

#[tokio::test]
async fn resolve_upstream_times_out() {
    assert!(matches!(
        resolve(Behaviour::Silent, 200).await,
        Err(DnsError::Timeout { .. })
    ));
    let bad = resolve_upstream(
        "127.0.0.1:9".parse().unwrap(),
        "bad..name",
        TYPE_A,
        Duration::from_millis(100),
    )
    .await;
    assert!(matches!(bad, Err(DnsError::BadName(_))));
}
