//! Undoing a plain-HTTP request body's `Content-Encoding`, so that leak detection reads what the
//! server will read.
//!
//! `gzip` (and `x-gzip`, several members allowed) and `deflate` (zlib-wrapped, as RFC 9110 says,
//! or raw, as some clients send it) are decoded, each coding in turn, up to a bound on the
//! decoded size: a body past it is refused, never passed on unscanned (a few KiB of gzip can
//! hold gigabytes of zeros). A coding this cannot decode (`br`, `zstd`, `compress`) is refused
//! too. `identity` is no coding.

use std::io::Read;

use flate2::read::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};
use hyper::HeaderMap;

/// The largest plain-HTTP request body read whole to look for secrets in it.
pub(crate) const MAX_SCANNED_BODY: usize = 16 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error(
        "its {coding} body is larger than {limit} bytes decoded, too large to check for secrets"
    )]
    TooLarge { coding: String, limit: usize },
    #[error("its body is {coding}-encoded, which stepjail cannot decode to check for secrets")]
    Unsupported { coding: String },
    #[error("its {coding} body does not decode ({why}), so it cannot be checked for secrets")]
    Corrupt { coding: String, why: String },
}

/// The body with every `Content-Encoding` undone, last applied first; `None` when it has none
/// (the body is what the server reads). Each step's output is bounded by `limit` bytes.
pub fn decode(
    headers: &HeaderMap,
    body: &[u8],
    limit: usize,
) -> Result<Option<Vec<u8>>, DecodeError> {
    let mut codings: Vec<String> = Vec::new();
    for value in headers.get_all(hyper::header::CONTENT_ENCODING) {
        let Ok(text) = value.to_str() else {
            return Err(DecodeError::Unsupported {
                coding: "an unreadable".into(),
            });
        };
        codings.extend(
            text.split(',')
                .map(|c| c.trim().to_ascii_lowercase())
                .filter(|c| !c.is_empty() && c != "identity"),
        );
    }
    let mut decoded: Option<Vec<u8>> = None;
    for coding in codings.iter().rev() {
        let input = decoded.as_deref().unwrap_or(body);
        decoded = Some(decode_one(coding, input, limit)?);
    }
    Ok(decoded)
}

fn decode_one(coding: &str, input: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let result = match coding {
        "gzip" | "x-gzip" => read_bounded(MultiGzDecoder::new(input), limit),
        // RFC 9110 says zlib; raw deflate is what some clients send instead.
        "deflate" => match read_bounded(ZlibDecoder::new(input), limit) {
            Err(Bounded::Io(_)) => read_bounded(DeflateDecoder::new(input), limit),
            other => other,
        },
        _ => {
            return Err(DecodeError::Unsupported {
                coding: coding.to_string(),
            });
        }
    };
    result.map_err(|e| match e {
        Bounded::TooLarge => DecodeError::TooLarge {
            coding: coding.to_string(),
            limit,
        },
        Bounded::Io(e) => DecodeError::Corrupt {
            coding: coding.to_string(),
            why: e.to_string(),
        },
    })
}

enum Bounded {
    TooLarge,
    Io(std::io::Error),
}

fn read_bounded(r: impl Read, limit: usize) -> Result<Vec<u8>, Bounded> {
    let mut out = Vec::new();
    r.take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(Bounded::Io)?;
    if out.len() > limit {
        return Err(Bounded::TooLarge);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};

    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(hyper::header::CONTENT_ENCODING, v.parse().unwrap());
        }
        h
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn raw_deflate(data: &[u8]) -> Vec<u8> {
        let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn no_coding_or_identity_is_the_body_itself() {
        assert_eq!(decode(&headers(&[]), b"x", 10), Ok(None));
        assert_eq!(decode(&headers(&["identity"]), b"x", 10), Ok(None));
        assert_eq!(decode(&headers(&[" , identity"]), b"x", 10), Ok(None));
    }

    #[test]
    fn gzip_and_both_kinds_of_deflate_decode() {
        let data = b"token=secret-value".as_slice();
        for (coding, body) in [
            ("gzip", gzip(data)),
            ("X-Gzip", gzip(data)),
            ("deflate", zlib(data)),
            ("deflate", raw_deflate(data)),
        ] {
            assert_eq!(
                decode(&headers(&[coding]), &body, 1024),
                Ok(Some(data.to_vec())),
                "{coding}"
            );
        }
        // Two members of gzip, as `cat a.gz b.gz` makes.
        let two = [gzip(b"token="), gzip(b"secret")].concat();
        assert_eq!(
            decode(&headers(&["gzip"]), &two, 1024),
            Ok(Some(b"token=secret".to_vec()))
        );
    }

    #[test]
    fn stacked_codings_are_undone_last_first() {
        let body = gzip(&zlib(b"inner"));
        let want = Ok(Some(b"inner".to_vec()));
        assert_eq!(decode(&headers(&["deflate, gzip"]), &body, 64), want);
        assert_eq!(decode(&headers(&["deflate", "gzip"]), &body, 64), want);
    }

    #[test]
    fn past_the_bound_is_refused_not_truncated() {
        let bomb = gzip(&vec![0u8; 1 << 20]);
        assert!(bomb.len() < 4096);
        assert_eq!(
            decode(&headers(&["gzip"]), &bomb, 1 << 20),
            Ok(Some(vec![0u8; 1 << 20]))
        );
        let err = decode(&headers(&["gzip"]), &bomb, (1 << 20) - 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "its gzip body is larger than 1048575 bytes decoded, too large to check for secrets"
        );
    }

    #[test]
    fn unknown_and_corrupt_codings_are_refused() {
        assert_eq!(
            decode(&headers(&["br"]), b"x", 10).unwrap_err().to_string(),
            "its body is br-encoded, which stepjail cannot decode to check for secrets"
        );
        assert!(matches!(
            decode(&headers(&["gzip"]), b"not gzip", 10),
            Err(DecodeError::Corrupt { .. })
        ));
        assert!(matches!(
            decode(&headers(&["deflate"]), b"\xff\xff\xff", 10),
            Err(DecodeError::Corrupt { .. })
        ));
    }
}
