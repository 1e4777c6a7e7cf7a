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
    /// Whether it is one address (a /32 or /128).
    pub fn is_single(&self) -> bool {
        self.prefix == if self.addr.is_ipv4() { 32 } else { 128 }
    }

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

/// An IPv6 address that carries an IPv4 one is judged as that IPv4 address:
/// mapped `::ffff:a.b.c.d`, translated `::ffff:0:a.b.c.d`, NAT64
/// `64:ff9b::a.b.c.d`, 6to4 `2002:AABB:CCDD::` and Teredo `2001:0::` (whose
/// client address is stored inverted in the last 32 bits).
fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    let s = v6.segments();
    let v4 = |hi: u16, lo: u16| IpAddr::V4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => v4(hi, lo),
        [0, 0, 0, 0, 0xffff, 0, hi, lo] => v4(hi, lo),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => v4(hi, lo),
        [0x2002, hi, lo, ..] => v4(hi, lo),
        [0x2001, 0, _, _, _, _, hi, lo] => v4(!hi, !lo),
        _ => ip,
    }
}

/// Cloud metadata services: refused even with `allow_private_networks`,
/// unless `allowed_cidrs` lists the exact address.
pub const METADATA: [IpAddr; 4] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)), // AWS, GCP, Azure IMDS, OpenStack
    IpAddr::V4(Ipv4Addr::new(168, 63, 129, 16)),   // Azure wire server
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)), // Alibaba Cloud
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)), // AWS IMDS over IPv6
];

/// What kind of non-public address `ip` is, or `None` for a public one.
pub fn non_public_class(ip: IpAddr) -> Option<&'static str> {
    let ip = canonical(ip);
    if METADATA.contains(&ip) {
        return Some("cloud metadata");
    }
    match ip {
        IpAddr::V4(v4) => class_v4(v4),
        IpAddr::V6(v6) => class_v6(v6),
    }
}

/// Loopback, private, link-local, CGNAT, unique-local, multicast, reserved,
/// documentation and unspecified addresses: never public destinations.
pub fn is_non_public(ip: IpAddr) -> bool {
    non_public_class(ip).is_some()
}

fn class_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match () {
        _ if ip.is_unspecified() || a == 0 => "unspecified",
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_private() => "private",
        _ if ip.is_link_local() => "link-local",
        _ if a == 100 && (64..128).contains(&b) => "carrier-grade NAT",
        _ if a == 192 && b == 0 && c == 0 => "IETF protocol assignment",
        _ if a == 192 && b == 88 && c == 99 => "6to4 relay",
        _ if ip.is_documentation() => "documentation",
        _ if a == 198 && (b == 18 || b == 19) => "benchmarking",
        _ if ip.is_multicast() => "multicast",
        _ if a >= 240 => "reserved",
        _ => return None,
    })
}

fn class_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let seg = ip.segments();
    Some(match () {
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_multicast() => "multicast",
        _ if (seg[0] & 0xfe00) == 0xfc00 => "unique-local",
        _ if (seg[0] & 0xffc0) == 0xfe80 => "link-local",
        _ if (seg[0] & 0xffc0) == 0xfec0 => "site-local",
        _ if seg[0] == 0x2001 && seg[1] == 0x0db8 => "documentation",
        _ if seg[0] == 0x0100 && seg[1..4] == [0, 0, 0] => "discard-only",
        _ if seg[0] == 0x0064 && seg[1] == 0xff9b && seg[2] == 1 => "NAT64 local-use",
        _ if seg[..6] == [0, 0, 0, 0, 0, 0] => "IPv4-compatible",
        _ => return None,
    })
}

/// The destination policy: public addresses always; others only when opted
/// in; cloud metadata only when its exact address is listed.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    pub allow_private_networks: bool,
    pub allowed: Vec<Cidr>,
}

impl AddressPolicy {
    /// `Err` names the class of a refused address.
    pub fn check(&self, ip: IpAddr) -> Result<(), &'static str> {
        let Some(class) = non_public_class(ip) else { return Ok(()) };
        let listed = |exact: bool| self.allowed.iter().any(|c| c.contains(ip) && (!exact || c.is_single()));
        let permitted =
            if class == "cloud metadata" { listed(true) } else { self.allow_private_networks || listed(false) };
        if permitted {
            Ok(())
        } else {
            Err(class)
        }
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        self.check(ip).is_ok()
    }
}

/// Why a destination of address class `class` is refused, and the setting
/// that would allow it: `subject` is the literal address or "`host` resolves to".
pub fn refusal(subject: &str, class: &str) -> String {
    let allow = if class == "cloud metadata" {
        "only its exact address in delivery.allowed_cidrs allows it"
    } else {
        "to allow it, set delivery.allow_private_networks = true \
         (TAILHOOK_DELIVERY__ALLOW_PRIVATE_NETWORKS=true) or list its network in delivery.allowed_cidrs"
    };
    format!("{subject} a {class} address, which is not a permitted destination; {allow}")
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
            let permitted = resolve_checked(&policy, name.as_str()).await?;
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}

/// The addresses `host` resolves to that `policy` permits (port 0), or why
/// there are none: a [`BlockedAddress`] or a [`DnsFailure`]. The resolver of
/// direct requests and the proxy tunnel both use it.
pub async fn resolve_checked(
    policy: &AddressPolicy,
    host: &str,
) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
    let resolved =
        tokio::net::lookup_host((host, 0)).await.map_err(|e| DnsFailure(format!("cannot resolve {host}: {e}")))?;
    let mut refused = Vec::new();
    let permitted: Vec<SocketAddr> = resolved
        .filter(|a| match policy.check(a.ip()) {
            Ok(()) => true,
            Err(class) => {
                refused.push(class);
                false
            }
        })
        .collect();
    if permitted.is_empty() {
        // The class, not the address: a private IP a name resolves
        // to is not the endpoint owner's to learn.
        let reason = match refused.first() {
            Some(class) => refusal(&format!("{host} resolves to"), class),
            None => format!("{host} resolves to no address"),
        };
        return Err(if refused.is_empty() {
            Box::new(DnsFailure(reason)) as Box<dyn std::error::Error + Send + Sync>
        } else {
            Box::new(BlockedAddress(reason))
        });
    }
    Ok(permitted)
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
            ("64:ff9b::808:808", false), // NAT64 of 8.8.8.8
            ("64:ff9b:1::1", true),      // NAT64 local-use
            ("::ffff:0:7f00:1", true),   // translated 127.0.0.1
            ("::ffff:0:808:808", false),
            ("2002:7f00:1::", true), // 6to4 of 127.0.0.1
            ("2002:a00:1::1", true), // 6to4 of 10.0.0.1
            ("2002:808:808::1", false),
            ("2001:0:4136:e378:8000:63bf:80ff:fffe", true), // Teredo, client 127.0.0.1
            ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", false), // Teredo, client 8.8.8.8
            ("192.88.99.1", true),
            ("168.63.129.16", true),
            ("100.100.100.200", true),
            ("fd00:ec2::254", true),
            ("2001:db8::1", true),
            ("2606:4700::1111", false),
        ];
        for (ip, expected) in cases {
            assert_eq!(is_non_public(ip.parse().unwrap()), expected, "{ip}");
        }
    }

    #[test]
    fn refusals_name_the_setting_that_allows_them() {
        let private = refusal("10.0.0.1 is", "private");
        assert!(private.starts_with("10.0.0.1 is a private address, which is not a permitted destination;"));
        assert!(private.contains("delivery.allow_private_networks = true"), "{private}");
        let metadata = refusal("169.254.169.254 is", "cloud metadata");
        assert!(metadata.contains("delivery.allowed_cidrs"), "{metadata}");
        assert!(!metadata.contains("allow_private_networks"), "the switch does not allow metadata: {metadata}");
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
        assert!(cidr.permits("2002:a09:909::".parse().unwrap()), "6to4 judged by its IPv4 address");
    }

    #[test]
    fn cloud_metadata_needs_its_exact_address_listed() {
        let metadata =
            ["169.254.169.254", "::ffff:169.254.169.254", "168.63.129.16", "100.100.100.200", "fd00:ec2::254"];
        let open = AddressPolicy {
            allow_private_networks: true,
            allowed: vec!["169.254.0.0/16".parse().unwrap(), "0.0.0.0/0".parse().unwrap()],
        };
        for ip in metadata {
            assert_eq!(open.check(ip.parse().unwrap()), Err("cloud metadata"), "{ip}");
        }
        assert!(open.permits("169.254.1.1".parse().unwrap()), "other link-local addresses are opted in");
        let listed =
            AddressPolicy { allow_private_networks: false, allowed: vec!["169.254.169.254/32".parse().unwrap()] };
        assert!(listed.permits("169.254.169.254".parse().unwrap()));
        assert!(!listed.permits("168.63.129.16".parse().unwrap()));
    }

    #[test]
    fn refusals_name_the_class() {
        let strict = AddressPolicy::default();
        let cases = [
            ("127.0.0.1", "loopback"),
            ("10.0.0.1", "private"),
            ("169.254.169.254", "cloud metadata"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("fd12::1", "unique-local"),
            ("2002:c0a8:101::", "private"),
        ];
        for (ip, class) in cases {
            assert_eq!(strict.check(ip.parse().unwrap()), Err(class), "{ip}");
        }
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

    proptest::proptest! {
        /// An IPv4 address gets the same verdict however a URL writes it and
        /// in every IPv6 form that embeds it.
        #[test]
        fn an_ipv4_address_is_judged_alike_in_every_form(bits in proptest::prelude::any::<u32>(), open in proptest::prelude::any::<bool>()) {
            let v4 = Ipv4Addr::from(bits);
            let policy = AddressPolicy { allow_private_networks: open, allowed: vec![] };
            let expected = policy.check(IpAddr::V4(v4));
            let (hi, lo) = ((bits >> 16) as u16, bits as u16);
            let embedded = [
                Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, hi, lo),
                Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, hi, lo),
                Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, hi, lo),
                Ipv6Addr::new(0x2002, hi, lo, 0, 0, 0, 0, 1),
                Ipv6Addr::new(0x2001, 0, 0x4136, 0xe378, 0x8000, 0x63bf, !hi, !lo),
            ];
            for v6 in embedded {
                proptest::prop_assert_eq!(policy.check(IpAddr::V6(v6)), expected, "{}", v6);
            }
            for url in [format!("http://{v4}/x"), format!("http://{bits}/x"), format!("http://0x{bits:x}/x"), format!("http://[::ffff:{v4}]/x")] {
                let ip = match url::Url::parse(&url).unwrap().host() {
                    Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
                    Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
                    other => panic!("{url} parsed to {other:?}"),
                };
                proptest::prop_assert_eq!(policy.check(ip), expected, "{}", url);
            }
        }
    }
}
