//! Endpoint secrets and header values sealed at rest: ChaCha20-Poly1305 under the keys of `[secrets] keys` (the first seals, every one opens).
//!
//! A sealed value is `enc:v1:<key id>:<base64 of nonce, ciphertext, tag>`:
//! a random 96-bit nonce per value, the key id the first 8 hex digits of a
//! SHA-256 of the key (so SQL can tell which rows a key still holds). The
//! database checks only the form and the length of what is inside
//! (`tailhook.sealed_length` in `sql/0021_privileges.sql`); the plaintext is
//! checked by `rules`, as for the config file. ring, already linked for TLS,
//! provides the AEAD.

use crate::config::secret::Secret;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;

/// What every sealed value starts with.
pub const PREFIX: &str = "enc:v1:";
/// Bytes a sealed value holds besides its plaintext: nonce and tag.
pub const OVERHEAD: usize = NONCE_LEN + 16;
/// Bytes of a key.
pub const KEY_BYTES: usize = 32;
/// Bound to every value sealed (tailhook's values, this format's version).
const CONTEXT: &[u8] = b"tailhook endpoint value v1";

/// One key: its id and the AEAD key it makes.
struct SealingKey {
    id: String,
    key: LessSafeKey,
}

/// The configured keys, first one sealing; empty: values are stored as written.
#[derive(Clone, Default)]
pub struct Keys(Arc<Vec<SealingKey>>);

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter().map(|k| &k.id)).finish()
    }
}

/// How a stored value stands against the configured keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Not sealed: written as plaintext.
    Plain,
    /// Sealed under a key other than the first.
    Stale,
    /// Sealed under the first key.
    Current,
}

/// Why a stored value cannot be opened. Never holds the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("is sealed but secrets.keys is not set")]
    NoKeys,
    #[error("is sealed under key {0}, which is not among secrets.keys")]
    UnknownKey(String),
    #[error("is not a well-formed sealed value")]
    Malformed,
    #[error("cannot be opened with key {0} (altered, or sealed by another key with the same id)")]
    Rejected(String),
}

/// The id of a key: the first 8 hex digits of SHA-256 over a fixed label and the key.
fn key_id(key: &[u8]) -> String {
    let digest = Sha256::new().chain_update(b"tailhook sealing key id\0").chain_update(key).finalize();
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

impl Keys {
    /// Keys from their base64 text, in order. On error: the index of the bad
    /// key and why (never the key).
    pub fn parse(keys: &[Secret]) -> Result<Self, (usize, String)> {
        let mut parsed: Vec<SealingKey> = Vec::with_capacity(keys.len());
        for (i, text) in keys.iter().enumerate() {
            let bytes =
                STANDARD.decode(text.expose().trim()).ok().filter(|b| b.len() == KEY_BYTES).ok_or_else(|| {
                    (i, format!("is not the base64 of {KEY_BYTES} bytes (make one with `openssl rand -base64 32`)"))
                })?;
            let id = key_id(&bytes);
            if let Some(j) = parsed.iter().position(|k| k.id == id) {
                return Err((i, format!("is the same key as secrets.keys[{j}]")));
            }
            let unbound = UnboundKey::new(&CHACHA20_POLY1305, &bytes).map_err(|_| (i, "is not a usable key".into()))?;
            parsed.push(SealingKey { id, key: LessSafeKey::new(unbound) });
        }
        Ok(Self(Arc::new(parsed)))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The id of the key that seals, if any.
    pub fn sealing_id(&self) -> Option<&str> {
        self.0.first().map(|k| k.id.as_str())
    }

    /// `plaintext` sealed under the first key; `None` when there is no key.
    pub fn seal(&self, plaintext: &str) -> Option<String> {
        let first = self.0.first()?;
        let mut nonce = [0u8; NONCE_LEN];
        // The OS's random source; it does not fail on supported systems, and
        // a value is better left unsealed than sealed with a fixed nonce.
        SystemRandom::new().fill(&mut nonce).ok()?;
        let mut data = plaintext.as_bytes().to_vec();
        let tag = first
            .key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(CONTEXT), &mut data)
            .ok()?;
        let mut out = Vec::with_capacity(NONCE_LEN + data.len() + tag.as_ref().len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&data);
        out.extend_from_slice(tag.as_ref());
        Some(format!("{PREFIX}{}:{}", first.id, STANDARD.encode(out)))
    }

    /// The plaintext of a stored value and how it stands; a value that is not
    /// sealed is its own plaintext.
    pub fn open(&self, stored: &str) -> Result<(String, Standing), OpenError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok((stored.to_owned(), Standing::Plain));
        };
        if self.is_empty() {
            return Err(OpenError::NoKeys);
        }
        let (id, encoded) = rest.split_once(':').ok_or(OpenError::Malformed)?;
        if id.len() != 8 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(OpenError::Malformed);
        }
        let (index, key) =
            self.0.iter().enumerate().find(|(_, k)| k.id == id).ok_or_else(|| OpenError::UnknownKey(id.to_owned()))?;
        let mut data = STANDARD.decode(encoded).map_err(|_| OpenError::Malformed)?;
        if data.len() < OVERHEAD {
            return Err(OpenError::Malformed);
        }
        let nonce = Nonce::try_assume_unique_for_key(&data[..NONCE_LEN]).map_err(|_| OpenError::Malformed)?;
        let plain = key
            .key
            .open_within(nonce, Aad::from(CONTEXT), &mut data, NONCE_LEN..)
            .map_err(|_| OpenError::Rejected(id.to_owned()))?;
        let text = String::from_utf8(plain.to_vec()).map_err(|_| OpenError::Rejected(id.to_owned()))?;
        Ok((text, if index == 0 { Standing::Current } else { Standing::Stale }))
    }

    /// What to store for `plaintext` where `previous` is stored now:
    /// `previous` itself when it holds the same plaintext, however it is
    /// stored (plaintext, under an older key), else `plaintext` sealed. For
    /// the config file's endpoints: an unchanged value must not look like a
    /// change (that would re-enable an endpoint tailhook disabled); the
    /// endpoint cache then seals it again in place if it is not current.
    pub fn unchanged_or_sealed(&self, plaintext: &str, previous: Option<&str>) -> String {
        match previous {
            Some(previous) if self.open(previous).is_ok_and(|(same, _)| same == plaintext) => previous.to_owned(),
            _ => self.seal(plaintext).unwrap_or_else(|| plaintext.to_owned()),
        }
    }

    /// What to store for `plaintext`: `previous` (a stored value) when it
    /// holds the same plaintext and is current, so an unchanged value keeps
    /// its bytes; else `plaintext` sealed (or as is, without keys).
    pub fn store(&self, plaintext: &str, previous: Option<&str>) -> String {
        if let Some(previous) = previous {
            match self.open(previous) {
                Ok((same, Standing::Current)) if same == plaintext => return previous.to_owned(),
                Ok((same, Standing::Plain)) if same == plaintext && self.is_empty() => return previous.to_owned(),
                _ => {}
            }
        }
        self.seal(plaintext).unwrap_or_else(|| plaintext.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(texts: &[&str]) -> Keys {
        Keys::parse(&texts.iter().map(|t| Secret::new(*t)).collect::<Vec<_>>()).unwrap()
    }

    const A: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";
    const B: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn sealed_values_open_to_what_was_sealed_and_never_show_it() {
        let k = keys(&[A]);
        let sealed = k.seal(SECRET).unwrap();
        assert!(sealed.starts_with(&format!("enc:v1:{}:", k.sealing_id().unwrap())), "{sealed}");
        assert!(!sealed.contains("MfKQ9r8"));
        assert_ne!(k.seal(SECRET).unwrap(), sealed, "a fresh nonce each time");
        assert_eq!(k.open(&sealed), Ok((SECRET.to_owned(), Standing::Current)));
        assert_eq!(k.open(SECRET), Ok((SECRET.to_owned(), Standing::Plain)));
        assert_eq!(format!("{k:?}"), format!("[\"{}\"]", k.sealing_id().unwrap()));
    }

    #[test]
    fn the_first_key_seals_and_every_key_opens() {
        let old = keys(&[A]).seal(SECRET).unwrap();
        let both = keys(&[B, A]);
        assert_eq!(both.open(&old), Ok((SECRET.to_owned(), Standing::Stale)));
        let new = both.seal(SECRET).unwrap();
        assert_eq!(both.open(&new).unwrap().1, Standing::Current);
        let only_b = keys(&[B]);
        let a_id = keys(&[A]).sealing_id().unwrap().to_owned();
        assert_eq!(only_b.open(&old), Err(OpenError::UnknownKey(a_id)));
        assert_eq!(Keys::default().open(&old), Err(OpenError::NoKeys));
        assert_eq!(Keys::default().seal(SECRET), None);
    }

    #[test]
    fn altered_or_malformed_values_are_refused_without_echoing_them() {
        let k = keys(&[A]);
        let sealed = k.seal(SECRET).unwrap();
        let id = k.sealing_id().unwrap().to_owned();
        let mut bytes = STANDARD.decode(sealed.rsplit(':').next().unwrap()).unwrap();
        bytes[NONCE_LEN] ^= 1;
        let altered = format!("{PREFIX}{id}:{}", STANDARD.encode(&bytes));
        assert_eq!(k.open(&altered), Err(OpenError::Rejected(id.clone())));
        for bad in ["enc:v1:", "enc:v1:zz:abc", &format!("enc:v1:{id}:!!"), &format!("enc:v1:{id}:AAAA")] {
            assert_eq!(k.open(bad), Err(OpenError::Malformed), "{bad}");
        }
        for e in [OpenError::Rejected(id.clone()), OpenError::Malformed, OpenError::NoKeys] {
            assert!(!e.to_string().contains("MfKQ9r8"));
        }
    }

    #[test]
    fn storing_an_unchanged_value_keeps_its_bytes() {
        let k = keys(&[A]);
        let sealed = k.seal(SECRET).unwrap();
        assert_eq!(k.store(SECRET, Some(&sealed)), sealed);
        let other = k.store("whsec_other", Some(&sealed));
        assert_ne!(other, sealed);
        assert_eq!(k.open(&other).unwrap().0, "whsec_other");
        let rotated = keys(&[B, A]);
        let resealed = rotated.store(SECRET, Some(&sealed));
        assert_eq!(rotated.open(&resealed), Ok((SECRET.to_owned(), Standing::Current)));
        assert_eq!(Keys::default().store(SECRET, Some(SECRET)), SECRET);
        assert_eq!(Keys::default().store(SECRET, None), SECRET);
        // The config file's sync keeps whatever holds the same plaintext.
        assert_eq!(rotated.unchanged_or_sealed(SECRET, Some(&sealed)), sealed, "under an older key");
        assert_eq!(rotated.unchanged_or_sealed(SECRET, Some(SECRET)), SECRET, "plaintext");
        let changed = rotated.unchanged_or_sealed("whsec_other", Some(&sealed));
        assert_eq!(rotated.open(&changed), Ok(("whsec_other".to_owned(), Standing::Current)));
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64_and_distinct() {
        let parse = |texts: &[&str]| Keys::parse(&texts.iter().map(|t| Secret::new(*t)).collect::<Vec<_>>());
        assert_eq!(parse(&["c2hvcnQ="]).unwrap_err().0, 0);
        assert!(parse(&[A, "not base64!"]).unwrap_err().1.starts_with("is not the base64 of 32 bytes"));
        assert_eq!(parse(&[A, A]).unwrap_err(), (1, "is the same key as secrets.keys[0]".to_owned()));
        assert!(parse(&[]).unwrap().is_empty());
    }

    /// The length the database computes for a sealed value (`tailhook.sealed_length`)
    /// is that of its plaintext.
    #[test]
    fn sealed_length_as_sql_computes_it() {
        let k = keys(&[A]);
        for len in [0, 1, 2, 3, 38, 94, 4096] {
            let sealed = k.seal(&"x".repeat(len)).unwrap();
            let encoded = sealed.len() - 16;
            let padding = sealed.len() - sealed.trim_end_matches('=').len();
            assert_eq!(encoded % 4, 0);
            assert_eq!(encoded / 4 * 3 - padding - 28, len);
        }
    }
}
