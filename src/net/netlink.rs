//! Netlink framing shared by the namespace's set-up ([`super::nft`], [`super::nflog`],
//! [`super::rtnl`]): attributes, nfnetlink messages, and sending a batch whose every object the
//! kernel acknowledges.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, recv, sendto, socket,
};

const NLMSG_ERROR: u16 = 0x2;
const NLA_F_NESTED: u16 = 0x8000;

/// A netlink socket of `protocol` in the calling thread's network namespace (close-on-exec).
pub(super) fn open(protocol: SockProtocol) -> io::Result<OwnedFd> {
    Ok(socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        protocol,
    )?)
}

/// Netlink attributes, appended one after another (each padded to 4 bytes).
#[derive(Default)]
pub(super) struct Attrs(pub(super) Vec<u8>);

impl Attrs {
    pub(super) fn bytes(mut self, ty: u16, value: &[u8]) -> Self {
        let len = 4 + value.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&ty.to_ne_bytes());
        self.0.extend_from_slice(value);
        self.0.resize(self.0.len().next_multiple_of(4), 0);
        self
    }
    pub(super) fn be32(self, ty: u16, v: u32) -> Self {
        self.bytes(ty, &v.to_be_bytes())
    }
    pub(super) fn nested(self, ty: u16, inner: Attrs) -> Self {
        self.bytes(ty | NLA_F_NESTED, &inner.0)
    }
}

/// One netlink message: header, nfgenmsg, attributes.
pub(super) fn message(
    out: &mut Vec<u8>,
    ty: u16,
    flags: u16,
    seq: u32,
    family: u8,
    res_id: u16,
    a: Attrs,
) {
    let len = 16 + 4 + a.0.len();
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&[family, 0]);
    out.extend_from_slice(&res_id.to_be_bytes());
    out.extend_from_slice(&a.0);
}

/// Sends one batch and waits for the acknowledgement of each object in it; the first error the
/// kernel reports is returned (it then applied none of the batch).
pub(super) fn send_batch(
    sock: &OwnedFd,
    (msg, mut waiting): (Vec<u8>, Vec<u32>),
) -> io::Result<()> {
    sendto(
        sock.as_raw_fd(),
        &msg,
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )?;
    let mut buf = vec![0u8; 8192];
    while !waiting.is_empty() {
        let n = recv(sock.as_raw_fd(), &mut buf, MsgFlags::empty())?;
        let mut at = 0;
        while at + 16 <= n {
            let len = u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
            let ty = u16::from_ne_bytes(buf[at + 4..at + 6].try_into().expect("2 bytes"));
            let seq = u32::from_ne_bytes(buf[at + 8..at + 12].try_into().expect("4 bytes"));
            if len < 16 || at + len > n {
                return Err(io::Error::other("nf_tables: malformed netlink reply"));
            }
            if ty == NLMSG_ERROR && len >= 20 {
                let code = i32::from_ne_bytes(buf[at + 16..at + 20].try_into().expect("4 bytes"));
                if code != 0 {
                    return Err(io::Error::from_raw_os_error(-code));
                }
                waiting.retain(|s| *s != seq);
            }
            at += len.next_multiple_of(4);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The attribute layout the kernel parses: length includes the 4-byte header, padding
    /// after, nested flag on containers.
    #[test]
    fn attributes_are_padded_and_nested() {
        let a = Attrs::default().bytes(1, b"ab\0").be32(2, 7);
        assert_eq!(a.0, [7, 0, 1, 0, b'a', b'b', 0, 0, 8, 0, 2, 0, 0, 0, 0, 7]);
        let n = Attrs::default().nested(4, Attrs::default().be32(1, 1));
        assert_eq!(n.0[..4], [12, 0, 4, 0x80]);
    }
}
