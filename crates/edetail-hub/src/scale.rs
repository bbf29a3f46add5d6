//! The scale generator (feature `testkit`; issue 15): grows a hub step by step with realistic
//! calls from many devices in several territories (slide views with dwell, reactions, calls
//! ended), through the store's ingest path and the analysis worker, so the scale benchmark
//! (`benches/scale.rs`) and its CI smoke step (`tests/scale_smoke.rs`) measure the same hub.
//! Seeded: the same spec and seed build the same data. Each HCP is the target of one rep, who
//! calls on her (`Grown::targets_csv` is the CRM's target list).

use std::time::Instant;

use chrono::{Duration, Utc};
use edetail_protocol::WireEvent;
use serde_json::json;

use crate::admin::DeviceCredentials;
use crate::error::Result;
use crate::hub::Hub;
use crate::store::CheckedEvent;

/// The bundle the calls are made with: `edetail_bundle::testkit::SampleBundle`'s id, version
/// and slides (the caller publishes it to every territory first).
pub const BUNDLE_ID: &str = "com.example.sample";
const SLIDES: [&str; 2] = ["intro", "efficacy"];
const CHANNELS: [&str; 3] = ["face_to_face", "face_to_face", "remote"];
const REACTIONS: [&str; 3] = ["positive", "neutral", "negative"];

/// The rep of device `i` (one device per rep).
pub fn rep_of(i: u64) -> String {
    format!("rep-{i:04}")
}

/// What to build.
#[derive(Debug, Clone)]
pub struct ScaleSpec {
    pub devices: usize,
    pub territories: usize,
    pub seed: u64,
}

/// The hub being grown: its devices, the HCP count and the calls so far.
#[derive(Debug)]
pub struct Grown {
    pub devices: Vec<(DeviceCredentials, String)>,
    next_seq: Vec<i64>,
    calls: u64,
    rng: u64,
}

/// What one step did.
#[derive(Debug, Clone, Default)]
pub struct StepReport {
    pub events: u64,
    pub calls: u64,
    pub ingest_secs: f64,
    pub calls_analysed: u64,
    pub analysis_secs: f64,
    /// Calls each analysing hub analysed in the timed drain (the first is `hub`'s).
    pub analysed_by: Vec<u64>,
}

impl StepReport {
    pub fn ingest_per_sec(&self) -> f64 {
        self.events as f64 / self.ingest_secs.max(1e-9)
    }
    pub fn analysis_per_sec(&self) -> f64 {
        self.calls_analysed as f64 / self.analysis_secs.max(1e-9)
    }
}

impl Grown {
    /// Registers `spec.devices` devices over `spec.territories` territories (`t0`, `t1`, ...).
    pub fn start(hub: &Hub, spec: &ScaleSpec) -> Result<Grown> {
        let devices = (0..spec.devices)
            .map(|i| {
                let territory = format!("t{}", i % spec.territories.max(1));
                Ok((hub.add_device(&rep_of(i as u64), &territory)?, territory))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Grown { next_seq: vec![1; devices.len()], devices, calls: 0, rng: spec.seed | 1 })
    }

    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic, good enough to spread calls.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// One call's events: started (HCP, channel), 2-6 slide views with dwell, sometimes a
    /// reaction, ended. Times within the last 300 days.
    fn call(&mut self, device: usize, hcps: u64) -> Vec<WireEvent> {
        self.calls += 1;
        let call_id = format!("call-{device}-{}", self.calls);
        // HCP `h` is a target of the rep of device `h % devices` (see `targets_csv`); calls
        // are on the device's own targets.
        let n = self.devices.len() as u64;
        let d = device as u64;
        let hcp = if hcps > d { d + n * self.below((hcps - d).div_ceil(n)) } else { self.below(hcps) };
        let hcp = format!("hcp-{hcp:06}");
        let start = Utc::now() - Duration::minutes(self.below(300 * 24 * 60) as i64 + 60);
        let channel = CHANNELS[self.below(CHANNELS.len() as u64) as usize];
        let mut t = 0i64;
        let mut out = vec![(
            "call_started",
            json!({"hcp_id": hcp, "bundle_id": BUNDLE_ID, "bundle_version": 1, "channel": channel, "rep_id": "rep"}),
        )];
        for _ in 0..2 + self.below(5) {
            let slide = SLIDES[self.below(SLIDES.len() as u64) as usize];
            let dwell = 1_000 + self.below(40_000) as i64;
            out.push(("slide_enter", json!({"slide": slide, "presentation": "main"})));
            if self.below(4) == 0 {
                out.push(("reaction", json!({"slide": slide, "value": REACTIONS[self.below(3) as usize]})));
            }
            out.push(("slide_exit", json!({"slide": slide, "presentation": "main", "dwell_ms": dwell, "closed_by": "navigation"})));
            t += dwell;
        }
        out.push(("call_ended", json!({})));
        let n = out.len() as i64;
        out.into_iter()
            .enumerate()
            .map(|(i, (kind, payload))| {
                let seq = self.next_seq[device];
                self.next_seq[device] += 1;
                WireEvent {
                    uuid: uuid::Uuid::new_v4().to_string(),
                    seq,
                    call_id: Some(call_id.clone()),
                    kind: kind.into(),
                    recorded_at: start + Duration::milliseconds(t * i as i64 / n),
                    session: 1,
                    mono_ms: t * i as i64 / n,
                    payload,
                }
            })
            .collect()
    }

    /// The reps' target lists as the CRM would export them (`rep_id,hcp_id`, for
    /// `Hub::import_rep_targets`): HCP `h` of `hcps` is assigned to the rep of device
    /// `h % devices`, who calls on her.
    pub fn targets_csv(&self, hcps: u64) -> String {
        let mut csv = String::from("rep_id,hcp_id\n");
        for h in 0..hcps {
            csv.push_str(&format!("{},hcp-{h:06}\n", rep_of(h % self.devices.len() as u64)));
        }
        csv
    }

    /// The customer's prescription feed as CSV (`import_prescriptions`): for each of the first
    /// `hcps` HCPs, six months of counts of `product` (2026-07 to 2026-12), a stable function of
    /// the HCP and the month (the experiment page's difference in differences reads them).
    pub fn prescriptions_csv(&self, hcps: u64, product: &str) -> String {
        let mut csv = String::from("hcp_id,product,period,count\n");
        for h in 0..hcps {
            for m in 7..=12u64 {
                let count = (h.wrapping_mul(2_654_435_761) >> 7).wrapping_add(m * 3) % 17 + m / 4;
                csv.push_str(&format!("hcp-{h:06},{product},2026-{m:02},{count}\n"));
            }
        }
        csv
    }

    /// Adds about `events` events (whole calls, round-robin over the devices) with HCPs drawn
    /// from `hcps`, through the store's ingest (batches of 500), then analyses every call.
    pub fn grow(&mut self, hub: &Hub, events: u64, hcps: u64) -> Result<StepReport> {
        self.grow_shared(hub, &[], events, hcps)
    }

    /// [`Grown::grow`], with the calls analysed by `hub` and every hub in `others` at once
    /// (other hubs over the same PostgreSQL database, each with its own connection pool and
    /// analyser, as other hub processes would be).
    pub fn grow_shared(&mut self, hub: &Hub, others: &[Hub], events: u64, hcps: u64) -> Result<StepReport> {
        let mut report = StepReport::default();
        let mut pending: Vec<Vec<WireEvent>> = vec![Vec::new(); self.devices.len()];
        let store = hub.store().clone();
        let mut device = 0;
        let mut ingest = std::time::Duration::ZERO;
        while report.events < events {
            let call = self.call(device, hcps);
            report.events += call.len() as u64;
            report.calls += 1;
            pending[device].extend(call);
            if pending[device].len() >= edetail_protocol::MAX_BATCH_EVENTS {
                let batch: Vec<WireEvent> = pending[device].drain(..).collect();
                let t = Instant::now();
                apply(&store, &self.devices[device].0.device_id, batch)?;
                ingest += t.elapsed();
            }
            device = (device + 1) % self.devices.len();
        }
        for (d, batch) in pending.into_iter().enumerate() {
            if !batch.is_empty() {
                let t = Instant::now();
                apply(&store, &self.devices[d].0.device_id, batch)?;
                ingest += t.elapsed();
            }
        }
        report.ingest_secs = ingest.as_secs_f64();
        // The backlog the ingest left (a serving hub's own worker may have analysed some
        // already), drained by the analysers; the rate is that backlog over the time taken.
        let backlog = store.pending_call_count()?;
        let t = Instant::now();
        let runs: Vec<Result<crate::closed_loop::AnalysisReport>> = std::thread::scope(|scope| {
            let workers: Vec<_> = std::iter::once(hub).chain(others).map(|h| scope.spawn(move || h.analyze_pending())).collect();
            workers.into_iter().map(|w| w.join().expect("analysis thread")).collect()
        });
        report.analysis_secs = t.elapsed().as_secs_f64();
        for r in runs {
            report.analysed_by.push(r?.calls_analysed);
        }
        report.calls_analysed = backlog - store.pending_call_count()?;
        Ok(report)
    }
}

/// Stores one batch; every generated event is checked against the event contract first (as
/// the hub's upload route does), so the generator cannot drift from what devices send.
fn apply(store: &std::sync::Arc<dyn crate::store::HubStore>, device_id: &str, batch: Vec<WireEvent>) -> Result<()> {
    for e in &batch {
        let kind = edetail_protocol::EventKind::parse(&e.kind).map_err(|why| crate::error::Error::Internal(format!("generator: {why}")))?;
        edetail_protocol::payload::Payload::parse(&kind, &e.payload)
            .map_err(|why| crate::error::Error::Internal(format!("generator: {why}")))?;
    }
    let checked: Vec<CheckedEvent> = batch
        .into_iter()
        .map(|event| CheckedEvent::Valid { recorded_at_corrected: event.recorded_at, event, payload_json: None })
        .collect();
    let n = checked.len();
    let o = store.apply_batch(device_id, &checked, 0, Utc::now())?;
    debug_assert_eq!(o.accepted.len(), n);
    Ok(())
}
