//! `tailhook send-test ENDPOINT`: one signed request now, through the delivery sender, reported and never recorded.
//!
//! The request is the one a delivery would make: the same [`Sender`] with the
//! configured destination policy, the endpoint's URL, headers, secrets and
//! timeout (one deadline for connect, headers and body). Nothing is written to
//! `deliveries` or `attempts`: it is a diagnostic of the path to the receiver,
//! and recording it would mix test traffic into the endpoint's history, its
//! success rate and the circuit breaker's view of it. To send a test event
//! that is recorded and retried like any other, publish one with
//! `SELECT tailhook.publish('tailhook.test', '{}')`.

use crate::config::Config;
use crate::db::{Db, DbError};
use crate::endpoints::Endpoint;
use crate::pipeline::guard::AddressPolicy;
use crate::pipeline::sender::{Event, Sender};

/// What to send.
#[derive(Debug)]
pub struct TestRequest {
    pub endpoint: String,
    pub event_type: String,
    /// The payload's JSON text, as given.
    pub data: String,
}

/// Why `send-test` did not report a 2xx.
#[derive(Debug, thiserror::Error)]
pub enum SendTestError {
    /// Unknown endpoint or bad arguments (exit 2).
    #[error("{0}")]
    BadInput(String),
    /// The request was made (or refused) and did not succeed (exit 1).
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    Database(#[from] DbError),
}

/// Characters of the response body shown.
const BODY_SHOWN: usize = 200;

/// Sends the request and prints what happened; `Ok` only on a 2xx.
pub async fn send_test(config: &Config, db: &Db, request: &TestRequest) -> Result<(), SendTestError> {
    let data: serde_json::Value =
        serde_json::from_str(&request.data).map_err(|e| SendTestError::BadInput(format!("--data is not JSON: {e}")))?;
    if request.event_type.is_empty() {
        return Err(SendTestError::BadInput("--event-type must not be empty".into()));
    }
    let row = db
        .load_endpoints()
        .await?
        .into_iter()
        .find(|row| row.name == request.endpoint)
        .ok_or_else(|| SendTestError::BadInput(format!("no endpoint named `{}`", request.endpoint)))?;
    let endpoint = Endpoint::from_row(row, &config.delivery);
    let policy = AddressPolicy {
        allow_private_networks: config.delivery.allow_private_networks,
        allowed: config.allowed_cidrs(),
    };
    let sender = Sender::new(&config.delivery, policy)
        .map_err(|e| SendTestError::Failed(format!("cannot build the HTTP client: {e}")))?;
    let (event_id, created_at) = db.test_event().await?;
    let event = Event::new(event_id.clone(), &request.event_type, &created_at, &data.to_string());

    // The host only: a URL's path or query may carry a token.
    let host = endpoint.target.as_ref().ok().and_then(|t| t.url.host_str().map(str::to_owned));
    println!(
        "sending {} to endpoint `{}`{} (webhook-id {event_id}, timeout {} ms)",
        request.event_type,
        endpoint.name,
        host.map(|h| format!(" at {h}")).unwrap_or_default(),
        endpoint.timeout.as_millis()
    );
    if !endpoint.enabled {
        println!("note: the endpoint is disabled; sent anyway, as a test");
    }
    let attempt = sender.send(&endpoint, &event, endpoint.timeout).await;
    let outcome = &attempt.outcome;
    let ms = attempt.duration.as_millis();
    match outcome.status_code {
        Some(code) => println!("HTTP {code} in {ms} ms"),
        None => println!("no response after {ms} ms"),
    }
    if let Some(body) = &outcome.response_body {
        let shown: String = body.chars().take(BODY_SHOWN).map(|c| if c.is_control() { ' ' } else { c }).collect();
        let more = if body.chars().count() > BODY_SHOWN { " …" } else { "" };
        println!("response: {shown}{more}");
    }
    match (outcome.error_kind, &outcome.error) {
        (None, _) => Ok(()),
        (Some(kind), error) => Err(SendTestError::Failed(format!(
            "test request to `{}` failed ({}): {}",
            endpoint.name,
            kind.as_str(),
            error.as_deref().unwrap_or("no detail")
        ))),
    }
}
