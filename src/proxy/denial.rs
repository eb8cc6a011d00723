//! Why the proxy stops a connection or a request, typed: the HTTP status the step is answered
//! with (where it can be answered) and the reason the audit record and the step's stderr carry.
//! The explicit proxy, the captured (transparent) path and the broker all refuse with a
//! [`Denial`]; the status and the body are chosen here, once.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

/// One refusal: what kind it is (which decides the status) and why (the audit reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    kind: Kind,
    reason: String,
}

/// The kinds of refusal, each with its one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The policy refuses it: not allowed, a special address, domain fronting, a secret on
    /// its way out (403).
    Policy,
    /// Allowed, but it cannot be reached: the name does not resolve, the dial or the upstream
    /// proxy failed, a response could not be checked (502).
    Unreachable,
    /// A request the proxy cannot serve as written (400).
    BadRequest,
    /// A body too large to check for secrets (413).
    TooLarge,
    /// A body in a content coding the proxy cannot read to check it (415).
    Unsupported,
    /// stepjail itself cannot do what the request needs (a certificate for a bound host) (500).
    Internal,
    /// The step has as many connections open as its profile allows (`network.max_connections`)
    /// (503).
    OverLimit,
}

impl Denial {
    pub fn new(kind: Kind, reason: impl Into<String>) -> Denial {
        Denial {
            kind,
            reason: reason.into(),
        }
    }
    /// The policy refuses it (403).
    pub fn policy(reason: impl Into<String>) -> Denial {
        Denial::new(Kind::Policy, reason)
    }
    /// Allowed, but it cannot be reached (502).
    pub fn unreachable(reason: impl Into<String>) -> Denial {
        Denial::new(Kind::Unreachable, reason)
    }
    /// A request the proxy cannot serve (400).
    pub fn bad_request(reason: impl Into<String>) -> Denial {
        Denial::new(Kind::BadRequest, reason)
    }
    /// The step's connection cap is reached (503): the reason names the cap.
    pub fn over_limit(max: u32) -> Denial {
        Denial::new(Kind::OverLimit, format!("connection limit ({max}) reached"))
    }
    /// A coded body that could not be decoded to look for secrets in it.
    pub fn undecodable(e: &super::content_coding::DecodeError) -> Denial {
        use super::content_coding::DecodeError;
        let kind = match e {
            DecodeError::TooLarge { .. } => Kind::TooLarge,
            DecodeError::Unsupported { .. } => Kind::Unsupported,
            DecodeError::Corrupt { .. } => Kind::BadRequest,
        };
        Denial::new(kind, format!("the request was refused: {e}"))
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }
    /// The reason, as the audit record's `reason` and the response body say it.
    pub fn reason(&self) -> &str {
        &self.reason
    }
    pub fn into_reason(self) -> String {
        self.reason
    }
    /// The status the step is answered with.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            Kind::Policy => StatusCode::FORBIDDEN,
            Kind::Unreachable => StatusCode::BAD_GATEWAY,
            Kind::BadRequest => StatusCode::BAD_REQUEST,
            Kind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Kind::Unsupported => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Kind::OverLimit => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
    /// The response body: `stepjail: REASON` and a newline.
    pub fn body(&self) -> String {
        format!("stepjail: {}\n", self.reason)
    }
    /// The response, for a step that speaks HTTP to the proxy (or through an intercepted
    /// tunnel).
    pub fn response(&self) -> Response<Full<Bytes>> {
        let mut r = Response::new(Full::new(Bytes::from(self.body())));
        *r.status_mut() = self.status();
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/plain"),
        );
        r
    }
    /// The whole response as bytes, for a socket hyper does not serve (a raw CONNECT, a
    /// captured plain-HTTP connection).
    pub fn raw_response(&self) -> Vec<u8> {
        let status = self.status();
        let body = self.body();
        format!(
            "HTTP/1.1 {} {}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            body.len()
        )
        .into_bytes()
    }
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_status_and_the_reason_is_kept_as_given() {
        let d = Denial::policy("not in the allowlist");
        assert_eq!(d.status(), StatusCode::FORBIDDEN);
        assert_eq!(d.reason(), "not in the allowlist");
        assert_eq!(d.body(), "stepjail: not in the allowlist\n");
        assert_eq!(Denial::unreachable("x").status(), StatusCode::BAD_GATEWAY);
        assert_eq!(Denial::bad_request("x").status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            String::from_utf8(Denial::policy("no").raw_response()).unwrap(),
            "HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 13\r\nconnection: close\r\n\r\nstepjail: no\n"
        );
        assert!(
            String::from_utf8(Denial::unreachable("x").raw_response())
                .unwrap()
                .starts_with("HTTP/1.1 502 Bad Gateway\r\n")
        );
        let d = Denial::over_limit(100);
        assert_eq!(d.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(d.reason(), "connection limit (100) reached");
        let r = Denial::new(Kind::TooLarge, "big").response();
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(r.headers()["content-type"], "text/plain");
    }
}
