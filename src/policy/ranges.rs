//! Address ranges an allowed *name* must never lead to unless a `cidr` rule names them.
//!
//! A name rule says "this host on the internet". If its DNS answer points at the machine itself,
//! the runner's LAN, the cloud metadata service or an address that embeds one of those, the
//! answer is an SSRF or rebinding attempt (or a misconfiguration) and the connection is refused.
//!
//! Choices beyond the obvious (loopback, RFC 1918, link-local, CGNAT, ULA, multicast,
//! unspecified, broadcast, IPv4-embedded IPv6):
//! - refused too: 192.0.0.0/24 (IETF protocol assignments: DS-Lite, NAT64 discovery),
//!   192.88.99.0/24 (deprecated 6to4 relay anycast), 198.18.0.0/15 (benchmarking, and the
//!   "fake-IP" range of several VPN and proxy tools), 240.0.0.0/4 (reserved), 100::/64
//!   (discard-only) and fec0::/10 (deprecated site-local). None is a public internet service.
//! - not refused: the documentation ranges 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
//!   2001:db8::/32 and 3fff::/20. They never appear on the public internet, so allowing them costs
//!   nothing, and stepjail's own hermetic tests use them as "the internet".
//! - IPv4-embedded IPv6 is refused as whole ranges (mapped, compatible, NAT64, 6to4, Teredo),
//!   whatever IPv4 address it embeds: a public service does not publish such AAAA records, and
//!   decoding them would mean trusting the relay that unwraps them.
//!
//! Order matters: the first match names the range, so the more specific ranges come first.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> IpNet {
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len))
}

const fn v6(s: [u16; 8], len: u8) -> IpNet {
    IpNet::V6(Ipv6Net::new_assert(
        Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]),
        len,
    ))
}

/// (range, name used in denial messages and audit events).
pub const SPECIAL_RANGES: &[(IpNet, &str)] = &[
    (v4(0, 0, 0, 0, 8), "unspecified"),
    (v4(10, 0, 0, 0, 8), "private"),
    (v4(100, 64, 0, 0, 10), "CGNAT"),
    (v4(127, 0, 0, 0, 8), "loopback"),
    (v4(169, 254, 0, 0, 16), "link-local"),
    (v4(172, 16, 0, 0, 12), "private"),
    (v4(192, 0, 0, 0, 24), "IETF protocol assignments"),
    (v4(192, 88, 99, 0, 24), "6to4 relay anycast"),
    (v4(192, 168, 0, 0, 16), "private"),
    (v4(198, 18, 0, 0, 15), "benchmarking"),
    (v4(224, 0, 0, 0, 4), "multicast"),
    (v4(255, 255, 255, 255, 32), "broadcast"),
    (v4(240, 0, 0, 0, 4), "reserved"),
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 128), "unspecified"),
    (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), "loopback"),
    (v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96), "IPv4-mapped"),
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 96), "IPv4-compatible"),
    (v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96), "NAT64"),
    (v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), "local-use NAT64"),
    (v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), "discard-only"),
    (v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32), "Teredo"),
    (v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16), "6to4"),
    (v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), "unique local"),
    (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), "link-local"),
    (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), "site-local"),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "multicast"),
];

/// The name of the special range `ip` is in, or `None` for an ordinary public address.
pub fn special_range(ip: IpAddr) -> Option<&'static str> {
    SPECIAL_RANGES
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every range with an address at each edge inside and one just outside.
    #[test]
    fn each_range_inside_and_just_outside() {
        let cases: &[(&str, Option<&str>)] = &[
            ("0.0.0.0", Some("unspecified")),
            ("0.255.255.255", Some("unspecified")),
            ("1.0.0.0", None),
            ("9.255.255.255", None),
            ("10.0.0.0", Some("private")),
            ("10.255.255.255", Some("private")),
            ("11.0.0.0", None),
            ("100.63.255.255", None),
            ("100.64.0.0", Some("CGNAT")),
            ("100.127.255.255", Some("CGNAT")),
            ("100.128.0.0", None),
            ("126.255.255.255", None),
            ("127.0.0.1", Some("loopback")),
            ("127.255.255.255", Some("loopback")),
            ("128.0.0.0", None),
            ("169.253.255.255", None),
            ("169.254.0.0", Some("link-local")),
            ("169.254.169.254", Some("link-local")),
            ("169.254.255.255", Some("link-local")),
            ("169.255.0.0", None),
            ("172.15.255.255", None),
            ("172.16.0.0", Some("private")),
            ("172.31.255.255", Some("private")),
            ("172.32.0.0", None),
            ("191.255.255.255", None),
            ("192.0.0.0", Some("IETF protocol assignments")),
            ("192.0.0.170", Some("IETF protocol assignments")),
            ("192.0.1.0", None),
            ("192.0.2.1", None), // TEST-NET-1: the tests' internet
            ("192.88.98.255", None),
            ("192.88.99.1", Some("6to4 relay anycast")),
            ("192.88.100.0", None),
            ("192.167.255.255", None),
            ("192.168.0.0", Some("private")),
            ("192.168.255.255", Some("private")),
            ("192.169.0.0", None),
            ("198.17.255.255", None),
            ("198.18.0.0", Some("benchmarking")),
            ("198.19.255.255", Some("benchmarking")),
            ("198.20.0.0", None),
            ("198.51.100.7", None), // TEST-NET-2
            ("203.0.113.9", None),  // TEST-NET-3
            ("223.255.255.255", None),
            ("224.0.0.0", Some("multicast")),
            ("239.255.255.255", Some("multicast")),
            ("240.0.0.0", Some("reserved")),
            ("255.255.255.254", Some("reserved")),
            ("255.255.255.255", Some("broadcast")),
            ("8.8.8.8", None),
            ("::", Some("unspecified")),
            ("::1", Some("loopback")),
            ("::2", Some("IPv4-compatible")),
            ("::7f00:1", Some("IPv4-compatible")),
            ("::1:0:0", None),
            ("::ffff:127.0.0.1", Some("IPv4-mapped")),
            ("::ffff:8.8.8.8", Some("IPv4-mapped")),
            ("::fffe:ffff:ffff", None),
            ("::1:0:0:0", None),
            ("64:ff9b::7f00:1", Some("NAT64")),
            ("64:ff9b::ffff:ffff", Some("NAT64")),
            ("64:ff9b::1:0:0", None),
            ("64:ff9b:1::", Some("local-use NAT64")),
            (
                "64:ff9b:1:ffff:ffff:ffff:ffff:ffff",
                Some("local-use NAT64"),
            ),
            ("64:ff9b:2::", None),
            ("100::", Some("discard-only")),
            ("100::ffff:ffff:ffff:ffff", Some("discard-only")),
            ("100:0:0:1::", None),
            ("2001::", Some("Teredo")),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", Some("Teredo")),
            ("2001:0:ffff:ffff:ffff:ffff:ffff:ffff", Some("Teredo")),
            ("2001:1::", None),
            ("2001:db8::1", None), // documentation: the tests' internet
            ("3fff::1", None),
            ("2002::", Some("6to4")),
            ("2002:7f00:1::", Some("6to4")),
            ("2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some("6to4")),
            ("2003::", None),
            ("2001:ffff::", None),
            ("2606:4700::1111", None),
            ("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
            ("fc00::", Some("unique local")),
            ("fd12:3456::1", Some("unique local")),
            (
                "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                Some("unique local"),
            ),
            ("fe00::", None),
            ("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
            ("fe80::", Some("link-local")),
            (
                "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                Some("link-local"),
            ),
            ("fec0::", Some("site-local")),
            (
                "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                Some("site-local"),
            ),
            ("ff00::", Some("multicast")),
            ("ff02::2", Some("multicast")),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some("multicast")),
        ];
        for (ip, want) in cases {
            assert_eq!(special_range(ip.parse().unwrap()), *want, "{ip}");
        }
    }
}
