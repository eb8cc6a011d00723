//! `parse_client_hello` on raw bytes, checked against rustls's own ClientHello parser.
//!
//! Property: when both parsers finish a hello, they name the same server (compared without
//! case and trailing dot). Deliberate differences, not failures:
//! - we read only the first record (MAX_PEEK bytes): a hello that spans records is `Malformed`
//!   for us and may be accepted by rustls;
//! - we do not validate what rustls validates beyond the SNI (cipher suites, other extensions),
//!   so we may finish a hello rustls rejects;
//! - rustls drops an IP-address SNI (`server_name()` is None); we return it as sent, and the
//!   policy layer decides on it;
//! - we may refuse (`Malformed`) names rustls accepts (our parser is stricter about printable
//!   ASCII and length).
#![no_main]

use libfuzzer_sys::fuzz_target;
use stepjail::proxy::sni::{Peek, parse_client_hello};
use stepjail_fuzz::{RustlsHello, comparable_name, rustls_hello};

fuzz_target!(|data: &[u8]| {
    check(data);
});

fn check(data: &[u8]) {
    let ours = parse_client_hello(data);
    // Every prefix of a finished hello is NeedMore or the same answer (the proxy peeks
    // repeatedly as bytes arrive).
    if let Peek::Done(info) = &ours {
        for cut in [0, 1, 2, 5, data.len() / 2] {
            if cut < data.len()
                && let Peek::Done(other) = parse_client_hello(&data[..cut])
            {
                assert_eq!(&other, info, "a prefix parsed to a different hello");
            }
        }
    }
    let theirs = rustls_hello(data);
    match (&ours, &theirs) {
        (Peek::Done(info), RustlsHello::Accepted(Some(name))) => {
            let ours = info.sni.as_deref().map(comparable_name);
            assert_eq!(
                ours,
                Some(comparable_name(name)),
                "rustls found server name {name:?}, we found {:?}",
                info.sni
            );
        }
        (Peek::Done(info), RustlsHello::Accepted(None)) => {
            if let Some(sni) = &info.sni {
                // rustls ignores an IP literal in server_name (RFC 6066 forbids it).
                assert!(
                    sni.parse::<std::net::IpAddr>().is_ok()
                        || sni
                            .trim_end_matches('.')
                            .parse::<std::net::IpAddr>()
                            .is_ok(),
                    "we found server name {sni:?}, rustls found none"
                );
            }
        }
        (Peek::NotThis, RustlsHello::Accepted(_)) => {
            panic!("rustls accepted a ClientHello that we classify as not TLS");
        }
        _ => {}
    }
}
