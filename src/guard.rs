//! Which destination addresses may be connected to: the policy, and a resolver that applies it after DNS.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

/// An IP network such as `10.0.0.0/8` or `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| format!("`{s}` is not an IP network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}` has an invalid prefix length"))?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(u128::from(u32::from(net)), u128::from(u32::from(ip)), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(u128::from(net), u128::from(ip), self.prefix, 128),
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, prefix: u8, bits: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = bits - prefix;
    (a >> shift) == (b >> shift)
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is judged as the IPv4 address it carries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Loopback, private, link-local, CGNAT, unique-local, multicast, reserved,
/// documentation and unspecified addresses: never public destinations.
pub fn is_non_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_non_public_v4(v4),
        IpAddr::V6(v6) => is_non_public_v6(v6),
    }
}

fn is_non_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || a == 0 // "this network"
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16, cloud metadata
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || ip.is_documentation()
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18/15
        || ip.is_multicast()
        || a >= 240 // reserved and broadcast
}

fn is_non_public_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (seg[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (seg[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
        || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
        || (seg[0] == 0x0100 && seg[1..4] == [0, 0, 0]) // discard 100::/64
        || (seg[0] == 0x0064 && seg[1] == 0xff9b) // NAT64: embeds an IPv4 address
        || seg[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible (deprecated) ::a.b.c.d
}

/// The destination policy: public addresses always; others only when opted in.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    pub allow_private_networks: bool,
    pub allowed: Vec<Cidr>,
}

impl AddressPolicy {
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.allow_private_networks || !is_non_public(ip) || self.allowed.iter().any(|c| c.contains(ip))
    }
}

/// Raised when every address a host name resolves to is refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BlockedAddress(pub String);

/// Raised when a host name cannot be resolved.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DnsFailure(pub String);

/// A resolver for the HTTP client that keeps only permitted addresses, so the
/// address connected to is the one checked (DNS rebinding cannot get around it).
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    pub policy: Arc<AddressPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| DnsFailure(format!("cannot resolve {host}: {e}")))?;
            let mut refused = Vec::new();
            let permitted: Vec<SocketAddr> = resolved
                .filter(|a| {
                    let ok = policy.permits(a.ip());
                    if !ok {
                        refused.push(a.ip());
                    }
                    ok
                })
                .collect();
            if permitted.is_empty() {
                let reason = match refused.first() {
                    Some(ip) => {
                        format!("{host} resolves to {ip}, which is not a permitted destination")
                    }
                    None => format!("{host} resolves to no address"),
                };
                return Err(if refused.is_empty() {
                    Box::new(DnsFailure(reason)) as Box<dyn std::error::Error + Send + Sync>
                } else {
                    Box::new(BlockedAddress(reason))
                });
            }
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_public_addresses() {
        let cases = [
            ("8.8.8.8", false),
            ("1.1.1.1", false),
            ("127.0.0.1", true),
            ("127.8.9.10", true),
            ("10.1.2.3", true),
            ("172.16.0.1", true),
            ("172.32.0.1", false),
            ("192.168.1.1", true),
            ("169.254.169.254", true),
            ("100.64.0.1", true),
            ("100.128.0.1", false),
            ("0.0.0.0", true),
            ("224.0.0.1", true),
            ("240.0.0.1", true),
            ("255.255.255.255", true),
            ("198.18.0.1", true),
            ("::1", true),
            ("::", true),
            ("fd00::1", true),
            ("fe80::1", true),
            ("ff02::1", true),
            ("::ffff:127.0.0.1", true),
            ("::ffff:10.0.0.1", true),
            ("::ffff:8.8.8.8", false),
            ("64:ff9b::a00:1", true),
            ("2001:db8::1", true),
            ("2606:4700::1111", false),
        ];
        for (ip, expected) in cases {
            assert_eq!(is_non_public(ip.parse().unwrap()), expected, "{ip}");
        }
    }

    #[test]
    fn policy_opt_ins() {
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let private: IpAddr = "10.1.2.3".parse().unwrap();
        let public: IpAddr = "8.8.8.8".parse().unwrap();
        let strict = AddressPolicy::default();
        assert!(!strict.permits(loopback) && !strict.permits(private) && strict.permits(public));
        let open = AddressPolicy { allow_private_networks: true, allowed: vec![] };
        assert!(open.permits(loopback) && open.permits(private));
        let cidr = AddressPolicy { allow_private_networks: false, allowed: vec!["10.0.0.0/8".parse().unwrap()] };
        assert!(cidr.permits(private) && !cidr.permits(loopback));
        assert!(cidr.permits("::ffff:10.9.9.9".parse().unwrap()));
    }

    #[test]
    fn cidr_parsing() {
        assert!("10.0.0.0/8".parse::<Cidr>().is_ok());
        assert!("fd00::/8".parse::<Cidr>().is_ok());
        assert!("127.0.0.1".parse::<Cidr>().unwrap().contains("127.0.0.1".parse().unwrap()));
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains("9.9.9.9".parse().unwrap()));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", "::/129"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }
}
