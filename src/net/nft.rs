//! The capture rules of the step's network namespace, written to nf_tables over netlink (no
//! `nft` binary, no C library). The namespace has no network device but `lo`: its default
//! routes are `local` routes on `lo` (see [`super::rtnl`]), so every packet a step sends stays
//! in the namespace, and one `inet` table decides where it goes:
//!
//! ```text
//! table inet stepjail {
//!     chain capture {
//!         type nat hook output priority -100; policy accept;
//!         meta nfproto ipv4 ip daddr != 127.0.0.0/8 ip daddr != 10.255.255.1 meta l4proto tcp redirect to :CAPTURE_PORT
//!         meta nfproto ipv6 ip6 daddr != ::1 ip6 daddr != fd00:5a::1 meta l4proto tcp redirect to :CAPTURE_PORT
//!         meta nfproto ipv4 ip daddr != 127.0.0.0/8 ip daddr != 10.255.255.1 udp dport 53 dnat ip to 127.0.0.53:53
//!         meta nfproto ipv6 ip6 daddr != ::1 ip6 daddr != fd00:5a::1 udp dport 53 dnat ip6 to [::1]:53
//!     }
//!     chain guard {
//!         type filter hook input priority 0; policy accept;
//!         meta nfproto ipv4 ip daddr != 127.0.0.0/8 ip daddr != 10.255.255.1 log group 7 snaplen 128 drop
//!         meta nfproto ipv6 ip6 daddr != ::1 ip6 daddr != fd00:5a::1 log group 7 snaplen 128 drop
//!     }
//! }
//! ```
//!
//! Loopback traffic and traffic to the step's own address (its local servers) is untouched.
//! Whatever the capture chain does not rewrite (UDP other than DNS, ICMP, raw IP) is looped back
//! to the namespace itself with its outside destination and dropped on the way in, after being
//! copied to the supervisor over NFLOG ([`super::nflog`]), which logs it: the sender sees its
//! datagram sent, as on a real network that drops it. The whole ruleset is one netlink batch:
//! the kernel applies all of it or none.
//!
//! A NAT chain turns connection tracking on for the whole namespace, loopback included, where
//! it only costs: every connection to the explicit proxy or the stub, and to the step's own
//! local servers, got a conntrack entry and four lookups a packet. A second batch, best effort
//! (without it everything works as before, only slower), exempts traffic *to* loopback
//! addresses, which NAT never needs: a captured connection's replies go to the step's own
//! address (10.255.255.1, fd00:5a::1, on `lo`), and its packets to the capture listener are
//! still tracked because their destination is outside until the redirect rewrites them.
//!
//! ```text
//!     chain loopback {
//!         type filter hook output priority raw; policy accept;
//!         meta nfproto ipv4 ip daddr 127.0.0.0/8 notrack
//!         meta nfproto ipv6 ip6 daddr ::1 notrack
//!     }
//! ```

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};

use nix::sys::socket::SockProtocol;

use super::netlink::{self, Attrs, message, send_batch};

const TABLE: &[u8] = b"stepjail\0";
const CHAIN: &[u8] = b"capture\0";
const GUARD_CHAIN: &[u8] = b"guard\0";
const LOOPBACK_CHAIN: &[u8] = b"loopback\0";

// linux/netlink.h
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
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
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFT_NAT_DNAT: u32 = 1;
// linux/netfilter.h, nf_nat.h
const NFPROTO_INET: u8 = 1;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
const NF_INET_LOCAL_IN: u32 = 1;
const NF_INET_LOCAL_OUT: u32 = 3;
const NF_ACCEPT: u32 = 1;
const NF_DROP: u32 = 0;
const NFT_REG_VERDICT: u32 = 0;
const NFT_CMP_EQ: u32 = 0;
const NFT_CMP_NEQ: u32 = 1;
const NF_IP_PRI_FILTER: i32 = 0;
const NF_IP_PRI_NAT_DST: i32 = -100;
const NF_IP_PRI_RAW: i32 = -300;
const NF_NAT_RANGE_PROTO_SPECIFIED: u32 = 2;

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

fn cmp(op: u32, value: &[u8]) -> Attrs {
    // NFTA_CMP_SREG = 1, NFTA_CMP_OP = 2, NFTA_CMP_DATA = 3
    let data = Attrs::default().bytes(NFTA_DATA_VALUE, value);
    expr(
        "cmp",
        Attrs::default()
            .be32(1, NFT_REG_1)
            .be32(2, op)
            .nested(3, data),
    )
}

fn cmp_eq(value: &[u8]) -> Attrs {
    cmp(NFT_CMP_EQ, value)
}

fn cmp_neq(value: &[u8]) -> Attrs {
    cmp(NFT_CMP_NEQ, value)
}

fn immediate(reg: u32, value: &[u8]) -> Attrs {
    // NFTA_IMMEDIATE_DREG = 1, NFTA_IMMEDIATE_DATA = 2
    let data = Attrs::default().bytes(NFTA_DATA_VALUE, value);
    expr("immediate", Attrs::default().be32(1, reg).nested(2, data))
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

/// `meta nfproto ipv4 ip daddr != 127.0.0.0/8 ip daddr != OWN`: an IPv4 packet for outside.
fn outside_v4(own: Ipv4Addr) -> Vec<Attrs> {
    vec![
        meta(NFT_META_NFPROTO),
        cmp_eq(&[NFPROTO_IPV4]),
        network_header(16, 1),
        cmp_neq(&[127]),
        network_header(16, 4),
        cmp_neq(&own.octets()),
    ]
}

/// `meta nfproto ipv6 ip6 daddr != ::1 ip6 daddr != OWN`: an IPv6 packet for outside.
fn outside_v6(own: Ipv6Addr) -> Vec<Attrs> {
    vec![
        meta(NFT_META_NFPROTO),
        cmp_eq(&[NFPROTO_IPV6]),
        network_header(24, 16),
        cmp_neq(&Ipv6Addr::LOCALHOST.octets()),
        cmp_neq(&own.octets()),
    ]
}

/// `meta l4proto tcp redirect to :port`
fn redirect_tcp(port: u16) -> Vec<Attrs> {
    vec![
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

/// `udp dport 53 dnat to ADDR:53` (`addr` 4 or 16 bytes, `family` NFPROTO_IPV4 or _IPV6)
fn dns_to(family: u8, addr: &[u8]) -> Vec<Attrs> {
    vec![
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
        immediate(NFT_REG_1, addr),
        immediate(NFT_REG_2, &53u16.to_be_bytes()),
        // NFTA_NAT_TYPE = 1, _FAMILY = 2, _REG_ADDR_MIN = 3, _REG_PROTO_MIN = 5, _FLAGS = 7
        expr(
            "nat",
            Attrs::default()
                .be32(1, NFT_NAT_DNAT)
                .be32(2, family as u32)
                .be32(3, NFT_REG_1)
                .be32(5, NFT_REG_2)
                .be32(7, NF_NAT_RANGE_PROTO_SPECIFIED),
        ),
    ]
}

/// `log group GROUP snaplen SNAPLEN drop`: a copy of the packet's first bytes to the NFLOG
/// group (the supervisor's socket), then the packet is dropped.
fn log_and_drop(group: u16, snaplen: u32) -> Vec<Attrs> {
    // NFTA_LOG_GROUP = 1 (u16), NFTA_LOG_SNAPLEN = 3
    let log = expr(
        "log",
        Attrs::default()
            .bytes(1, &group.to_be_bytes())
            .be32(3, snaplen),
    );
    // NFTA_DATA_VERDICT = 2 { NFTA_VERDICT_CODE = 1 }
    let verdict = Attrs::default().nested(2, Attrs::default().be32(1, NF_DROP));
    let drop = expr(
        "immediate",
        Attrs::default().be32(1, NFT_REG_VERDICT).nested(2, verdict),
    );
    vec![log, drop]
}

fn rule(parts: [Vec<Attrs>; 2]) -> Vec<Attrs> {
    parts.into_iter().flatten().collect()
}

/// What the capture rules need to know.
pub struct Rules {
    /// The capture listener's port (TCP is redirected there).
    pub port: u16,
    /// The IPv4 DNS stub (IPv6 DNS goes to `[::1]:53`).
    pub stub: Ipv4Addr,
    /// The step's own addresses: traffic to them stays local, like loopback's.
    pub own_v4: Ipv4Addr,
    pub own_v6: Ipv6Addr,
    /// The NFLOG group dropped packets are copied to, and how many bytes of each.
    pub group: u16,
    pub snaplen: u32,
}

/// The capture ruleset as one batch, with the loopback exemption when `loopback`; returns it
/// and the sequence numbers that are acknowledged.
fn batch(r: &Rules, loopback: bool) -> (Vec<u8>, Vec<u32>) {
    let (v4, v6) = (|| outside_v4(r.own_v4), || outside_v6(r.own_v6));
    let v6_stub = Ipv6Addr::LOCALHOST.octets();
    let mut chains = vec![
        Chain {
            name: CHAIN,
            kind: b"nat\0",
            hook: NF_INET_LOCAL_OUT,
            priority: NF_IP_PRI_NAT_DST,
            rules: vec![
                rule([v4(), redirect_tcp(r.port)]),
                rule([v6(), redirect_tcp(r.port)]),
                rule([v4(), dns_to(NFPROTO_IPV4, &r.stub.octets())]),
                rule([v6(), dns_to(NFPROTO_IPV6, &v6_stub)]),
            ],
        },
        Chain {
            name: GUARD_CHAIN,
            kind: b"filter\0",
            hook: NF_INET_LOCAL_IN,
            priority: NF_IP_PRI_FILTER,
            rules: vec![
                rule([v4(), log_and_drop(r.group, r.snaplen)]),
                rule([v6(), log_and_drop(r.group, r.snaplen)]),
            ],
        },
    ];
    if loopback {
        chains.push(loopback_chain());
    }
    chains_batch(chains)
}

/// The loopback exemption (a chain, two rules).
fn loopback_chain() -> Chain {
    Chain {
        name: LOOPBACK_CHAIN,
        kind: b"filter\0",
        hook: NF_INET_LOCAL_OUT,
        priority: NF_IP_PRI_RAW,
        rules: vec![loopback_v4_rule(), loopback_v6_rule()],
    }
}

/// A base chain of the table: its name, type, hook, priority and rules in order.
struct Chain {
    name: &'static [u8],
    kind: &'static [u8],
    hook: u32,
    priority: i32,
    rules: Vec<Vec<Attrs>>,
}

/// One batch: the table (created if missing) and each chain with its rules in order.
fn chains_batch(chains: Vec<Chain>) -> (Vec<u8>, Vec<u32>) {
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
    let mut seq = 2;
    for c in chains {
        seq += 1;
        let hook = Attrs::default()
            .be32(NFTA_HOOK_HOOKNUM, c.hook)
            .be32(NFTA_HOOK_PRIORITY, c.priority as u32);
        let chain = Attrs::default()
            .bytes(NFTA_CHAIN_TABLE, TABLE)
            .bytes(NFTA_CHAIN_NAME, c.name)
            .nested(NFTA_CHAIN_HOOK, hook)
            .be32(NFTA_CHAIN_POLICY, NF_ACCEPT)
            .bytes(NFTA_CHAIN_TYPE, c.kind);
        message(
            &mut out,
            nft(NFT_MSG_NEWCHAIN),
            create,
            seq,
            NFPROTO_INET,
            0,
            chain,
        );
        acked.push(seq);
        for exprs in c.rules {
            seq += 1;
            let list = exprs
                .into_iter()
                .fold(Attrs::default(), |l, e| l.nested(NFTA_LIST_ELEM, e));
            let rule = Attrs::default()
                .bytes(NFTA_RULE_TABLE, TABLE)
                .bytes(NFTA_RULE_CHAIN, c.name)
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

/// Installs the capture rules in the calling thread's network namespace: TCP for outside goes
/// to the capture port on loopback, DNS for outside to the stub (IPv4) or `[::1]:53` (IPv6),
/// anything else for outside is copied to the NFLOG group and dropped on arrival. Needs
/// CAP_NET_ADMIN in the namespace's user namespace. An error means no rule is installed.
pub fn install_capture(rules: &Rules) -> io::Result<()> {
    let sock = netlink::open(SockProtocol::NetlinkNetFilter)?;
    // One batch with the loopback exemption (one round trip: each costs the set-up ~0.1 ms);
    // the exemption is best effort (a kernel without `notrack`, say), so if the kernel refuses
    // that batch, the capture rules go alone: loopback traffic is then tracked, as it was
    // before the exemption existed. Nothing is printed from here: this runs in the sandbox
    // child; `nft list ruleset` inside a step shows whether the chain is there.
    if send_batch(&sock, batch(rules, true)).is_ok() {
        return Ok(());
    }
    send_batch(&sock, batch(rules, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_is_framed_and_every_object_is_acknowledged() {
        let rules = Rules {
            port: 3129,
            stub: Ipv4Addr::new(127, 0, 0, 53),
            own_v4: Ipv4Addr::new(10, 255, 255, 1),
            own_v6: "fd00:5a::1".parse().unwrap(),
            group: 7,
            snaplen: 128,
        };
        let (msg, acked) = batch(&rules, false);
        assert_eq!(acked, [2, 3, 4, 5, 6, 7, 8, 9, 10]);
        // Walk the messages: begin, table, chain, four rules, chain, two rules, end.
        let mut types = Vec::new();
        let mut at = 0;
        while at < msg.len() {
            let len = u32::from_ne_bytes(msg[at..at + 4].try_into().unwrap()) as usize;
            types.push(u16::from_ne_bytes(msg[at + 4..at + 6].try_into().unwrap()));
            at += len;
        }
        assert_eq!(at, msg.len());
        assert_eq!(
            types,
            [
                0x10, 0xa00, 0xa03, 0xa06, 0xa06, 0xa06, 0xa06, 0xa03, 0xa06, 0xa06, 0x11
            ]
        );
        assert!(msg.windows(6).any(|w| w == GUARD_CHAIN));
        assert!(msg.windows(4).any(|w| w == b"log\0"));
        assert!(!msg.windows(9).any(|w| w == LOOPBACK_CHAIN));
        // With the loopback exemption: one more chain and its two rules, in the same batch.
        let (msg, acked) = batch(&rules, true);
        assert_eq!(acked, (2..=13).collect::<Vec<u32>>());
        assert!(msg.windows(9).any(|w| w == LOOPBACK_CHAIN));
        assert!(msg.windows(8).any(|w| w == b"notrack\0"));
    }
}
