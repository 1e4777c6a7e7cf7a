//! Wrong admin tokens per peer: a few are answered, then every credential from that peer gets 429 until a pause has passed; each pause is logged once.
//!
//! A peer is an IPv4 address or an IPv6 /64 (one host may hold a whole
//! /64). [`FREE_FAILURES`] wrong tokens (or forged session cookies, on any
//! page or `/login`) in a row start a pause of [`PAUSE`] during which no
//! credential from that peer is checked, the right one included, so guessing
//! is held to [`FREE_FAILURES`] tries a pause. At most [`MAX_PEERS`] peers
//! are remembered; when that many are failing at once, a peer not yet
//! remembered is refused too (bearer-token clients from known peers still
//! work).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wrong tokens answered before a pause.
pub const FREE_FAILURES: u32 = 5;
/// How long a peer waits after [`FREE_FAILURES`] wrong tokens.
pub const PAUSE: Duration = Duration::from_secs(60);
/// Peers remembered at once.
pub const MAX_PEERS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Peer {
    failures: u32,
    last_failure: Instant,
    paused_until: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct SignInThrottle {
    peers: Mutex<HashMap<IpAddr, Peer>>,
}

/// IPv4 (IPv4-mapped included) as is; IPv6 by its /64.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & (u128::MAX << 64)).into()),
        },
        v4 => v4,
    }
}

impl SignInThrottle {
    /// `Err(seconds)` to wait while this peer's credentials are not checked.
    pub fn check(&self, peer: IpAddr, now: Instant) -> Result<(), u64> {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        match peers.get(&key(peer)) {
            Some(Peer { paused_until: Some(until), .. }) if *until > now => {
                Err((*until - now).as_secs_f64().ceil().max(1.0) as u64)
            }
            Some(_) => Ok(()),
            None if peers.len() < MAX_PEERS => Ok(()),
            None => {
                forget_the_past(&mut peers, now);
                if peers.len() < MAX_PEERS {
                    Ok(())
                } else {
                    Err(PAUSE.as_secs())
                }
            }
        }
    }

    /// Counts a wrong credential; `true` when it starts a pause (log that).
    pub fn failed(&self, peer: IpAddr, now: Instant) -> bool {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        if peers.len() >= MAX_PEERS {
            forget_the_past(&mut peers, now);
        }
        if peers.len() >= MAX_PEERS && !peers.contains_key(&key(peer)) {
            return false;
        }
        let p = peers.entry(key(peer)).or_insert(Peer { failures: 0, last_failure: now, paused_until: None });
        if now.duration_since(p.last_failure) >= PAUSE {
            p.failures = 0;
        }
        p.failures += 1;
        p.last_failure = now;
        if p.failures >= FREE_FAILURES {
            p.failures = 0;
            p.paused_until = Some(now + PAUSE);
            return true;
        }
        false
    }

    /// A right credential: the peer's count starts again.
    pub fn succeeded(&self, peer: IpAddr) {
        self.peers.lock().unwrap_or_else(|e| e.into_inner()).remove(&key(peer));
    }
}

/// Drops peers whose pause is over and whose last failure is a pause old.
fn forget_the_past(peers: &mut HashMap<IpAddr, Peer>, now: Instant) {
    peers.retain(|_, p| p.paused_until.is_some_and(|u| u > now) || now.duration_since(p.last_failure) < PAUSE);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_failures_then_a_pause_per_peer() {
        let t = SignInThrottle::default();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let now = Instant::now();
        for i in 1..FREE_FAILURES {
            assert_eq!(t.check(a, now), Ok(()));
            assert!(!t.failed(a, now), "{i}");
        }
        assert!(t.failed(a, now), "the last free failure starts the pause");
        assert_eq!(t.check(a, now), Err(PAUSE.as_secs()));
        assert_eq!(t.check(a, now + Duration::from_millis(59_500)), Err(1));
        assert_eq!(t.check(b, now), Ok(()), "another peer");
        assert_eq!(t.check(a, now + PAUSE), Ok(()), "over");
        t.failed(b, now);
        t.succeeded(b);
        assert_eq!(t.peers.lock().unwrap().len(), 1);
    }

    #[test]
    fn ipv6_peers_are_their_64() {
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let other: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(key(one), key(other));
        assert_ne!(key(one), key("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(key("::ffff:127.0.0.1".parse().unwrap()), "127.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_full_table_refuses_unknown_peers() {
        let t = SignInThrottle::default();
        let now = Instant::now();
        for i in 0..MAX_PEERS as u32 {
            t.failed(IpAddr::V4(i.into()), now);
        }
        let stranger: IpAddr = "203.0.113.1".parse().unwrap();
        assert!(t.check(stranger, now).is_err());
        assert!(t.check(IpAddr::V4(7u32.into()), now).is_ok(), "a known peer with failures to spare");
        assert!(t.check(stranger, now + PAUSE).is_ok(), "the old failures are forgotten");
    }
}
