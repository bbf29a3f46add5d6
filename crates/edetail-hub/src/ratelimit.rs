//! In-memory token buckets, one per key (a device id, a token hash, a client address), in this
//! hub process. Several hub processes behind one balancer each keep their own buckets: the
//! limits bound abuse per process, they are not a quota. Owns no I/O; the clock is passed in.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A device's requests (every `/v1` device route), refilled per second.
pub const DEVICE_RATE_PER_SEC: f64 = 20.0;
/// A device may send this many requests at once (a full content install fetches many blobs
/// back to back; the client fetches them one by one).
pub const DEVICE_BURST: f64 = 400.0;
/// Per token, whatever its role (a device's two tokens during rotation share the device's
/// bucket as well).
pub const TOKEN_RATE_PER_SEC: f64 = 20.0;
pub const TOKEN_BURST: f64 = 400.0;
/// Publishing is rare and heavy (a zip of up to `MAX_PUBLISH_BYTES` each).
pub const PUBLISHER_RATE_PER_SEC: f64 = 0.5;
pub const PUBLISHER_BURST: f64 = 10.0;
/// Dashboard pages per operator.
pub const OPERATOR_RATE_PER_SEC: f64 = 10.0;
pub const OPERATOR_BURST: f64 = 100.0;
/// Login form posts per client address (the login form's own brake, besides the bad-credential
/// one below).
pub const LOGIN_RATE_PER_SEC: f64 = 1.0;
pub const LOGIN_BURST: f64 = 20.0;
/// Bad credentials per client address (unknown, revoked or expired bearer tokens on `/v1` and
/// `/dashboard`, unknown session cookies, failed logins): after the burst, that address gets
/// 429 for every credential it presents until the bucket refills (one failure per 10 s). Other
/// addresses are unaffected, so an attacker cannot lock out an operator elsewhere.
pub const AUTH_FAILURE_RATE_PER_SEC: f64 = 0.1;
pub const AUTH_FAILURE_BURST: f64 = 20.0;
/// Per account: presentations of one subject's revoked or expired tokens, from any address.
/// Only those stale tokens are refused (429); the subject's live tokens never are.
pub const STALE_CREDENTIAL_RATE_PER_SEC: f64 = 0.1;
pub const STALE_CREDENTIAL_BURST: f64 = 20.0;
/// Microsite visit reports per link (one a minute, a burst of 10)...
pub const VISIT_LINK_RATE_PER_SEC: f64 = 1.0 / 60.0;
pub const VISIT_LINK_BURST: f64 = 10.0;
/// ...and per client address, whatever the link.
pub const VISIT_CLIENT_RATE_PER_SEC: f64 = 1.0 / 60.0;
pub const VISIT_CLIENT_BURST: f64 = 10.0;
/// Buckets kept at most; full (idle) buckets are dropped first when over.
pub const MAX_BUCKETS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets keyed by string; each key has its own rate and burst given at check time.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
    /// Requests refused since the process started (tests assert normal sync never hits it).
    refused: std::sync::atomic::AtomicU64,
}

impl RateLimiter {
    /// Takes one token from `key`'s bucket; `Err(wait)` when empty, with the time until one is
    /// available.
    pub fn check(&self, key: &str, rate_per_sec: f64, burst: f64, now: Instant) -> Result<(), Duration> {
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_BUCKETS && !map.contains_key(key) {
            map.retain(|_, b| b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate_per_sec < burst);
        }
        let b = map.entry(key.to_string()).or_insert(Bucket { tokens: burst, at: now });
        let refill = now.saturating_duration_since(b.at).as_secs_f64() * rate_per_sec;
        b.tokens = (b.tokens + refill).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            self.refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate_per_sec))
        }
    }

    /// Whether `key`'s bucket has a token now, without taking it (`Err(wait)` as `check`): for
    /// buckets charged only afterwards, on failure.
    pub fn peek(&self, key: &str, rate_per_sec: f64, burst: f64, now: Instant) -> Result<(), Duration> {
        let map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let Some(b) = map.get(key) else { return Ok(()) };
        let tokens = (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate_per_sec).min(burst);
        if tokens >= 1.0 {
            Ok(())
        } else {
            self.refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Err(Duration::from_secs_f64((1.0 - tokens) / rate_per_sec))
        }
    }

    /// Requests refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_cut_and_the_bucket_refills() {
        let l = RateLimiter::default();
        let t0 = Instant::now();
        for _ in 0..5 {
            l.check("k", 2.0, 5.0, t0).unwrap();
        }
        let wait = l.check("k", 2.0, 5.0, t0).unwrap_err();
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(500), "{wait:?}");
        assert!(l.check("other", 2.0, 5.0, t0).is_ok(), "keys are independent");
        l.check("k", 2.0, 5.0, t0 + Duration::from_millis(500)).unwrap();
        assert!(l.check("k", 2.0, 5.0, t0 + Duration::from_millis(500)).is_err());
        // peek looks without taking.
        assert!(l.peek("fresh", 2.0, 5.0, t0).is_ok());
        assert!(l.peek("k", 2.0, 5.0, t0 + Duration::from_millis(500)).is_err());
        assert!(l.peek("k", 2.0, 5.0, t0 + Duration::from_millis(1000)).is_ok());
        assert!(l.peek("k", 2.0, 5.0, t0 + Duration::from_millis(1000)).is_ok(), "peek took nothing");
    }
}
