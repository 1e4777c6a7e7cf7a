//! Standard Webhooks signatures, and the one compatibility (legacy) signature an endpoint may add: pure functions of key, timestamp and body bytes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::header::HeaderName;
use sha2::{Sha256, Sha512};
use std::fmt;

/// The decoded key of one `whsec_<base64>` secret, kept as the HMAC state
/// it starts (so signing a request does not redo the key schedule).
#[derive(Clone)]
pub struct SigningKey(Hmac<Sha256>);

/// Shortest and longest key a secret may carry, in bytes (Standard Webhooks).
pub const KEY_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// Why a secret is refused. The secret itself is never part of the message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidSecret {
    #[error("secret is not `whsec_` followed by padded base64")]
    Format,
    #[error("secret decodes to {0} bytes; Standard Webhooks secrets are 24 to 64 random bytes")]
    Length(usize),
}

impl SigningKey {
    /// Parses `whsec_<base64>` holding 24 to 64 bytes, as Standard Webhooks
    /// specifies (`tailhook.secrets_valid` in SQL checks the same).
    pub fn from_whsec(secret: &str) -> Result<Self, InvalidSecret> {
        let encoded = secret.strip_prefix("whsec_").ok_or(InvalidSecret::Format)?;
        let key = STANDARD.decode(encoded).map_err(|_| InvalidSecret::Format)?;
        if !KEY_BYTES.contains(&key.len()) {
            return Err(InvalidSecret::Length(key.len()));
        }
        let mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| InvalidSecret::Length(key.len()))?;
        Ok(Self(mac))
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
        let mut mac = key.0.clone();
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

/// How a legacy signature encodes its HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Hex,
    Base64,
}

/// What a legacy signature is an HMAC of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The exact body bytes: the value is `<prefix><HMAC>`.
    Body,
    /// `<unix seconds>.<body>`: the value is `t=<unix seconds>,v1=<prefix><HMAC>`.
    Timestamped,
}

/// The HMAC state a legacy secret starts, per algorithm.
#[derive(Clone)]
enum LegacyMac {
    Sha256(Hmac<Sha256>),
    Sha512(Hmac<Sha512>),
}

/// One extra signature header (GitHub's `X-Hub-Signature-256`, Shopify's
/// base64 `X-Shopify-Hmac-Sha256`, `t=…,v1=…`): its name and form, and the
/// key kept as the HMAC state it starts (no key schedule per request).
#[derive(Clone)]
pub struct LegacySigner {
    pub header: HeaderName,
    mac: LegacyMac,
    pub encoding: Encoding,
    pub prefix: String,
    pub format: Format,
    /// Whether the body is sent (and signed) as Python's
    /// `json.dumps(payload, sort_keys=True)` writes it (`pybody`).
    pub python_sorted_body: bool,
}

impl fmt::Debug for LegacySigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let algorithm = match self.mac {
            LegacyMac::Sha256(_) => "sha256",
            LegacyMac::Sha512(_) => "sha512",
        };
        f.debug_struct("LegacySigner")
            .field("header", &self.header)
            .field("algorithm", &algorithm)
            .field("encoding", &self.encoding)
            .field("prefix", &self.prefix)
            .field("format", &self.format)
            .field("python_sorted_body", &self.python_sorted_body)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl LegacySigner {
    /// `sha512` selects HMAC-SHA512, else HMAC-SHA256; the secret's bytes are the key.
    pub fn new(
        header: HeaderName,
        sha512: bool,
        encoding: Encoding,
        prefix: String,
        format: Format,
        secret: &[u8],
    ) -> Self {
        // HMAC takes a key of any length: neither call fails.
        let mac = if sha512 {
            LegacyMac::Sha512(Hmac::<Sha512>::new_from_slice(secret).expect("HMAC takes any key length"))
        } else {
            LegacyMac::Sha256(Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length"))
        };
        Self { header, mac, encoding, prefix, format, python_sorted_body: false }
    }

    /// The header's value for `body` sent at `timestamp`.
    pub fn sign(&self, timestamp: i64, body: &[u8]) -> String {
        let ts = timestamp.to_string();
        let feed = |mac: &mut dyn FnMut(&[u8])| {
            if self.format == Format::Timestamped {
                mac(ts.as_bytes());
                mac(b".");
            }
            mac(body);
        };
        let digest: Vec<u8> = match &self.mac {
            LegacyMac::Sha256(key) => {
                let mut mac = key.clone();
                feed(&mut |b| mac.update(b));
                mac.finalize().into_bytes().to_vec()
            }
            LegacyMac::Sha512(key) => {
                let mut mac = key.clone();
                feed(&mut |b| mac.update(b));
                mac.finalize().into_bytes().to_vec()
            }
        };
        let mut value = String::with_capacity(self.prefix.len() + 24 + digest.len() * 2);
        if self.format == Format::Timestamped {
            value.push_str("t=");
            value.push_str(&ts);
            value.push_str(",v1=");
        }
        value.push_str(&self.prefix);
        match self.encoding {
            Encoding::Hex => {
                const DIGITS: &[u8; 16] = b"0123456789abcdef";
                for b in digest {
                    value.push(DIGITS[usize::from(b >> 4)] as char);
                    value.push(DIGITS[usize::from(b & 15)] as char);
                }
            }
            Encoding::Base64 => STANDARD.encode_string(digest, &mut value),
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub's documented example ("Validating webhook deliveries"):
    /// secret "It's a Secret to Everybody", payload "Hello, World!".
    #[test]
    fn github_documented_vector() {
        let signer = LegacySigner::new(
            HeaderName::from_static("x-hub-signature-256"),
            false,
            Encoding::Hex,
            "sha256=".into(),
            Format::Body,
            b"It's a Secret to Everybody",
        );
        assert_eq!(
            signer.sign(0, b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        assert!(!format!("{signer:?}").contains("Secret to"));
    }

    #[test]
    fn timestamped_and_sha512_forms() {
        let key = b"0123456789abcdef";
        let ts = LegacySigner::new(
            HeaderName::from_static("x-sig"),
            false,
            Encoding::Hex,
            String::new(),
            Format::Timestamped,
            key,
        );
        let plain =
            LegacySigner::new(HeaderName::from_static("x-sig"), false, Encoding::Hex, String::new(), Format::Body, key);
        assert_eq!(ts.sign(1700000000, b"{}"), format!("t=1700000000,v1={}", plain.sign(0, b"1700000000.{}")));
        let long = LegacySigner::new(
            HeaderName::from_static("x-sig"),
            true,
            Encoding::Base64,
            "sha512=".into(),
            Format::Body,
            key,
        );
        let value = long.sign(0, b"{}");
        assert_eq!(STANDARD.decode(value.strip_prefix("sha512=").unwrap()).unwrap().len(), 64);
    }

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

    /// Signed by the Standard Webhooks reference library (Python
    /// `standardwebhooks`), not by this code: (secret, id, timestamp, body, signature).
    const REFERENCE: &[(&str, &str, i64, &str, &str)] = &[
        (KEY, ID, TS, r#"{"test": 2432232314}"#, EXPECTED),
        (
            "whsec_c2Vjb25kLWtleS1mb3Itcm90YXRpb24h",
            "0b8f0f5e-6a43-4a8e-9d4e-0c7e2a1f1a11",
            1_764_000_000,
            r#"{"id":"0b8f0f5e-6a43-4a8e-9d4e-0c7e2a1f1a11","type":"invoice.paid","timestamp":"2026-11-24T10:00:00.000000Z","data":{"amount":42,"note":"café ☃"}}"#,
            "v1,NTxGkAt1gCgyjdicOO/5Zem7YO4QNHFRMYmZLq7TPa4=",
        ),
        (
            "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==",
            "evt_1",
            0,
            "",
            "v1,eT8iE1HaBmn6+rRUCGUg4455mmJdUIl+bfWcofYHHEg=",
        ),
    ];

    #[test]
    fn reference_library_vectors() {
        for (secret, id, ts, body, expected) in REFERENCE {
            let key = SigningKey::from_whsec(secret).unwrap();
            assert_eq!(sign(&[key], id, *ts, body.as_bytes()).as_deref(), Some(*expected), "{id}");
        }
    }

    proptest::proptest! {
        /// Each `v1,` entry is that key's signature alone, in key order.
        #[test]
        fn every_key_signs_on_its_own(
            keys in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 24..=64), 1..4),
            id in "[a-zA-Z0-9_-]{1,40}",
            ts in proptest::prelude::any::<i64>(),
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        ) {
            let keys: Vec<SigningKey> =
                keys.iter().map(|k| SigningKey::from_whsec(&format!("whsec_{}", STANDARD.encode(k))).unwrap()).collect();
            let header = sign(&keys, &id, ts, &body).unwrap();
            let entries: Vec<&str> = header.split(' ').collect();
            proptest::prop_assert_eq!(entries.len(), keys.len());
            for (entry, key) in entries.iter().zip(&keys) {
                proptest::prop_assert_eq!(Some(entry.to_string()), sign(std::slice::from_ref(key), &id, ts, &body));
            }
        }

        /// The exact bytes are signed: changing any one changes the signature.
        #[test]
        fn any_changed_byte_changes_the_signature(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..300),
            at in proptest::prelude::any::<proptest::sample::Index>(),
            xor in 1u8..,
        ) {
            let key = SigningKey::from_whsec(KEY).unwrap();
            let mut changed = body.clone();
            changed[at.index(body.len())] ^= xor;
            proptest::prop_assert_ne!(sign(std::slice::from_ref(&key), ID, TS, &body), sign(&[key], ID, TS, &changed));
        }
    }

    #[test]
    fn one_signature_per_key() {
        let a = SigningKey::from_whsec(KEY).unwrap();
        let b = SigningKey::from_whsec("whsec_c2Vjb25kLWtleS1vZi0yNC1ieXRlcy1hdC1sZWFzdA==").unwrap();
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
        let cases = [
            ("", InvalidSecret::Format),
            ("whsec_not base64!", InvalidSecret::Format),
            // the prefix is required, as in the schema's CHECK
            (KEY.trim_start_matches("whsec_"), InvalidSecret::Format),
            ("whsec_", InvalidSecret::Length(0)),
            ("whsec_YWJj", InvalidSecret::Length(3)),
            // 23 and 65 bytes: just outside the range
            ("whsec_YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnc=", InvalidSecret::Length(23)),
            (
                "whsec_YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5emFiY2RlZmdoaWprbG0=",
                InvalidSecret::Length(65),
            ),
        ];
        for (bad, expected) in cases {
            assert_eq!(SigningKey::from_whsec(bad).unwrap_err(), expected, "{bad:?}");
        }
        for n in [24, 64] {
            let ok = format!("whsec_{}", STANDARD.encode(vec![7u8; n]));
            assert!(SigningKey::from_whsec(&ok).is_ok(), "{n} bytes");
        }
    }

    #[test]
    fn debug_hides_key() {
        let key = SigningKey::from_whsec(KEY).unwrap();
        assert_eq!(format!("{key:?}"), "SigningKey([redacted])");
    }
}
