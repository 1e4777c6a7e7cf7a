//! Standard Webhooks signatures: a pure function of key, message id, timestamp and body bytes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

/// The decoded key of one `whsec_<base64>` secret.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("secret is not `whsec_` followed by base64")]
pub struct InvalidSecret;

impl SigningKey {
    /// Parses `whsec_<base64>` (the prefix is optional, as in Svix's libraries).
    pub fn from_whsec(secret: &str) -> Result<Self, InvalidSecret> {
        let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
        let key = STANDARD.decode(encoded).map_err(|_| InvalidSecret)?;
        if key.is_empty() {
            return Err(InvalidSecret);
        }
        Ok(Self(key))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

/// The `webhook-signature` header value: one `v1,<base64>` entry per key,
/// space-separated, each an HMAC-SHA256 of `{msg_id}.{timestamp}.{body}`.
/// `None` when there is no key (the header is then left out).
pub fn sign(keys: &[SigningKey], msg_id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    if keys.is_empty() {
        return None;
    }
    let ts = timestamp.to_string();
    let mut header = String::with_capacity(keys.len() * 48);
    for key in keys {
        let mut mac = Hmac::<Sha256>::new_from_slice(&key.0).expect("hmac takes keys of any length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(ts.as_bytes());
        mac.update(b".");
        mac.update(body);
        if !header.is_empty() {
            header.push(' ');
        }
        header.push_str("v1,");
        STANDARD.encode_string(mac.finalize().into_bytes(), &mut header);
    }
    Some(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn standard_webhooks_vector() {
        let key = SigningKey::from_whsec(KEY).unwrap();
        assert_eq!(sign(&[key], ID, TS, BODY).as_deref(), Some(EXPECTED));
    }

    #[test]
    fn prefix_is_optional() {
        let key = SigningKey::from_whsec(KEY.trim_start_matches("whsec_")).unwrap();
        assert_eq!(sign(&[key], ID, TS, BODY).as_deref(), Some(EXPECTED));
    }

    #[test]
    fn one_signature_per_key() {
        let a = SigningKey::from_whsec(KEY).unwrap();
        let b = SigningKey::from_whsec("whsec_c2Vjb25kLWtleQ==").unwrap();
        let header = sign(&[b, a], ID, TS, BODY).unwrap();
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts[0].starts_with("v1,") && parts[0] != EXPECTED);
        assert_eq!(parts[1], EXPECTED);
    }

    #[test]
    fn no_key_no_header() {
        assert_eq!(sign(&[], ID, TS, BODY), None);
    }

    #[test]
    fn bad_secrets_are_rejected() {
        for bad in ["whsec_", "whsec_not base64!", ""] {
            assert_eq!(SigningKey::from_whsec(bad).unwrap_err(), InvalidSecret, "{bad:?}");
        }
    }

    #[test]
    fn debug_hides_key() {
        let key = SigningKey::from_whsec(KEY).unwrap();
        assert_eq!(format!("{key:?}"), "SigningKey([redacted])");
    }
}
