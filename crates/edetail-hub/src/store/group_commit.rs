//! Group commit of upload batches, shared by both stores (ADR 0017, ADR 0021): batches that
//! arrive in a lane while another group of that lane is written wait, then one of their threads
//! writes them together, each in its own savepoint (a batch that fails rolls back alone), with
//! one commit. No batch is answered before its group's commit; when the commit fails, every
//! batch of the group fails (nothing of any was stored, the devices send them again).
//!
//! SQLite has one lane (one writer for the whole database); PostgreSQL has one per device (a
//! device's batches are serialised by its row lock anyway, while different devices' batches
//! commit concurrently).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::store::{BatchOutcome, CheckedEvent};

/// Batches written in one transaction at most (a group's commit answers all of them).
pub(crate) const MAX_GROUP: usize = 16;

/// An upload batch waiting for a group: its own copy of the events (the caller's borrow cannot
/// cross to the writing thread).
#[derive(Debug)]
pub(crate) struct Batch {
    pub device_id: String,
    pub events: Vec<CheckedEvent>,
    pub skew_ms: i64,
    pub now: DateTime<Utc>,
}

#[derive(Debug)]
struct Job {
    /// Taken by the thread that writes it.
    batch: Mutex<Option<Batch>>,
    outcome: Mutex<Option<Result<BatchOutcome>>>,
}

#[derive(Debug, Default)]
struct Lane {
    /// Batches waiting for the lane's next group, oldest first.
    queue: Vec<Arc<Job>>,
    /// A group of this lane is being written.
    writing: bool,
}

/// The lanes and the figures (batches written, transactions that committed them).
#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    lanes: Mutex<HashMap<String, Lane>>,
    done: Condvar,
    batches: AtomicU64,
    commits: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl GroupCommit {
    /// Upload batches stored so far and the transactions that committed them.
    pub fn figures(&self) -> (u64, u64) {
        (self.batches.load(Ordering::Relaxed), self.commits.load(Ordering::Relaxed))
    }

    /// Applies one batch in `lane`. When nobody writes in the lane, `alone()` writes it at once
    /// (from the caller's borrow). Otherwise `queued()` copies it into the lane's queue, and the
    /// first waiting thread that finds the lane free writes up to [`MAX_GROUP`] queued batches
    /// with `group(batches)`, which answers each batch's outcome in order; its `Err` means the
    /// group's transaction did not commit, and every batch of it then fails ([`group_failure`]).
    pub fn apply(
        &self,
        lane: &str,
        alone: impl FnOnce() -> Result<BatchOutcome>,
        queued: impl FnOnce() -> Batch,
        group: impl Fn(Vec<Batch>) -> Result<Vec<Result<BatchOutcome>>>,
    ) -> Result<BatchOutcome> {
        let mut lanes = lock(&self.lanes);
        let free = lanes.get(lane).is_none_or(|l| !l.writing && l.queue.is_empty());
        if free {
            lanes.entry(lane.to_string()).or_default().writing = true;
            drop(lanes);
            let _turn = Turn { commit: self, lane, jobs: &[] };
            let outcome = alone();
            if outcome.is_ok() {
                self.count(1);
            }
            return outcome;
        }
        let job = Arc::new(Job { batch: Mutex::new(Some(queued())), outcome: Mutex::new(None) });
        lanes.entry(lane.to_string()).or_default().queue.push(job.clone());
        loop {
            if let Some(outcome) = lock(&job.outcome).take() {
                return outcome;
            }
            // The lane exists while a job of it has no outcome: it is queued or being written.
            let Some(l) = lanes.get_mut(lane) else { return Err(Error::Internal("an upload batch lost its group".into())) };
            if l.writing {
                lanes = self.done.wait(lanes).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // This thread writes the lane's next group (its own batch is in it, or in a later one).
            l.writing = true;
            let n = l.queue.len().min(MAX_GROUP);
            let jobs: Vec<Arc<Job>> = l.queue.drain(..n).collect();
            drop(lanes);
            {
                let _turn = Turn { commit: self, lane, jobs: &jobs };
                let batches: Vec<Batch> = jobs.iter().filter_map(|j| lock(&j.batch).take()).collect();
                match group(batches) {
                    Ok(outcomes) => {
                        self.count(outcomes.iter().filter(|o| o.is_ok()).count() as u64);
                        for (job, outcome) in jobs.iter().zip(outcomes) {
                            *lock(&job.outcome) = Some(outcome);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(batches = jobs.len(), error = %e, "a group of upload batches failed to commit");
                        for job in &jobs {
                            *lock(&job.outcome) = Some(Err(group_failure(&e)));
                        }
                    }
                }
            }
            lanes = lock(&self.lanes);
        }
    }

    fn count(&self, written: u64) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.batches.fetch_add(written, Ordering::Relaxed);
    }
}

/// Ends a writing turn: fails the batches of a turn that panicked (or answered fewer outcomes
/// than batches), frees the lane (dropping it when nothing waits) and wakes the waiters.
struct Turn<'a> {
    commit: &'a GroupCommit,
    lane: &'a str,
    jobs: &'a [Arc<Job>],
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        for job in self.jobs {
            let mut slot = lock(&job.outcome);
            if slot.is_none() {
                *slot = Some(Err(Error::Internal("writing the upload batch failed".into())));
            }
        }
        let mut lanes = lock(&self.commit.lanes);
        if let Some(l) = lanes.get_mut(self.lane) {
            l.writing = false;
            if l.queue.is_empty() {
                lanes.remove(self.lane);
            }
        }
        drop(lanes);
        self.commit.done.notify_all();
    }
}

/// What each batch of a group whose commit failed answers: the same class of failure (storage
/// full stays 507), retryable; nothing of the group was stored.
pub(crate) fn group_failure(e: &Error) -> Error {
    if e.is_storage_full() {
        Error::StorageFull(format!("committing a group of upload batches: {e}"))
    } else {
        Error::Unavailable("committing a group of upload batches failed: send the batch again".into())
    }
}
