//! The `Host` a request names: its name without the port, and which names `/metrics` and `/readyz` answer (a defence against DNS rebinding).
//!
//! A page on another site whose name was made to resolve to this machine
//! (DNS rebinding) can read what the listener answers, but its requests carry
//! the page's own name as `Host`. Addresses are safe to answer: a browser
//! sends an address as `Host` only to a page loaded from that very address.

use std::net::IpAddr;

/// The name in a `Host` value: brackets of an IPv6 address and a numeric
/// port taken off.
pub fn name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    host.rsplit_once(':')
        .map_or(host, |(name, port)| if port.bytes().all(|b| b.is_ascii_digit()) { name } else { host })
}

/// Whether `/metrics` and `/readyz` answer this `Host`: an IP address (any:
/// Prometheus scraping a pod's address), `localhost`, or a name in
/// `server.allowed_hosts` (`*` there: any name).
pub fn probe_allowed(host: Option<&str>, allowed: &[String]) -> bool {
    let Some(host) = host else { return false };
    let name = name(host);
    !name.is_empty()
        && (name.parse::<IpAddr>().is_ok()
            || name.eq_ignore_ascii_case("localhost")
            || allowed.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_without_ports() {
        for (host, expected) in [
            ("example.com:10025", "example.com"),
            ("example.com", "example.com"),
            ("[::1]:80", "::1"),
            ("[::1]", "::1"),
            ("10.0.0.1:10025", "10.0.0.1"),
            ("example.com:x", "example.com:x"),
            ("", ""),
        ] {
            assert_eq!(name(host), expected, "{host}");
        }
    }

    #[test]
    fn probes_answer_addresses_localhost_and_allowed_names() {
        let allowed = vec!["metrics.example".to_owned()];
        for host in ["127.0.0.1:10025", "10.1.2.3", "[2001:db8::1]:80", "localhost:10025", "METRICS.example:1"] {
            assert!(probe_allowed(Some(host), &allowed), "{host}");
        }
        for host in ["evil.example", "metrics.example.evil.example", "localhost.evil.example", "", "[]:80", ":80"] {
            assert!(!probe_allowed(Some(host), &allowed), "{host}");
        }
        assert!(!probe_allowed(None, &allowed));
        assert!(probe_allowed(Some("anything.example"), &["*".to_owned()]));
    }
}
