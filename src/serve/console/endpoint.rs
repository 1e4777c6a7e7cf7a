//! The endpoint pages: `/endpoints/{name}` (settings with secrets and header values hidden, its state and why, its recent deliveries) and the forms to create, edit, pause, resume, enable, rotate the secret, send a test and delete, every read and write through `crate::manage` under the request's scope.

use super::actions::{back, checked, refused_by_manage as refusal, test_result, Form};
use super::layout::{csrf_field, label, link, page as layout_page};
use super::overview::notice_text;
use super::{failure, Console, Who};
use crate::db::Search;
use crate::manage::{self, ManageError};
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Recent deliveries shown on an endpoint's page.
pub const RECENT: i64 = 20;
/// Pauses the page offers, in minutes.
const PAUSES: [(i64, &str); 4] = [(15, "15 minutes"), (60, "1 hour"), (240, "4 hours"), (1440, "1 day")];
/// Rotation overlaps the page offers, in hours (the old secret signs too meanwhile).
const OVERLAPS: [(i64, &str); 4] = [(24, "1 day"), (1, "1 hour"), (168, "7 days"), (0, "none: only the new one")];
/// The optional numbers of an endpoint, with their labels.
const NUMBERS: [(&str, &str); 6] = [
    ("max_attempts", "max attempts"),
    ("timeout_ms", "timeout (ms)"),
    ("rate_limit_per_sec", "rate limit (per second)"),
    ("max_in_flight", "max in flight"),
    ("backoff_initial_ms", "first retry after (ms)"),
    ("backoff_max_ms", "longest retry delay (ms)"),
];

/// An endpoint's page path, its name percent-encoded; `new` is written
/// `%6Eew` so that it never means the creation form.
pub fn path_of(name: &str) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    if name == "new" {
        return "/endpoints/%6Eew".to_owned();
    }
    format!("/endpoints/{}", utf8_percent_encode(name, NON_ALPHANUMERIC))
}

#[derive(Debug, Default, Deserialize)]
pub struct Params {
    #[serde(default)]
    notice: String,
    #[serde(default)]
    n: i64,
    #[serde(default)]
    of: i64,
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn int(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(Value::as_i64)
}

fn yes(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// `2026-12-07T14:31:00Z` as `14:31 UTC` when within a day from `now`
/// (seconds since the epoch), else `2026-12-07 14:31 UTC`; with what is left.
pub fn until_text(rfc3339: &str, now: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    let Ok(at) = time::OffsetDateTime::parse(rfc3339, &Rfc3339) else { return rfc3339.to_owned() };
    let at = at.to_offset(time::UtcOffset::UTC);
    let left = at.unix_timestamp() - now;
    let clock = format!("{:02}:{:02} UTC", at.hour(), at.minute());
    let when = if (0..86_400).contains(&left) { clock } else { format!("{} {clock}", at.date()) };
    if left > 0 {
        format!("{when} ({} left)", crate::operator::status::age(left))
    } else {
        when
    }
}

pub fn now_epoch() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// The endpoint's state as a label and the reasons behind it.
fn state(console: &Console, e: &Value, f: &Value) -> (Markup, Vec<String>) {
    let mut why = Vec::new();
    let paused = text(f, "paused_until");
    let failures = int(e, "consecutive_failures").unwrap_or(0);
    let failing_secs = int(f, "failing_secs");
    let d = &console.config.delivery;
    let breaker = paused.is_some()
        && failures >= i64::from(d.breaker_min_failures)
        && failing_secs.is_some_and(|s| s * 1000 >= d.breaker_after_ms as i64);
    let (class, text_) = if !yes(e, "enabled") {
        let reason = text(e, "disabled_reason").unwrap_or("by a user");
        if yes(e, "auto_disabled") {
            why.push(format!("disabled automatically: {reason}"));
        } else {
            why.push(format!("disabled: {reason}"));
        }
        ("disabled", "disabled".to_owned())
    } else if let Some(reason) = text(e, "invalid_reason") {
        why.push(format!("invalid: {reason} (nothing is sent until the row is fixed)"));
        ("invalid", "invalid".to_owned())
    } else if let Some(until) = paused {
        ("paused", format!("paused until {}", until_text(until, now_epoch())))
    } else {
        ("enabled", "enabled".to_owned())
    };
    if breaker {
        why.push("the circuit breaker is open: it paused the endpoint after failures kept coming".to_owned());
    }
    if failures > 0 {
        why.push(format!("{failures} failed attempts in a row since {}", text(f, "failing_since").unwrap_or("-")));
    }
    (label(class, &text_), why)
}

pub async fn page(
    State(console): State<Arc<Console>>,
    Extension(who): Extension<Who>,
    Path(name): Path<String>,
    Query(params): Query<Params>,
) -> Response {
    let db = &console.db;
    let search = Search { endpoint: Some(name.clone()), ..Search::default() };
    let (e, f) = match tokio::try_join!(
        manage::endpoints::get(db, &who.scope, &name),
        manage::endpoints::facts(db, &who.scope, &name)
    ) {
        Ok(both) => both,
        Err(e) => return refusal(e),
    };
    let recent = match manage::deliveries::search(db, &who.scope, search, RECENT).await {
        Ok((rows, _)) => rows,
        Err(e) => return refusal(e),
    };
    let notice = notice_text(&params.notice, params.n, params.of).map(|text| html! { p.notice { (text) } });
    let content = endpoint_page(&console, &who, &name, &e, &f, &recent);
    layout_page(&format!("Endpoint {name}"), notice, content).into_response()
}

fn endpoint_page(console: &Console, who: &Who, name: &str, e: &Value, f: &Value, recent: &[Value]) -> Markup {
    let here = path_of(name);
    let (state_label, why) = state(console, e, f);
    let by_config = text(e, "managed_by") == Some("config");
    let paused = text(f, "paused_until").is_some();
    let d = &console.config.delivery;
    let or_default = |key: &str, default: String| match int(e, key) {
        Some(n) => n.to_string(),
        None => format!("{default} (default)"),
    };
    let event_types: Vec<&str> = e
        .get("event_types")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let header_names: Vec<&str> = e
        .get("header_names")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let secrets = int(e, "secrets").unwrap_or(0);
    html! {
        section.state {
            p { "State: " (state_label) }
            @if !why.is_empty() { ul.why { @for w in &why { li { (w) } } } }
        }
        @if !who.read_only {
            div.actions {
                @if !by_config { a href=(format!("{here}/edit")) { "Edit" } " " }
                @if paused {
                    (button(&who.csrf, &format!("{here}/resume"), &[], "Resume"))
                } @else {
                    form.inline method="post" action=(format!("{here}/pause")) {
                        (csrf_field(&who.csrf))
                        select name="minutes" aria-label="pause for" {
                            @for (minutes, text) in PAUSES { option value=(minutes) { (text) } }
                        }
                        " " button type="submit" { "Pause" }
                    }
                }
                " "
                @if !yes(e, "enabled") || text(e, "invalid_reason").is_some() || int(e, "consecutive_failures").unwrap_or(0) > 0 {
                    (button(&who.csrf, &format!("{here}/enable"), &[], "Enable")) " "
                }
                (button(&who.csrf, &format!("{here}/test"), &[], "Send test"))
                " "
                @if !by_config {
                    form.inline method="post" action=(format!("{here}/rotate")) {
                        (csrf_field(&who.csrf))
                        label { "old secret valid for " select name="overlap_hours" {
                            @for (hours, text) in OVERLAPS { option value=(hours) { (text) } }
                        } }
                        " " button type="submit" { "Rotate secret" }
                    }
                    " "
                    a.danger href=(format!("{here}/delete")) { "Delete…" }
                }
            }
        }
        @if by_config {
            p.muted { "Declared in the config file ([[endpoints]]): change or remove it there. Here it can be paused, resumed, enabled and tested." }
        }
        h2 { "Settings" }
        dl.settings {
            dt { "url" } dd { code { (text(e, "url").unwrap_or("")) } span.muted { " (scheme, host and port; the rest is not shown)" } }
            dt { "tenant" } dd { (text(e, "tenant").unwrap_or("-")) }
            dt { "event types" } dd { (event_types.join(", ")) }
            dt { "filter" } dd { @match e.get("filter").filter(|v| !v.is_null()) {
                Some(filter) => code { (filter.to_string()) },
                None => "none",
            } }
            dt { "filter_path" } dd { @match text(e, "filter_path") { Some(p) => code { (p) }, None => "none" } }
            dt { "custom headers" } dd { @if header_names.is_empty() { "none" } @else { (header_names.join(", ")) span.muted { " (values not shown)" } } }
            dt { "transform" } dd { @match int(f, "transform_bytes") { Some(n) => { "yes (a script of " (n) " bytes; not shown)" }, None => "none" } }
            dt { "signing" } dd {
                (match secrets { 0 => "unsigned (no secret)".to_owned(), 1 => "1 secret".to_owned(), n => format!("{n} secrets (the newest signs; the others too until they retire)") })
                @if let Some(at) = text(f, "secrets_retire_at") { ", older ones retire at " (at) }
                @if !yes(e, "standard_signature") { "; no standard webhook-signature header" }
            }
            dt { "legacy signature" } dd { @match text(f, "legacy_header") {
                Some(h) => { "header " code { (h) } @if let Some(a) = text(f, "legacy_algorithm") { " (" (a) ")" } },
                None => "none",
            } }
            dt { "TLS" } dd {
                (if yes(f, "tls_client_cert") { "client certificate set" } else { "no client certificate" }) ", "
                (if yes(f, "tls_ca_bundle") { "private CA bundle set" } else { "public roots only" })
            }
            dt { "ordering" } dd { (if yes(e, "ordered") { "ordered: one delivery at a time per ordering key" } else { "unordered" }) }
            dt { "limits" } dd {
                "timeout " (or_default("timeout_ms", format!("{} ms", d.timeout_ms))) " · rate limit "
                (int(e, "rate_limit_per_sec").map_or("none".to_owned(), |n| format!("{n}/s"))) " · in flight "
                (int(e, "max_in_flight").map_or("no limit of its own".to_owned(), |n| n.to_string()))
            }
            dt { "retry schedule" } dd {
                "up to " (or_default("max_attempts", d.max_attempts.to_string())) " attempts, first retry after "
                (or_default("backoff_initial_ms", format!("{} ms", d.backoff_initial_ms))) ", delays up to "
                (or_default("backoff_max_ms", format!("{} ms", d.backoff_max_ms)))
            }
            dt { "trace context" } dd { (if yes(f, "propagate_trace") { "propagated" } else { "not propagated" }) }
            dt { "managed by" } dd { (text(e, "managed_by").unwrap_or("sql")) }
            dt { "created / updated" } dd { (text(f, "created_at").unwrap_or("-")) " / " (text(f, "updated_at").unwrap_or("-")) }
        }
        h2 { "Recent deliveries" }
        @if recent.is_empty() {
            p.empty { "No delivery to this endpoint yet." }
        } @else {
            table.deliveries {
                thead { tr { th { "delivery" } th { "event type" } th { "status" } th { "attempts" } th { "last code" } th { "created (UTC)" } } }
                tbody {
                    @for r in recent {
                        tr {
                            td { a href=(format!("/deliveries/{}", int(r, "id").unwrap_or(0))) { "#" (int(r, "id").unwrap_or(0)) } }
                            td { (text(r, "event_type").unwrap_or("")) }
                            td { (label(text(r, "status").unwrap_or(""), text(r, "status").unwrap_or(""))) }
                            td.n { (int(r, "attempts").unwrap_or(0)) }
                            td.n { (int(r, "last_status_code").map(|c| c.to_string()).unwrap_or_default()) }
                            td { (text(r, "created_at").unwrap_or("")) }
                        }
                    }
                }
            }
        }
        p { a.all href=(link("/deliveries", &[("endpoint", name)])) { "All deliveries to this endpoint →" } }
    }
}

/// A one-button form.
fn button(csrf: &str, action: &str, fields: &[(&str, &str)], text: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf_field(csrf))
            @for (name, value) in fields { input type="hidden" name=(*name) value=(*value); }
            button type="submit" { (text) }
        }
    }
}

/// What the create and edit forms hold, as text. The URL and header values
/// are never filled in: they may hold tokens.
#[derive(Debug, Default)]
struct Values {
    name: String,
    tenant: String,
    event_types: String,
    filter: String,
    filter_path: String,
    numbers: [String; 6],
    ordered: bool,
    standard_signature: bool,
    transform: String,
}

impl Values {
    fn new_endpoint() -> Self {
        Self { standard_signature: true, event_types: "*".into(), ..Self::default() }
    }

    fn of_endpoint(e: &Value) -> Self {
        let types: Vec<&str> = e
            .get("event_types")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        Self {
            name: text(e, "name").unwrap_or("").to_owned(),
            tenant: text(e, "tenant").unwrap_or("").to_owned(),
            event_types: types.join(", "),
            filter: e.get("filter").filter(|v| !v.is_null()).map(|v| v.to_string()).unwrap_or_default(),
            filter_path: text(e, "filter_path").unwrap_or("").to_owned(),
            numbers: NUMBERS.map(|(key, _)| int(e, key).map(|n| n.to_string()).unwrap_or_default()),
            ordered: yes(e, "ordered"),
            standard_signature: yes(e, "standard_signature"),
            transform: String::new(),
        }
    }

    fn of_form(form: &Form) -> Self {
        let t = |key: &str| form.get(key).unwrap_or("").to_owned();
        Self {
            name: t("name"),
            tenant: t("tenant"),
            event_types: t("event_types"),
            filter: t("filter"),
            filter_path: t("filter_path"),
            numbers: NUMBERS.map(|(key, _)| t(key)),
            ordered: form.get("ordered").is_some(),
            standard_signature: form.get("standard_signature").is_some(),
            transform: t("transform"),
        }
    }
}

/// A field the form could not take, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub message: String,
}

impl Problem {
    fn new(field: &str, message: impl Into<String>) -> Self {
        Self { field: field.to_owned(), message: message.into() }
    }
}

/// `Name: value` lines as a JSON object; an error names the line, not its value.
fn headers_of(text: &str) -> Result<Map<String, Value>, Problem> {
    let mut headers = Map::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(Problem::new("headers", format!("line {}: expected `Name: value`", i + 1)));
        };
        headers.insert(name.trim().to_owned(), Value::String(value.trim().to_owned()));
    }
    Ok(headers)
}

/// The form's fields as `manage`'s JSON. Empty optional fields are `null`
/// on an edit and left out on a create; with a tenant scope, the tenant
/// is the scope's (the form has none).
fn fields_of(form: &Form, creating: bool, scoped: bool) -> Result<Map<String, Value>, Problem> {
    let mut fields = Map::new();
    let optional = |fields: &mut Map<String, Value>, key: &str, value: Option<Value>| match value {
        Some(v) => {
            fields.insert(key.to_owned(), v);
        }
        None if !creating => {
            fields.insert(key.to_owned(), Value::Null);
        }
        None => {}
    };
    if creating {
        fields.insert("name".into(), Value::String(form.get("name").unwrap_or("").to_owned()));
    }
    if let Some(url) = form.get("url") {
        fields.insert("url".into(), Value::String(url.to_owned()));
    } else if creating {
        return Err(Problem::new("url", "is required"));
    }
    if !scoped {
        optional(&mut fields, "tenant", form.get("tenant").map(|t| Value::String(t.to_owned())));
    }
    let types: Vec<Value> = form
        .get("event_types")
        .unwrap_or("*")
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .map(|t| Value::String(t.to_owned()))
        .collect();
    fields.insert("event_types".into(), Value::Array(types));
    let filter = match form.get("filter") {
        Some(f) => {
            Some(serde_json::from_str::<Value>(f).map_err(|e| Problem::new("filter", format!("is not JSON: {e}")))?)
        }
        None => None,
    };
    optional(&mut fields, "filter", filter);
    optional(&mut fields, "filter_path", form.get("filter_path").map(|p| Value::String(p.to_owned())));
    for (key, label) in NUMBERS {
        let n = match form.get(key) {
            Some(n) => Some(Value::from(
                n.parse::<i32>().map_err(|_| Problem::new(key, format!("{label} must be a whole number")))?,
            )),
            None => None,
        };
        optional(&mut fields, key, n);
    }
    fields.insert("ordered".into(), Value::Bool(form.get("ordered").is_some()));
    fields.insert("standard_signature".into(), Value::Bool(form.get("standard_signature").is_some()));
    match (form.get("headers"), form.get("headers_clear")) {
        (_, Some(_)) if !creating => {
            fields.insert("headers".into(), Value::Object(Map::new()));
        }
        (Some(text), _) => {
            fields.insert("headers".into(), Value::Object(headers_of(text)?));
        }
        (None, _) => {}
    }
    match (form.get("transform"), form.get("transform_clear")) {
        (_, Some(_)) if !creating => {
            fields.insert("transform".into(), Value::Null);
        }
        (Some(script), _) => {
            fields.insert("transform".into(), Value::String(script.to_owned()));
        }
        (None, _) => {}
    }
    Ok(fields)
}

/// The create or edit form; `problem` shown above it and beside its field.
fn form_page(who: &Who, editing: Option<&Value>, v: &Values, problem: Option<&Problem>) -> Markup {
    let action = match editing {
        Some(e) => format!("{}/edit", path_of(text(e, "name").unwrap_or(""))),
        None => "/endpoints/new".to_owned(),
    };
    let error = |field: &str| -> Markup {
        html! { @if let Some(p) = problem.filter(|p| p.field == field) { span.field-error { (p.message) } } }
    };
    let header_names: Vec<&str> = editing
        .and_then(|e| e.get("header_names"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let has_transform = editing.is_some_and(|e| e.get("transform").is_some_and(|t| !t.is_null()));
    html! {
        @if let Some(p) = problem {
            p.error { "Not saved: " (p.field) ": " (p.message) }
        }
        form.endpoint method="post" action=(action) {
            (csrf_field(&who.csrf))
            @if editing.is_none() {
                label { span { "name" } input name="name" value=(v.name) required; (error("name")) }
            }
            label {
                span { "url" }
                @match editing {
                    Some(e) => input name="url" type="url" size="60" placeholder=(format!("{} (unchanged if empty)", text(e, "url").unwrap_or(""))) autocomplete="off";,
                    None => input name="url" type="url" size="60" placeholder="https://receiver.example/hooks" required autocomplete="off";,
                }
                (error("url"))
                @if problem.is_some() && editing.is_none() { span.muted { "(not filled in again: a URL may hold a token)" } }
            }
            @if who.scope.tenant().is_none() {
                label { span { "tenant" } input name="tenant" value=(v.tenant); (error("tenant")) }
            }
            label { span { "event types" } input name="event_types" value=(v.event_types) size="60" placeholder="* or invoice.*, order.created"; (error("event_types")) }
            label { span { "filter (JSON containment, empty: none)" } textarea name="filter" rows="2" cols="60" { (v.filter) } (error("filter")) }
            label { span { "filter_path (SQL/JSON path, empty: none)" } input name="filter_path" value=(v.filter_path) size="60"; (error("filter_path")) }
            @for (i, (key, text_)) in NUMBERS.iter().enumerate() {
                label { span { (text_) " (empty: the default)" } input name=(*key) value=(v.numbers[i]) inputmode="numeric" size="10"; (error(key)) }
            }
            label.check { input type="checkbox" name="ordered" checked[v.ordered]; " ordered (one delivery at a time per ordering key)" }
            label.check { input type="checkbox" name="standard_signature" checked[v.standard_signature]; " standard webhook-signature header" (error("standard_signature")) }
            label {
                span { "custom headers, one " code { "Name: value" } " a line" @if editing.is_some() { " (replaces them all; empty: unchanged)" } }
                textarea name="headers" rows="3" cols="60" autocomplete="off" {}
                (error("headers"))
                @if !header_names.is_empty() { span.muted { "now: " (header_names.join(", ")) " (values not shown)" } }
            }
            @if !header_names.is_empty() {
                label.check { input type="checkbox" name="headers_clear"; " remove every custom header" }
            }
            label {
                span { "transform (a Rhai script" @if editing.is_some() { "; replaces the current one, empty: unchanged" } ")" }
                textarea name="transform" rows="4" cols="60" { (v.transform) }
                (error("transform"))
            }
            @if has_transform {
                label.check { input type="checkbox" name="transform_clear"; " remove the transform" }
            }
            @if let Some(p) = problem.filter(|p| !FORM_FIELDS.contains(&p.field.as_str())) { p.error { (p.field) ": " (p.message) } }
            button type="submit" { @if editing.is_some() { "Save" } @else { "Create endpoint" } }
        }
        @if editing.is_none() {
            p.muted { "A secret is generated and shown once, on the next page." }
        }
    }
}

/// Fields the form shows an error beside.
const FORM_FIELDS: [&str; 16] = [
    "name",
    "url",
    "tenant",
    "event_types",
    "filter",
    "filter_path",
    "max_attempts",
    "timeout_ms",
    "rate_limit_per_sec",
    "max_in_flight",
    "backoff_initial_ms",
    "backoff_max_ms",
    "standard_signature",
    "headers",
    "transform",
    "ordered",
];

/// A `manage` refusal of a form: a field to show it beside, or a page.
fn form_problem(e: ManageError) -> Result<Problem, Box<Response>> {
    match e {
        ManageError::Invalid { field, message, .. } => Ok(Problem { field, message }),
        ManageError::Conflict { code: "name_taken", message } => Ok(Problem::new("name", message)),
        other => Err(Box::new(refusal(other))),
    }
}

fn refused_read_only() -> Response {
    failure(StatusCode::FORBIDDEN, "this console is read-only: it shows, it does not act")
}

pub async fn new_form(Extension(who): Extension<Who>) -> Response {
    if who.read_only {
        return refused_read_only();
    }
    layout_page("New endpoint", None, form_page(&who, None, &Values::new_endpoint(), None)).into_response()
}

pub async fn create(
    State(console): State<Arc<Console>>,
    Extension(who): Extension<Who>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = match checked(&who, &headers, &body) {
        Ok(form) => form,
        Err(refused) => return *refused,
    };
    let again = |problem: Problem| {
        let content = form_page(&who, None, &Values::of_form(&form), Some(&problem));
        (StatusCode::UNPROCESSABLE_ENTITY, layout_page("New endpoint", None, content)).into_response()
    };
    let fields = match fields_of(&form, true, who.scope.tenant().is_some()) {
        Ok(fields) => fields,
        Err(problem) => return again(problem),
    };
    let (e, secret) = match manage::endpoints::create(&console.db, &console.config, &who.scope, fields).await {
        Ok(created) => created,
        Err(e) => match form_problem(e) {
            Ok(problem) => return again(problem),
            Err(page) => return *page,
        },
    };
    let name = text(&e, "name").unwrap_or("").to_owned();
    (console.kick)();
    tracing::info!(
        peer = %who.peer, via = who.access.as_str(), tenant = who.scope.tenant(), action = "create", endpoint = %name,
        "console: endpoint created"
    );
    let content = html! {
        p.notice { "Endpoint " a href=(path_of(&name)) { (name) } " created." }
        (secret_shown(&secret))
        p { a href=(path_of(&name)) { "Go to the endpoint" } " · " a href="/" { "Back to the endpoints" } }
    };
    (StatusCode::CREATED, layout_page("Endpoint created", None, content)).into_response()
}

/// A secret, shown this once.
fn secret_shown(secret: &str) -> Markup {
    html! {
        p { "Its signing secret (give it to the receiver; it verifies the " code { "webhook-signature" } " header with it):" }
        pre.secret id="secret" { (secret) }
        p.error { "Copy it now: it is shown this once and cannot be read back. If it is lost, rotate the secret." }
    }
}

pub async fn edit_form(
    State(console): State<Arc<Console>>,
    Extension(who): Extension<Who>,
    Path(name): Path<String>,
) -> Response {
    if who.read_only {
        return refused_read_only();
    }
    let e = match manage::endpoints::get(&console.db, &who.scope, &name).await {
        Ok(e) => e,
        Err(e) => return refusal(e),
    };
    if text(&e, "managed_by") == Some("config") {
        return failure(StatusCode::CONFLICT, "this endpoint is declared in the config file; change it there");
    }
    let content = form_page(&who, Some(&e), &Values::of_endpoint(&e), None);
    layout_page(&format!("Edit {name}"), None, content).into_response()
}

pub async fn update(
    State(console): State<Arc<Console>>,
    Extension(who): Extension<Who>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = match checked(&who, &headers, &body) {
        Ok(form) => form,
        Err(refused) => return *refused,
    };
    let current = match manage::endpoints::get(&console.db, &who.scope, &name).await {
        Ok(e) => e,
        Err(e) => return refusal(e),
    };
    let again = |problem: Problem| {
        let content = form_page(&who, Some(&current), &Values::of_form(&form), Some(&problem));
        (StatusCode::UNPROCESSABLE_ENTITY, layout_page(&format!("Edit {name}"), None, content)).into_response()
    };
    let fields = match fields_of(&form, false, who.scope.tenant().is_some()) {
        Ok(fields) => fields,
        Err(problem) => return again(problem),
    };
    let changed: Vec<String> = fields.keys().cloned().collect();
    match manage::endpoints::update(&console.db, &console.config, &who.scope, &name, fields).await {
        Ok(_) => {
            (console.kick)();
            tracing::info!(
                peer = %who.peer, via = who.access.as_str(), tenant = who.scope.tenant(), action = "edit", endpoint = %name,
                fields = ?changed, "console: endpoint changed"
            );
            Redirect::to(&format!("{}?notice=saved", path_of(&name))).into_response()
        }
        Err(e) => match form_problem(e) {
            Ok(problem) => again(problem),
            Err(page) => *page,
        },
    }
}

pub async fn delete_form(
    State(console): State<Arc<Console>>,
    Extension(who): Extension<Who>,
    Path(name): Path<String>,
) -> Response {
    if who.read_only {
        return refused_read_only();
    }
    if let Err(e) = manage::endpoints::get(&console.db, &who.scope, &name).await {
        return refusal(e);
    }
    let content = html! {
        p { "Deleting " b { (name) } " removes it with all its deliveries and their attempts. Its events stay in the outbox. This cannot be undone." }
        form method="post" action=(format!("{}/delete", path_of(&name))) {
            (csrf_field(&who.csrf))
            label { "Type the endpoint's name to confirm: " input name="confirm" autocomplete="off" required; }
            " " button.danger type="submit" { "Delete the endpoint" }
        }
        p { a href=(path_of(&name)) { "Keep it" } }
    };
    layout_page(&format!("Delete {name}?"), None, content).into_response()
}

pub async fn delete(
    State(console): State<Arc<Console>>,
    Extension(who): Extension<Who>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = match checked(&who, &headers, &body) {
        Ok(form) => form,
        Err(refused) => return *refused,
    };
    if form.get("confirm") != Some(name.as_str()) {
        return failure(StatusCode::BAD_REQUEST, "not deleted: the name typed to confirm is not the endpoint's");
    }
    match manage::endpoints::delete(&console.db, &who.scope, &name).await {
        Ok(()) => {
            tracing::info!(
                peer = %who.peer, via = who.access.as_str(), tenant = who.scope.tenant(), action = "delete", endpoint = %name,
                "console: endpoint deleted with its deliveries"
            );
            Redirect::to("/?notice=deleted").into_response()
        }
        Err(e) => refusal(e),
    }
}

/// Logged, then back to the page the form was on (the endpoint's by default).
fn done(who: &Who, form: &Form, action: &str, name: &str, notice: &str) -> Response {
    tracing::info!(
        peer = %who.peer, via = who.access.as_str(), tenant = who.scope.tenant(), action, endpoint = %name,
        "console: endpoint action"
    );
    Redirect::to(&back(form, &path_of(name), notice)).into_response()
}

pub async fn pause(
    State(console): State<Arc<Console>>,
    Extension(who): Extension<Who>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = match checked(&who, &headers, &body) {
        Ok(form) => form,
        Err(refused) => return *refused,
    };
    let minutes = match form.get("minutes").map(str::parse::<i64>) {
        Some(Ok(m)) if (1..=1440).contains(&m) => m,
        _ => return failure(StatusCode::BAD_REQUEST, "minutes must be a number from 1 to 1440"),
    };
    match manage::endpoints::pause(&console.db, &who.scope, &name, minutes * 60).await {
        Ok(_) => done(&who, &form, "pause", &name, &format!("notice=paused&n={minutes}")),
        Err(e) => refusal(e),
    }
}

pub async fn resume(
    State(console): State<Arc<Console>>,
    Extension(who): Extension<Who>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = match checked(&who, &headers, &body) {
        Ok(form) => form,
        Err(refused) => return *refused,
    };
    match manage::endpoints::resume(&console.db, &who.scope, &name).await {
        Ok(_) => {
            (console.kick)();
            done(&who, &form, "resume", &name, "notice=resumed")
        }
        Err(e) => refusal(e),
    }
}

pub async fn enable(
    State(console): State<Arc<Console>>,
    Extension(who): Extension<Who>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = match checked(&who, &headers, &body) {
        Ok(form) => form,
        Err(refused) => return *refused,
    };
    match manage::endpoints::enable(&console.db, &who.scope, &name).await {
        Ok(_) => {
            (console.kick)();
            done(&who, &form, "enable", &name, "notice=enabled")
        }
        Err(e) => refusal(e),
    }
}

pub async fn rotate(
    State(console): State<Arc<Console>>,
    Extension(who): Extension<Who>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = match checked(&who, &headers, &body) {
        Ok(form) => form,
        Err(refused) => return *refused,
    };
    let hours = match form.get("overlap_hours").map(str::parse::<i64>) {
        Some(Ok(h)) if (0..=manage::endpoints::MAX_SECONDS / 3600).contains(&h) => h,
        _ => return failure(StatusCode::BAD_REQUEST, "overlap_hours must be a number of hours from 0 to 720"),
    };
    let (secret, until) = match manage::endpoints::rotate(&console.db, &who.scope, &name, hours * 3600).await {
        Ok(rotated) => rotated,
        Err(e) => return refusal(e),
    };
    tracing::info!(
        peer = %who.peer, via = who.access.as_str(), tenant = who.scope.tenant(), action = "rotate", endpoint = %name,
        overlap_hours = hours, "console: endpoint secret rotated"
    );
    let content = html! {
        p.notice { "A new secret signs " a href=(path_of(&name)) { (name) } "'s deliveries from now on. "
            @if hours == 0 { "The older secrets stop signing within seconds." }
            @else { "The older ones sign them too until " span.until { (until_text(&until, now_epoch())) } ", so the receiver can switch meanwhile." } }
        (secret_shown(&secret))
        p { a href=(path_of(&name)) { "Back to the endpoint" } }
    };
    layout_page("Secret rotated", None, content).into_response()
}

pub async fn test(
    State(console): State<Arc<Console>>,
    Extension(who): Extension<Who>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refused) = checked(&who, &headers, &body) {
        return *refused;
    }
    let p = match manage::endpoints::send_test(&console.db, &console.config, &who.scope, &name).await {
        Ok(p) => p,
        Err(e) => return refusal(e),
    };
    tracing::info!(
        peer = %who.peer, via = who.access.as_str(), tenant = who.scope.tenant(), action = "send-test", endpoint = %name,
        event_id = %p.event_id, status_code = p.status_code, "console: test request (not recorded)"
    );
    layout_page("Test request", None, test_result(&p, &path_of(&name), "Back to the endpoint")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_encode_names_and_never_mean_the_form() {
        assert_eq!(path_of("orders"), "/endpoints/orders");
        assert_eq!(path_of("new"), "/endpoints/%6Eew");
        assert_eq!(path_of("a/b ?#.."), "/endpoints/a%2Fb%20%3F%23%2E%2E");
    }

    #[test]
    fn pause_ends_read_as_a_clock_and_what_is_left() {
        let at = 1_796_653_860; // 2026-12-07T14:31:00Z
        assert_eq!(until_text("2026-12-07T14:31:00Z", at - 900), "14:31 UTC (15m 0s left)");
        assert_eq!(until_text("2026-12-07T14:31:00Z", at - 3 * 86_400), "2026-12-07 14:31 UTC (3d 0h left)");
        assert_eq!(until_text("2026-12-07T15:31:00+01:00", at - 60), "14:31 UTC (1m 0s left)");
        assert_eq!(until_text("whenever", at), "whenever");
    }

    #[test]
    fn form_fields_become_manage_fields() {
        let form = Form::parse(
            b"name=n&url=https%3A%2F%2Fx.example%2Fh&event_types=a.*%2C+b&filter=%7B%22k%22%3A1%7D&max_attempts=3&headers=X-Key%3A+s3cret&ordered=on",
        );
        let f = fields_of(&form, true, false).unwrap();
        assert_eq!(f["event_types"], serde_json::json!(["a.*", "b"]));
        assert_eq!((f["max_attempts"].as_i64(), f["ordered"].as_bool()), (Some(3), Some(true)));
        assert_eq!(f["headers"]["X-Key"], "s3cret");
        assert!(!f.contains_key("timeout_ms") && !f.contains_key("tenant"));
        let edit = fields_of(&Form::parse(b"timeout_ms=&event_types=*"), false, true).unwrap();
        assert_eq!(edit["timeout_ms"], Value::Null);
        assert!(!edit.contains_key("tenant") && !edit.contains_key("url") && !edit.contains_key("headers"));
        let bad = fields_of(&Form::parse(b"name=n&url=https%3A%2F%2Fx&headers=just-a-secret-value"), true, false);
        assert_eq!(bad.unwrap_err(), Problem::new("headers", "line 1: expected `Name: value`"));
        let bad = fields_of(&Form::parse(b"name=n&url=https%3A%2F%2Fx&timeout_ms=soon"), true, false);
        assert_eq!(bad.unwrap_err().field, "timeout_ms");
    }
}
