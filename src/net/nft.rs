//! The capture rules of the step's network namespace, written to nf_tables over netlink (no
//! `nft` binary, no C library): one `inet` table whose NAT output chain sends what the step
//! routes to the TUN device on to listeners inside the namespace, so the supervisor carries it
//! on kernel sockets:
//!
//! ```text
//! table inet stepjail {
//!     chain capture {
//!         type nat hook output priority -100; policy accept;
//!         oifname "sj0" meta l4proto tcp redirect to :CAPTURE_PORT
//!         oifname "sj0" meta nfproto ipv4 udp dport 53 dnat ip to 127.0.0.53:53
//!     }
//! }
//! ```
//!
//! Only packets already routed to the TUN device match, so loopback traffic (the explicit proxy,
//! the stub, the step's own local servers) is untouched, and whatever does not match (UDP other
//! than IPv4 DNS, ICMP) still reaches the TUN device, where it is logged and dropped. The whole
//! ruleset is one netlink batch: the kernel applies all of it or none.
//!
//! A NAT chain turns connection tracking on for the whole namespace, loopback included, where
//! it only costs: every connection to the explicit proxy or the stub, and to the step's own
//! local servers, got a conntrack entry and four lookups a packet. A second batch, best effort
//! (without it everything works as before, only slower), exempts traffic *to* loopback
//! addresses, which NAT never needs: a captured connection's replies go to the step's own
//! address on `sj0` (10.255.255.1, fd00:5a::1), and its packets to the capture listener are
//! still tracked because they leave for `sj0` before the redirect rewrites them.
//!
//! ```text
//!     chain loopback {
//!         type filter hook output priority raw; policy accept;
//!         meta nfproto ipv4 ip daddr 127.0.0.0/8 notrack
//!         meta nfproto ipv6 ip6 daddr ::1 notrack
//!     }
//! ```

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, recv, sendto, socket,
};

const TABLE: &[u8] = b"stepjail\0";
const CHAIN: &[u8] = b"capture\0";
const LOOPBACK_CHAIN: &[u8] = b"loopback\0";

// linux/netlink.h
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NLMSG_ERROR: u16 = 0x2;
const NLA_F_NESTED: u16 = 0x8000;
// linux/netfilter/nfnetlink.h
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
// linux/netfilter/nf_tables.h
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFT_REG_1: u32 = 1;
const NFT_REG_2: u32 = 2;
const NFT_META_L4PROTO: u32 = 16;
const NFT_META_NFPROTO: u32 = 15;
const NFT_META_OIFNAME: u32 = 7;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFT_NAT_DNAT: u32 = 1;
// linux/netfilter.h, nf_nat.h
const NFPROTO_INET: u8 = 1;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
const NF_INET_LOCAL_OUT: u32 = 3;
const NF_ACCEPT: u32 = 1;
const NF_IP_PRI_NAT_DST: i32 = -100;
const NF_IP_PRI_RAW: i32 = -300;
const NF_NAT_RANGE_PROTO_SPECIFIED: u32 = 2;
const IFNAMSIZ: usize = 16;

/// Netlink attributes, appended one after another (each padded to 4 bytes).
#[derive(Default)]
struct Attrs(Vec<u8>);

impl Attrs {
    fn bytes(mut self, ty: u16, value: &[u8]) -> Self {
        let len = 4 + value.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&ty.to_ne_bytes());
        self.0.extend_from_slice(value);
        self.0.resize(self.0.len().next_multiple_of(4), 0);
        self
    }
    fn be32(self, ty: u16, v: u32) -> Self {
        self.bytes(ty, &v.to_be_bytes())
    }
    fn nested(self, ty: u16, inner: Attrs) -> Self {
        self.bytes(ty | NLA_F_NESTED, &inner.0)
    }
}

/// One nf_tables expression: `name` with its attributes.
fn expr(name: &str, data: Attrs) -> Attrs {
    let mut n = name.as_bytes().to_vec();
    n.push(0);
    Attrs::default()
        .bytes(NFTA_EXPR_NAME, &n)
        .nested(NFTA_EXPR_DATA, data)
}

fn meta(key: u32) -> Attrs {
    // NFTA_META_DREG = 1, NFTA_META_KEY = 2
    expr("meta", Attrs::default().be32(1, NFT_REG_1).be32(2, key))
}

fn cmp_eq(value: &[u8]) -> Attrs {
    // NFTA_CMP_SREG = 1, NFTA_CMP_OP = 2 (NFT_CMP_EQ = 0), NFTA_CMP_DATA = 3
    let data = Attrs::default().bytes(NFTA_DATA_VALUE, value);
    expr(
        "cmp",
        Attrs::default()
            .be32(1, NFT_REG_1)
            .be32(2, 0)
            .nested(3, data),
    )
}

fn immediate(reg: u32, value: &[u8]) -> Attrs {
    // NFTA_IMMEDIATE_DREG = 1, NFTA_IMMEDIATE_DATA = 2
    let data = Attrs::default().bytes(NFTA_DATA_VALUE, value);
    expr("immediate", Attrs::default().be32(1, reg).nested(2, data))
}

fn oifname_is(name: &str) -> Attrs {
    let mut padded = [0u8; IFNAMSIZ];
    padded[..name.len()].copy_from_slice(name.as_bytes());
    cmp_eq(&padded)
}

/// `payload load` of `len` bytes at `offset` into the network header, into register 1.
fn network_header(offset: u32, len: u32) -> Attrs {
    // NFTA_PAYLOAD_DREG = 1, _BASE = 2, _OFFSET = 3, _LEN = 4
    expr(
        "payload",
        Attrs::default()
            .be32(1, NFT_REG_1)
            .be32(2, NFT_PAYLOAD_NETWORK_HEADER)
            .be32(3, offset)
            .be32(4, len),
    )
}

/// `notrack`: the packet gets no conntrack entry (an expression without attributes).
fn notrack() -> Attrs {
    Attrs::default().bytes(NFTA_EXPR_NAME, b"notrack\0")
}

/// `meta nfproto ipv4 ip daddr 127.0.0.0/8 notrack`
fn loopback_v4_rule() -> Vec<Attrs> {
    // NFTA_BITWISE_SREG = 1, _DREG = 2, _LEN = 3, _MASK = 4, _XOR = 5
    let mask = Attrs::default().bytes(NFTA_DATA_VALUE, &[255, 0, 0, 0]);
    let xor = Attrs::default().bytes(NFTA_DATA_VALUE, &[0, 0, 0, 0]);
    vec![
        meta(NFT_META_NFPROTO),
        cmp_eq(&[NFPROTO_IPV4]),
        network_header(16, 4),
        expr(
            "bitwise",
            Attrs::default()
                .be32(1, NFT_REG_1)
                .be32(2, NFT_REG_1)
                .be32(3, 4)
                .nested(4, mask)
                .nested(5, xor),
        ),
        cmp_eq(&[127, 0, 0, 0]),
        notrack(),
    ]
}

/// `meta nfproto ipv6 ip6 daddr ::1 notrack`
fn loopback_v6_rule() -> Vec<Attrs> {
    vec![
        meta(NFT_META_NFPROTO),
        cmp_eq(&[NFPROTO_IPV6]),
        network_header(24, 16),
        cmp_eq(&std::net::Ipv6Addr::LOCALHOST.octets()),
        notrack(),
    ]
}

/// `oifname "TUN" meta l4proto tcp redirect to :port`
fn tcp_rule(tun: &str, port: u16) -> Vec<Attrs> {
    vec![
        meta(NFT_META_OIFNAME),
        oifname_is(tun),
        meta(NFT_META_L4PROTO),
        cmp_eq(&[libc::IPPROTO_TCP as u8]),
        immediate(NFT_REG_1, &port.to_be_bytes()),
        // NFTA_REDIR_REG_PROTO_MIN = 1, NFTA_REDIR_FLAGS = 3
        expr(
            "redir",
            Attrs::default()
                .be32(1, NFT_REG_1)
                .be32(3, NF_NAT_RANGE_PROTO_SPECIFIED),
        ),
    ]
}

/// `oifname "TUN" meta nfproto ipv4 udp dport 53 dnat ip to ADDR:53`
fn dns_rule(tun: &str, stub: std::net::Ipv4Addr) -> Vec<Attrs> {
    vec![
        meta(NFT_META_OIFNAME),
        oifname_is(tun),
        meta(NFT_META_NFPROTO),
        cmp_eq(&[NFPROTO_IPV4]),
        meta(NFT_META_L4PROTO),
        cmp_eq(&[libc::IPPROTO_UDP as u8]),
        // NFTA_PAYLOAD_DREG = 1, _BASE = 2, _OFFSET = 3, _LEN = 4: the destination port.
        expr(
            "payload",
            Attrs::default()
                .be32(1, NFT_REG_1)
                .be32(2, NFT_PAYLOAD_TRANSPORT_HEADER)
                .be32(3, 2)
                .be32(4, 2),
        ),
        cmp_eq(&53u16.to_be_bytes()),
        immediate(NFT_REG_1, &stub.octets()),
        immediate(NFT_REG_2, &53u16.to_be_bytes()),
        // NFTA_NAT_TYPE = 1, _FAMILY = 2, _REG_ADDR_MIN = 3, _REG_PROTO_MIN = 5, _FLAGS = 7
        expr(
            "nat",
            Attrs::default()
                .be32(1, NFT_NAT_DNAT)
                .be32(2, NFPROTO_IPV4 as u32)
                .be32(3, NFT_REG_1)
                .be32(5, NFT_REG_2)
                .be32(7, NF_NAT_RANGE_PROTO_SPECIFIED),
        ),
    ]
}

/// One netlink message: header, nfgenmsg, attributes.
fn message(out: &mut Vec<u8>, ty: u16, flags: u16, seq: u32, family: u8, res_id: u16, a: Attrs) {
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

/// The capture ruleset as one batch; returns it and the sequence numbers that are acknowledged.
fn batch(tun: &str, port: u16, stub: std::net::Ipv4Addr) -> (Vec<u8>, Vec<u32>) {
    chain_batch(
        CHAIN,
        b"nat\0",
        NF_IP_PRI_NAT_DST,
        vec![tcp_rule(tun, port), dns_rule(tun, stub)],
    )
}

/// The loopback exemption as one batch (table, chain, two rules).
fn loopback_batch() -> (Vec<u8>, Vec<u32>) {
    chain_batch(
        LOOPBACK_CHAIN,
        b"filter\0",
        NF_IP_PRI_RAW,
        vec![loopback_v4_rule(), loopback_v6_rule()],
    )
}

/// One batch: the table (created if missing), an output chain of `kind` at `priority`, and its
/// rules in order.
fn chain_batch(
    chain_name: &[u8],
    kind: &[u8],
    priority: i32,
    rules: Vec<Vec<Attrs>>,
) -> (Vec<u8>, Vec<u32>) {
    let mut out = Vec::new();
    let mut acked = Vec::new();
    let nft = |m: u16| (NFNL_SUBSYS_NFTABLES << 8) | m;
    let create = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK;
    message(
        &mut out,
        NFNL_MSG_BATCH_BEGIN,
        NLM_F_REQUEST,
        1,
        0,
        NFNL_SUBSYS_NFTABLES,
        Attrs::default(),
    );
    let table = Attrs::default().bytes(NFTA_TABLE_NAME, TABLE);
    message(
        &mut out,
        nft(NFT_MSG_NEWTABLE),
        create,
        2,
        NFPROTO_INET,
        0,
        table,
    );
    acked.push(2);
    let hook = Attrs::default()
        .be32(NFTA_HOOK_HOOKNUM, NF_INET_LOCAL_OUT)
        .be32(NFTA_HOOK_PRIORITY, priority as u32);
    let chain = Attrs::default()
        .bytes(NFTA_CHAIN_TABLE, TABLE)
        .bytes(NFTA_CHAIN_NAME, chain_name)
        .nested(NFTA_CHAIN_HOOK, hook)
        .be32(NFTA_CHAIN_POLICY, NF_ACCEPT)
        .bytes(NFTA_CHAIN_TYPE, kind);
    message(
        &mut out,
        nft(NFT_MSG_NEWCHAIN),
        create,
        3,
        NFPROTO_INET,
        0,
        chain,
    );
    acked.push(3);
    let mut seq = 3;
    for exprs in rules {
        seq += 1;
        let list = exprs
            .into_iter()
            .fold(Attrs::default(), |l, e| l.nested(NFTA_LIST_ELEM, e));
        let rule = Attrs::default()
            .bytes(NFTA_RULE_TABLE, TABLE)
            .bytes(NFTA_RULE_CHAIN, chain_name)
            .nested(NFTA_RULE_EXPRESSIONS, list);
        message(
            &mut out,
            nft(NFT_MSG_NEWRULE),
            create | NLM_F_APPEND,
            seq,
            NFPROTO_INET,
            0,
            rule,
        );
        acked.push(seq);
    }
    message(
        &mut out,
        NFNL_MSG_BATCH_END,
        NLM_F_REQUEST,
        seq + 1,
        0,
        NFNL_SUBSYS_NFTABLES,
        Attrs::default(),
    );
    (out, acked)
}

/// Installs the capture rules in the calling thread's network namespace: TCP routed to `tun`
/// goes to `port` on loopback, IPv4 DNS routed to `tun` goes to `stub`:53. Needs CAP_NET_ADMIN
/// in the namespace's user namespace. An error means no rule is installed.
pub fn install_capture(tun: &str, port: u16, stub: std::net::Ipv4Addr) -> io::Result<()> {
    let sock: OwnedFd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkNetFilter,
    )?;
    send_batch(&sock, batch(tun, port, stub))?;
    // Best effort (a kernel without `notrack`, say): without it loopback traffic is tracked, as
    // it was before this chain existed. Nothing is printed from here: this runs in the sandbox
    // child; `nft list ruleset` inside a step shows whether the chain is there.
    let _ = send_batch(&sock, loopback_batch());
    Ok(())
}

/// Sends one batch and waits for the acknowledgement of each object in it; the first error the
/// kernel reports is returned (it then applied none of the batch).
fn send_batch(sock: &OwnedFd, (msg, mut waiting): (Vec<u8>, Vec<u32>)) -> io::Result<()> {
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

    #[test]
    fn the_batch_is_framed_and_every_object_is_acknowledged() {
        let (msg, acked) = batch("sj0", 3129, std::net::Ipv4Addr::new(127, 0, 0, 53));
        assert_eq!(acked, [2, 3, 4, 5]);
        // Walk the messages: begin, table, chain, two rules, end.
        let mut types = Vec::new();
        let mut at = 0;
        while at < msg.len() {
            let len = u32::from_ne_bytes(msg[at..at + 4].try_into().unwrap()) as usize;
            types.push(u16::from_ne_bytes(msg[at + 4..at + 6].try_into().unwrap()));
            at += len;
        }
        assert_eq!(at, msg.len());
        assert_eq!(types, [0x10, 0xa00, 0xa03, 0xa06, 0xa06, 0x11]);
        let (msg, acked) = loopback_batch();
        assert_eq!(acked, [2, 3, 4, 5]);
        assert!(msg.windows(9).any(|w| w == LOOPBACK_CHAIN));
        assert!(msg.windows(8).any(|w| w == b"notrack\0"));
    }
}
