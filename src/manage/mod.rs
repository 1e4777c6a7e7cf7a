//! Managing endpoints, events and deliveries as functions over the pool, each under an optional tenant scope: what the JSON API (and, later, the console's endpoint pages) call.
//!
//! A [`Scope`] bound to a tenant makes every function act on that tenant's
//! endpoints only (and on events published for it, and deliveries to its
//! endpoints): anything else is [`ManageError::NotFound`], exactly as if it
//! did not exist. Writes go through the same rules as SQL and the config
//! file: the `endpoints_validate` trigger (sql/0023) and CHECK constraints
//! for what the row holds, [`crate::config::rules`] for what the database
//! does not check (filters, the retry schedule, the URL's form); this module
//! only maps their refusals to a field and a rule.

pub mod deliveries;
pub mod endpoints;
pub mod events;
pub mod portal;
pub mod tokens;

use crate::config::rules::Problem;
use crate::db::DbError;

/// Whose data a caller may see and change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// `Some`: only this tenant's; `None`: every tenant's.
    pub tenant: Option<String>,
}

impl Scope {
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }
}

/// Why an operation did not happen. Never holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    /// Missing, or not within the scope (the same answer either way).
    #[error("not found")]
    NotFound,
    /// A value breaks a rule: the field, the rule's name, and why.
    #[error("{field}: {message}")]
    Invalid { field: String, rule: String, message: String },
    /// The request clashes with what is there (`code` says how).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{0}")]
    Database(DbError),
}

impl ManageError {
    pub fn invalid(field: impl Into<String>, rule: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid { field: field.into(), rule: rule.into(), message: message.into() }
    }

    /// A [`crate::config::rules`] refusal, under the rule named `rule`.
    pub fn problem(p: Problem, rule: &str) -> Self {
        Self::invalid(p.field, rule, p.reason)
    }
}

/// Endpoint columns a CHECK constraint may name (`endpoints_<column>_...`), longest first.
const CHECKED_COLUMNS: [(&str, &str); 19] = [
    ("backoff_initial_ms", "backoff_initial_ms"),
    ("rate_limit_per_sec", "rate_limit_per_sec"),
    ("standard_signature", "standard_signature"),
    ("legacy_signature", "legacy_signature"),
    ("backoff_max_ms", "backoff_max_ms"),
    ("legacy_secret", "legacy_secret"),
    ("max_in_flight", "max_in_flight"),
    ("max_attempts", "max_attempts"),
    ("event_types", "event_types"),
    ("filter_path", "filter_path"),
    ("managed_by", "managed_by"),
    ("timeout_ms", "timeout_ms"),
    ("rate_limit", "rate_limit_per_sec"),
    ("transform", "transform"),
    ("secrets", "secrets"),
    ("headers", "headers"),
    ("filter", "filter"),
    ("name", "name"),
    ("url", "url"),
];

impl From<DbError> for ManageError {
    /// The trigger's and the constraints' refusals become [`ManageError::Invalid`]
    /// with the column and constraint they name (their messages hold no
    /// value, see sql/0023); a taken name becomes a conflict.
    fn from(e: DbError) -> Self {
        let DbError::Query(pg) = &e else { return Self::Database(e) };
        let Some(db) = pg.as_db_error() else { return Self::Database(e) };
        let message = db.message().trim_start_matches("tailhook.endpoints ").to_owned();
        match db.code().code() {
            // check_violation, not_null_violation
            "23514" | "23502" => {
                let rule = db.constraint().unwrap_or("not_null").to_owned();
                let field = db.column().map(str::to_owned).unwrap_or_else(|| column_of(&rule));
                let message = if db.column().is_some() || db.code().code() == "23502" {
                    message
                } else {
                    format!("{field}: breaks the rule {rule}")
                };
                let message = message.strip_prefix(&format!("{field}: ")).map(str::to_owned).unwrap_or(message);
                Self::Invalid { field, rule, message }
            }
            // unique_violation
            "23505" => Self::Conflict { code: "name_taken", message: "an endpoint with this name exists".into() },
            // syntax_error: a filter_path PostgreSQL cannot parse
            "42601" if message.contains("jsonpath") => Self::invalid("filter_path", "jsonpath_syntax", message),
            // data exceptions (a NUL character, a bad number, time or JSON), program_limit_exceeded (a value too large to index)
            code if code.starts_with("22") || code == "54000" => Self::invalid("body", "value", message),
            // insufficient_privilege: tailhook.publish's reserved types
            "42501" if message.contains("reserved") => Self::invalid("event_type", "event_type_reserved", message),
            _ => Self::Database(e),
        }
    }
}

fn column_of(constraint: &str) -> String {
    let rest = constraint.strip_prefix("endpoints_").unwrap_or(constraint);
    CHECKED_COLUMNS.iter().find(|(p, _)| rest.starts_with(p)).map_or_else(|| rest.to_owned(), |(_, c)| (*c).to_owned())
}

/// A new endpoint secret: `whsec_` and 32 random bytes in base64, as `tailhook secret` prints.
pub fn new_secret() -> Result<String, ManageError> {
    use base64::Engine;
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; crate::config::sealed::KEY_BYTES];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ManageError::Database(DbError::Url("the system's random source failed".into())))?;
    Ok(format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraints_name_their_column() {
        assert_eq!(column_of("endpoints_backoff_max_ms_at_least_initial"), "backoff_max_ms");
        assert_eq!(column_of("endpoints_max_attempts_max"), "max_attempts");
        assert_eq!(column_of("endpoints_url_http"), "url");
        assert_eq!(column_of("endpoints_rate_limit_positive"), "rate_limit_per_sec");
        assert!(new_secret().unwrap().starts_with("whsec_"));
    }
}
