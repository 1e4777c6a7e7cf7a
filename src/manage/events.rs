//! Events: publish with the event id as the idempotency key, and get one with its deliveries.

use super::{ManageError, Scope};
use crate::db::Db;
use serde_json::Value;

/// What a publish carries.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    /// A UUID; absent: a new one (UUID v7). Publishing the same id again publishes nothing.
    pub event_id: Option<String>,
    pub event_type: String,
    pub payload: Value,
    pub tenant: Option<String>,
    pub ordering_key: Option<String>,
}

/// A new UUID v7 (time-ordered, like the outbox's default).
fn uuid_v7() -> String {
    use rand::RngCore;
    let millis =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    b[6] = (b[6] & 0x0f) | 0x70;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// Whether `text` is a UUID in its usual hyphenated form.
pub fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() })
}

/// Publishes; the event and whether it is new (`false`: that id was published
/// before with the same type, payload, tenant and ordering key). The same id
/// with anything else is a conflict.
pub async fn publish(db: &Db, scope: &Scope, mut p: Publish) -> Result<(Value, bool), ManageError> {
    if let Some(own) = scope.tenant() {
        match &p.tenant {
            None => p.tenant = Some(own.to_owned()),
            Some(t) if t == own => {}
            Some(_) => return Err(ManageError::invalid("tenant", "token_tenant", "must be the token's tenant")),
        }
    }
    if p.event_type.is_empty() {
        return Err(ManageError::invalid("event_type", "outbox_event_type_not_empty", "must not be empty"));
    }
    let id = match p.event_id.take() {
        Some(id) if is_uuid(&id) => id.to_ascii_lowercase(),
        Some(_) => return Err(ManageError::invalid("event_id", "uuid", "must be a UUID")),
        None => uuid_v7(),
    };
    let payload = p.payload.to_string();
    let created =
        db.api_event_publish(&id, &p.event_type, &payload, p.tenant.as_deref(), p.ordering_key.as_deref()).await?;
    let same = [Some(p.event_type.as_str()), Some(payload.as_str()), p.tenant.as_deref(), p.ordering_key.as_deref()];
    match db.api_event_get(&id, scope.tenant(), same).await? {
        Some((event, true)) => Ok((event, created)),
        _ => Err(ManageError::Conflict {
            code: "event_id_taken",
            message: "an event with this id was published with another type, payload, tenant or ordering key".into(),
        }),
    }
}

/// An event with its deliveries (to the scope's endpoints).
pub async fn get(db: &Db, scope: &Scope, event_id: &str) -> Result<Value, ManageError> {
    if !is_uuid(event_id) {
        return Err(ManageError::NotFound);
    }
    let event = db.api_event_get(&event_id.to_ascii_lowercase(), scope.tenant(), [None; 4]).await?;
    event.map(|(v, _)| v).ok_or(ManageError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_uuids_v7() {
        let id = uuid_v7();
        assert!(is_uuid(&id), "{id}");
        assert_eq!(&id[14..15], "7");
        assert!(!is_uuid("not-a-uuid"));
    }
}
