//! Structure-aware ClientHello target: the fuzzer picks fields, a builder writes the records.
//!
//! Properties: a hello in one record that we finish names exactly the host that was sent (or
//! none when none was sent, or when ECH is present it still reports `ech`); every proper
//! prefix of it is `NeedMore`; and rustls agrees on the name (see `sni.rs` for the documented
//! differences).
#![no_main]

use libfuzzer_sys::fuzz_target;
use stepjail::proxy::sni::{Peek, parse_client_hello};
use stepjail_fuzz::{HelloSpec, RustlsHello, comparable_name, rustls_hello};

fuzz_target!(|spec: HelloSpec| {
    let bytes = spec.build();
    let ours = parse_client_hello(&bytes);
    if let Peek::Done(info) = &ours {
        let sent = spec.host.as_ref().map(|h| h.bytes());
        assert_eq!(
            info.sni.as_ref().map(|s| s.as_bytes().to_vec()),
            sent,
            "the parsed name is not the one sent"
        );
        assert_eq!(info.ech, spec.ech, "ECH presence");
        if spec.alpn.iter().all(|p| std::str::from_utf8(p).is_ok()) {
            let sent: Vec<String> = spec
                .alpn
                .iter()
                .map(|p| String::from_utf8(p.clone()).unwrap())
                .collect();
            assert_eq!(info.alpn, sent, "ALPN list");
        }
        for cut in 0..bytes.len().min(64) {
            let p = parse_client_hello(&bytes[..cut]);
            assert!(
                p == Peek::NeedMore,
                "prefix of {cut} bytes of a finished hello gave {p:?}"
            );
        }
        let p = parse_client_hello(&bytes[..bytes.len() - 1]);
        assert!(p == Peek::NeedMore, "hello minus one byte gave {p:?}");
    }
    match (&ours, rustls_hello(&bytes)) {
        (Peek::Done(info), RustlsHello::Accepted(Some(name))) => {
            assert_eq!(
                info.sni.as_deref().map(comparable_name),
                Some(comparable_name(&name)),
                "rustls disagrees on the server name"
            );
        }
        (Peek::NotThis, RustlsHello::Accepted(_)) => {
            panic!("rustls accepted a ClientHello that we classify as not TLS");
        }
        _ => {}
    }
});
