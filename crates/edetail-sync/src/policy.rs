//! The sync policy: a pure, deterministic state machine in the style of glean's upload policy.
//!
//! It owns *decisions* only: what to do next (upload, download, wait until a time, stop), how to
//! classify a failure, how long to back off. It does no I/O, reads no clock and never sleeps:
//! the engine feeds it [`Input`]s with the current time in milliseconds and carries out the
//! [`Step`] it answers. Randomness (jitter) comes from an injected [`JitterRng`], so every
//! schedule is reproducible in tests with a seeded [`SplitMix64`].

use std::fmt;

/// First backoff ceiling after one failure (milliseconds). The ceiling doubles per failure up
/// to [`MAX_BACKOFF`]: per failed attempt of the current sync for the waits inside it, per
/// failure since the last completed sync for the suggested next sync ([`Policy::next_sync_at`]).
pub const BASE_BACKOFF: u64 = 1_000;
/// Largest backoff ceiling (milliseconds): 5 minutes.
pub const MAX_BACKOFF: u64 = 5 * 60 * 1_000;
/// Largest `Retry-After` honoured (milliseconds): a hub asking for more is clamped to 1 hour.
pub const MAX_RETRY_AFTER: u64 = 60 * 60 * 1_000;
/// Failed attempts (transient or network) within one sync before it stops and reports.
pub const MAX_ATTEMPTS_PER_SYNC: u32 = 5;
/// After a permanent or auth failure, the next sync is suggested no sooner than this.
pub const PERMANENT_RETRY_DELAY: u64 = MAX_BACKOFF;

/// How a failed request is retried (matrix-sdk's `RetryKind`, plus auth).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// 5xx, 429, an unreadable answer: retry with backoff (honour `Retry-After`).
    Transient,
    /// Connect error, timeout (ours, or the hub's 408), connection reset: retry with backoff.
    Network,
    /// 4xx other than 401 and 429: retrying the same request cannot help; stop this sync.
    Permanent,
    /// 401 after one token refresh: the app must sign in again; stop this sync.
    Auth,
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureClass::Transient => "transient",
            FailureClass::Network => "network",
            FailureClass::Permanent => "permanent",
            FailureClass::Auth => "auth",
        })
    }
}

/// Classifies a non-2xx HTTP status (see the table in `docs/protocol.md`).
pub fn classify_status(status: u16) -> FailureClass {
    match status {
        401 => FailureClass::Auth,
        429 => FailureClass::Transient,
        // The hub closed a body that arrived too slowly: the network, not the request, was at fault.
        408 => FailureClass::Network,
        500..=599 => FailureClass::Transient,
        400..=499 => FailureClass::Permanent,
        // 1xx/3xx reaching us are protocol violations by the hub or a proxy: retry later.
        _ => FailureClass::Transient,
    }
}

/// The phase a sync is in (and the one a wait resumes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Upload,
    Download,
}

/// What the engine is doing, as the app shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum SyncState {
    /// No sync running (never synced, or the last one stopped on a failure).
    Idle,
    Uploading,
    Downloading,
    /// Backing off after a failure; resumes `resume` at `until_ms` (engine clock, ms).
    Waiting {
        until_ms: u64,
        resume: Phase,
    },
    /// The app said the device is offline; nothing is attempted.
    Offline,
    /// The last sync completed.
    Done,
}

impl SyncState {
    /// A sync is in progress (including its backoff waits).
    pub fn is_active(&self) -> bool {
        matches!(self, SyncState::Uploading | SyncState::Downloading | SyncState::Waiting { .. })
    }
}

/// App lifecycle signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    Foreground,
    Background,
}

/// What happened, as the engine reports it to the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// Begin a sync.
    Start,
    /// The current phase completed (all batches acknowledged / all pages applied).
    PhaseDone,
    /// An attempt in the current phase failed.
    Failed {
        class: FailureClass,
        retry_after_ms: Option<u64>,
    },
    /// A wait the policy asked for has (probably) elapsed.
    WaitElapsed,
    /// Connectivity as the app sees it.
    Connectivity {
        online: bool,
    },
    Lifecycle(Lifecycle),
    /// The app cancelled the running sync; its task is gone.
    Cancelled,
}

/// Why a sync stopped without completing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Another sync is in progress.
    Busy,
    Offline,
    /// The app went to the background during a backoff wait.
    Background,
    /// A failure the policy will not retry within this sync.
    Failed {
        class: FailureClass,
        attempts: u32,
    },
}

/// What the engine must do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Upload,
    Download,
    /// Sleep until `until_ms`, then report [`Input::WaitElapsed`].
    Wait {
        until_ms: u64,
    },
    /// The sync completed.
    Finished,
    Stopped(StopReason),
    /// The input changes nothing the engine must act on.
    Nothing,
}

/// Source of jitter. Implementations must be uniform over `u64`.
pub trait JitterRng: Send {
    fn next_u64(&mut self) -> u64;
}

/// A tiny, seedable generator (SplitMix64): deterministic in tests, seeded from entropy in the
/// engine. Not cryptographic; jitter only needs to spread retries.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
}

impl JitterRng for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Backoff ceiling after `failures` consecutive failures (>= 1): `BASE * 2^(failures-1)`,
/// capped at [`MAX_BACKOFF`].
pub fn backoff_ceiling(failures: u32) -> u64 {
    let exp = failures.saturating_sub(1).min(32);
    BASE_BACKOFF.saturating_mul(1u64 << exp).min(MAX_BACKOFF)
}

/// The sync policy state machine.
pub struct Policy {
    state: SyncState,
    online: bool,
    /// Failed attempts in the current sync (drives the backoff waits inside it).
    attempts: u32,
    /// Failures since the last completed sync (drives only `next_sync_at`, so that a sync right
    /// after a failed one still retries within seconds).
    consecutive_failures: u32,
    /// When the policy suggests the next sync after one stopped on a failure (ms).
    next_sync_at: Option<u64>,
    rng: Box<dyn JitterRng>,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("state", &self.state)
            .field("online", &self.online)
            .field("attempts", &self.attempts)
            .field("consecutive_failures", &self.consecutive_failures)
            .field("next_sync_at", &self.next_sync_at)
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// A policy starting Idle and online.
    pub fn new(rng: Box<dyn JitterRng>) -> Self {
        Policy { state: SyncState::Idle, online: true, attempts: 0, consecutive_failures: 0, next_sync_at: None, rng }
    }

    pub fn state(&self) -> SyncState {
        self.state
    }

    pub fn is_online(&self) -> bool {
        self.online
    }

    /// Failed attempts in the current (or last) sync.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// When a sync that stopped on a failure should be tried again (ms), if one did.
    pub fn next_sync_at(&self) -> Option<u64> {
        self.next_sync_at
    }

    /// Full-jitter backoff: uniform in `0..=backoff_ceiling(failures)`.
    fn jittered_backoff(&mut self, failures: u32) -> u64 {
        let ceiling = backoff_ceiling(failures);
        self.rng.next_u64() % (ceiling + 1)
    }

    /// Feeds one input at time `now_ms`; answers what to do next.
    pub fn on(&mut self, input: Input, now_ms: u64) -> Step {
        match input {
            Input::Start => {
                if self.state.is_active() {
                    return Step::Stopped(StopReason::Busy);
                }
                if !self.online {
                    self.state = SyncState::Offline;
                    return Step::Stopped(StopReason::Offline);
                }
                self.attempts = 0;
                self.state = SyncState::Uploading;
                Step::Upload
            }
            Input::PhaseDone => match self.state {
                SyncState::Uploading => {
                    self.state = SyncState::Downloading;
                    Step::Download
                }
                SyncState::Downloading => {
                    self.state = SyncState::Done;
                    self.consecutive_failures = 0;
                    self.next_sync_at = None;
                    Step::Finished
                }
                _ => Step::Nothing,
            },
            Input::Failed { class, retry_after_ms } => {
                let phase = match self.state {
                    SyncState::Uploading => Phase::Upload,
                    SyncState::Downloading => Phase::Download,
                    _ => return Step::Nothing,
                };
                self.attempts += 1;
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                match class {
                    FailureClass::Permanent | FailureClass::Auth => {
                        self.state = SyncState::Idle;
                        self.next_sync_at = Some(now_ms + PERMANENT_RETRY_DELAY);
                        Step::Stopped(StopReason::Failed { class, attempts: self.attempts })
                    }
                    FailureClass::Transient | FailureClass::Network => {
                        let retry_after = retry_after_ms.map_or(0, |ra| ra.min(MAX_RETRY_AFTER));
                        if self.attempts >= MAX_ATTEMPTS_PER_SYNC {
                            // Stop this sync, but a failed attempt still schedules its retry,
                            // further away the longer failures have lasted across syncs.
                            self.state = SyncState::Idle;
                            let delay = self.jittered_backoff(self.consecutive_failures).max(retry_after);
                            self.next_sync_at = Some(now_ms + delay);
                            return Step::Stopped(StopReason::Failed { class, attempts: self.attempts });
                        }
                        let until_ms = now_ms + self.jittered_backoff(self.attempts).max(retry_after);
                        self.state = SyncState::Waiting { until_ms, resume: phase };
                        Step::Wait { until_ms }
                    }
                }
            }
            Input::WaitElapsed => match self.state {
                SyncState::Waiting { until_ms, .. } if now_ms < until_ms => Step::Wait { until_ms },
                SyncState::Waiting { resume: Phase::Upload, .. } => {
                    self.state = SyncState::Uploading;
                    Step::Upload
                }
                SyncState::Waiting { resume: Phase::Download, .. } => {
                    self.state = SyncState::Downloading;
                    Step::Download
                }
                _ => Step::Nothing,
            },
            Input::Connectivity { online } => {
                self.online = online;
                match (online, self.state) {
                    (false, s) if s.is_active() => {
                        self.state = SyncState::Offline;
                        Step::Stopped(StopReason::Offline)
                    }
                    (false, _) => {
                        self.state = SyncState::Offline;
                        Step::Nothing
                    }
                    (true, SyncState::Offline) => {
                        self.state = SyncState::Idle;
                        Step::Nothing
                    }
                    (true, _) => Step::Nothing,
                }
            }
            Input::Lifecycle(Lifecycle::Background) => match self.state {
                // A running transfer finishes (it is short and the OS grants background time);
                // a backoff wait is abandoned: the app resumes syncing in the foreground.
                SyncState::Waiting { .. } => {
                    self.state = SyncState::Idle;
                    Step::Stopped(StopReason::Background)
                }
                _ => Step::Nothing,
            },
            Input::Lifecycle(Lifecycle::Foreground) => Step::Nothing,
            Input::Cancelled => {
                if self.state.is_active() {
                    self.state = SyncState::Idle;
                }
                Step::Nothing
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(seed: u64) -> Policy {
        Policy::new(Box::new(SplitMix64::new(seed)))
    }

    fn transient() -> Input {
        Input::Failed { class: FailureClass::Transient, retry_after_ms: None }
    }

    #[test]
    fn classifies_statuses_per_protocol_table() {
        assert_eq!(classify_status(401), FailureClass::Auth);
        assert_eq!(classify_status(429), FailureClass::Transient);
        assert_eq!(classify_status(408), FailureClass::Network, "a body the hub timed out is retried, not dropped");
        assert_eq!(classify_status(500), FailureClass::Transient);
        assert_eq!(classify_status(503), FailureClass::Transient);
        for s in [400, 403, 404, 409, 413, 422] {
            assert_eq!(classify_status(s), FailureClass::Permanent, "{s}");
        }
    }

    #[test]
    fn happy_path_idle_upload_download_done() {
        let mut p = policy(1);
        assert_eq!(p.state(), SyncState::Idle);
        assert_eq!(p.on(Input::Start, 0), Step::Upload);
        assert_eq!(p.state(), SyncState::Uploading);
        assert_eq!(p.on(Input::PhaseDone, 1), Step::Download);
        assert_eq!(p.state(), SyncState::Downloading);
        assert_eq!(p.on(Input::PhaseDone, 2), Step::Finished);
        assert_eq!(p.state(), SyncState::Done);
        // A new sync may start from Done.
        assert_eq!(p.on(Input::Start, 3), Step::Upload);
    }

    #[test]
    fn a_cancelled_sync_leaves_the_policy_ready_for_the_next() {
        let mut p = policy(1);
        p.on(Input::Start, 0);
        p.on(Input::PhaseDone, 1);
        assert_eq!(p.on(Input::Cancelled, 2), Step::Nothing);
        assert_eq!(p.state(), SyncState::Idle);
        assert_eq!(p.on(Input::Start, 3), Step::Upload);
        // Cancelling when nothing runs changes nothing.
        let mut q = policy(2);
        q.on(Input::Start, 0);
        q.on(Input::PhaseDone, 1);
        q.on(Input::PhaseDone, 2);
        q.on(Input::Cancelled, 3);
        assert_eq!(q.state(), SyncState::Done);
    }

    #[test]
    fn start_while_active_is_busy() {
        let mut p = policy(1);
        p.on(Input::Start, 0);
        assert_eq!(p.on(Input::Start, 1), Step::Stopped(StopReason::Busy));
        assert_eq!(p.state(), SyncState::Uploading);
    }

    #[test]
    fn start_offline_stops_without_attempting() {
        let mut p = policy(1);
        p.on(Input::Connectivity { online: false }, 0);
        assert_eq!(p.state(), SyncState::Offline);
        assert_eq!(p.on(Input::Start, 1), Step::Stopped(StopReason::Offline));
        assert_eq!(p.on(Input::Connectivity { online: true }, 2), Step::Nothing);
        assert_eq!(p.state(), SyncState::Idle);
        assert_eq!(p.on(Input::Start, 3), Step::Upload);
    }

    #[test]
    fn going_offline_mid_sync_stops_it() {
        let mut p = policy(1);
        p.on(Input::Start, 0);
        p.on(Input::PhaseDone, 0);
        assert_eq!(p.on(Input::Connectivity { online: false }, 1), Step::Stopped(StopReason::Offline));
        assert_eq!(p.state(), SyncState::Offline);
    }

    #[test]
    fn transient_failure_waits_then_resumes_the_same_phase() {
        let mut p = policy(7);
        p.on(Input::Start, 0);
        p.on(Input::PhaseDone, 0);
        let Step::Wait { until_ms } = p.on(transient(), 1_000) else { panic!("expected a wait") };
        assert!((1_000..=1_000 + BASE_BACKOFF).contains(&until_ms));
        assert_eq!(p.state(), SyncState::Waiting { until_ms, resume: Phase::Download });
        // Woken early: keep waiting.
        if until_ms > 1_000 {
            assert_eq!(p.on(Input::WaitElapsed, until_ms - 1), Step::Wait { until_ms });
        }
        assert_eq!(p.on(Input::WaitElapsed, until_ms), Step::Download);
        assert_eq!(p.state(), SyncState::Downloading);
    }

    #[test]
    fn network_failure_in_upload_resumes_upload() {
        let mut p = policy(3);
        p.on(Input::Start, 0);
        let Step::Wait { until_ms } = p.on(Input::Failed { class: FailureClass::Network, retry_after_ms: None }, 0) else {
            panic!("expected a wait")
        };
        assert_eq!(p.on(Input::WaitElapsed, until_ms), Step::Upload);
    }

    #[test]
    fn permanent_and_auth_stop_and_schedule_a_later_sync() {
        for class in [FailureClass::Permanent, FailureClass::Auth] {
            let mut p = policy(1);
            p.on(Input::Start, 0);
            assert_eq!(p.on(Input::Failed { class, retry_after_ms: None }, 10), Step::Stopped(StopReason::Failed { class, attempts: 1 }));
            assert_eq!(p.state(), SyncState::Idle);
            assert_eq!(p.next_sync_at(), Some(10 + PERMANENT_RETRY_DELAY));
        }
    }

    #[test]
    fn stops_after_max_attempts_and_still_schedules_a_retry() {
        let mut p = policy(5);
        p.on(Input::Start, 0);
        let mut now = 0;
        for _ in 1..MAX_ATTEMPTS_PER_SYNC {
            let Step::Wait { until_ms } = p.on(transient(), now) else { panic!("expected a wait") };
            now = until_ms;
            assert_eq!(p.on(Input::WaitElapsed, now), Step::Upload);
        }
        let step = p.on(transient(), now);
        assert_eq!(step, Step::Stopped(StopReason::Failed { class: FailureClass::Transient, attempts: MAX_ATTEMPTS_PER_SYNC }));
        assert_eq!(p.state(), SyncState::Idle);
        let next = p.next_sync_at().expect("a retry is scheduled");
        assert!(next >= now && next <= now + MAX_BACKOFF);
    }

    #[test]
    fn success_resets_backoff_and_schedule() {
        let mut p = policy(5);
        p.on(Input::Start, 0);
        for _ in 0..MAX_ATTEMPTS_PER_SYNC {
            if let Step::Wait { until_ms } = p.on(transient(), 0) {
                p.on(Input::WaitElapsed, until_ms);
            }
        }
        assert!(p.next_sync_at().is_some());
        p.on(Input::Start, 0);
        p.on(Input::PhaseDone, 0);
        assert_eq!(p.on(Input::PhaseDone, 0), Step::Finished);
        assert_eq!(p.next_sync_at(), None);
        assert_eq!(p.consecutive_failures, 0);
    }

    /// Fails every attempt of one sync until the policy stops it; answers the time it stopped.
    fn fail_a_whole_sync(p: &mut Policy, mut now: u64) -> u64 {
        assert_eq!(p.on(Input::Start, now), Step::Upload);
        loop {
            match p.on(transient(), now) {
                Step::Wait { until_ms } => {
                    now = until_ms;
                    assert_eq!(p.on(Input::WaitElapsed, now), Step::Upload);
                }
                Step::Stopped(StopReason::Failed { .. }) => return now,
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn a_sync_after_failed_ones_backs_off_from_its_own_attempts() {
        for seed in 0..200 {
            let mut p = policy(seed);
            let mut now = fail_a_whole_sync(&mut p, 0);
            now = fail_a_whole_sync(&mut p, now);
            assert_eq!(p.consecutive_failures, 2 * MAX_ATTEMPTS_PER_SYNC);
            // The next sync's first retries wait like any sync's: 1 s, 2 s, ... ceilings, not
            // the 5 min the failures across syncs have reached.
            assert_eq!(p.on(Input::Start, now), Step::Upload);
            for attempt in 1..MAX_ATTEMPTS_PER_SYNC {
                let Step::Wait { until_ms } = p.on(transient(), now) else { panic!("expected a wait") };
                assert!(until_ms - now <= backoff_ceiling(attempt), "seed {seed} attempt {attempt}: waits {} ms", until_ms - now);
                now = until_ms;
                p.on(Input::WaitElapsed, now);
            }
        }
    }

    #[test]
    fn the_suggested_next_sync_backs_off_across_failed_syncs() {
        let mut longest_after_two = 0;
        for seed in 0..200 {
            let mut p = policy(seed);
            let stopped = fail_a_whole_sync(&mut p, 0);
            let next = p.next_sync_at().expect("scheduled") - stopped;
            assert!(next <= backoff_ceiling(MAX_ATTEMPTS_PER_SYNC), "seed {seed}: {next}");
            let stopped = fail_a_whole_sync(&mut p, stopped);
            let next = p.next_sync_at().expect("scheduled") - stopped;
            assert!(next <= backoff_ceiling(2 * MAX_ATTEMPTS_PER_SYNC), "seed {seed}: {next}");
            longest_after_two = longest_after_two.max(next);
        }
        assert!(longest_after_two > backoff_ceiling(MAX_ATTEMPTS_PER_SYNC), "the ceiling grew across syncs: {longest_after_two}");
    }

    #[test]
    fn backoff_ceiling_doubles_and_caps() {
        assert_eq!(backoff_ceiling(1), BASE_BACKOFF);
        assert_eq!(backoff_ceiling(2), 2 * BASE_BACKOFF);
        assert_eq!(backoff_ceiling(3), 4 * BASE_BACKOFF);
        assert_eq!(backoff_ceiling(20), MAX_BACKOFF);
        assert_eq!(backoff_ceiling(u32::MAX), MAX_BACKOFF);
        // Ceiling is monotonic.
        for n in 1..40 {
            assert!(backoff_ceiling(n) <= backoff_ceiling(n + 1));
        }
    }

    #[test]
    fn jittered_waits_stay_within_bounds() {
        for seed in 0..200 {
            let mut p = policy(seed);
            p.on(Input::Start, 0);
            for failure in 1..MAX_ATTEMPTS_PER_SYNC {
                let Step::Wait { until_ms } = p.on(transient(), 0) else { panic!("expected a wait") };
                assert!(until_ms <= backoff_ceiling(failure), "seed {seed} failure {failure}: {until_ms}");
                p.on(Input::WaitElapsed, until_ms);
            }
        }
    }

    #[test]
    fn jitter_is_deterministic_for_a_seed_and_varies_across_seeds() {
        let schedule = |seed| {
            let mut p = policy(seed);
            p.on(Input::Start, 0);
            let mut out = Vec::new();
            for _ in 1..MAX_ATTEMPTS_PER_SYNC {
                let Step::Wait { until_ms } = p.on(transient(), 0) else { panic!("expected a wait") };
                out.push(until_ms);
                p.on(Input::WaitElapsed, until_ms);
            }
            out
        };
        assert_eq!(schedule(42), schedule(42));
        assert_ne!(schedule(42), schedule(43));
    }

    #[test]
    fn retry_after_is_honoured_and_clamped() {
        let mut p = policy(9);
        p.on(Input::Start, 0);
        let step = p.on(Input::Failed { class: FailureClass::Transient, retry_after_ms: Some(30_000) }, 100);
        let Step::Wait { until_ms } = step else { panic!("expected a wait") };
        assert!(until_ms >= 100 + 30_000, "waits at least Retry-After");
        assert!(until_ms <= 100 + 30_000.max(BASE_BACKOFF));
        p.on(Input::WaitElapsed, until_ms);
        let step = p.on(Input::Failed { class: FailureClass::Transient, retry_after_ms: Some(u64::MAX) }, 0);
        assert_eq!(step, Step::Wait { until_ms: MAX_RETRY_AFTER });
    }

    #[test]
    fn background_abandons_a_wait_but_not_a_transfer() {
        let mut p = policy(1);
        p.on(Input::Start, 0);
        assert_eq!(p.on(Input::Lifecycle(Lifecycle::Background), 0), Step::Nothing);
        assert_eq!(p.state(), SyncState::Uploading);
        p.on(transient(), 0);
        assert_eq!(p.on(Input::Lifecycle(Lifecycle::Background), 0), Step::Stopped(StopReason::Background));
        assert_eq!(p.state(), SyncState::Idle);
        assert_eq!(p.on(Input::Lifecycle(Lifecycle::Foreground), 0), Step::Nothing);
    }

    #[test]
    fn inputs_out_of_place_are_ignored() {
        let mut p = policy(1);
        assert_eq!(p.on(Input::PhaseDone, 0), Step::Nothing);
        assert_eq!(p.on(transient(), 0), Step::Nothing);
        assert_eq!(p.on(Input::WaitElapsed, 0), Step::Nothing);
        assert_eq!(p.state(), SyncState::Idle);
        assert_eq!(p.attempts(), 0);
    }
}
