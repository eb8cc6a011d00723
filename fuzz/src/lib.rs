//! Helpers shared by the fuzz targets: reference parsers and message builders.

use arbitrary::Arbitrary;

/// What rustls's server-side parser makes of `data` as the first bytes of a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum RustlsHello {
    /// A complete ClientHello; the server name rustls extracted, if any.
    Accepted(Option<String>),
    /// rustls wants more bytes.
    Incomplete,
    /// rustls refused the bytes.
    Rejected,
}

pub fn rustls_hello(data: &[u8]) -> RustlsHello {
    let mut acceptor = rustls::server::Acceptor::default();
    let mut cursor = std::io::Cursor::new(data);
    loop {
        match acceptor.read_tls(&mut cursor) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => break,
        }
        match acceptor.accept() {
            Ok(None) => continue,
            Ok(Some(accepted)) => {
                return RustlsHello::Accepted(
                    accepted.client_hello().server_name().map(str::to_owned),
                );
            }
            Err(_) => return RustlsHello::Rejected,
        }
    }
    match acceptor.accept() {
        Ok(None) => RustlsHello::Incomplete,
        Ok(Some(accepted)) => {
            RustlsHello::Accepted(accepted.client_hello().server_name().map(str::to_owned))
        }
        Err(_) => RustlsHello::Rejected,
    }
}

/// A server name compared the way both sides must agree on it: DNS names are case-insensitive
/// and a trailing dot names the same host.
pub fn comparable_name(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// A ClientHello described field by field, so that the fuzzer mutates structure rather than
/// length bytes.
#[derive(Debug, Arbitrary)]
pub struct HelloSpec {
    pub legacy_version: u16,
    pub random: [u8; 32],
    pub session_id: Vec<u8>,
    pub cipher_suites: Vec<u16>,
    pub compression: Vec<u8>,
    /// The host name to send in server_name, if any.
    pub host: Option<HostSpec>,
    /// Where among `extensions` the server_name extension goes.
    pub sni_position: u8,
    pub alpn: Vec<Vec<u8>>,
    pub ech: bool,
    pub extensions: Vec<(u16, Vec<u8>)>,
    /// Split the handshake over two records at this offset (None: one record).
    pub split_record: Option<u16>,
}

/// A host name: either DNS-like labels (the common case) or raw bytes.
#[derive(Debug, Arbitrary)]
pub enum HostSpec {
    Labels(Vec<Label>),
    Raw(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
pub struct Label(pub Vec<LabelByte>);

/// Biased towards host-name characters.
#[derive(Debug, Arbitrary)]
pub enum LabelByte {
    Lower(u8),
    Digit(u8),
    Hyphen,
    Upper(u8),
    Any(u8),
}

impl HostSpec {
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            HostSpec::Raw(b) => b.clone(),
            HostSpec::Labels(labels) => {
                let mut out = Vec::new();
                for (i, Label(l)) in labels.iter().enumerate() {
                    if i > 0 {
                        out.push(b'.');
                    }
                    for b in l {
                        out.push(match b {
                            LabelByte::Lower(x) => b'a' + x % 26,
                            LabelByte::Upper(x) => b'A' + x % 26,
                            LabelByte::Digit(x) => b'0' + x % 10,
                            LabelByte::Hyphen => b'-',
                            LabelByte::Any(x) => *x,
                        });
                    }
                }
                out
            }
        }
    }
}

fn u16_prefixed(out: &mut Vec<u8>, body: &[u8]) {
    out.extend_from_slice(&(body.len().min(0xffff) as u16).to_be_bytes());
    out.extend_from_slice(&body[..body.len().min(0xffff)]);
}

fn u8_prefixed(out: &mut Vec<u8>, body: &[u8]) {
    out.push(body.len().min(0xff) as u8);
    out.extend_from_slice(&body[..body.len().min(0xff)]);
}

impl HelloSpec {
    /// The TLS records carrying this ClientHello.
    pub fn build(&self) -> Vec<u8> {
        let mut exts: Vec<(u16, Vec<u8>)> = self
            .extensions
            .iter()
            // The extensions this spec places itself are not duplicated by the random ones.
            .filter(|(t, _)| ![0u16, 16, 0xfe0d].contains(t))
            .cloned()
            .collect();
        if let Some(host) = &self.host {
            let name = host.bytes();
            let mut entry = vec![0u8];
            u16_prefixed(&mut entry, &name);
            let mut list = Vec::new();
            u16_prefixed(&mut list, &entry);
            let at = usize::from(self.sni_position) % (exts.len() + 1);
            exts.insert(at, (0, list));
        }
        if !self.alpn.is_empty() {
            let mut protos = Vec::new();
            for p in &self.alpn {
                u8_prefixed(&mut protos, p);
            }
            let mut body = Vec::new();
            u16_prefixed(&mut body, &protos);
            exts.push((16, body));
        }
        if self.ech {
            exts.push((0xfe0d, vec![0, 0, 1, 0, 1, 0, 0, 0, 0, 0]));
        }
        let mut body = Vec::new();
        body.extend_from_slice(&self.legacy_version.to_be_bytes());
        body.extend_from_slice(&self.random);
        u8_prefixed(&mut body, &self.session_id[..self.session_id.len().min(32)]);
        let suites: Vec<u8> = self
            .cipher_suites
            .iter()
            .flat_map(|s| s.to_be_bytes())
            .collect();
        u16_prefixed(&mut body, &suites);
        u8_prefixed(&mut body, &self.compression);
        let mut ext_bytes = Vec::new();
        for (t, data) in &exts {
            ext_bytes.extend_from_slice(&t.to_be_bytes());
            u16_prefixed(&mut ext_bytes, data);
        }
        u16_prefixed(&mut body, &ext_bytes);
        let mut handshake = vec![1u8];
        handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        handshake.extend_from_slice(&body);
        let mut out = Vec::new();
        let pieces: Vec<&[u8]> = match self.split_record {
            Some(at) if usize::from(at) < handshake.len() && at > 0 => {
                let (a, b) = handshake.split_at(usize::from(at));
                vec![a, b]
            }
            _ => vec![&handshake],
        };
        for piece in pieces {
            for chunk in piece.chunks(16384) {
                out.extend_from_slice(&[22, 3, 1]);
                u16_prefixed(&mut out, chunk);
            }
        }
        out
    }
}

/// Where to cut a byte string into chunks, from fuzz-chosen sizes (0 cuts: one chunk).
pub fn chunks<'a>(data: &'a [u8], sizes: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    for &s in sizes {
        if rest.is_empty() {
            break;
        }
        let n = usize::from(s).min(rest.len());
        let (a, b) = rest.split_at(n);
        out.push(a);
        rest = b;
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// The policy/profile error property: an error about the text points into it
/// (`LABEL:LINE:COL`, LINE within the text); an error without a position still names the file.
pub fn check_policy_error(e: &stepjail::policy::PolicyError, text: &str, label: &str) {
    use stepjail::policy::PolicyError as E;
    let message = e.to_string();
    match e.location() {
        Some(at) => {
            // YAML ends a line at `\n`, `\r\n` or a lone `\r`.
            let lines = text
                .replace("\r\n", "\n")
                .replace('\r', "\n")
                .split('\n')
                .count();
            assert!(
                at.line >= 1 && at.column >= 1,
                "position {}:{} in {message:?}",
                at.line,
                at.column
            );
            // An error in a parent profile points into that file, not this one.
            if at.file == label {
                assert!(
                    at.line <= lines + 1,
                    "line {} past the end ({lines} lines): {message:?}",
                    at.line
                );
            }
            let pos = format!("{}:{}:{}", at.file, at.line, at.column);
            assert!(message.contains(&pos), "{message:?} does not show {pos}");
        }
        None => {
            assert!(
                matches!(
                    e,
                    E::Read { .. }
                        | E::TooLarge { .. }
                        | E::ExtendsCycle { .. }
                        | E::ExtendsTooDeep { .. }
                        | E::UnknownBuiltin { .. }
                        | E::UnknownFileKind { .. }
                ),
                "error without a position: {message:?}"
            );
            assert!(
                message.contains(label) || message.contains("builtin:"),
                "{message:?} names neither the file nor a built-in"
            );
        }
    }
}
