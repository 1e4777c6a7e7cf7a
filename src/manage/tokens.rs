//! API tokens: `thk_` and 64 hex digits, stored as their SHA-256 only; scopes read < write < admin, optionally bound to a tenant.

use super::{ManageError, Scope};
use crate::db::Db;
use sha2::{Digest, Sha256};

/// What a token lets its bearer do; each includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Every GET.
    Read,
    /// Create, change, pause, resume, enable, rotate and test endpoints; publish; redeliver.
    Write,
    /// Delete endpoints; redeliver by query.
    Admin,
}

impl Level {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "read" => Some(Self::Read),
            "write" => Some(Self::Write),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

/// A token that checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub token_id: i64,
    pub level: Level,
    pub scope: Scope,
}

/// Whether `text` has a token's form (so a wrong one is not even looked up).
pub fn well_formed(text: &str) -> bool {
    text.len() == 68 && text.starts_with("thk_") && text[4..].bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn sha256_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The grant of a live token; `None` for an unknown, revoked, expired or malformed one.
pub async fn check(db: &Db, token: &str) -> Result<Option<Grant>, ManageError> {
    if !well_formed(token) {
        return Ok(None);
    }
    let Some((token_id, level, tenant)) = db.api_token_check(&sha256_hex(token)).await? else { return Ok(None) };
    let Some(level) = Level::parse(&level) else { return Ok(None) };
    Ok(Some(Grant { token_id, level, scope: Scope { tenant } }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered_and_forms_checked() {
        assert!(Level::Read < Level::Write && Level::Write < Level::Admin);
        assert!(well_formed(&format!("thk_{}", "0a".repeat(32))));
        assert!(!well_formed(&format!("thk_{}", "0A".repeat(32))));
        assert!(!well_formed("thk_short"));
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
