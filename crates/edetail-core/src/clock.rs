//! Clocks behind a trait (wall clock and monotonic clock), so clock jumps and long offline
//! periods are testable deterministically.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// Where and when an event is recorded: wall clock, process session, monotonic offset.
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    pub wall_ms: i64,
    pub session: i64,
    pub mono_ms: i64,
}

/// The device's clocks.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Wall-clock time as the device believes it (may be wrong or set back).
    fn now_utc(&self) -> DateTime<Utc>;
    /// Monotonic time since an arbitrary origin in this process; never goes backwards, does not
    /// follow wall-clock changes.
    fn monotonic(&self) -> Duration;
}

/// The real clocks.
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    pub fn new() -> Self {
        SystemClock { origin: Instant::now() }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now_utc(&self) -> DateTime<Utc> {
        Utc::now()
    }
    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock tests drive by hand: set the wall clock anywhere, advance monotonic time.
#[derive(Debug)]
pub struct ManualClock {
    state: Mutex<(DateTime<Utc>, Duration)>,
}

impl ManualClock {
    pub fn new(wall: DateTime<Utc>) -> Self {
        ManualClock { state: Mutex::new((wall, Duration::ZERO)) }
    }

    /// Time passes: both clocks advance.
    pub fn advance(&self, d: Duration) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.0 += chrono::Duration::from_std(d).unwrap_or_default();
        s.1 += d;
    }

    /// The user changes the device clock: only the wall clock moves.
    pub fn set_wall(&self, wall: DateTime<Utc>) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).0 = wall;
    }
}

impl Clock for ManualClock {
    fn now_utc(&self) -> DateTime<Utc> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).0
    }
    fn monotonic(&self) -> Duration {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1
    }
}

pub fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}
