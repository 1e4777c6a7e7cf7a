//! One HTTP attempt: builds the Standard Webhooks request (and its endpoint's legacy signature), sends it under one deadline, and classifies what happened.

use crate::config::DeliveryConfig;
use crate::guard::{refusal, AddressPolicy, BlockedAddress, DnsFailure, GuardedResolver};
use crate::pipeline::endpoints::{Endpoint, Target};
use crate::pipeline::outcome::{ErrorKind, Outcome};
use crate::pipeline::pybody::python_sorted;
use crate::pipeline::schedule::parse_retry_after;
use crate::signing::sign;
use bytes::Bytes;
use reqwest::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const USER_AGENT: &str = concat!("tailhook/", env!("CARGO_PKG_VERSION"));

/// An event ready to send: its id and the exact body bytes that are signed.
#[derive(Debug)]
pub struct Event {
    pub event_id: String,
    /// The body, or the payload's size when it is over
    /// `delivery.max_payload_bytes` (such a payload is never fetched).
    pub body: Result<Bytes, usize>,
    /// The event's tenant: not in the body, but seen by transforms.
    pub tenant: Option<Arc<str>>,
}

impl Event {
    /// Builds the envelope `{"id","type","timestamp","data"}` around the payload's JSON text.
    pub fn new(event_id: String, event_type: &str, created_at: &str, payload: &str) -> Self {
        let type_json = serde_json::to_string(event_type).unwrap_or_else(|_| "\"\"".into());
        let mut body = String::with_capacity(payload.len() + event_id.len() + type_json.len() + 64);
        body.push_str("{\"id\":\"");
        body.push_str(&event_id);
        body.push_str("\",\"type\":");
        body.push_str(&type_json);
        body.push_str(",\"timestamp\":\"");
        body.push_str(created_at);
        body.push_str("\",\"data\":");
        body.push_str(payload);
        body.push('}');
        Self { event_id, body: Ok(Bytes::from(body)), tenant: None }
    }

    /// An event whose payload of `payload_bytes` is too large to send.
    pub fn too_large(event_id: String, payload_bytes: usize) -> Self {
        Self { event_id, body: Err(payload_bytes), tenant: None }
    }

    /// The same event with its tenant.
    pub fn with_tenant(mut self, tenant: Option<String>) -> Self {
        self.tenant = tenant.map(Arc::from);
        self
    }

    /// The same event with another body (what a transform made of it).
    pub fn with_body(&self, body: Bytes) -> Self {
        Self { event_id: self.event_id.clone(), body: Ok(body), tenant: self.tenant.clone() }
    }
}

/// What one attempt observed.
#[derive(Debug)]
pub struct Attempt {
    pub outcome: Outcome,
    pub started_at: SystemTime,
    pub duration: Duration,
}

/// The shared HTTP client and the limits every request obeys.
pub struct Sender {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
    max_payload_bytes: usize,
    max_response_bytes: usize,
}

impl Sender {
    pub fn new(config: &DeliveryConfig, policy: AddressPolicy) -> Result<Self, reqwest::Error> {
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment would be the address checked, not the destination.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { policy: policy.clone() }))
            .user_agent(USER_AGENT)
            .tcp_nodelay(true)
            .pool_max_idle_per_host(config.concurrency)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self {
            client,
            policy,
            max_payload_bytes: config.max_payload_bytes,
            max_response_bytes: config.max_response_bytes,
        })
    }

    /// Makes one attempt within `timeout` (connect, headers and body). Never
    /// fails: every problem is an [`Outcome`].
    pub async fn send(&self, endpoint: &Endpoint, event: &Event, timeout: Duration) -> Attempt {
        let started_at = SystemTime::now();
        let clock = tokio::time::Instant::now();
        let outcome = match self.build(endpoint, event, started_at) {
            Err(refused) => refused,
            Ok(request) => match tokio::time::timeout(timeout, self.execute(request)).await {
                Ok(outcome) => outcome,
                Err(_) => Outcome::failed(
                    ErrorKind::Timeout,
                    format!("no complete response within {} ms", timeout.as_millis()),
                ),
            },
        };
        Attempt { outcome, started_at, duration: clock.elapsed() }
    }

    /// The request, or the outcome of refusing to send it.
    fn build(&self, endpoint: &Endpoint, event: &Event, now: SystemTime) -> Result<reqwest::Request, Outcome> {
        let target: &Target =
            endpoint.target.as_ref().map_err(|problem| Outcome::failed(ErrorKind::InvalidRequest, problem.clone()))?;
        let too_large = |what: &str, bytes: usize| {
            let max = self.max_payload_bytes;
            Outcome::failed(
                ErrorKind::PayloadTooLarge,
                format!("{what} is {bytes} bytes, over delivery.max_payload_bytes ({max})"),
            )
        };
        let mut body = match &event.body {
            Ok(body) if body.len() <= self.max_payload_bytes => body.clone(),
            Ok(body) => return Err(too_large("body", body.len())),
            Err(payload_bytes) => return Err(too_large("payload", *payload_bytes)),
        };
        // Rewritten before anything is signed: every signature covers the bytes sent.
        if target.legacy.as_ref().is_some_and(|l| l.python_sorted_body) {
            body = python_sorted(&body)
                .map(Bytes::from)
                .map_err(|e| Outcome::failed(ErrorKind::InvalidRequest, e.to_string()))?;
            if body.len() > self.max_payload_bytes {
                return Err(too_large("body as Python writes it", body.len()));
            }
        }
        // Literal addresses never reach the resolver: check them here.
        let literal = match target.url.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            _ => None,
        };
        if let Some((ip, Err(class))) = literal.map(|ip| (ip, self.policy.check(ip))) {
            return Err(Outcome::failed(ErrorKind::BlockedAddress, refusal(&format!("{ip} is"), class)));
        }
        let timestamp = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let mut headers = target.headers.clone();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let mut set = |name: &'static str, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(name, v);
            }
        };
        if target.standard {
            set("webhook-id", &event.event_id);
            set("webhook-timestamp", &timestamp.to_string());
            if let Some(signature) = sign(&target.keys, &event.event_id, timestamp, &body) {
                set("webhook-signature", &signature);
            }
        }
        // Over the same bytes as the body sent (after any transform).
        if let Some(legacy) = &target.legacy {
            if let Ok(value) = HeaderValue::from_str(&legacy.sign(timestamp, &body)) {
                headers.insert(legacy.header.clone(), value);
            }
        }
        self.client
            .post(target.url.clone())
            .headers(headers)
            .body(body)
            .build()
            .map_err(|e| Outcome::failed(ErrorKind::InvalidRequest, describe(e)))
    }

    async fn execute(&self, request: reqwest::Request) -> Outcome {
        let mut response = match self.client.execute(request).await {
            Ok(r) => r,
            Err(e) => return classify(e),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        // Read only up to the cap; the rest is never downloaded.
        let mut body = Vec::new();
        while body.len() < self.max_response_bytes {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = self.max_response_bytes - body.len();
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) => break,
                Err(e) => {
                    let mut outcome = Outcome::failed(ErrorKind::BodyRead, describe(e));
                    outcome.status_code = Some(status);
                    return outcome;
                }
            }
        }
        let text = (!body.is_empty()).then(|| String::from_utf8_lossy(&body).replace('\0', ""));
        Outcome::from_status(status, retry_after, text)
    }
}

/// Names the kind of a transport error from its source chain.
fn classify(err: reqwest::Error) -> Outcome {
    let mut source: Option<&(dyn std::error::Error + 'static)> = err.source();
    let mut chain = String::new();
    while let Some(e) = source {
        if let Some(b) = e.downcast_ref::<BlockedAddress>() {
            return Outcome::failed(ErrorKind::BlockedAddress, b.to_string());
        }
        if let Some(d) = e.downcast_ref::<DnsFailure>() {
            return Outcome::failed(ErrorKind::Dns, d.to_string());
        }
        chain.push_str(&e.to_string().to_ascii_lowercase());
        chain.push(' ');
        source = e.source();
    }
    let kind = if err.is_timeout() {
        ErrorKind::Timeout
    } else if chain.contains("certificate") || chain.contains("tls") || chain.contains("handshake") {
        ErrorKind::Tls
    } else if err.is_redirect() {
        ErrorKind::Redirect
    } else if err.is_body() || err.is_decode() {
        ErrorKind::BodyRead
    } else {
        ErrorKind::Connect
    };
    Outcome::failed(kind, describe(err))
}

/// The error and its causes on one line, without the URL (it may carry a token).
fn describe(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_is_the_spec_shape() {
        let e = Event::new(
            "0b8f0f5e-6a43-4a8e-9d4e-0c7e2a1f1a11".into(),
            "invoice.\"paid\"",
            "2026-11-22T10:00:00.123456Z",
            r#"{"amount": 42}"#,
        );
        let v: serde_json::Value = serde_json::from_slice(e.body.as_ref().unwrap()).unwrap();
        assert_eq!(v["id"], "0b8f0f5e-6a43-4a8e-9d4e-0c7e2a1f1a11");
        assert_eq!(v["type"], "invoice.\"paid\"");
        assert_eq!(v["timestamp"], "2026-11-22T10:00:00.123456Z");
        assert_eq!(v["data"]["amount"], 42);
    }
}
