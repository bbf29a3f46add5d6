//! Trusted time and whether content may be opened.
//!
//! The device clock may be wrong or set back (to keep showing expired content). Trusted time is
//! the later of the device clock and a persisted floor that only moves forward: the last trusted
//! time seen (including the hub's time at each sync) plus the monotonic time elapsed since, in
//! this process. Across restarts the floor survives, so setting the clock back never revives
//! expired content.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::clock::{Clock, from_ms, to_ms};

/// Why a presentation cannot be opened now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Unopenable {
    #[error("not valid before {valid_from}")]
    NotYetValid { valid_from: DateTime<Utc> },
    #[error("expired at {valid_until}")]
    Expired { valid_until: DateTime<Utc> },
    #[error("revoked by the hub")]
    Revoked,
    #[error("the device has not synced since {last_sync}; connect and sync to keep presenting")]
    SyncRequired { last_sync: DateTime<Utc> },
}

/// Persistent state of the trusted clock (stored in `meta`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeState {
    /// Highest trusted time ever established, ms.
    pub floor_ms: i64,
    /// Hub time at the last successful sync, ms (0: never).
    pub last_hub_sync_ms: i64,
}

/// The trusted clock of one open data directory.
#[derive(Debug)]
pub struct TrustedClock {
    clock: std::sync::Arc<dyn Clock>,
    inner: Mutex<Anchor>,
}

#[derive(Debug, Clone, Copy)]
struct Anchor {
    state: TimeState,
    /// Monotonic reading when `state.floor_ms` was established in this process.
    mono_at_floor: Duration,
}

impl TrustedClock {
    pub fn new(clock: std::sync::Arc<dyn Clock>, state: TimeState) -> Self {
        let mono = clock.monotonic();
        TrustedClock { clock, inner: Mutex::new(Anchor { state, mono_at_floor: mono }) }
    }

    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    fn anchor(&self) -> std::sync::MutexGuard<'_, Anchor> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Trusted now; advances the floor. Returns the new state to persist.
    pub fn now(&self) -> (DateTime<Utc>, TimeState) {
        let mut a = self.anchor();
        let mono = self.clock.monotonic();
        let elapsed = mono.saturating_sub(a.mono_at_floor).as_millis() as i64;
        let by_floor = a.state.floor_ms.saturating_add(elapsed);
        let device = to_ms(self.clock.now_utc());
        let now = device.max(by_floor);
        a.state.floor_ms = now;
        a.mono_at_floor = mono;
        (from_ms(now), a.state)
    }

    /// The hub said what time it is (during sync). Returns the new state to persist.
    pub fn observe_hub_time(&self, hub_now: DateTime<Utc>) -> TimeState {
        let (_, _) = self.now();
        let mut a = self.anchor();
        let hub = to_ms(hub_now);
        a.state.floor_ms = a.state.floor_ms.max(hub);
        a.state.last_hub_sync_ms = hub;
        a.state
    }

    pub fn state(&self) -> TimeState {
        self.anchor().state
    }
}

/// Whether content with this window may be opened at trusted time `now`.
pub fn check_openable(
    now: DateTime<Utc>,
    valid_from: DateTime<Utc>,
    valid_until: DateTime<Utc>,
    revoked: bool,
    last_hub_sync: Option<DateTime<Utc>>,
    max_offline: Option<Duration>,
) -> Result<(), Unopenable> {
    if revoked {
        return Err(Unopenable::Revoked);
    }
    if now < valid_from {
        return Err(Unopenable::NotYetValid { valid_from });
    }
    if now >= valid_until {
        return Err(Unopenable::Expired { valid_until });
    }
    if let (Some(limit), Some(last)) = (max_offline, last_hub_sync)
        && now - last > chrono::Duration::from_std(limit).unwrap_or(chrono::Duration::MAX)
    {
        return Err(Unopenable::SyncRequired { last_sync: last });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::TimeZone;

    use super::*;
    use crate::clock::ManualClock;

    fn t(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).single().unwrap()
    }

    #[test]
    fn setting_the_clock_back_does_not_turn_time_back() {
        let clock = Arc::new(ManualClock::new(t(2027, 1, 10)));
        let tc = TrustedClock::new(clock.clone(), TimeState::default());
        assert_eq!(tc.now().0, t(2027, 1, 10));
        clock.set_wall(t(2026, 6, 1)); // rep sets the clock back
        clock.advance(Duration::from_secs(3600));
        assert_eq!(tc.now().0, t(2027, 1, 10) + chrono::Duration::hours(1));
        // A restart keeps the floor.
        let state = tc.state();
        let tc2 = TrustedClock::new(clock.clone(), state);
        assert!(tc2.now().0 >= t(2027, 1, 10));
    }

    #[test]
    fn hub_time_moves_the_floor_forward() {
        let clock = Arc::new(ManualClock::new(t(2020, 1, 1))); // device clock far behind
        let tc = TrustedClock::new(clock.clone(), TimeState::default());
        tc.observe_hub_time(t(2027, 3, 1));
        clock.advance(Duration::from_secs(60));
        assert_eq!(tc.now().0, t(2027, 3, 1) + chrono::Duration::seconds(60));
        assert_eq!(tc.state().last_hub_sync_ms, to_ms(t(2027, 3, 1)));
    }

    #[test]
    fn validity_window_revocation_and_offline_limit() {
        let (from, until) = (t(2026, 1, 1), t(2027, 1, 1));
        assert_eq!(check_openable(t(2026, 6, 1), from, until, false, None, None), Ok(()));
        assert!(matches!(check_openable(t(2025, 6, 1), from, until, false, None, None), Err(Unopenable::NotYetValid { .. })));
        assert!(matches!(check_openable(until, from, until, false, None, None), Err(Unopenable::Expired { .. })));
        assert_eq!(check_openable(t(2026, 6, 1), from, until, true, None, None), Err(Unopenable::Revoked));
        let month = Some(Duration::from_secs(30 * 86400));
        assert!(matches!(
            check_openable(t(2026, 6, 1), from, until, false, Some(t(2026, 1, 2)), month),
            Err(Unopenable::SyncRequired { .. })
        ));
        assert_eq!(check_openable(t(2026, 6, 1), from, until, false, Some(t(2026, 5, 20)), month), Ok(()));
    }
}
