//! Live observers of a call's changes, for what follows a call while it happens (remote
//! detailing relays every move and every slide-state save to the doctors' browsers): a
//! callback per call, told of each change once its transaction has committed.
//!
//! Callbacks run on the thread that made the change, after the commit and with no lock of the
//! device held, so they may call back into the device; they should still be short (queue the
//! work). Changes committed by different threads at nearly the same moment may be told in
//! another order than they committed: an observer that needs the latest state reads it (the
//! last callback to run always comes after the last commit). Nothing is told for calls started
//! later or changes rolled back. Dropping the [`CallSubscription`] unsubscribes.

use std::fmt;
use std::sync::{Arc, Mutex, Weak};

use serde_json::Value;

/// What changed in a call.
#[derive(Debug, Clone, PartialEq)]
pub enum CallChange {
    /// The call entered a slide (whatever moved it: the shell, the slide bridge, a vendor deck,
    /// a remote doctor).
    Moved { slide: String, presentation: String },
    /// A slide saved state (`edetail.state.save`).
    State { key: String, value: Value },
    /// The call ended (`Calls::end_call`): nothing more will change in it.
    Ended,
}

/// A call's observer.
pub type CallObserver = Arc<dyn Fn(&CallChange) + Send + Sync>;

struct Entry {
    id: u64,
    call_id: String,
    observer: CallObserver,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    entries: Vec<Entry>,
}

/// The observers of a device's calls (one per opened data directory).
#[derive(Default)]
pub(crate) struct Observers {
    registry: Arc<Mutex<Registry>>,
}

impl fmt::Debug for Observers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.registry.lock().map(|r| r.entries.len()).unwrap_or(0);
        f.debug_struct("Observers").field("subscriptions", &n).finish()
    }
}

fn lock(registry: &Mutex<Registry>) -> std::sync::MutexGuard<'_, Registry> {
    // A panicking observer runs outside the lock, so the registry itself is never left half
    // written: a poisoned lock is still consistent.
    registry.lock().unwrap_or_else(|p| p.into_inner())
}

impl Observers {
    pub(crate) fn subscribe(&self, call_id: &str, observer: CallObserver) -> CallSubscription {
        let mut r = lock(&self.registry);
        r.next_id += 1;
        let id = r.next_id;
        r.entries.push(Entry { id, call_id: call_id.to_string(), observer });
        CallSubscription { registry: Arc::downgrade(&self.registry), id }
    }

    /// Tells every observer of `call_id` (call after the change's transaction committed).
    pub(crate) fn notify(&self, call_id: &str, change: &CallChange) {
        let observers: Vec<CallObserver> = {
            let r = lock(&self.registry);
            if r.entries.is_empty() {
                return;
            }
            r.entries.iter().filter(|e| e.call_id == call_id).map(|e| e.observer.clone()).collect()
        };
        for o in observers {
            o(change);
        }
    }
}

/// A live subscription to a call's changes ([`crate::Device::observe_call`]); dropping it
/// unsubscribes (a callback already running finishes).
#[must_use = "dropping the subscription unsubscribes at once"]
pub struct CallSubscription {
    registry: Weak<Mutex<Registry>>,
    id: u64,
}

impl fmt::Debug for CallSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallSubscription").field("id", &self.id).finish()
    }
}

impl Drop for CallSubscription {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            lock(&registry).entries.retain(|e| e.id != self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder() -> (Arc<Mutex<Vec<CallChange>>>, CallObserver) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        (seen, Arc::new(move |c: &CallChange| s.lock().unwrap().push(c.clone())))
    }

    #[test]
    fn observers_hear_their_call_only_until_dropped() {
        let obs = Observers::default();
        let (a_seen, a) = recorder();
        let (b_seen, b) = recorder();
        let sub_a = obs.subscribe("a", a);
        let _sub_b = obs.subscribe("b", b);
        let moved = CallChange::Moved { slide: "s1".into(), presentation: "main".into() };
        obs.notify("a", &moved);
        assert_eq!(*a_seen.lock().unwrap(), vec![moved.clone()]);
        assert!(b_seen.lock().unwrap().is_empty());
        drop(sub_a);
        obs.notify("a", &moved);
        assert_eq!(a_seen.lock().unwrap().len(), 1, "unsubscribed");
    }

    #[test]
    fn an_observer_may_subscribe_and_unsubscribe_from_its_callback() {
        let obs = Arc::new(Observers::default());
        let held: Arc<Mutex<Vec<CallSubscription>>> = Arc::default();
        let (o2, h2) = (obs.clone(), held.clone());
        let sub = obs.subscribe(
            "a",
            Arc::new(move |_| {
                // No lock of the registry is held while observers run.
                let s = o2.subscribe("a", Arc::new(|_| {}));
                h2.lock().unwrap().push(s);
                h2.lock().unwrap().clear();
            }),
        );
        obs.notify("a", &CallChange::State { key: "k".into(), value: Value::Bool(true) });
        drop(sub);
        assert!(lock(&obs.registry).entries.is_empty());
    }

    #[test]
    fn a_subscription_outliving_its_device_drops_quietly() {
        let obs = Observers::default();
        let sub = obs.subscribe("a", Arc::new(|_| {}));
        drop(obs);
        drop(sub);
    }
}
