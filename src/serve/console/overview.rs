//! The endpoints page: one row per endpoint with its state, backlog, recent failures, success rate, latency and a chart of the last hour, with its actions.
//!
//! The figures are `tailhook status`'s (`endpoint_status.sql`, over the last
//! hour: the failures and success rate of the last hour), paged by name, plus
//! the failures of the last 24 hours (`console_failed_day.sql`), the
//! per-minute counts of the last hour (`console_minutes.sql`) and the latency
//! sample (`console_latency.sql`). Counting a day of successes would cost a
//! busy endpoint's whole day of index entries on every page view; an hour's
//! costs what the chart already reads.

use super::chart::{self, Buckets};
use super::endpoint::{now_epoch, path_of, until_text};
use super::layout::{csrf_field, label, link, page as layout_page};
use super::{database_failure, Console, Who};
use crate::db::{Latency, Minute};
use crate::operator::status::{age, Row};
use axum::extract::{Extension, Query, State};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

/// Endpoints per page.
const PAGE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct Params {
    /// Keyset: endpoints whose name comes after this one.
    #[serde(default)]
    after: String,
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
    Query(params): Query<Params>,
) -> Response {
    let db = &console.db;
    // A portal link's tenant sees its own endpoints, so its chart counts only its deliveries.
    let mut rows = match db.endpoint_status_of("1 hour", &params.after, Some(PAGE + 1), who.scope.tenant()).await {
        Ok(rows) => rows,
        Err(e) => return database_failure(&e),
    };
    let more = rows.len() as i64 > PAGE;
    rows.truncate(PAGE as usize);
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let (minutes, latency, failed_day) =
        match tokio::try_join!(db.console_minutes(&ids), db.console_latency(&ids), db.console_failed_day(&ids)) {
            Ok(all) => all,
            Err(e) => return database_failure(&e),
        };
    let failed_day: HashMap<i64, i64> = failed_day.into_iter().collect();
    let mut charts: HashMap<i64, Buckets> = HashMap::new();
    for Minute { endpoint_id, minute, succeeded, failed } in minutes {
        if let Some(slot) = charts.entry(endpoint_id).or_insert([(0, 0); chart::MINUTES]).get_mut(minute as usize) {
            *slot = (succeeded, failed);
        }
    }
    let latency: HashMap<i64, Latency> = latency.into_iter().map(|l| (l.endpoint_id, l)).collect();
    let next = more.then(|| rows.last().map(|r| link("/", &[("after", &r.name)]))).flatten();
    let rows: Vec<(i64, Row)> = rows.into_iter().map(|s| (s.id, Row::from(s))).collect();
    let content = html! {
        @if !who.read_only { p { a.new href="/endpoints/new" { "New endpoint" } } }
        @if rows.is_empty() && params.after.is_empty() && who.scope.tenant().is_some() {
            p { "No endpoints yet." }
        } @else if rows.is_empty() && params.after.is_empty() {
            p { "No endpoints yet: add one with " a href="/endpoints/new" { "New endpoint" } ", " code { "INSERT INTO tailhook.endpoints (name, url, secrets) …" }
                " or an " code { "[[endpoints]]" } " entry in config.toml." }
        } @else {
            table.endpoints {
                thead { tr {
                    th { "endpoint" } th { "state" } th { "pending" } th { "retrying" }
                    th { "failed 1 h" } th { "failed 24 h" } th { "success 1 h" }
                    th { "p50 / p95" } th { "oldest undelivered" } th { "finished per minute, last hour" } th { "actions" }
                } }
                tbody {
                    @for (id, row) in &rows {
                        (endpoint_row(&who, row, charts.get(id), latency.get(id), failed_day.get(id).copied().unwrap_or(0)))
                    }
                }
            }
            @if let Some(next) = next { p { a href=(next) { "Next endpoints →" } } }
            p.muted { "failed: deliveries that gave up. success 1 h: succeeded / (succeeded + failed) among deliveries "
                "finished in the last hour (a retried one counts once). p50 / p95: attempt durations in the last hour "
                "(a sample of up to 1,500 recent deliveries). The chart: deliveries finished each minute, "
                "succeeded in green, failed in red." }
        }
    };
    layout_page("Endpoints", notice(&params), content).into_response()
}

fn endpoint_row(who: &Who, r: &Row, chart: Option<&Buckets>, latency: Option<&Latency>, failed_day: i64) -> Markup {
    let buckets = chart.copied().unwrap_or([(0, 0); chart::MINUTES]);
    let state = match r.state {
        "disabled" => format!("disabled: {}", r.disabled_reason.as_deref().unwrap_or("by a user")),
        "invalid" => format!("invalid: {}", r.invalid_reason.as_deref().unwrap_or_default()),
        "paused" => format!("paused until {}", until_text(r.paused_until.as_deref().unwrap_or_default(), now_epoch())),
        other => other.to_owned(),
    };
    html! {
        tr {
            td { a.endpoint href=(path_of(&r.name)) { (r.name) } }
            td { (label(r.state, &state)) }
            td.n { (r.pending) }
            td.n { (r.retrying) }
            td.n { (r.failed_in_window) }
            td.n { (failed_day) }
            td.n { (r.success_rate_in_window.map_or("-".to_owned(), |rate| format!("{:.1} %", rate * 100.0))) }
            td.n { @match latency {
                Some(l) if l.sampled > 0 => (format!("{:.0} / {:.0} ms", l.p50_ms, l.p95_ms)),
                _ => "-",
            } }
            td.n { (r.oldest_undelivered_age_secs.map_or("-".to_owned(), age)) }
            td.chart { (chart::per_minute(&buckets)) }
            td.actions {
                @if who.read_only {
                    span.muted { "read-only" }
                } @else {
                    @if r.state == "paused" {
                        (action(&format!("{}/resume", path_of(&r.name)), &who.csrf, &r.name, Some(("back", "/")), "Resume"))
                    } @else if r.state == "disabled" {
                        (action("/actions/enable", &who.csrf, &r.name, None, "Re-enable"))
                    } @else {
                        (action("/actions/pause", &who.csrf, &r.name, Some(("minutes", "15")), "Pause 15 min"))
                    }
                    " "
                    (action("/actions/test", &who.csrf, &r.name, None, "Send test"))
                }
                " "
                a href=(link("/deliveries", &[("endpoint", &r.name)])) { "Deliveries" }
            }
        }
    }
}

/// A one-button form acting on an endpoint.
fn action(path: &str, csrf: &str, endpoint: &str, extra: Option<(&str, &str)>, text: &str) -> Markup {
    html! {
        form.inline method="post" action=(path) {
            (csrf_field(csrf))
            input type="hidden" name="endpoint" value=(endpoint);
            @if let Some((name, value)) = extra { input type="hidden" name=(name) value=(value); }
            button type="submit" { (text) }
        }
    }
}

/// What an action said, shown after its redirect. Fixed texts and numbers
/// only: a crafted link cannot make the console say anything else.
pub fn notice_text(code: &str, n: i64, of: i64) -> Option<String> {
    Some(match code {
        "redelivered" if n == of => format!("Redelivered {n} {}.", if n == 1 { "delivery" } else { "deliveries" }),
        "redelivered" => format!("Redelivered {n} of {of}; the others are being sent right now and were left alone."),
        "enabled" => "Endpoint re-enabled: its deliveries go now.".to_owned(),
        "paused" => format!("Endpoint paused for {n} minutes; Resume ends the pause at once."),
        "resumed" => "Pause ended: the endpoint's deliveries go now.".to_owned(),
        "saved" => "Endpoint saved.".to_owned(),
        "deleted" => "Endpoint deleted with its deliveries.".to_owned(),
        _ => return None,
    })
}

fn notice(p: &Params) -> Option<Markup> {
    notice_text(&p.notice, p.n, p.of).map(|text| html! { p.notice { (text) } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_are_fixed_texts() {
        assert_eq!(notice_text("redelivered", 1, 1).as_deref(), Some("Redelivered 1 delivery."));
        assert_eq!(notice_text("redelivered", 3, 3).as_deref(), Some("Redelivered 3 deliveries."));
        assert!(notice_text("redelivered", 2, 3).unwrap().starts_with("Redelivered 2 of 3;"));
        assert_eq!(notice_text("<script>", 0, 0), None);
        assert_eq!(notice_text("", 0, 0), None);
    }
}
