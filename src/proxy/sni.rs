//! Peeking at a TLS ClientHello: the server name (SNI), ALPN and whether Encrypted ClientHello is
//! offered.
//!
//! The transparent-capture path reads the first bytes of a connection and decides by the name in
//! the ClientHello; the CONNECT path checks that this name equals the CONNECT host. The input is
//! hostile, so the parser only reads inside the slice it is given, never allocates more than the
//! bytes it was handed, and treats every ambiguity (duplicate extensions, several host names, a
//! non-ASCII name) as malformed rather than guessing which copy a server would use.
//!
//! Only a ClientHello that fits in the first TLS record is accepted. A record carries at most
//! 16 KiB, and every mainstream client sends its hello in one record; a hello spread over several
//! records (possible with very large post-quantum key shares or padding) is reported as
//! `Malformed("fragmented ClientHello")`, so the caller denies it instead of buffering an
//! unbounded amount of data.

/// The most bytes [`parse_client_hello`] looks at: one TLS record header plus the largest
/// plaintext record (2^14 bytes). A caller never needs to buffer more than this to decide.
pub const MAX_PEEK: usize = 5 + MAX_RECORD_LEN;

const MAX_RECORD_LEN: usize = 16 * 1024;
const CONTENT_TYPE_HANDSHAKE: u8 = 0x16;
const HANDSHAKE_CLIENT_HELLO: u8 = 0x01;
const EXT_SERVER_NAME: u16 = 0x0000;
const EXT_ALPN: u16 = 0x0010;
const EXT_ENCRYPTED_CLIENT_HELLO: u16 = 0xfe0d;
const SNI_HOST_NAME: u8 = 0;
/// A DNS name is at most 253 characters in text; anything longer cannot be a real host.
const MAX_HOST_NAME_LEN: usize = 253;

/// The outcome of peeking at a prefix of a byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peek<T> {
    /// The prefix is consistent with this protocol but too short to decide; read more.
    NeedMore,
    /// The message was parsed.
    Done(T),
    /// The bytes are not this protocol at all (the caller may try another parser).
    NotThis,
    /// The bytes claim to be this protocol but break its rules; the connection must be refused.
    Malformed(&'static str),
}

/// What the proxy needs from a ClientHello.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientHelloInfo {
    /// The `host_name` from the server_name extension, exactly as sent (printable ASCII; not
    /// lower-cased or otherwise normalised — that is the policy layer's job).
    pub sni: Option<String>,
    /// The encrypted_client_hello extension (0xfe0d) is present: the real name is hidden.
    pub ech: bool,
    /// ALPN protocol names in the client's order (non-UTF-8 bytes replaced).
    pub alpn: Vec<String>,
}

/// Parses the ClientHello at the start of `buf` (only the first [`MAX_PEEK`] bytes are read).
///
/// Returns `NeedMore` for every proper prefix of a valid hello, `NotThis` when the first bytes
/// are not a TLS handshake record, and `Malformed` for a TLS handshake that is not a well-formed
/// ClientHello contained in the first record.
pub fn parse_client_hello(buf: &[u8]) -> Peek<ClientHelloInfo> {
    let buf = &buf[..buf.len().min(MAX_PEEK)];

    // Record header: type(1) version(2) length(2). Decide "is this TLS?" from as few bytes as
    // possible so the caller can fall back to HTTP early.
    match buf.first() {
        None => return Peek::NeedMore,
        Some(&CONTENT_TYPE_HANDSHAKE) => {}
        Some(_) => return Peek::NotThis,
    }
    match buf.get(1) {
        None => return Peek::NeedMore,
        Some(3) => {}
        Some(_) => return Peek::NotThis,
    }
    // The record's minor version is not checked: RFC 8446 (5.1) says legacy_record_version
    // "MUST be ignored for all purposes", and servers (rustls among them) accept any 0x03xx.
    // Refusing an odd one as "not TLS" sent such a hello down the non-TLS path (found by the
    // `sni` fuzz target, which compares with rustls).
    if buf.len() < 3 {
        return Peek::NeedMore;
    }
    let Some(len_bytes) = buf.get(3..5) else {
        return Peek::NeedMore;
    };
    let record_len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
    if record_len == 0 || record_len > MAX_RECORD_LEN {
        return Peek::Malformed("bad TLS record length");
    }
    let available = &buf[5..];
    let record = &available[..available.len().min(record_len)];

    // Handshake header: type(1) length(3). Checked as soon as it is visible so that a
    // fragmented hello is refused without waiting for the whole record.
    match record.first() {
        None => return Peek::NeedMore,
        Some(&HANDSHAKE_CLIENT_HELLO) => {}
        Some(_) => return Peek::Malformed("first handshake message is not a ClientHello"),
    }
    if record_len < 4 {
        return Peek::Malformed("fragmented ClientHello");
    }
    let Some(hs_len_bytes) = record.get(1..4) else {
        return Peek::NeedMore;
    };
    let hs_len = usize::from(hs_len_bytes[0]) << 16
        | usize::from(hs_len_bytes[1]) << 8
        | usize::from(hs_len_bytes[2]);
    if hs_len + 4 > record_len {
        return Peek::Malformed("fragmented ClientHello");
    }
    if record.len() < 4 + hs_len {
        return Peek::NeedMore;
    }
    match parse_hello_body(&record[4..4 + hs_len]) {
        Ok(info) => Peek::Done(info),
        Err(why) => Peek::Malformed(why),
    }
}

/// A cursor over a byte slice whose reads fail instead of panicking.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(rest: &'a [u8]) -> Self {
        Reader { rest }
    }

    fn take(&mut self, n: usize, why: &'static str) -> Result<&'a [u8], &'static str> {
        if n > self.rest.len() {
            return Err(why);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u8(&mut self, why: &'static str) -> Result<u8, &'static str> {
        Ok(self.take(1, why)?[0])
    }

    fn u16(&mut self, why: &'static str) -> Result<u16, &'static str> {
        let b = self.take(2, why)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A vector with a one-byte length prefix.
    fn vec8(&mut self, why: &'static str) -> Result<&'a [u8], &'static str> {
        let n = self.u8(why)?;
        self.take(usize::from(n), why)
    }

    /// A vector with a two-byte length prefix.
    fn vec16(&mut self, why: &'static str) -> Result<&'a [u8], &'static str> {
        let n = self.u16(why)?;
        self.take(usize::from(n), why)
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}

fn parse_hello_body(body: &[u8]) -> Result<ClientHelloInfo, &'static str> {
    let mut r = Reader::new(body);
    let version = r.u16("truncated ClientHello version")?;
    if version >> 8 != 3 {
        return Err("ClientHello version is not TLS");
    }
    r.take(32, "truncated ClientHello random")?;
    let session_id = r.vec8("truncated session id")?;
    if session_id.len() > 32 {
        return Err("session id longer than 32 bytes");
    }
    let suites = r.vec16("truncated cipher suites")?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Err("bad cipher suite list");
    }
    let compression = r.vec8("truncated compression methods")?;
    if compression.is_empty() {
        return Err("empty compression method list");
    }
    let mut info = ClientHelloInfo::default();
    if r.is_empty() {
        // A hello without extensions is legal (TLS 1.0-1.2): no SNI, no ALPN.
        return Ok(info);
    }
    let extensions = r.vec16("truncated extensions")?;
    if !r.is_empty() {
        return Err("trailing bytes after extensions");
    }
    let mut seen_sni = false;
    let mut seen_alpn = false;
    let mut exts = Reader::new(extensions);
    while !exts.is_empty() {
        let ext_type = exts.u16("truncated extension header")?;
        let data = exts.vec16("truncated extension")?;
        match ext_type {
            EXT_SERVER_NAME => {
                // Two server_name extensions would let the proxy and the server read different
                // names: refuse instead of picking one.
                if std::mem::replace(&mut seen_sni, true) {
                    return Err("duplicate server_name extension");
                }
                info.sni = parse_server_name(data)?;
            }
            EXT_ALPN => {
                if std::mem::replace(&mut seen_alpn, true) {
                    return Err("duplicate ALPN extension");
                }
                info.alpn = parse_alpn(data)?;
            }
            EXT_ENCRYPTED_CLIENT_HELLO => {
                if info.ech {
                    return Err("duplicate encrypted_client_hello extension");
                }
                info.ech = true;
            }
            _ => {}
        }
    }
    Ok(info)
}

/// RFC 6066 section 3: a list of (name_type, name); at most one name of each type. An empty
/// extension body is what a server sends back, never a client, but it is harmless: no name.
fn parse_server_name(data: &[u8]) -> Result<Option<String>, &'static str> {
    if data.is_empty() {
        return Ok(None);
    }
    let mut r = Reader::new(data);
    let list = r.vec16("truncated server name list")?;
    if !r.is_empty() {
        return Err("trailing bytes in server_name extension");
    }
    let mut names = Reader::new(list);
    let mut host = None;
    while !names.is_empty() {
        let name_type = names.u8("truncated server name")?;
        let name = names.vec16("truncated server name")?;
        if name_type != SNI_HOST_NAME {
            // Unknown name types are skipped, as RFC 6066 asks servers to do.
            continue;
        }
        if host.is_some() {
            return Err("more than one host_name in server_name");
        }
        if name.is_empty() || name.len() > MAX_HOST_NAME_LEN {
            return Err("bad server name length");
        }
        if !name.iter().all(|b| b.is_ascii_graphic()) {
            return Err("server name is not printable ASCII");
        }
        // All bytes are ASCII, so this conversion cannot fail.
        host = Some(String::from_utf8_lossy(name).into_owned());
    }
    Ok(host)
}

/// RFC 7301 section 3.1: a non-empty list of non-empty protocol names.
fn parse_alpn(data: &[u8]) -> Result<Vec<String>, &'static str> {
    let mut r = Reader::new(data);
    let list = r.vec16("truncated ALPN list")?;
    if !r.is_empty() {
        return Err("trailing bytes in ALPN extension");
    }
    let mut protocols = Reader::new(list);
    let mut out = Vec::new();
    while !protocols.is_empty() {
        let proto = protocols.vec8("truncated ALPN protocol")?;
        if proto.is_empty() {
            return Err("empty ALPN protocol name");
        }
        out.push(String::from_utf8_lossy(proto).into_owned());
    }
    if out.is_empty() {
        return Err("empty ALPN list");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ClientHello record with the given extensions block.
    fn hello(extensions: &[u8]) -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[0u8; 32]);
        body.push(0); // session id
        body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one suite
        body.extend_from_slice(&[1, 0]); // null compression
        body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
        body.extend_from_slice(extensions);
        let mut hs = vec![HANDSHAKE_CLIENT_HELLO];
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        let mut rec = vec![0x16, 0x03, 0x01];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    fn ext(ty: u16, data: &[u8]) -> Vec<u8> {
        let mut v = ty.to_be_bytes().to_vec();
        v.extend_from_slice(&(data.len() as u16).to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    fn sni_ext(names: &[(u8, &[u8])]) -> Vec<u8> {
        let mut list = Vec::new();
        for (ty, n) in names {
            list.push(*ty);
            list.extend_from_slice(&(n.len() as u16).to_be_bytes());
            list.extend_from_slice(n);
        }
        let mut data = (list.len() as u16).to_be_bytes().to_vec();
        data.extend_from_slice(&list);
        ext(EXT_SERVER_NAME, &data)
    }

    #[test]
    fn duplicate_sni_extension_is_malformed() {
        let mut exts = sni_ext(&[(0, b"a.example")]);
        exts.extend(sni_ext(&[(0, b"b.example")]));
        assert_eq!(
            parse_client_hello(&hello(&exts)),
            Peek::Malformed("duplicate server_name extension")
        );
    }

    #[test]
    fn two_host_names_are_malformed() {
        let exts = sni_ext(&[(0, b"a.example"), (0, b"b.example")]);
        assert_eq!(
            parse_client_hello(&hello(&exts)),
            Peek::Malformed("more than one host_name in server_name")
        );
    }

    #[test]
    fn any_legacy_record_version_is_tls() {
        let mut rec = hello(&sni_ext(&[(0, b"a.example")]));
        for minor in [0x00, 0x05, 0x70, 0xff] {
            rec[2] = minor;
            match parse_client_hello(&rec) {
                Peek::Done(info) => assert_eq!(info.sni.as_deref(), Some("a.example")),
                other => panic!("record version 3.{minor}: {other:?}"),
            }
        }
    }

    #[test]
    fn non_ascii_sni_is_malformed() {
        let exts = sni_ext(&[(0, "bücher.example".as_bytes())]);
        assert_eq!(
            parse_client_hello(&hello(&exts)),
            Peek::Malformed("server name is not printable ASCII")
        );
        let exts = sni_ext(&[(0, b"a.example\0.evil")]);
        assert!(matches!(
            parse_client_hello(&hello(&exts)),
            Peek::Malformed(_)
        ));
    }

    #[test]
    fn sni_is_returned_as_sent() {
        let mut exts = sni_ext(&[(0, b"Example.COM.")]);
        exts.extend(ext(
            EXT_ALPN,
            &[0, 10, 2, b'h', b'2', 6, b'h', b't', b't', b'p', b'/', b'1'],
        ));
        let Peek::Done(info) = parse_client_hello(&hello(&exts)) else {
            panic!("not parsed");
        };
        assert_eq!(info.sni.as_deref(), Some("Example.COM."));
        assert_eq!(info.alpn, ["h2", "http/1"]);
        assert!(!info.ech);
    }

    #[test]
    fn fragmented_hello_is_refused_early() {
        let mut rec = hello(&sni_ext(&[(0, b"a.example")]));
        // Claim a handshake message one byte longer than the record.
        let hs_len = rec.len() - 9 + 1;
        rec[6..9].copy_from_slice(&(hs_len as u32).to_be_bytes()[1..]);
        assert_eq!(
            parse_client_hello(&rec[..9]),
            Peek::Malformed("fragmented ClientHello")
        );
    }

    #[test]
    fn not_tls() {
        assert_eq!(parse_client_hello(b"GET / HTTP/1.1\r\n"), Peek::NotThis);
        assert_eq!(parse_client_hello(&[0x16, 0x02]), Peek::NotThis);
        assert_eq!(parse_client_hello(&[0x16]), Peek::NeedMore);
        assert_eq!(parse_client_hello(&[]), Peek::NeedMore);
    }
}
