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
//!
//! An endpoint with a transform receives what its script makes of the test
//! event; `--dry-run` prints that body and sends nothing.
//!
//! It needs only the database and the endpoint's row. The destination
//! policy (`delivery.allow_private_networks`, `delivery.allowed_cidrs`) is
//! this command's own configuration: it cannot read the running sidecar's
//! environment, so a request the sidecar would send may be refused here (and
//! the other way round). A refusal says so and names the setting; a request
//! refused before sending is never reported as sent.

use crate::config::Config;
use crate::db::{Db, DbError};
use crate::guard::AddressPolicy;
use crate::pipeline::endpoints::Endpoint;
use crate::pipeline::outcome::ErrorKind;
use crate::pipeline::sender::{Event, Sender};
use crate::transform::Transforms;
use std::sync::Arc;

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

/// What one test request did: what the console shows and `send-test` prints.
#[derive(Debug, Clone)]
pub struct Probe {
    pub endpoint: String,
    /// The URL's scheme, host and port only: its userinfo, path or query may
    /// carry a token (see [`crate::config::secret::endpoint_origin`]).
    pub origin: Option<String>,
    pub event_id: String,
    pub event_type: String,
    pub timeout_ms: u128,
    /// The endpoint is disabled (the test is sent anyway).
    pub disabled: bool,
    pub status_code: Option<u16>,
    pub duration_ms: u128,
    /// The first [`BODY_SHOWN`] characters of the response, control
    /// characters as spaces, `…` appended when there was more.
    pub response: Option<String>,
    /// `None` on a 2xx; else the `error_kind` and the detail.
    pub failure: Option<(&'static str, String)>,
    /// Nothing was sent: the request was refused before sending (see
    /// [`ErrorKind::is_refused_before_sending`]).
    pub refused: bool,
}

/// The endpoint named in `request` and the test event, with the body the
/// endpoint would receive (its transform applied), or why there is none.
async fn prepare(
    config: &Config,
    db: &Db,
    request: &TestRequest,
) -> Result<(Endpoint, Event, Result<Event, String>), SendTestError> {
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
    let transforms = Arc::new(Transforms::new(&config.transform, config.delivery.max_payload_bytes));
    let keys = config.secrets.keys().map_err(|e| SendTestError::BadInput(e.to_string()))?;
    let endpoint = Endpoint::from_row(row, &config.delivery, &transforms, &keys, None);
    let (event_id, created_at) = db.test_event().await?;
    let event = Event::new(event_id, &request.event_type, &created_at, &data.to_string());
    let sent = match (&endpoint.transform, &event.body) {
        (Some(script), Ok(body)) => transforms
            .run(script.clone(), &endpoint.name, body.clone(), event.tenant.clone())
            .await
            .map(|body| event.with_body(body))
            .map_err(|e| e.to_string()),
        _ => Ok(event.with_body(event.body.clone().unwrap_or_default())),
    };
    Ok((endpoint, event, sent))
}

/// The body a delivery of the test event to the endpoint would carry (its
/// transform applied), without sending anything.
pub async fn dry_run(config: &Config, db: &Db, request: &TestRequest) -> Result<String, SendTestError> {
    let (endpoint, _, sent) = prepare(config, db, request).await?;
    if let Some(problem) = endpoint.problem() {
        return Err(SendTestError::Failed(format!("endpoint `{}` is invalid: {problem}", endpoint.name)));
    }
    let body = sent.map_err(|e| SendTestError::Failed(format!("endpoint `{}`: {e}", endpoint.name)))?;
    Ok(String::from_utf8_lossy(body.body.as_deref().unwrap_or_default()).into_owned())
}

/// Sends one test request to the endpoint named in `request` and reports it;
/// records nothing.
pub async fn probe(config: &Config, db: &Db, request: &TestRequest) -> Result<Probe, SendTestError> {
    let (endpoint, event, sent) = prepare(config, db, request).await?;
    let event_id = event.event_id.clone();
    let policy = AddressPolicy {
        allow_private_networks: config.delivery.allow_private_networks,
        allowed: config.allowed_cidrs(),
    };
    let sender = Sender::new(&config.delivery, policy).map_err(|e| SendTestError::Failed(e.to_string()))?;
    let (outcome, duration) = match sent {
        Ok(sent) => {
            let attempt = sender.send(&endpoint, &sent, endpoint.timeout, None).await;
            (attempt.outcome, attempt.duration)
        }
        Err(e) => (crate::pipeline::outcome::Outcome::failed(ErrorKind::Transform, e), std::time::Duration::ZERO),
    };
    let response = outcome.response_body.as_ref().map(|body| {
        let shown: String = body.chars().take(BODY_SHOWN).map(|c| if c.is_control() { ' ' } else { c }).collect();
        let more = if body.chars().count() > BODY_SHOWN { " …" } else { "" };
        format!("{shown}{more}")
    });
    Ok(Probe {
        origin: endpoint.target.as_ref().ok().map(|t| crate::config::secret::endpoint_origin(t.url.as_str())),
        endpoint: endpoint.name.to_string(),
        event_id,
        event_type: request.event_type.clone(),
        timeout_ms: endpoint.timeout.as_millis(),
        disabled: !endpoint.enabled,
        status_code: outcome.status_code,
        duration_ms: duration.as_millis(),
        response,
        refused: outcome.error_kind.is_some_and(ErrorKind::is_refused_before_sending),
        failure: outcome.error_kind.map(|kind| (kind.as_str(), outcome.error.unwrap_or_else(|| "no detail".into()))),
    })
}
