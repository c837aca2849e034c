//! Which addresses deliveries may connect to (the SSRF guard): every address a subscriber's
//! URL resolves to must be globally routable unicast, unless `allow_private_urls`. The client
//! (`client.rs`) applies it to the addresses it resolved, right before connecting to them.
//!
//! The address check is an allow-list: an IPv6 address must be in the global unicast block
//! `2000::/3` and outside the special-purpose blocks carved from it; forms that embed an IPv4
//! address (mapped, translated, NAT64, 6to4, Teredo) are judged by the IPv4 addresses they
//! carry; an IPv4 address must be outside every block that IANA's special-purpose registry
//! marks as not globally reachable.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IPv4 blocks that are not globally reachable: `(network, prefix length)`.
const V4_NOT_GLOBAL: &[([u8; 4], u8)] = &[
    ([0, 0, 0, 0], 8),       // "this network"
    ([10, 0, 0, 0], 8),      // private
    ([100, 64, 0, 0], 10),   // shared address space (carrier-grade NAT)
    ([127, 0, 0, 0], 8),     // loopback
    ([169, 254, 0, 0], 16),  // link-local (cloud metadata services live here)
    ([172, 16, 0, 0], 12),   // private
    ([192, 0, 0, 0], 24),    // IETF protocol assignments
    ([192, 0, 2, 0], 24),    // documentation (TEST-NET-1)
    ([192, 31, 196, 0], 24), // AS112
    ([192, 52, 193, 0], 24), // AMT
    ([192, 88, 99, 0], 24),  // 6to4 relay anycast (deprecated)
    ([192, 168, 0, 0], 16),  // private
    ([192, 175, 48, 0], 24), // direct delegation AS112
    ([198, 18, 0, 0], 15),   // benchmarking
    ([198, 51, 100, 0], 24), // documentation (TEST-NET-2)
    ([203, 0, 113, 0], 24),  // documentation (TEST-NET-3)
    ([224, 0, 0, 0], 4),     // multicast
    ([240, 0, 0, 0], 4),     // reserved, and the limited broadcast address
];

/// Blocks inside `2000::/3` that are not global unicast: `(network, prefix length)`.
const V6_NOT_GLOBAL: &[(u128, u8)] = &[
    (0x2001_0000 << 96, 23), // IETF protocol assignments (Teredo is judged before)
    (0x2001_0db8 << 96, 32), // documentation
    (0x3fff_0000 << 96, 20), // documentation (RFC 9637)
];

fn in_v4_block(ip: Ipv4Addr, (net, len): ([u8; 4], u8)) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn in_v6_block(ip: Ipv6Addr, (net, len): (u128, u8)) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    u128::from(ip) & mask == net & mask
}

/// Whether `ip` is a globally routable unicast address (directly, or through every IPv4
/// address it embeds).
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(carried) => carried.iter().all(|v4| is_public_v4(*v4)),
            None => {
                in_v6_block(v6, (0x2000 << 112, 3))
                    && !V6_NOT_GLOBAL.iter().any(|b| in_v6_block(v6, *b))
            }
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    !V4_NOT_GLOBAL.iter().any(|b| in_v4_block(ip, *b))
}

/// The IPv4 addresses an IPv6 address stands for, when it is one of the forms that carry
/// them; a connection to such an address reaches (or is relayed to) those IPv4 hosts.
fn embedded_v4(ip: Ipv6Addr) -> Option<Vec<Ipv4Addr>> {
    let bits = u128::from(ip);
    let low32 = Ipv4Addr::from(bits as u32);
    let s = ip.segments();
    let v4_at = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if in_v6_block(ip, (0xffff << 32, 96)) // ::ffff:a.b.c.d, IPv4-mapped
        || in_v6_block(ip, (0xffff << 48, 96)) // ::ffff:0:a.b.c.d, IPv4-translated
        || in_v6_block(ip, (0x0064_ff9b << 96, 96))
    // 64:ff9b::a.b.c.d, NAT64
    {
        Some(vec![low32])
    } else if in_v6_block(ip, (0x2002 << 112, 16)) {
        Some(vec![v4_at(s[1], s[2])]) // 6to4: 2002:AABB:CCDD::
    } else if in_v6_block(ip, (0x2001_0000 << 96, 32)) {
        // Teredo: the server's address, and the client's with every bit inverted.
        Some(vec![v4_at(s[2], s[3]), v4_at(!s[6], !s[7])])
    } else {
        None
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0} resolves to a non-public address; set allow_private_urls to allow it")]
pub(crate) struct PrivateAddress(pub String);

/// Refuses a URL whose host is a literal non-public IP (those bypass the resolver).
pub(crate) fn check_literal_host(
    url: &url::Url,
    allow_private: bool,
) -> Result<(), PrivateAddress> {
    let ip = match url.host() {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        _ => return Ok(()),
    };
    if allow_private || is_public(ip) {
        Ok(())
    } else {
        Err(PrivateAddress(ip.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_global_addresses_in_every_spelling_are_refused() {
        for ip in [
            "127.0.0.1",
            "127.255.255.254",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fe80::1",
            "febf::1",
            "fc00::1",
            "fd00::1",
            "ff02::1",
            "100::1",           // discard-only
            "2001:db8::1",      // documentation
            "3fff::1",          // documentation (RFC 9637)
            "2001:2::1",        // benchmarking
            "2001:10::1",       // ORCHID
            "::ffff:127.0.0.1", // IPv4-mapped
            "::ffff:10.0.0.1",
            "::ffff:0:127.0.0.1", // IPv4-translated
            "::ffff:0:10.0.0.1",
            "::127.0.0.1", // IPv4-compatible (deprecated)
            "::8.8.8.8",
            "64:ff9b::7f00:1",                      // NAT64 of 127.0.0.1
            "64:ff9b::a00:1",                       // NAT64 of 10.0.0.1
            "64:ff9b:1::808:808",                   // local-use NAT64
            "2002:7f00:1::",                        // 6to4 of 127.0.0.1
            "2002:a00:1::1",                        // 6to4 of 10.0.0.1
            "2001:0:4136:e378:8000:63bf:80ff:fffe", // Teredo, client 127.0.0.1
            "2001:0:4136:e378:8000:63bf:f5ff:fffe", // Teredo, client 10.0.0.1
            "2001:0:a00:1:8000:63bf:f7f7:f7f7",     // Teredo, server 10.0.0.1
            "5f00::1",                              // SRv6 SIDs
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} must be refused");
        }
    }

    #[test]
    fn global_unicast_is_allowed() {
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",                      // 6to4 of 8.8.8.8
            "2001:0:4136:e378:8000:63bf:f7f7:f7f7", // Teredo, client 8.8.8.8
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip} must be allowed");
        }
    }

    #[test]
    fn literal_hosts_are_checked_in_urls() {
        for url in [
            "http://127.0.0.1/",
            "http://[::ffff:0:7f00:1]/",
            "http://[100::1]/",
            "http://2130706433/",
            "http://0x7f.1/",
        ] {
            let url: url::Url = url.parse().unwrap();
            assert!(check_literal_host(&url, false).is_err(), "{url}");
            assert!(check_literal_host(&url, true).is_ok(), "{url}");
        }
    }
}
