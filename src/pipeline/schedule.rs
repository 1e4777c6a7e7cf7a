//! The persisted retry schedule and `Retry-After` parsing: pure functions, clock and randomness passed in.

use std::time::{Duration, SystemTime};

/// Exponential backoff: `initial_ms`, doubling per attempt, capped at `max_ms`,
/// with ±20% jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial_ms: u64,
    pub max_ms: u64,
}

/// Share of a delay that jitter may add or remove.
const JITTER: f64 = 0.2;

impl Backoff {
    /// Delay before the next attempt after `attempts_made` (≥ 1) failed attempts.
    /// `jitter` is a random number in `[-1, 1]`; the result stays within `max_ms`.
    pub fn delay(&self, attempts_made: u32, jitter: f64) -> Duration {
        let exponent = attempts_made.saturating_sub(1).min(62);
        let base = self.initial_ms.saturating_mul(1u64 << exponent).min(self.max_ms);
        let jittered = base as f64 * (1.0 + JITTER * jitter.clamp(-1.0, 1.0));
        Duration::from_millis((jittered.round() as u64).min(self.max_ms))
    }

    /// The delay honouring a receiver's `Retry-After`: never sooner than it
    /// asks, never longer than `max_ms`.
    pub fn delay_with_retry_after(&self, attempts_made: u32, jitter: f64, retry_after: Option<Duration>) -> Duration {
        let scheduled = self.delay(attempts_made, jitter);
        match retry_after {
            Some(asked) => scheduled.max(asked).min(Duration::from_millis(self.max_ms)),
            None => scheduled,
        }
    }

    /// Sum of the delays (without jitter) between `max_attempts` attempts.
    pub fn total_span(&self, max_attempts: u32) -> Duration {
        (1..max_attempts).map(|n| self.delay(n, 0.0)).sum()
    }
}

/// Parses a `Retry-After` value: delay seconds or an HTTP-date. `None` when
/// malformed; a date in the past means "now".
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: Backoff = Backoff { initial_ms: 5_000, max_ms: 21_600_000 };

    #[test]
    fn doubles_and_caps() {
        let cases = [
            (1, 0.0, 5_000),
            (2, 0.0, 10_000),
            (3, 0.0, 20_000),
            (13, 0.0, 20_480_000),
            (14, 0.0, 21_600_000),
            (40, 0.0, 21_600_000),
            (u32::MAX, 0.0, 21_600_000),
            (1, 1.0, 6_000),
            (1, -1.0, 4_000),
            (2, 0.5, 11_000),
            (14, 1.0, 21_600_000), // jitter never passes the cap
            (1, 7.0, 6_000),       // out-of-range jitter is clamped
        ];
        for (attempts, jitter, expected_ms) in cases {
            assert_eq!(
                DEFAULT.delay(attempts, jitter),
                Duration::from_millis(expected_ms),
                "attempts={attempts} jitter={jitter}"
            );
        }
    }

    #[test]
    fn default_schedule_spans_more_than_a_day() {
        let span = DEFAULT.total_span(18);
        assert!(span >= Duration::from_secs(24 * 3600), "{span:?}");
        // Even with the most negative jitter on every delay.
        let worst: Duration = (1..18).map(|n| DEFAULT.delay(n, -1.0)).sum();
        assert!(worst >= Duration::from_secs(24 * 3600), "{worst:?}");
        assert_eq!(span.as_secs() / 3600, 35);
    }

    #[test]
    fn an_endpoints_own_values_make_its_schedule() {
        // (initial_ms, max_ms) as an endpoint's columns give them, and the delays after 1..=5 attempts.
        let cases = [
            ((250, 1_000), [250, 500, 1_000, 1_000, 1_000]),
            // A legacy module's fixed retry delay: initial = max.
            ((60_000, 60_000), [60_000; 5]),
            // Only backoff_max_ms set, below the default initial delay: every delay is the maximum.
            ((5_000, 2_000), [2_000; 5]),
            ((86_400_000, 604_800_000), [86_400_000, 172_800_000, 345_600_000, 604_800_000, 604_800_000]),
        ];
        for ((initial_ms, max_ms), delays) in cases {
            let b = Backoff { initial_ms, max_ms };
            for (n, expected) in (1..).zip(delays) {
                assert_eq!(b.delay(n, 0.0), Duration::from_millis(expected), "{b:?} after {n}");
                // Jitter stays within ±20% and under the maximum.
                let (low, high) = (b.delay(n, -1.0), b.delay(n, 1.0));
                assert_eq!(low, Duration::from_millis((expected as f64 * 0.8).round() as u64), "{b:?} after {n}");
                assert_eq!(high, Duration::from_millis(((expected as f64 * 1.2).round() as u64).min(max_ms)));
            }
        }
        // A receiver's Retry-After is capped at the endpoint's own maximum.
        let short = Backoff { initial_ms: 250, max_ms: 1_000 };
        assert_eq!(short.delay_with_retry_after(1, 0.0, Some(Duration::from_secs(30))), Duration::from_millis(1_000));
    }

    #[test]
    fn retry_after_is_a_floor_capped_at_max() {
        let b = Backoff { initial_ms: 1_000, max_ms: 60_000 };
        let cases = [(None, 1_000), (Some(30), 30_000), (Some(0), 1_000), (Some(3_600), 60_000)];
        for (asked, expected_ms) in cases {
            let got = b.delay_with_retry_after(1, 0.0, asked.map(Duration::from_secs));
            assert_eq!(got, Duration::from_millis(expected_ms), "{asked:?}");
        }
    }

    #[test]
    fn retry_after_parsing() {
        let now = httpdate::parse_http_date("Sun, 22 Nov 2026 12:00:00 GMT").unwrap();
        let cases = [
            ("120", Some(120)),
            (" 5 ", Some(5)),
            ("Sun, 22 Nov 2026 12:01:30 GMT", Some(90)),
            ("Sun, 22 Nov 2026 11:00:00 GMT", Some(0)),
            ("-5", None),
            ("soon", None),
            ("", None),
            ("1.5", None),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_retry_after(value, now), expected.map(Duration::from_secs), "{value:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn retry_after_takes_seconds_and_http_dates_and_nothing_else(
            junk in "\\PC{0,40}",
            secs in proptest::prelude::any::<u32>(),
            ahead in 0u64..100_000_000,
        ) {
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
            let parsed = parse_retry_after(&junk, now);
            proptest::prop_assert!(parsed.is_none() || junk.trim().parse::<u64>().is_ok() || httpdate::parse_http_date(junk.trim()).is_ok());
            proptest::prop_assert_eq!(parse_retry_after(&format!(" {secs} "), now), Some(Duration::from_secs(secs.into())));
            let at = now + Duration::from_secs(ahead);
            proptest::prop_assert_eq!(parse_retry_after(&httpdate::fmt_http_date(at), now), Some(Duration::from_secs(ahead)));
            let past = now - Duration::from_secs(ahead);
            proptest::prop_assert_eq!(parse_retry_after(&httpdate::fmt_http_date(past), now), Some(Duration::ZERO));
        }
    }
}
