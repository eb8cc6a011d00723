use super::codec::*;
use super::upstream::*;

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
