//! What the capture rules drop ([`super::nft`]: UDP other than DNS, ICMP, raw IP for outside)
//! reaches the supervisor as NFLOG messages: a netlink socket of the step's namespace, bound
//! to one log group in the sandbox child (binding needs CAP_NET_ADMIN there) and handed to the
//! supervisor with the listeners. Each message carries the packet's first [`COPY_RANGE`] bytes,
//! enough for the IP and transport headers the audit event names.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;

use nix::sys::socket::SockProtocol;

use super::netlink::{self, Attrs, message, send_batch};

/// The NFLOG group the guard chain logs to (one per namespace: each step has its own).
pub const GROUP: u16 = 7;
/// How many bytes of each dropped packet are copied: an IPv6 header (40) and a transport
/// header fit with room to spare.
pub const COPY_RANGE: u32 = 128;

// linux/netfilter/nfnetlink.h, nfnetlink_log.h
const NFNL_SUBSYS_ULOG: u16 = 4;
const NFULNL_MSG_PACKET: u16 = 0;
const NFULNL_MSG_CONFIG: u16 = 1;
const NFULA_CFG_CMD: u16 = 1;
const NFULA_CFG_MODE: u16 = 2;
const NFULA_CFG_QTHRESH: u16 = 4;
const NFULNL_CFG_CMD_BIND: u8 = 1;
const NFULNL_COPY_PACKET: u8 = 2;
const NFULA_PAYLOAD: u16 = 9;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;

/// A netlink socket of the calling thread's namespace bound to NFLOG `group`, copying
/// [`COPY_RANGE`] bytes of each packet. Non-blocking, for the supervisor's runtime.
pub fn open(group: u16) -> io::Result<OwnedFd> {
    let sock = netlink::open(SockProtocol::NetlinkNetFilter)?;
    let ty = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
    let mut out = Vec::new();
    let bind = Attrs::default().bytes(NFULA_CFG_CMD, &[NFULNL_CFG_CMD_BIND]);
    message(&mut out, ty, NLM_F_REQUEST | NLM_F_ACK, 1, 0, group, bind);
    // struct nfulnl_msg_config_mode { __be32 copy_range; __u8 copy_mode; __u8 _pad; }
    let mut mode = COPY_RANGE.to_be_bytes().to_vec();
    mode.extend_from_slice(&[NFULNL_COPY_PACKET, 0]);
    // Each packet is sent at once (the default batches 100, or waits a second).
    let mode = Attrs::default()
        .bytes(NFULA_CFG_MODE, &mode)
        .be32(NFULA_CFG_QTHRESH, 1);
    message(&mut out, ty, NLM_F_REQUEST | NLM_F_ACK, 2, 0, group, mode);
    send_batch(&sock, (out, vec![1, 2]))?;
    let flags = nix::fcntl::fcntl(&sock, nix::fcntl::FcntlArg::F_GETFL)?;
    let flags = nix::fcntl::OFlag::from_bits_retain(flags) | nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(&sock, nix::fcntl::FcntlArg::F_SETFL(flags))?;
    Ok(sock)
}

/// One dropped packet: where it was going, and its IP protocol number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    pub dst: SocketAddr,
    pub protocol: u8,
}

/// The dropped packets in one read from the socket. Anything malformed is skipped: these are
/// log records of packets that were dropped already, not decisions.
pub fn parse(buf: &[u8]) -> Vec<Dropped> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 16 <= buf.len() {
        let len = u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
        let ty = u16::from_ne_bytes(buf[at + 4..at + 6].try_into().expect("2 bytes"));
        if len < 16 || at + len > buf.len() {
            break;
        }
        if ty == (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET && len >= 20 {
            // After the netlink header, struct nfgenmsg (4 bytes), then attributes.
            let mut a = at + 20;
            while a + 4 <= at + len {
                let alen = u16::from_ne_bytes([buf[a], buf[a + 1]]) as usize;
                let aty = u16::from_ne_bytes([buf[a + 2], buf[a + 3]]) & 0x3fff;
                if alen < 4 || a + alen > at + len {
                    break;
                }
                if aty == NFULA_PAYLOAD {
                    out.extend(packet(&buf[a + 4..a + alen]));
                }
                a += alen.next_multiple_of(4);
            }
        }
        at += len.next_multiple_of(4);
    }
    out
}

/// The destination and protocol of an IP packet (the port for TCP and UDP, else 0).
fn packet(p: &[u8]) -> Option<Dropped> {
    let port = |t: &[u8], proto: u8| -> u16 {
        let tcp_or_udp = proto == libc::IPPROTO_TCP as u8 || proto == libc::IPPROTO_UDP as u8;
        match t.get(2..4) {
            Some(b) if tcp_or_udp => u16::from_be_bytes([b[0], b[1]]),
            _ => 0,
        }
    };
    match p.first()? >> 4 {
        4 => {
            let ihl = usize::from(p[0] & 0x0f) * 4;
            if ihl < 20 || p.len() < 20 {
                return None;
            }
            let proto = p[9];
            let ip = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
            let port = port(p.get(ihl..).unwrap_or(&[]), proto);
            Some(Dropped {
                dst: SocketAddr::new(IpAddr::V4(ip), port),
                protocol: proto,
            })
        }
        6 => {
            let h: [u8; 16] = p.get(24..40)?.try_into().ok()?;
            let proto = p[6];
            let port = port(p.get(40..).unwrap_or(&[]), proto);
            Some(Dropped {
                dst: SocketAddr::new(IpAddr::V6(Ipv6Addr::from(h)), port),
                protocol: proto,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nflog_message(payload: &[u8]) -> Vec<u8> {
        let mut attrs = Attrs::default()
            .bytes(1, &[0x08, 0x00, 1, 0])
            .bytes(NFULA_PAYLOAD, payload);
        attrs = attrs.bytes(10, b"x\0");
        let mut out = Vec::new();
        message(
            &mut out,
            (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET,
            0,
            0,
            2,
            GROUP,
            attrs,
        );
        out
    }

    #[test]
    fn udp_and_icmp_destinations_are_read_from_the_copied_headers() {
        let mut v4 = vec![0x45, 0, 0, 33, 0, 0, 0, 0, 64, 17, 0, 0, 10, 255, 255, 1];
        v4.extend_from_slice(&[198, 51, 100, 7]);
        v4.extend_from_slice(&[0xc3, 0x50, 0x27, 0x0f, 0, 13, 0, 0, b'x']);
        let mut v6 = vec![0x60, 0, 0, 0, 0, 8, 58, 64];
        v6.extend_from_slice(&"fd00:5a::1".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&"2001:db8::9".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&[128, 0, 0, 0, 0, 1, 0, 1]);
        let mut buf = nflog_message(&v4);
        buf.extend(nflog_message(&v6));
        buf.extend(nflog_message(&[0x45, 0, 0])); // truncated: skipped
        assert_eq!(
            parse(&buf),
            [
                Dropped {
                    dst: "198.51.100.7:9999".parse().unwrap(),
                    protocol: 17
                },
                Dropped {
                    dst: "[2001:db8::9]:0".parse().unwrap(),
                    protocol: 58
                },
            ]
        );
        // A message cut short ends the walk without reading past it.
        assert_eq!(parse(&buf[..buf.len() / 2]).len(), 1);
    }
}
