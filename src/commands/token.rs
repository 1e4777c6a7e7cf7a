//! `tailhook token create|list|revoke`: the JSON API's bearer tokens (the SQL functions of sql/0027), printed once when made, listed without secrets.

use crate::db::{Db, DbError};

/// The token sub-commands.
#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Make a token and print it (once: only its SHA-256 is stored)
    Create {
        /// read (GET only), write (also create, change, pause, test, publish, redeliver) or admin (also delete endpoints, redeliver by query)
        #[arg(long, value_parser = ["read", "write", "admin"])]
        scope: String,
        /// Bind the token to this tenant: it sees and changes only that tenant's endpoints, events and deliveries
        #[arg(long)]
        tenant: Option<String>,
        /// A name to tell it apart in `token list` and to revoke it by
        #[arg(long)]
        name: Option<String>,
        /// Expire after this PostgreSQL interval (e.g. "90 days"); default never
        #[arg(long, value_name = "INTERVAL")]
        expires: Option<String>,
    },
    /// List tokens: id, prefix, name, scope, tenant, dates (never the token)
    List,
    /// Revoke tokens by id, name or prefix (`thk_` and 8 hex digits)
    Revoke {
        /// The token's id, name or prefix
        token: String,
    },
}

/// Why a token command failed: bad input (exit 2) or the database.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    Database(#[from] DbError),
}

/// Runs one token command; what to print.
pub async fn run(db: &Db, command: TokenCommand) -> Result<String, TokenError> {
    match command {
        TokenCommand::Create { scope, tenant, name, expires } => db
            .api_token_create(&scope, tenant.as_deref(), name.as_deref(), expires.as_deref())
            .await
            .map_err(|e| match (e.code(), &e) {
                // invalid_parameter_value, invalid_datetime_format, interval_field_overflow
                (Some("22023" | "22007" | "22015"), DbError::Query(pg)) => {
                    TokenError::BadInput(crate::db::describe(pg))
                }
                _ => TokenError::Database(e),
            }),
        TokenCommand::List => {
            let tokens = db.api_tokens().await?;
            let mut out = String::from("id\tprefix\tname\tscope\ttenant\tcreated\texpires\trevoked");
            for t in tokens {
                let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
                out.push_str(&format!(
                    "\n{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    t.id,
                    t.prefix,
                    or_dash(&t.name),
                    t.scope,
                    or_dash(&t.tenant),
                    t.created_at,
                    or_dash(&t.expires_at),
                    or_dash(&t.revoked_at)
                ));
            }
            Ok(out)
        }
        TokenCommand::Revoke { token } => match db.api_token_revoke(&token).await? {
            0 => Err(TokenError::BadInput(format!("no live token has id, name or prefix `{token}`"))),
            n => Ok(format!("revoked {n} token{}", if n == 1 { "" } else { "s" })),
        },
    }
}
