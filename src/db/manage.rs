//! Typed wrappers around the JSON API's statements (`sql/queries/api_*.sql`), one function per file; `tenant` is the token's tenant (`None`: any).

use super::typed::Param;
use super::{Db, DbError};

const TOKEN_CHECK: &str = include_str!("../../sql/queries/api_token_check.sql");
const TOKEN_CREATE: &str = include_str!("../../sql/queries/api_token_create.sql");
const TOKEN_REVOKE: &str = include_str!("../../sql/queries/api_token_revoke.sql");
const TOKENS_LIST: &str = include_str!("../../sql/queries/api_tokens_list.sql");
const ENDPOINTS_LIST: &str = include_str!("../../sql/queries/api_endpoints_list.sql");
const ENDPOINT_STATE: &str = include_str!("../../sql/queries/api_endpoint_state.sql");
const ENDPOINT_CREATE: &str = include_str!("../../sql/queries/api_endpoint_create.sql");
const ENDPOINT_UPDATE: &str = include_str!("../../sql/queries/api_endpoint_update.sql");
const ENDPOINT_DELETE: &str = include_str!("../../sql/queries/api_endpoint_delete.sql");
const ENDPOINT_PAUSE: &str = include_str!("../../sql/queries/api_endpoint_pause.sql");
const ENDPOINT_ENABLE: &str = include_str!("../../sql/queries/api_endpoint_enable.sql");
const ENDPOINT_ROTATE: &str = include_str!("../../sql/queries/api_endpoint_rotate.sql");
const RETIRE_SECRETS: &str = include_str!("../../sql/queries/api_retire_secrets.sql");
const EVENT_PUBLISH: &str = include_str!("../../sql/queries/api_event_publish.sql");
const EVENT_GET: &str = include_str!("../../sql/queries/api_event_get.sql");
const DELIVERY_GET: &str = include_str!("../../sql/queries/api_delivery_get.sql");
const DELIVERIES_UNSEEN: &str = include_str!("../../sql/queries/api_deliveries_unseen.sql");
const TENANT_ENDPOINTS: &str = include_str!("../../sql/queries/api_tenant_endpoints.sql");
const PORTAL_SET_KEY: &str = include_str!("../../sql/queries/portal_set_key.sql");

/// A token as `tailhook token list` shows it (no hash, no secret).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenInfo {
    pub id: i64,
    pub prefix: String,
    pub name: Option<String>,
    pub scope: String,
    pub tenant: Option<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// What the endpoint list filters on; `None` is "any".
#[derive(Debug, Clone, Default)]
pub struct EndpointFilter {
    pub tenant: Option<String>,
    pub enabled: Option<bool>,
    pub event_type: Option<String>,
    pub name: Option<String>,
}

/// JSON text from the database, parsed.
fn json(text: String) -> Result<serde_json::Value, DbError> {
    serde_json::from_str(&text).map_err(|e| DbError::Url(format!("the database returned invalid JSON: {e}")))
}

impl Db {
    /// The scope and tenant of a live token, by its SHA-256 in hex.
    pub async fn api_token_check(&self, hash_hex: &str) -> Result<Option<(i64, String, Option<String>)>, DbError> {
        self.with_client(async |client| {
            let params: [&dyn Param; 1] = [&hash_hex];
            let rows = self.rows(&*client, TOKEN_CHECK, &params).await?;
            let Some(r) = rows.first() else { return Ok(None) };
            Ok(Some((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        })
        .await
    }

    /// A new token (shown once); `expires_in` a PostgreSQL interval.
    pub async fn api_token_create(
        &self,
        scope: &str,
        tenant: Option<&str>,
        name: Option<&str>,
        expires_in: Option<&str>,
    ) -> Result<String, DbError> {
        self.with_client(async |client| {
            let params: [&dyn Param; 4] = [&scope, &tenant, &name, &expires_in];
            Ok(self.one(&*client, TOKEN_CREATE, &params).await?.try_get(0)?)
        })
        .await
    }

    /// Revokes tokens by id, name or prefix; how many.
    pub async fn api_token_revoke(&self, which: &str) -> Result<i32, DbError> {
        self.with_client(async |client| {
            let params: [&dyn Param; 1] = [&which];
            Ok(self.one(&*client, TOKEN_REVOKE, &params).await?.try_get(0)?)
        })
        .await
    }

    /// Every token, by id.
    pub async fn api_tokens(&self) -> Result<Vec<TokenInfo>, DbError> {
        self.with_client(async |client| {
            let rows = self.rows(&*client, TOKENS_LIST, &[]).await?;
            rows.iter()
                .map(|r| {
                    Ok(TokenInfo {
                        id: r.try_get(0)?,
                        prefix: r.try_get(1)?,
                        name: r.try_get(2)?,
                        scope: r.try_get(3)?,
                        tenant: r.try_get(4)?,
                        created_at: r.try_get(5)?,
                        expires_at: r.try_get(6)?,
                        revoked_at: r.try_get(7)?,
                    })
                })
                .collect()
        })
        .await
    }

    /// Endpoints by name after `after`, at most `limit`, as JSON; with the last name.
    pub async fn api_endpoints(
        &self,
        tenant: Option<&str>,
        after: &str,
        limit: i64,
        f: &EndpointFilter,
    ) -> Result<Vec<(serde_json::Value, String)>, DbError> {
        self.with_client(async |client| {
            let params: [&dyn Param; 7] = [&tenant, &after, &limit, &f.tenant, &f.enabled, &f.event_type, &f.name];
            let rows = self.rows(&*client, ENDPOINTS_LIST, &params).await?;
            rows.into_iter().map(|r| Ok((json(r.try_get(0)?)?, r.try_get(1)?))).collect()
        })
        .await
    }

    /// An endpoint's id and `managed_by`, when the token may see it.
    pub async fn api_endpoint_state(&self, name: &str, tenant: Option<&str>) -> Result<Option<(i64, String)>, DbError> {
        self.with_client(async |client| {
            let params: [&dyn Param; 2] = [&name, &tenant];
            let rows = self.rows(&*client, ENDPOINT_STATE, &params).await?;
            rows.first().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
        })
        .await
    }

    /// Inserts an endpoint from its fields (JSON) with one secret; its id.
    pub async fn api_endpoint_create(&self, fields: &str, secret: &str) -> Result<i64, DbError> {
        self.with_client(async |client| {
            let params: [&dyn Param; 2] = [&fields, &secret];
            Ok(self.one(&*client, ENDPOINT_CREATE, &params).await?.try_get(0)?)
        })
        .await
    }

    /// Replaces the fields given (JSON); whether the endpoint was there.
    pub async fn api_endpoint_update(&self, name: &str, tenant: Option<&str>, fields: &str) -> Result<bool, DbError> {
        self.scoped_change(ENDPOINT_UPDATE, name, tenant, Some(&fields)).await
    }

    /// Deletes an endpoint; whether it was there.
    pub async fn api_endpoint_delete(&self, name: &str, tenant: Option<&str>) -> Result<bool, DbError> {
        self.scoped_change(ENDPOINT_DELETE, name, tenant, None).await
    }

    /// Pauses for `secs`, or resumes (`None`); whether the endpoint was there.
    pub async fn api_endpoint_pause(
        &self,
        name: &str,
        tenant: Option<&str>,
        secs: Option<i32>,
    ) -> Result<bool, DbError> {
        self.with_client(async |client| {
            let params: [&dyn Param; 3] = [&name, &tenant, &secs];
            Ok(!self.rows(&*client, ENDPOINT_PAUSE, &params).await?.is_empty())
        })
        .await
    }

    /// `tailhook.enable_endpoint` on one of the token's endpoints; whether it was there.
    pub async fn api_endpoint_enable(&self, name: &str, tenant: Option<&str>) -> Result<bool, DbError> {
        self.scoped_change(ENDPOINT_ENABLE, name, tenant, None).await
    }

    /// Puts `secret` first; the others retire after `overlap_secs`. When they do (RFC 3339), `None` for no endpoint.
    pub async fn api_endpoint_rotate(
        &self,
        name: &str,
        tenant: Option<&str>,
        secret: &str,
        overlap_secs: i32,
    ) -> Result<Option<String>, DbError> {
        self.with_client(async |client| {
            let params: [&dyn Param; 4] = [&name, &tenant, &secret, &overlap_secs];
            let rows = self.rows(&*client, ENDPOINT_ROTATE, &params).await?;
            rows.first().map(|r| r.try_get(0)).transpose().map_err(DbError::from)
        })
        .await
    }

    /// Drops secrets whose overlap ended; how many endpoints changed.
    pub async fn api_retire_secrets(&self) -> Result<i32, DbError> {
        self.with_client(async |client| Ok(self.one(&*client, RETIRE_SECRETS, &[]).await?.try_get(0)?)).await
    }

    /// Publishes with the given id; `false` when that id exists already.
    pub async fn api_event_publish(
        &self,
        event_id: &str,
        event_type: &str,
        payload: &str,
        tenant: Option<&str>,
        ordering_key: Option<&str>,
    ) -> Result<bool, DbError> {
        self.with_client(async |client| {
            let params: [&dyn Param; 5] = [&event_id, &event_type, &payload, &tenant, &ordering_key];
            Ok(self.one(&*client, EVENT_PUBLISH, &params).await?.try_get(0)?)
        })
        .await
    }

    /// An event with its deliveries (JSON), and whether it matches `same`
    /// (type, payload, tenant, ordering key); `None` when the token cannot see it.
    pub async fn api_event_get(
        &self,
        event_id: &str,
        tenant: Option<&str>,
        same: [Option<&str>; 4],
    ) -> Result<Option<(serde_json::Value, bool)>, DbError> {
        self.with_client(async |client| {
            let [t, p, tn, k] = same;
            let params: [&dyn Param; 6] = [&event_id, &tenant, &t, &p, &tn, &k];
            let rows = self.rows(&*client, EVENT_GET, &params).await?;
            let Some(r) = rows.into_iter().next() else { return Ok(None) };
            let matches: Option<bool> = r.try_get(1)?;
            Ok(Some((json(r.try_get(0)?)?, matches.unwrap_or(false))))
        })
        .await
    }

    /// A delivery (JSON, without attempts), when the token may see it.
    pub async fn api_delivery_get(&self, id: i64, tenant: Option<&str>) -> Result<Option<serde_json::Value>, DbError> {
        self.with_client(async |client| {
            let params: [&dyn Param; 2] = [&id, &tenant];
            let rows = self.rows(&*client, DELIVERY_GET, &params).await?;
            rows.into_iter().next().map(|r| json(r.try_get(0)?)).transpose()
        })
        .await
    }

    /// How many of `ids` are not deliveries to `tenant`'s endpoints (one statement).
    pub async fn api_deliveries_unseen(&self, ids: &[i64], tenant: &str) -> Result<i64, DbError> {
        self.with_client(async |client| {
            let ids = ids.to_vec();
            let params: [&dyn Param; 2] = [&ids, &tenant];
            Ok(self.one(&*client, DELIVERIES_UNSEEN, &params).await?.try_get(0)?)
        })
        .await
    }

    /// Stores the key `tailhook.portal_link` signs with.
    /// `key_hex`: the link key as hex.
    pub async fn portal_set_key(&self, key_hex: &str) -> Result<(), DbError> {
        self.with_client(async |client| {
            let params: [&dyn Param; 1] = [&key_hex];
            self.rows(&*client, PORTAL_SET_KEY, &params).await?;
            Ok(())
        })
        .await
    }

    /// A tenant's endpoints: ids and names.
    pub async fn api_tenant_endpoints(&self, tenant: &str) -> Result<Vec<(i64, String)>, DbError> {
        self.with_client(async |client| {
            let params: [&dyn Param; 1] = [&tenant];
            let rows = self.rows(&*client, TENANT_ENDPOINTS, &params).await?;
            rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
        })
        .await
    }

    async fn scoped_change(
        &self,
        sql: &str,
        name: &str,
        tenant: Option<&str>,
        fields: Option<&&str>,
    ) -> Result<bool, DbError> {
        self.with_client(async |client| {
            let rows = match fields {
                Some(fields) => {
                    let params: [&dyn Param; 3] = [&name, &tenant, fields];
                    self.rows(&*client, sql, &params).await?
                }
                None => {
                    let params: [&dyn Param; 2] = [&name, &tenant];
                    self.rows(&*client, sql, &params).await?
                }
            };
            Ok(!rows.is_empty())
        })
        .await
    }
}
