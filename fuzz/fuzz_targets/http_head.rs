//! `parse_request_head`, `target_authority` and `host_matches_target` on raw bytes.
//!
//! Properties: a head we parse is one httparse parses completely, with the same method,
//! target, version and length; our Host is httparse's first Host header, trimmed; the count of
//! Host headers matches; `target_authority` gives a non-empty host and a port that is not 0
//! for a target it accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stepjail::proxy::http_head::{host_matches_target, parse_request_head, target_authority};
use stepjail::proxy::sni::Peek;

fuzz_target!(|data: &[u8]| {
    let Peek::Done(head) = parse_request_head(data) else {
        return;
    };
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    let status = req
        .parse(&data[..head.head_len])
        .expect("httparse refuses a head we accepted");
    assert_eq!(
        status,
        httparse::Status::Complete(head.head_len),
        "head length"
    );
    assert_eq!(req.method, Some(head.method.as_str()), "method");
    assert_eq!(req.path, Some(head.target.as_str()), "target");
    assert_eq!(req.version, Some(head.version), "version");
    let hosts: Vec<&httparse::Header> = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"))
        .collect();
    assert_eq!(hosts.len(), head.host_headers, "Host header count");
    if let Some(first) = hosts.first() {
        let value = std::str::from_utf8(first.value).map(str::trim);
        assert_eq!(value.ok(), head.host.as_deref(), "Host value");
    }
    if let Ok((host, port, _form)) = target_authority(&head) {
        assert!(
            !host.is_empty(),
            "empty host accepted from {:?}",
            head.target
        );
        assert_ne!(port, 0, "port 0 accepted from {:?}", head.target);
    }
    let _ = host_matches_target(&head);
});
