//! The step's own addresses and default routes, over rtnetlink (one message batch, each
//! acknowledged): `lo` gets 10.255.255.1/32 and fd00:5a::1/128, and the default routes for
//! IPv4 and IPv6 are `local` routes on `lo` with those addresses as their source:
//!
//! ```text
//! ip addr add 10.255.255.1/32 dev lo
//! ip -6 addr add fd00:5a::1/128 dev lo nodad
//! ip route add local 0.0.0.0/0 dev lo src 10.255.255.1
//! ip -6 route add local ::/0 dev lo src fd00:5a::1
//! ```
//!
//! So a packet for any address stays in the namespace, with the step's own address as its
//! source: the capture rules ([`super::nft`]) rewrite or drop it there. No network device is
//! registered for this (a TUN device cost most of a millisecond to register at the start and
//! more to unregister at the end, both on the run's critical path).

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};

use nix::sys::socket::SockProtocol;

use super::netlink::{self, Attrs, send_batch};

// linux/rtnetlink.h, if_addr.h
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_F_NODAD: u8 = 0x02;
const RTA_OIF: u16 = 4;
const RTA_PREFSRC: u16 = 7;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_STATIC: u8 = 4;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_HOST: u8 = 254;
const RTN_LOCAL: u8 = 2;
/// `lo` is always interface 1 in a network namespace.
const LOOPBACK_IFINDEX: u32 = 1;

/// One rtnetlink message: header, the fixed part, attributes.
fn message(out: &mut Vec<u8>, ty: u16, seq: u32, fixed: &[u8], a: Attrs) {
    let len = 16 + fixed.len() + a.0.len();
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(fixed);
    out.extend_from_slice(&a.0);
}

/// `struct ifaddrmsg` for an address on `lo`.
fn ifaddrmsg(family: u8, prefixlen: u8, flags: u8) -> Vec<u8> {
    let mut m = vec![family, prefixlen, flags, RT_SCOPE_UNIVERSE];
    m.extend_from_slice(&LOOPBACK_IFINDEX.to_ne_bytes());
    m
}

/// `struct rtmsg` for a `local` default route in the main table.
fn rtmsg(family: u8) -> Vec<u8> {
    let mut m = vec![
        family,
        0,
        0,
        0,
        RT_TABLE_MAIN,
        RTPROT_STATIC,
        RT_SCOPE_HOST,
        RTN_LOCAL,
    ];
    m.extend_from_slice(&0u32.to_ne_bytes());
    m
}

fn batch(v4: Ipv4Addr, v6: Ipv6Addr) -> (Vec<u8>, Vec<u32>) {
    let (inet, inet6) = (libc::AF_INET as u8, libc::AF_INET6 as u8);
    let mut out = Vec::new();
    message(
        &mut out,
        RTM_NEWADDR,
        1,
        &ifaddrmsg(inet, 32, 0),
        Attrs::default()
            .bytes(IFA_LOCAL, &v4.octets())
            .bytes(IFA_ADDRESS, &v4.octets()),
    );
    message(
        &mut out,
        RTM_NEWADDR,
        2,
        &ifaddrmsg(inet6, 128, IFA_F_NODAD),
        Attrs::default().bytes(IFA_ADDRESS, &v6.octets()),
    );
    let oif = LOOPBACK_IFINDEX.to_ne_bytes();
    message(
        &mut out,
        RTM_NEWROUTE,
        3,
        &rtmsg(inet),
        Attrs::default()
            .bytes(RTA_OIF, &oif)
            .bytes(RTA_PREFSRC, &v4.octets()),
    );
    message(
        &mut out,
        RTM_NEWROUTE,
        4,
        &rtmsg(inet6),
        Attrs::default()
            .bytes(RTA_OIF, &oif)
            .bytes(RTA_PREFSRC, &v6.octets()),
    );
    (out, vec![1, 2, 3, 4])
}

/// Gives `lo` the step's own addresses and makes the default routes `local` routes on it
/// (see the module's comment), in the calling thread's network namespace. Needs CAP_NET_ADMIN
/// there, and `lo` up.
pub fn local_default_routes(v4: Ipv4Addr, v6: Ipv6Addr) -> io::Result<()> {
    let sock = netlink::open(SockProtocol::NetlinkRoute)?;
    send_batch(&sock, batch(v4, v6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_messages_each_acknowledged() {
        let (msg, acked) = batch(
            Ipv4Addr::new(10, 255, 255, 1),
            "fd00:5a::1".parse().unwrap(),
        );
        assert_eq!(acked, [1, 2, 3, 4]);
        let mut types = Vec::new();
        let mut at = 0;
        while at < msg.len() {
            let len = u32::from_ne_bytes(msg[at..at + 4].try_into().unwrap()) as usize;
            types.push(u16::from_ne_bytes(msg[at + 4..at + 6].try_into().unwrap()));
            // rtmsg: the route is `local`, host scope, in the main table.
            if types.last() == Some(&RTM_NEWROUTE) {
                assert_eq!(msg[at + 16 + 4..at + 16 + 8], [254, 4, 254, 2]);
            }
            at += len;
        }
        assert_eq!(at, msg.len());
        assert_eq!(types, [20, 20, 24, 24]);
    }
}
