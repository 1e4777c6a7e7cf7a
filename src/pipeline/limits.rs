//! Per-endpoint load of this replica (requests in flight, rate-limit tokens), used to size claims.

use crate::db::Rooms;
use crate::pipeline::endpoints::Endpoint;
use crate::pipeline::recorder::DueTimer;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug)]
struct Load {
    in_flight: u32,
    /// Rate-limit bucket: refills at the endpoint's rate, holds one second's worth.
    tokens: f64,
    refilled: Instant,
    /// Deliveries may be waiting for room: a finishing request wakes the due claim.
    backlog: bool,
}

/// Enforces `max_in_flight` and `rate_limit_per_sec` per endpoint, per
/// replica, and a fair share of the request slots (see [`fair_share`]).
pub struct Limits {
    loads: Mutex<HashMap<i64, Load>>,
    default_max_in_flight: u32,
    /// Request slots over all endpoints (`delivery.concurrency`).
    concurrency: u32,
    due: Arc<DueTimer>,
}

/// Most slots one endpoint may hold: the slots divided among the endpoints
/// with requests in flight plus one more, so however many endpoints hold
/// their requests open (a receiver that never answers holds each for its
/// whole timeout), a share is always left for another endpoint. With a
/// single enabled endpoint, all of them.
pub fn fair_share(concurrency: u32, in_flight_endpoints: u32, enabled: u32) -> u32 {
    (concurrency / (in_flight_endpoints + 1).min(enabled).max(1)).max(1)
}

impl Limits {
    pub fn new(default_max_in_flight: u32, concurrency: u32, due: Arc<DueTimer>) -> Self {
        Self { loads: Mutex::default(), default_max_in_flight, concurrency, due }
    }

    /// The room of every enabled endpoint right now.
    pub fn rooms(&self, endpoints: &HashMap<i64, Arc<Endpoint>>) -> Rooms {
        let now = Instant::now();
        let mut loads = self.loads.lock().unwrap_or_else(|e| e.into_inner());
        // Endpoints deleted since: forgotten once nothing is in flight to them.
        loads.retain(|id, load| load.in_flight > 0 || endpoints.contains_key(id));
        let busy = loads.values().filter(|l| l.in_flight > 0).count() as u32;
        let enabled = endpoints.values().filter(|ep| ep.enabled).count() as u32;
        let share = fair_share(self.concurrency, busy, enabled);
        let mut rooms = Rooms { default_room: self.default_max_in_flight.min(share) as i32, ..Rooms::default() };
        for (id, ep) in endpoints.iter().filter(|(_, ep)| ep.enabled) {
            let load = loads.entry(*id).or_insert_with(|| Load {
                in_flight: 0,
                tokens: ep.rate_limit_per_sec.map_or(0.0, f64::from),
                refilled: now,
                backlog: false,
            });
            let mut room = ep.max_in_flight.min(share).saturating_sub(load.in_flight);
            if let Some(rate) = ep.rate_limit_per_sec {
                let rate = f64::from(rate);
                // Debt from requests started before the limit was set is capped
                // at one second's worth.
                let refill = now.duration_since(load.refilled).as_secs_f64() * rate;
                load.tokens = (load.tokens.max(-rate) + refill).min(rate);
                load.refilled = now;
                room = room.min(load.tokens.max(0.0).floor() as u32);
            }
            rooms.endpoint_ids.push(*id);
            rooms.room.push(room.min(i32::MAX as u32) as i32);
        }
        rooms
    }

    /// A delivery to this endpoint was claimed.
    pub fn started(&self, endpoint_id: i64) {
        let mut loads = self.loads.lock().unwrap_or_else(|e| e.into_inner());
        let load = loads.entry(endpoint_id).or_insert_with(|| Load {
            in_flight: 0,
            tokens: 0.0,
            refilled: Instant::now(),
            backlog: false,
        });
        load.in_flight += 1;
        load.tokens -= 1.0;
    }

    /// A delivery to this endpoint is done (or given up); wakes the due claim
    /// if the endpoint has work waiting for room.
    pub fn finished(&self, endpoint_id: i64) {
        let backlog = {
            let mut loads = self.loads.lock().unwrap_or_else(|e| e.into_inner());
            loads.get_mut(&endpoint_id).is_some_and(|load| {
                load.in_flight = load.in_flight.saturating_sub(1);
                load.backlog
            })
        };
        if backlog {
            self.due.schedule(Duration::ZERO);
        }
    }

    pub fn set_backlog(&self, endpoint_id: i64, backlog: bool) {
        if let Some(load) = self.loads.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&endpoint_id) {
            load.backlog = backlog;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fair_share_always_leaves_room_for_one_more_endpoint() {
        // (concurrency, endpoints with requests in flight, enabled endpoints, share)
        let cases = [
            (512, 0, 1, 512),
            (512, 1, 1, 512),
            (64, 0, 3, 64),
            (64, 1, 3, 32),
            (64, 2, 3, 21),
            (64, 2, 2, 32),
            (64, 9, 1000, 6),
            (4, 9, 1000, 1),
            (64, 0, 0, 64),
        ];
        for (concurrency, busy, enabled, share) in cases {
            assert_eq!(fair_share(concurrency, busy, enabled), share, "{concurrency} {busy} {enabled}");
            if enabled > busy && busy > 0 && concurrency > busy {
                assert!(busy * share < concurrency, "the busy ones leave slots free");
            }
        }
    }

    #[test]
    fn deleted_endpoints_are_forgotten_once_idle() {
        let limits = Limits::new(10, 100, Arc::new(DueTimer::default()));
        let endpoint = |enabled| {
            Arc::new(Endpoint {
                name: "e".into(),
                enabled,
                timeout: Duration::from_secs(1),
                max_attempts: 1,
                backoff: crate::pipeline::schedule::Backoff { initial_ms: 1_000, max_ms: 1_000 },
                max_in_flight: 10,
                rate_limit_per_sec: None,
                ordered: false,
                transform: None,
                filters_ok: true,
                target: Err("not needed here".into()),
                reseal: None,
            })
        };
        let known: HashMap<i64, Arc<Endpoint>> = [(1, endpoint(true)), (2, endpoint(true))].into();
        limits.rooms(&known);
        limits.started(2);
        assert_eq!(limits.loads.lock().unwrap().len(), 2);
        // Both deleted; 2 still has a request in flight.
        limits.rooms(&HashMap::new());
        assert_eq!(limits.loads.lock().unwrap().keys().collect::<Vec<_>>(), [&2]);
        limits.finished(2);
        limits.rooms(&HashMap::new());
        assert!(limits.loads.lock().unwrap().is_empty());
    }
}
