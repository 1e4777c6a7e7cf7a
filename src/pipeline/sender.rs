//! One HTTP attempt: builds the Standard Webhooks request (and its endpoint's legacy signature), sends it under one deadline, and classifies what happened.

use crate::config::DeliveryConfig;
use crate::egress::{default_tls, Egress, ProxyFailure, Tunnel, TunnelClient};
use crate::guard::{refusal, AddressPolicy, BlockedAddress, DnsFailure, GuardedResolver};
use crate::pipeline::endpoints::{Endpoint, Target};
use crate::pipeline::outcome::{ErrorKind, Outcome};
use crate::pipeline::pybody::python_sorted;
use crate::pipeline::schedule::parse_retry_after;
use crate::pipeline::trace::{EventTrace, Propagation};
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
    pub event_type: Arc<str>,
    /// The event's trace context (its own trace when it came with none).
    pub trace: Arc<EventTrace>,
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
        let trace = Arc::new(EventTrace::of_event(&event_id, None, None));
        Self { event_id, body: Ok(Bytes::from(body)), tenant: None, event_type: Arc::from(event_type), trace }
    }

    /// An event whose payload of `payload_bytes` is too large to send.
    pub fn too_large(event_id: String, event_type: &str, payload_bytes: usize) -> Self {
        let trace = Arc::new(EventTrace::of_event(&event_id, None, None));
        Self { event_id, body: Err(payload_bytes), tenant: None, event_type: Arc::from(event_type), trace }
    }

    /// The same event with its stored trace context (`traceparent`, `tracestate`).
    pub fn with_trace(mut self, traceparent: Option<&str>, tracestate: Option<&str>) -> Self {
        if traceparent.is_some() {
            self.trace = Arc::new(EventTrace::of_event(&self.event_id, traceparent, tracestate));
        }
        self
    }

    /// The same event with its tenant.
    pub fn with_tenant(mut self, tenant: Option<String>) -> Self {
        self.tenant = tenant.map(Arc::from);
        self
    }

    /// The same event with another body (what a transform made of it).
    pub fn with_body(&self, body: Bytes) -> Self {
        Self {
            event_id: self.event_id.clone(),
            body: Ok(body),
            tenant: self.tenant.clone(),
            event_type: self.event_type.clone(),
            trace: self.trace.clone(),
        }
    }
}

/// What one attempt observed.
#[derive(Debug)]
pub struct Attempt {
    pub outcome: Outcome,
    pub started_at: SystemTime,
    pub duration: Duration,
}

/// The shared HTTP clients and the limits every request obeys.
pub struct Sender {
    /// Direct requests of endpoints without TLS settings of their own.
    client: reqwest::Client,
    /// With `delivery.proxy` set: every request of endpoints without TLS
    /// settings of their own (it reaches bypassed destinations directly).
    tunnel: Option<TunnelClient>,
    egress: Arc<Egress>,
    policy: Arc<AddressPolicy>,
    /// Connections kept per destination (`delivery.concurrency`).
    idle_per_host: usize,
    max_payload_bytes: usize,
    max_response_bytes: usize,
}

/// Why no sender could be made.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// `delivery.proxy` or `delivery.proxy_bypass` (checked when a config is
    /// loaded; a config built in code reaches this).
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
}

/// The client one request goes out with.
enum Via<'a> {
    Direct(&'a reqwest::Client),
    Tunnel(&'a TunnelClient),
}

impl Sender {
    pub fn new(config: &DeliveryConfig, policy: AddressPolicy) -> Result<Self, SenderError> {
        let policy = Arc::new(policy);
        let egress = Egress::parse(config.proxy.expose(), &config.proxy_bypass)
            .map_err(|(key, reason)| crate::config::ConfigError::Invalid { key, reason })?;
        let egress = Arc::new(egress);
        let client = Self::direct_client(config.concurrency, &policy, None)?;
        let tunnel = egress
            .proxy
            .is_some()
            .then(|| Tunnel::client(egress.clone(), policy.clone(), default_tls(), config.concurrency));
        Ok(Self {
            client,
            tunnel,
            egress,
            policy,
            idle_per_host: config.concurrency,
            max_payload_bytes: config.max_payload_bytes,
            max_response_bytes: config.max_response_bytes,
        })
    }

    /// A reqwest client whose resolver applies the destination policy;
    /// `tls`: an endpoint's own TLS configuration.
    fn direct_client(
        idle_per_host: usize,
        policy: &Arc<AddressPolicy>,
        tls: Option<&rustls::ClientConfig>,
    ) -> Result<reqwest::Client, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment would be the address checked, not the destination.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { policy: policy.clone() }))
            .user_agent(USER_AGENT)
            .tcp_nodelay(true)
            .pool_max_idle_per_host(idle_per_host)
            .pool_idle_timeout(Duration::from_secs(60));
        if let Some(tls) = tls {
            builder = builder.use_preconfigured_tls(tls.clone());
        }
        builder.build()
    }

    /// The client for `target`: its own (made on its first request, kept
    /// with the endpoint's version) when it has TLS settings, else a shared one.
    fn via<'a>(&'a self, target: &'a Target) -> Result<Via<'a>, Outcome> {
        let proxied = self.egress.proxy.is_some();
        Ok(match (&target.tls, &self.tunnel) {
            (None, Some(tunnel)) => Via::Tunnel(tunnel),
            (None, None) => Via::Direct(&self.client),
            (Some(tls), _) if proxied => Via::Tunnel(tls.tunnel.get_or_init(|| {
                Tunnel::client(self.egress.clone(), self.policy.clone(), tls.config.clone(), self.idle_per_host)
            })),
            (Some(tls), _) => {
                let client = tls.direct.get_or_init(|| {
                    Self::direct_client(self.idle_per_host, &self.policy, Some(&tls.config)).map_err(describe)
                });
                Via::Direct(client.as_ref().map_err(|e| Outcome::failed(ErrorKind::Tls, e.clone()))?)
            }
        })
    }

    /// Makes one attempt within `timeout` (connect, headers and body). Never
    /// fails: every problem is an [`Outcome`].
    /// `trace`: the attempt's `traceparent`/`tracestate`, sent unless the
    /// endpoint turned propagation off.
    pub async fn send(
        &self,
        endpoint: &Endpoint,
        event: &Event,
        timeout: Duration,
        trace: Option<&Propagation>,
    ) -> Attempt {
        let started_at = SystemTime::now();
        let clock = tokio::time::Instant::now();
        let outcome = match self.build(endpoint, event, started_at, trace) {
            Err(refused) => refused,
            Ok((request, via)) => match tokio::time::timeout(timeout, self.execute(request, via)).await {
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
    fn build<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        event: &Event,
        now: SystemTime,
        trace: Option<&Propagation>,
    ) -> Result<(reqwest::Request, Via<'a>), Outcome> {
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
        // After the endpoint's own headers: a `traceparent` among them is replaced.
        if let Some(trace) = trace.filter(|_| target.propagate_trace) {
            headers.insert("traceparent", trace.traceparent.clone());
            if let Some(state) = &trace.tracestate {
                headers.insert("tracestate", state.clone());
            }
        }
        // Over the same bytes as the body sent (after any transform).
        if let Some(legacy) = &target.legacy {
            if let Ok(value) = HeaderValue::from_str(&legacy.sign(timestamp, &body)) {
                headers.insert(legacy.header.clone(), value);
            }
        }
        let request = self
            .client
            .post(target.url.clone())
            .headers(headers)
            .body(body)
            .build()
            .map_err(|e| Outcome::failed(ErrorKind::InvalidRequest, describe(e)))?;
        Ok((request, self.via(target)?))
    }

    async fn execute(&self, request: reqwest::Request, via: Via<'_>) -> Outcome {
        let mut response = match via {
            Via::Direct(client) => match client.execute(request).await {
                Ok(r) => r,
                Err(e) => return classify(e),
            },
            Via::Tunnel(client) => {
                let request = match hyper::Request::<reqwest::Body>::try_from(request) {
                    Ok(r) => r,
                    Err(e) => return Outcome::failed(ErrorKind::InvalidRequest, describe(e)),
                };
                match client.request(request).await {
                    Ok(r) => reqwest::Response::from(r.map(reqwest::Body::wrap)),
                    Err(e) => return classify_tunnel(&e),
                }
            }
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

/// The kind a transport error's source chain names, if it names one:
/// refused or unresolvable destinations, proxy failures, and TLS (a bad or
/// untrusted certificate on either side, a handshake the server refused).
fn kind_in_chain(mut source: Option<&(dyn std::error::Error + 'static)>) -> Result<Option<ErrorKind>, Outcome> {
    let mut chain = String::new();
    while let Some(e) = source {
        if let Some(b) = e.downcast_ref::<BlockedAddress>() {
            return Err(Outcome::failed(ErrorKind::BlockedAddress, b.to_string()));
        }
        if let Some(d) = e.downcast_ref::<DnsFailure>() {
            return Err(Outcome::failed(ErrorKind::Dns, d.to_string()));
        }
        if let Some(p) = e.downcast_ref::<ProxyFailure>() {
            return Err(Outcome::failed(ErrorKind::Connect, p.to_string()));
        }
        if e.downcast_ref::<rustls::Error>().is_some() {
            return Ok(Some(ErrorKind::Tls));
        }
        chain.push_str(&e.to_string().to_ascii_lowercase());
        chain.push(' ');
        source = e.source();
    }
    let tls = ["certificate", "tls", "handshake", "alert"].iter().any(|w| chain.contains(w));
    Ok(tls.then_some(ErrorKind::Tls))
}

/// Names the kind of a proxied request's transport error.
fn classify_tunnel(err: &hyper_util::client::legacy::Error) -> Outcome {
    let kind = match kind_in_chain(Some(err)) {
        Err(outcome) => return outcome,
        Ok(Some(kind)) => kind,
        Ok(None) => ErrorKind::Connect,
    };
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    Outcome::failed(kind, text)
}

/// Names the kind of a transport error from its source chain.
fn classify(err: reqwest::Error) -> Outcome {
    let named = match kind_in_chain(err.source()) {
        Err(outcome) => return outcome,
        Ok(named) => named,
    };
    let kind = if err.is_timeout() {
        ErrorKind::Timeout
    } else if let Some(kind) = named {
        kind
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
