//! Log lines about a repeating failure, at most one per interval (a database outage must not flood the log); rate limits on deliveries are `pipeline::limits`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lets one log line through per `every`; counts the ones it held back.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl Throttle {
    pub const fn new(every: Duration) -> Self {
        Self { every, last: Mutex::new(None), suppressed: AtomicU64::new(0) }
    }

    /// `Some(n)` when a line may be logged now (`n` lines were held back
    /// since the last one); `None` when it should be skipped.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match *last {
            Some(at) if now.duration_since(at) < self.every => {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                None
            }
            _ => {
                *last = Some(now);
                Some(self.suppressed.swap(0, Ordering::Relaxed))
            }
        }
    }
}

/// One line per key (an endpoint) per `every`, carrying how many events
/// happened since that key's last line.
#[derive(Debug)]
pub struct KeyedThrottle {
    every: Duration,
    /// Key → when its last line was logged, and events since.
    seen: Mutex<HashMap<String, (Option<Instant>, u64)>>,
}

impl KeyedThrottle {
    pub fn new(every: Duration) -> Self {
        Self { every, seen: Mutex::default() }
    }

    /// Counts one event for `key`; `Some(n)` when a line may be logged now
    /// (`n` events, this one included, since the last line).
    pub fn allow(&self, key: &str) -> Option<u64> {
        self.allow_at(key, Instant::now())
    }

    fn allow_at(&self, key: &str, now: Instant) -> Option<u64> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let (last, count) = seen.entry(key.to_owned()).or_insert((None, 0));
        *count += 1;
        match *last {
            Some(at) if now.duration_since(at) < self.every => None,
            _ => {
                *last = Some(now);
                Some(std::mem::take(count))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval() {
        let t = Throttle::new(Duration::from_secs(1));
        let start = Instant::now();
        assert_eq!(t.allow_at(start), Some(0));
        assert_eq!(t.allow_at(start + Duration::from_millis(10)), None);
        assert_eq!(t.allow_at(start + Duration::from_millis(999)), None);
        assert_eq!(t.allow_at(start + Duration::from_millis(1000)), Some(2));
        assert_eq!(t.allow_at(start + Duration::from_millis(1001)), None);
    }

    #[test]
    fn one_line_per_key_per_interval_with_counts() {
        let t = KeyedThrottle::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(t.allow_at("a", start), Some(1));
        assert_eq!(t.allow_at("a", start + Duration::from_secs(1)), None);
        assert_eq!(t.allow_at("b", start + Duration::from_secs(1)), Some(1), "keys are independent");
        assert_eq!(t.allow_at("a", start + Duration::from_secs(2)), None);
        assert_eq!(t.allow_at("a", start + Duration::from_secs(10)), Some(3));
    }
}
