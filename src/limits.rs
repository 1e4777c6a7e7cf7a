//! Per-endpoint load of this replica (requests in flight, rate-limit tokens), used to size claims.

use crate::endpoints::Endpoint;
use crate::recorder::DueTimer;
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

/// How many more deliveries each endpoint may start now, for one claim.
#[derive(Debug, Default)]
pub struct Rooms {
    pub endpoint_ids: Vec<i64>,
    pub room: Vec<i32>,
    /// For endpoints this replica does not know yet.
    pub default_room: i32,
}

/// Enforces `max_in_flight` and `rate_limit_per_sec` per endpoint, per replica.
pub struct Limits {
    loads: Mutex<HashMap<i64, Load>>,
    default_max_in_flight: u32,
    due: Arc<DueTimer>,
}

impl Limits {
    pub fn new(default_max_in_flight: u32, due: Arc<DueTimer>) -> Self {
        Self { loads: Mutex::default(), default_max_in_flight, due }
    }

    /// The room of every enabled endpoint right now.
    pub fn rooms(&self, endpoints: &HashMap<i64, Arc<Endpoint>>) -> Rooms {
        let now = Instant::now();
        let mut loads = self.loads.lock().unwrap_or_else(|e| e.into_inner());
        let mut rooms = Rooms { default_room: self.default_max_in_flight as i32, ..Rooms::default() };
        for (id, ep) in endpoints.iter().filter(|(_, ep)| ep.enabled) {
            let load = loads.entry(*id).or_insert_with(|| Load {
                in_flight: 0,
                tokens: ep.rate_limit_per_sec.map_or(0.0, f64::from),
                refilled: now,
                backlog: false,
            });
            let mut room = ep.max_in_flight.saturating_sub(load.in_flight);
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
