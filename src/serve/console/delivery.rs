//! One delivery's page: its event (payload pretty-printed, size-capped), the body its endpoint's transform makes of it, its endpoint (URL as scheme, host and port, no secret or header value), every attempt with the response stored, and Redeliver.

use super::layout::{csrf_field, label, page as layout_page};
use super::overview::notice_text;
use super::{database_failure, failure, Console, Who};
use crate::config::secret::endpoint_origin;
use crate::pipeline::sender::Event;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;
use std::sync::Arc;

/// Payload bytes shown pretty-printed; a larger payload is cut to this many characters.
pub const PAYLOAD_SHOWN: i32 = 64 * 1024;
/// Attempts shown, newest first.
pub const ATTEMPTS_SHOWN: i64 = 200;

#[derive(Debug, Default, Deserialize)]
pub struct Params {
    #[serde(default)]
    notice: String,
    #[serde(default)]
    n: i64,
    #[serde(default)]
    of: i64,
}

pub async fn page(
    State(console): State<Arc<Console>>,
    Extension(who): Extension<Who>,
    Path(id): Path<String>,
    Query(params): Query<Params>,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return failure(StatusCode::NOT_FOUND, "not a delivery id");
    };
    let db = &console.db;
    if let Some(tenant) = who.scope.tenant() {
        match db.api_delivery_get(id, Some(tenant)).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                return failure(StatusCode::NOT_FOUND, &format!("no delivery {id} (retention may have removed it)"))
            }
            Err(e) => return database_failure(&e),
        }
    }
    let max_payload = console.config.delivery.max_payload_bytes as i32;
    let (delivery, attempts) = match tokio::try_join!(
        db.console_delivery(id, PAYLOAD_SHOWN, max_payload),
        db.console_attempts(id, ATTEMPTS_SHOWN)
    ) {
        Ok(both) => both,
        Err(e) => return database_failure(&e),
    };
    let Some(d) = delivery else {
        return failure(StatusCode::NOT_FOUND, &format!("no delivery {id} (retention may have removed it)"));
    };
    // A link followed from another site runs no transform (a hostile page
    // could otherwise make the console run one); the console's own link does.
    let transformed = if who.from_console { transformed(&console, &d).await } else { None };
    let not_run = !who.from_console && d.transform.is_some();
    // Scheme, host and port only: userinfo, path and query can each be a token.
    let url = endpoint_origin(&d.url);
    let cut = d.payload_bytes > PAYLOAD_SHOWN;
    let notice = notice_text(&params.notice, params.n, params.of).map(|text| html! { p.notice { (text) } });
    let content = html! {
        dl.delivery {
            dt { "status" } dd.status {
                @if d.redelivery_waiting {
                    (label("pending", "redelivered")) " "
                    @if d.in_flight { "(being sent now)" } @else { "(its attempt is due; a paused endpoint waits for the pause to end)" }
                } @else {
                    (label(&d.status, &d.status)) @if d.in_flight { " (being sent now)" }
                }
            }
            dt { "attempts" } dd { (d.attempts) }
            dt { "next attempt (UTC)" } dd.next { (d.next_attempt_at.as_deref().unwrap_or("-")) }
            @if let (Some(by), Some(at)) = (&d.redelivered_by, &d.redelivered_at) {
                dt { "redelivered" } dd.redelivered { "by " (crate::manage::deliveries::requester_shown(&who.scope, by)) " at " (at) " UTC" }
            }
            @if d.redelivery_waiting {
                dt { "error before the redelivery" } dd.last-error { (d.last_error.as_deref().unwrap_or("-")) }
            } @else {
                dt { "last error" } dd.last-error { (d.last_error.as_deref().unwrap_or("-")) }
            }
            dt { "created / completed" } dd { (d.created_at) " / " (d.completed_at.as_deref().unwrap_or("-")) }
            dt { "endpoint" } dd { a href=(super::layout::link("/deliveries", &[("endpoint", &d.endpoint)])) { (d.endpoint) } }
            dt { "url" } dd { code { (url) } span.muted { " (scheme, host and port; the rest is not shown)" } }
            dt { "signing" } dd { (match d.secrets { 0 => "unsigned (no secret)".to_owned(), 1 => "1 secret".to_owned(), n => format!("{n} secrets") }) }
            dt { "custom headers" } dd { @if d.header_names.is_empty() { "none" } @else { (d.header_names.join(", ")) " (values not shown)" } }
        }
        @if !who.read_only { form method="post" action="/actions/redeliver" {
            (csrf_field(&who.csrf))
            input type="hidden" name="id" value=(d.id);
            input type="hidden" name="back" value=(format!("/deliveries/{}", d.id));
            button id="redeliver" type="submit" { "Redeliver" }
        } }
        h2 { "Attempts" }
        @if attempts.is_empty() {
            p { "None yet." }
        } @else {
            table.attempts {
                thead { tr {
                    th { "#" } th { "started (UTC)" } th { "duration" } th { "status" } th { "error kind" } th { "error" } th { "made by" } th { "response body (as stored)" }
                } }
                tbody {
                    @for a in &attempts {
                        tr {
                            td.n { (a.attempt) }
                            td { (a.started_at) }
                            td.n { (a.duration_ms) " ms" }
                            td.n { (a.status_code.map(|c| c.to_string()).unwrap_or_else(|| "-".into())) }
                            td { (a.error_kind.as_deref().unwrap_or("")) }
                            td { (a.error.as_deref().unwrap_or("")) }
                            td.by { @match &a.requested_by { Some(by) => { "redelivery by " (crate::manage::deliveries::requester_shown(&who.scope, by)) }, None => "schedule" } }
                            td { @if let Some(body) = &a.response_body { pre.response { (body) } } }
                        }
                    }
                }
            }
            @if attempts.len() as i64 == ATTEMPTS_SHOWN { p.muted { "The latest " (ATTEMPTS_SHOWN) " attempts." } }
        }
        h2 { "Event" }
        dl.event {
            dt { "event id (webhook-id)" } dd { code { (d.event_id) } }
            dt { "type" } dd { (d.event_type) }
            dt { "tenant" } dd { (d.tenant.as_deref().unwrap_or("-")) }
            dt { "ordering key" } dd { (d.ordering_key.as_deref().unwrap_or("-")) }
            dt { "published (UTC)" } dd { (d.published_at) }
        }
        h3 { "Payload" @if cut { " (first " (PAYLOAD_SHOWN) " of " (d.payload_bytes) " bytes)" } }
        pre.payload { (d.payload) }
        @if let Some(body) = &transformed {
            h3 { "Body sent (the payload through the endpoint's current transform)" }
            pre.transformed { (body) }
        }
        @if not_run {
            h3 { "Body sent" }
            p.muted { "This page was opened from another site, so the endpoint's transform was not run. "
                a href=(format!("/deliveries/{}", d.id)) { "Show the body sent" } }
        }
    };
    layout_page(&format!("Delivery #{}", d.id), notice, content).into_response()
}

/// What the endpoint's transform, as it is now, makes of the event: the body
/// a delivery sends (sent bodies are not stored; a transform changed since
/// shows its new result). `None` when the endpoint has no transform.
async fn transformed(console: &Console, d: &crate::db::DeliveryView) -> Option<String> {
    let source = d.transform.as_deref()?;
    let Some(payload) = &d.payload_text else {
        return Some(format!("(the payload is over delivery.max_payload_bytes: {} bytes)", d.payload_bytes));
    };
    let script = match console.transforms.compile(source) {
        Ok(script) => script,
        Err(problem) => return Some(format!("(the transform {problem})")),
    };
    let event = Event::new(d.event_id.clone(), &d.event_type, &d.timestamp, payload);
    let body = event.body.ok()?;
    let tenant = d.tenant.as_deref().map(std::sync::Arc::from);
    Some(match console.transforms.run(script, &d.endpoint, body, tenant).await {
        Ok(body) => match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(json) => serde_json::to_string_pretty(&json).unwrap_or_default(),
            Err(_) => String::from_utf8_lossy(&body).into_owned(),
        },
        Err(e) => format!("({e})"),
    })
}
