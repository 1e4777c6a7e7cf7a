//! Tenant portal links: minting and checking the signed token that opens the console for one tenant (`/portal/<token>/`), and the key `tailhook.portal_link` (sql/0030) signs with.
//!
//! A token is `v1.<tenant as hex>.<expiry, Unix seconds>.<r|w>.<signature>`:
//! the signature is HMAC-SHA256, as 64 hex digits, of everything before its
//! dot, keyed by the *link key*. The link key is HMAC-SHA256 of a fixed label
//! keyed by the configured secret (`server.portal_key_env`): the sidecar
//! stores the link key (never the configured secret) in
//! `tailhook.portal_key`, which only tailhook's owner reads, so SQL can sign
//! without an extension; a new configured secret makes a new link key, and
//! every link signed with the old one is refused. The tenant is hex so any
//! tenant name (dots, slashes, non-ASCII) fits in a URL path unchanged.
//! Changing the tenant, the expiry or the flag breaks the signature; the
//! signature is compared in constant time.

use crate::config::secret::Secret;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest a link may live (the SQL function enforces the same).
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// The lifetime when none is given.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15 * 60);
/// The longest tenant name a link carries, in bytes.
pub const MAX_TENANT_BYTES: usize = 200;
/// The label the link key is derived with (sql/0030 stores its result).
const KEY_LABEL: &[u8] = b"tailhook portal link key v1";

/// The key links are signed with, derived from the configured secret.
#[derive(Clone)]
pub struct LinkKey([u8; 32]);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(redacted)")
    }
}

impl LinkKey {
    /// HMAC-SHA256 of a fixed label keyed by the configured secret.
    pub fn derive(configured: &Secret) -> Self {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(configured.expose().as_bytes()).expect("HMAC takes any key length");
        mac.update(KEY_LABEL);
        Self(mac.finalize().into_bytes().into())
    }

    /// The bytes `tailhook.set_portal_key` stores, as hex.
    pub fn hex(&self) -> String {
        hex(&self.0)
    }

    fn mac(&self, body: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(body.as_bytes());
        mac
    }
}

/// What a valid link grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub tenant: String,
    /// Unix seconds.
    pub expires: u64,
    pub read_only: bool,
}

/// Why a token was refused (said to the browser: none of it is secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("this is not a portal link")]
    Malformed,
    #[error("this link's signature does not match (it was altered, or the portal key changed)")]
    Signature,
    #[error("this link has expired")]
    Expired,
}

/// Why a link cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MintError {
    #[error("tenant must be given and at most {MAX_TENANT_BYTES} bytes")]
    Tenant,
    #[error("the lifetime must be more than 0 and at most 24 hours")]
    Ttl,
}

/// Lowercase hex, as tokens and the stored key are written.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// A token for `tenant`, good for `ttl` from `now`.
pub fn mint(key: &LinkKey, tenant: &str, ttl: Duration, read_only: bool, now: SystemTime) -> Result<String, MintError> {
    if tenant.is_empty() || tenant.len() > MAX_TENANT_BYTES {
        return Err(MintError::Tenant);
    }
    if ttl.is_zero() || ttl > MAX_TTL {
        return Err(MintError::Ttl);
    }
    let expires = unix(now) + ttl.as_secs().max(1);
    let body = format!("v1.{}.{expires}.{}", hex(tenant.as_bytes()), if read_only { 'r' } else { 'w' });
    let signature = hex(&key.mac(&body).finalize().into_bytes());
    Ok(format!("{body}.{signature}"))
}

/// What `token` grants at `now`: the signature first (constant time), then its fields and expiry.
pub fn check(key: &LinkKey, token: &str, now: SystemTime) -> Result<Link, Refused> {
    let (body, signature) = token.rsplit_once('.').ok_or(Refused::Malformed)?;
    let signature = unhex(signature).filter(|s| s.len() == 32).ok_or(Refused::Malformed)?;
    key.mac(body).verify_slice(&signature).map_err(|_| Refused::Signature)?;
    let mut parts = body.split('.');
    let (Some("v1"), Some(tenant), Some(expires), Some(flag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refused::Malformed);
    };
    let tenant = unhex(tenant).and_then(|t| String::from_utf8(t).ok()).filter(|t| !t.is_empty());
    let (Some(tenant), Ok(expires)) = (tenant, expires.parse::<u64>()) else { return Err(Refused::Malformed) };
    let read_only = match flag {
        "r" => true,
        "w" => false,
        _ => return Err(Refused::Malformed),
    };
    if expires <= unix(now) {
        return Err(Refused::Expired);
    }
    Ok(Link { tenant, expires, read_only })
}

/// A lifetime such as `15m`, `2h`, `900s` or `900` (seconds).
pub fn parse_ttl(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = text.find(|c: char| !c.is_ascii_digit()).map_or((text, ""), |i| text.split_at(i));
    let n: u64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "" | "s" => n,
        "m" | "min" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        _ => return None,
    };
    Some(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> LinkKey {
        LinkKey::derive(&Secret::new(text))
    }

    #[test]
    fn a_link_says_its_tenant_expiry_and_flag() {
        let k = key("a portal key of enough length");
        let now = SystemTime::now();
        let token = mint(&k, "acme/eu.1 é", Duration::from_secs(60), true, now).unwrap();
        let link = check(&k, &token, now).unwrap();
        assert_eq!((link.tenant.as_str(), link.read_only), ("acme/eu.1 é", true));
        assert_eq!(link.expires, unix(now) + 60);
        assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'), "{token}");
    }

    #[test]
    fn changed_tenant_expiry_flag_or_key_is_refused() {
        let k = key("a portal key of enough length");
        let now = SystemTime::now();
        let token = mint(&k, "acme", Duration::from_secs(60), true, now).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let with = |i: usize, v: &str| {
            let mut p = parts.clone();
            p[i] = v;
            p.join(".")
        };
        let other_tenant = hex(b"globex");
        let later = (unix(now) + 3600).to_string();
        assert_eq!(check(&k, &with(1, &other_tenant), now), Err(Refused::Signature));
        assert_eq!(check(&k, &with(2, &later), now), Err(Refused::Signature));
        assert_eq!(check(&k, &with(3, "w"), now), Err(Refused::Signature));
        assert_eq!(check(&key("another portal key entirely"), &token, now), Err(Refused::Signature));
        assert_eq!(check(&k, "nonsense", now), Err(Refused::Malformed));
        assert_eq!(check(&k, &token, now + Duration::from_secs(60)), Err(Refused::Expired));
        assert!(check(&k, &token, now + Duration::from_secs(59)).is_ok());
    }

    #[test]
    fn lifetimes_and_tenants_are_bounded() {
        let k = key("a portal key of enough length");
        let now = SystemTime::now();
        assert_eq!(mint(&k, "", DEFAULT_TTL, false, now), Err(MintError::Tenant));
        assert_eq!(mint(&k, &"x".repeat(201), DEFAULT_TTL, false, now), Err(MintError::Tenant));
        assert_eq!(mint(&k, "acme", Duration::ZERO, false, now), Err(MintError::Ttl));
        assert_eq!(mint(&k, "acme", MAX_TTL + Duration::from_secs(1), false, now), Err(MintError::Ttl));
        assert_eq!(parse_ttl("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_ttl("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_ttl("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_ttl("1 day"), None);
    }
}
