//! What one attempt's result means: error kinds, success, and the delivery's next state (pure).

use crate::pipeline::schedule::Backoff;
use std::time::Duration;

/// Why an attempt failed; the stable `attempts.error_kind` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Timeout,
    Connect,
    Dns,
    Tls,
    HttpStatus,
    Redirect,
    BlockedAddress,
    InvalidRequest,
    PayloadTooLarge,
    BodyRead,
    /// The endpoint's transform failed on this event.
    Transform,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Dns => "dns",
            Self::Tls => "tls",
            Self::HttpStatus => "http_status",
            Self::Redirect => "redirect",
            Self::BlockedAddress => "blocked_address",
            Self::InvalidRequest => "invalid_request",
            Self::PayloadTooLarge => "payload_too_large",
            Self::BodyRead => "body_read",
            Self::Transform => "transform",
        }
    }

    /// Nothing reached the network: the request was refused before it was
    /// sent (a refused destination, an invalid request, a body over the
    /// limit) or the transform made no body.
    pub fn is_refused_before_sending(self) -> bool {
        matches!(self, Self::BlockedAddress | Self::InvalidRequest | Self::PayloadTooLarge | Self::Transform)
    }

    /// A request refused before sending can never succeed, and a transform
    /// gives the same result on the same event: fail it at once.
    pub fn is_permanent(self) -> bool {
        matches!(self, Self::BlockedAddress | Self::InvalidRequest | Self::PayloadTooLarge | Self::Transform)
    }
}

/// The result of one attempt, as the sender observed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub status_code: Option<u16>,
    /// `None` means success (a 2xx).
    pub error_kind: Option<ErrorKind>,
    /// Human-readable detail of a failure.
    pub error: Option<String>,
    /// A valid `Retry-After` sent with a 429 or 503.
    pub retry_after: Option<Duration>,
    pub response_body: Option<String>,
}

impl Outcome {
    /// Classifies an HTTP response status.
    pub fn from_status(status: u16, retry_after: Option<Duration>, body: Option<String>) -> Self {
        let (error_kind, error) = match status {
            200..=299 => (None, None),
            300..=399 => (Some(ErrorKind::Redirect), Some(format!("HTTP {status}: redirects are not followed"))),
            410 => (Some(ErrorKind::HttpStatus), Some("HTTP 410 Gone: endpoint disabled".to_owned())),
            _ => (Some(ErrorKind::HttpStatus), Some(format!("HTTP {status}"))),
        };
        let retry_after = if matches!(status, 429 | 503) { retry_after } else { None };
        Self { status_code: Some(status), error_kind, error, retry_after, response_body: body }
    }

    /// 410 Gone: the receiver says the endpoint no longer exists, so it is
    /// disabled (the delivery itself is retried as usual if re-enabled).
    pub fn endpoint_gone(&self) -> bool {
        self.status_code == Some(410)
    }

    /// A failure with no HTTP response.
    pub fn failed(kind: ErrorKind, error: impl Into<String>) -> Self {
        Self {
            status_code: None,
            error_kind: Some(kind),
            error: Some(error.into()),
            retry_after: None,
            response_body: None,
        }
    }
}

/// Where a delivery goes after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Succeeded,
    /// Try again after this delay (applied with the database clock).
    Retry {
        delay: Duration,
    },
    Failed {
        reason: String,
    },
}

impl Next {
    pub fn status(&self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Retry { .. } => "retrying",
            Self::Failed { .. } => "failed",
        }
    }
}

/// Decides the next state after attempt number `attempt` (1-based).
pub fn next_state(outcome: &Outcome, attempt: u32, max_attempts: u32, backoff: &Backoff, jitter: f64) -> Next {
    let Some(kind) = outcome.error_kind else {
        return Next::Succeeded;
    };
    let detail = outcome.error.as_deref().unwrap_or(kind.as_str());
    if kind == ErrorKind::Transform {
        return Next::Failed { reason: format!("{detail} (not retried: the same event gives the same result)") };
    }
    if kind.is_permanent() {
        return Next::Failed { reason: format!("{detail} (not retried: the request can never succeed)") };
    }
    if attempt >= max_attempts {
        return Next::Failed { reason: format!("{detail} (gave up after {attempt} attempts)") };
    }
    Next::Retry { delay: backoff.delay_with_retry_after(attempt, jitter, outcome.retry_after) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff { initial_ms: 1_000, max_ms: 60_000 };

    #[test]
    fn status_classification() {
        let cases = [
            (200, None),
            (204, None),
            (299, None),
            (301, Some(ErrorKind::Redirect)),
            (308, Some(ErrorKind::Redirect)),
            (400, Some(ErrorKind::HttpStatus)),
            (410, Some(ErrorKind::HttpStatus)),
            (429, Some(ErrorKind::HttpStatus)),
            (500, Some(ErrorKind::HttpStatus)),
            (100, Some(ErrorKind::HttpStatus)),
        ];
        for (status, kind) in cases {
            assert_eq!(Outcome::from_status(status, None, None).error_kind, kind, "{status}");
        }
    }

    #[test]
    fn retry_after_only_counts_on_429_and_503() {
        let ra = Some(Duration::from_secs(30));
        assert_eq!(Outcome::from_status(429, ra, None).retry_after, ra);
        assert_eq!(Outcome::from_status(503, ra, None).retry_after, ra);
        assert_eq!(Outcome::from_status(500, ra, None).retry_after, None);
    }

    #[test]
    fn next_states() {
        let ok = Outcome::from_status(200, None, None);
        let err = Outcome::from_status(500, None, None);
        let slow_down = Outcome::from_status(429, Some(Duration::from_secs(20)), None);
        let blocked = Outcome::failed(ErrorKind::BlockedAddress, "10.0.0.1 is private");
        let cases: [(&Outcome, u32, u32, Next); 6] = [
            (&ok, 1, 3, Next::Succeeded),
            (&ok, 3, 3, Next::Succeeded),
            (&err, 1, 3, Next::Retry { delay: Duration::from_secs(1) }),
            (&err, 2, 3, Next::Retry { delay: Duration::from_secs(2) }),
            (&slow_down, 1, 3, Next::Retry { delay: Duration::from_secs(20) }),
            (&err, 3, 3, Next::Failed { reason: "HTTP 500 (gave up after 3 attempts)".into() }),
        ];
        for (outcome, attempt, max, expected) in cases {
            assert_eq!(next_state(outcome, attempt, max, &B, 0.0), expected, "{outcome:?} #{attempt}");
        }
        let Next::Failed { reason } = next_state(&blocked, 1, 3, &B, 0.0) else {
            panic!("a blocked address must fail at once");
        };
        assert!(reason.starts_with("10.0.0.1 is private"), "{reason}");
        let script = Outcome::failed(ErrorKind::Transform, "transform: deadline of 50 ms exceeded");
        let Next::Failed { reason } = next_state(&script, 1, 18, &B, 0.0) else {
            panic!("a failed transform must fail at once");
        };
        assert_eq!(reason, "transform: deadline of 50 ms exceeded (not retried: the same event gives the same result)");
    }
}
