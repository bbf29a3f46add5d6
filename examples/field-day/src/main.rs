//! The closed-loop field-day demo: a hub on embedded SQLite, the sample decks published, two
//! reps' tablets provisioned, a simulated day of offline calls with HCPs who behave
//! differently, then the tablets come online, the hub analyses, and the personalized plans come
//! back to the tablets; a follow-up microsite closes the loop on a second channel.
//!
//! Everything real: SQLite files under `target/field-day/`, HTTP on loopback, signed content
//! and signed plans. The tablets' clocks are simulated (a day passes in seconds), nothing else.
//! One deck is a legacy Agnitio deck imported unchanged; its calls carry the exact container
//! messages its own library sends (the page-side container emulation is covered by the browser
//! tests).
//!
//!     cargo run -p edetail-field-day [-- --serve] [--out DIR]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::Utc;
use edetail_bundle::SecretKey;
use edetail_core::plans::{Suggestion, SuggestionSource};
use edetail_core::{Channel, Device, DeviceConfig, ManualClock, NavAction, NavSource, Reaction, StartCall};
use edetail_hub::{Hub, HubConfig};
use edetail_sync::{StaticToken, SyncConfig, SyncEngine};
use serde_json::json;

const CARDIOZEN: &str = "com.example.cardiozen.launch";
const GLUCORA: &str = "com.example.glucora.brief";
/// A legacy Agnitio Accelerator deck, imported unchanged (issue 12): it runs in its own
/// framework and reports slides and data to its container, which edetail emulates.
const AGNITIO: &str = "com.cardiozen.agnitio.accelerator";

/// The product a deck details (the hub keeps stages per product).
fn product_of(bundle: &str) -> &'static str {
    if bundle == GLUCORA { "glucora" } else { "cardiozen" }
}

/// One thing that happens in a call.
enum Step {
    /// Go to a slide and stay this many seconds.
    Show(&'static str, u64),
    /// The HCP asks to go to a slide (HCP-led navigation) and stays.
    HcpAsks(&'static str, u64),
    /// Swipe to the next slide and stay.
    Swipe(u64),
    React(Reaction),
    Answer(&'static str, &'static str),
    FollowUp(&'static str),
    /// The deck's own vendor library calls its container: the bridge message the page-side
    /// container emulation forwards (`agnitio.invoke`, `veeva.request`, `oce.call`).
    Deck(&'static str, serde_json::Value),
}
use Step::*;

struct Tablet {
    rep: &'static str,
    device: Arc<Device>,
    clock: Arc<ManualClock>,
    engine: SyncEngine,
}

struct Visit {
    tablet: usize,
    hcp: &'static str,
    behaviour: &'static str,
    bundle: &'static str,
    steps: Vec<Step>,
}

fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    let mut serve = false;
    let mut expect: Option<PathBuf> = None;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize()?;
    let mut out = root.join("target/field-day");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--serve" => serve = true,
            "--out" => out = PathBuf::from(args.next().context("--out needs a directory")?),
            "--expect" => expect = Some(PathBuf::from(args.next().context("--expect needs a file")?)),
            "-h" | "--help" => {
                println!(
                    "usage: field-day [--serve] [--out DIR] [--expect FILE]\n  --serve   keep the hub and its dashboard running after the day (Ctrl-C stops)\n  --expect  write the dashboard's view models as JSON (for scripts/dashboard-test)"
                );
                return Ok(());
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("clearing {}", out.display()))?;
    }
    std::fs::create_dir_all(&out)?;

    // ---- the content team -------------------------------------------------------------
    section("content team: sign and publish the approved decks");
    let content_key = SecretKey::generate()?;
    std::fs::write(out.join("content.pub"), content_key.public().to_file_text())?;
    let mut zips = Vec::new();
    for deck in ["cardiozen-launch", "glucora-brief"] {
        let zip = out.join(format!("{deck}.zip"));
        let m = edetail_bundle::pack::pack_dir(&root.join("presentations").join(deck), &zip, Some(&content_key), &mut |_| {})
            .with_context(|| format!("packing presentations/{deck}"))?;
        println!("  {:<34} v{}  {} slides  approval {}", m.id, m.version, m.slides.len(), m.approval_code);
        zips.push(zip);
    }
    // A legacy Agnitio deck comes in unchanged: imported, then signed like the others.
    let imported = out.join("agnitio-accelerator-unsigned.zip");
    let opts = edetail_bundle::import::agnitio::AgnitioOptions {
        meta: edetail_bundle::import::ImportMeta {
            product: Some("cardiozen".into()),
            approval_code: Some("CZ-AGN-0200".into()),
            valid_until: Some(Utc::now() + chrono::Duration::days(365)),
            ..Default::default()
        },
    };
    let report = edetail_bundle::import::agnitio::import_agnitio(
        &root.join("presentations/import-samples/agnitio-accelerator"),
        &opts,
        &imported,
        &mut |_| {},
    )
    .context("importing the Agnitio Accelerator sample")?;
    let agnitio_zip = out.join("agnitio-accelerator.zip");
    edetail_bundle::writer::resign(std::fs::File::open(&imported)?, std::fs::File::create(&agnitio_zip)?, &content_key)?;
    println!(
        "  {:<34} v{}  {} slides  approval {}  (imported from Agnitio: {} slides in its own framework, routes ?path=…)",
        report.manifest.id,
        report.manifest.version,
        report.manifest.slides.len(),
        report.manifest.approval_code,
        report.manifest.slides.iter().filter(|s| s.route.is_some()).count()
    );
    zips.push(agnitio_zip);

    // ---- the hub ----------------------------------------------------------------------
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let hub = Hub::open(HubConfig::local(out.join("hub"), vec![content_key.public()]))?;
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(hub.clone().serve(listener, async move {
        let _ = stop_rx.await;
    }));
    println!("  hub on embedded SQLite: {url}  (data {})", out.join("hub").display());
    for zip in &zips {
        let r = hub.publish_zip(&std::fs::read(zip)?, &[])?;
        println!("  published {} v{} to {:?} ({} blobs new)", r.bundle_id, r.version, r.territories, r.blobs_new);
    }
    hub.import_hcp_segments("hcp_id,segment\nhcp-0101,cardiology\nhcp-0102,cardiology\nhcp-0203,general-practice\nhcp-0204,diabetology\n")?;
    hub.import_prescriptions(
        "hcp_id,product,period,count\n\
         hcp-0101,cardiozen,2026-10,2\nhcp-0101,cardiozen,2026-11,3\n\
         hcp-0102,cardiozen,2026-10,4\nhcp-0102,cardiozen,2026-11,9\n\
         hcp-0203,cardiozen,2026-10,1\nhcp-0203,cardiozen,2026-11,1\n\
         hcp-0204,glucora,2026-10,5\nhcp-0204,glucora,2026-11,6\n",
    )?;
    // The CRM's target lists: each rep's tablet receives plans for her targets and for the
    // HCPs she calls on (rep-ben also sees hcp-0204 and hcp-0205, off his list, this morning).
    let targets = hub.import_rep_targets("rep_id,hcp_id\nrep-anna,hcp-0101\nrep-anna,hcp-0102\nrep-ben,hcp-0203\n")?;
    println!("  HCP segments and last months' prescriptions imported (CSV)");
    println!(
        "  target lists of {} reps imported (CSV, {} HCPs): a tablet's feed carries plans for its rep's targets and the HCPs she calls on",
        targets.reps, targets.targets
    );

    // ---- two reps' tablets --------------------------------------------------------------
    section("two reps' tablets: encrypted data directories, trusting the content key and the hub's plan key, synced at 08:00");
    // The field day: yesterday from 08:00 UTC, on the tablets' (simulated) clocks.
    let day_start = (Utc::now() - chrono::Duration::days(1)).date_naive().and_hms_opt(8, 0, 0).context("08:00")?.and_utc();
    let mut tablets = Vec::new();
    for (rep, territory) in [("rep-anna", "north"), ("rep-ben", "south")] {
        let creds = hub.add_device(rep, territory)?;
        let clock = Arc::new(ManualClock::new(day_start));
        // Each rep's database is encrypted with that rep's key (a real app keeps it in the
        // platform keystore; here a fresh random key per run).
        let db_key = edetail_core::DbKey::new(SecretKey::generate()?.public().to_bytes());
        let config = DeviceConfig {
            trusted_keys: vec![content_key.public(), hub.plan_public_key()],
            clock: clock.clone(),
            db_key: Some(db_key),
            ..DeviceConfig::new(rep)
        };
        let device = Arc::new(Device::open(&out.join("tablets").join(rep), config)?);
        let engine = SyncEngine::new(
            device.clone(),
            SyncConfig::new(url.clone(), creds.device_id.clone(), Arc::new(StaticToken(creds.token.clone()))),
        )?;
        let r = engine.sync_now().context("morning sync")?;
        println!(
            "  {rep} ({territory}, {}): installed {:?}, {:.1} MB",
            creds.device_id,
            r.bundles_activated,
            r.bytes_downloaded as f64 / 1e6
        );
        tablets.push(Tablet { rep, device, clock, engine });
    }

    // ---- the day, offline ---------------------------------------------------------------
    section("the day: offline calls in hospital basements (tablet clocks simulated)");
    let visits = vec![
        Visit {
            tablet: 0,
            hcp: "hcp-0101",
            behaviour: "lingers on safety",
            bundle: CARDIOZEN,
            steps: vec![
                Swipe(4),
                Swipe(3),
                Show("moa-overview", 9),
                Show("efficacy-primary", 8),
                HcpAsks("safety-ae", 55),
                React(Reaction::Positive),
                Show("tolerability", 48),
                Show("dosing", 4),
                HcpAsks("safety-ae", 30),
                FollowUp("safety"),
            ],
        },
        Visit {
            tablet: 0,
            hcp: "hcp-0102",
            behaviour: "works through the mechanism, then dosing; asks for samples",
            bundle: CARDIOZEN,
            steps: vec![
                Swipe(6),
                Swipe(5),
                Show("moa-overview", 14),
                Show("moa-diagram", 16),
                Show("moa-video", 22),
                Show("efficacy-primary", 12),
                Show("dosing", 60),
                Answer("dosing-titration-clear", "yes"),
                React(Reaction::Positive),
                HcpAsks("patient-profile", 20),
                FollowUp("samples"),
            ],
        },
        Visit { tablet: 1, hcp: "hcp-0203", behaviour: "skips through", bundle: CARDIOZEN, steps: (0..10).map(|_| Swipe(1)).collect() },
        Visit {
            tablet: 1,
            hcp: "hcp-0204",
            behaviour: "interested in efficacy (Glucora)",
            bundle: GLUCORA,
            steps: vec![
                Swipe(5),
                Show("hba1c-efficacy", 50),
                React(Reaction::Positive),
                Show("safety-profile", 10),
                Show("dosing-guide", 6),
            ],
        },
        Visit {
            tablet: 1,
            hcp: "hcp-0205",
            behaviour: "Agnitio deck: taps through the data, asks for an email",
            bundle: AGNITIO,
            steps: vec![
                // The framework starts on its first slide and reports it (already shown: no new view).
                Deck(
                    "agnitio.invoke",
                    agnitio_monitoring(json!({"type": "system", "category": "slideEnter", "valueId": "ac_intro", "value": "Introduction"})),
                ),
                Swipe(6),
                // The deck's own "data" tab and chart: custom monitoring data.
                Deck(
                    "agnitio.invoke",
                    agnitio_monitoring(json!({"type": "custom", "category": "chart", "label": "hba1c-curve", "value": "tap"})),
                ),
                Swipe(25),
                // The deck's own "back to data" button: its framework moves and reports it.
                Deck("agnitio.invoke", agnitio_monitoring(json!({"type": "system", "category": "slideExit", "valueId": "ac_dosing"}))),
                Deck(
                    "agnitio.invoke",
                    agnitio_monitoring(json!({"type": "system", "category": "slideEnter", "valueId": "ac_data", "value": "Clinical data"})),
                ),
                Show("ac-dosing", 30),
                // Not an approved channel: answered and kept as unsupported_api.
                Deck("agnitio.invoke", json!({"url": "objc://iplanner/sendMail?%7B%22subject%22%3A%22Cardiozen%20dosing%22%7D"})),
                Deck("agnitio.invoke", json!({"api": "getPresenter", "params": "{\"resultFunction\":\"ag.data._savePresenter\"}"})),
            ],
        },
    ];
    for v in &visits {
        let t = &tablets[v.tablet];
        t.clock.advance(Duration::from_secs(47 * 60));
        let started = t.device.start_call_with_suggestion(StartCall {
            hcp_id: Some(v.hcp.into()),
            channel: Channel::FaceToFace,
            bundle_id: v.bundle.into(),
            presentation_id: None,
            location: None,
        })?;
        let call = started.call_id.clone();
        t.clock.advance(Duration::from_secs(1));
        let (mut deck_calls, mut deck_recorded, mut deck_unsupported) = (0, 0, 0);
        for step in &v.steps {
            match step {
                Show(slide, secs) | HcpAsks(slide, secs) => {
                    let goto = NavAction::Goto { slide: Some(slide.to_string()), presentation: None, key_message: None };
                    t.device.calls().navigate(&call, &goto, NavSource::Overview, matches!(step, HcpAsks(..)))?;
                    t.clock.advance(Duration::from_secs(*secs));
                }
                Swipe(secs) => {
                    t.device.calls().navigate(&call, &NavAction::Next, NavSource::Swipe, false)?;
                    t.clock.advance(Duration::from_secs(*secs));
                }
                React(r) => {
                    t.device.calls().react(&call, *r)?;
                }
                Answer(q, a) => {
                    t.device.calls().answer(&call, q, &[a.to_string()], None)?;
                }
                FollowUp(topic) => {
                    t.device.calls().follow_up(&call, topic, None)?;
                }
                Deck(method, params) => {
                    let before = t.device.outbox().for_call(&call)?;
                    let msg = json!({"v": 1, "id": deck_calls, "method": method, "params": params});
                    let reply: serde_json::Value = serde_json::from_str(&edetail_core::bridge::handle(&t.device, &msg.to_string()))?;
                    if reply["ok"] != true {
                        bail!("the deck's {method} call was refused: {reply}");
                    }
                    let after = t.device.outbox().for_call(&call)?;
                    deck_calls += 1;
                    deck_recorded += usize::from(after.len() > before.len());
                    deck_unsupported += after[before.len()..].iter().filter(|e| e.kind == edetail_core::vendor::UNSUPPORTED_API).count();
                    t.clock.advance(Duration::from_secs(2));
                }
            }
        }
        t.device.calls().end_call(&call)?;
        let views = t.device.calls().slide_views(&call)?.len();
        println!(
            "  {} {}  {} with {} ({}): {} slides shown, offered {}",
            clock_time(&t.clock),
            t.rep,
            short(v.bundle),
            v.hcp,
            v.behaviour,
            views,
            suggestion_source(started.suggestion.as_ref())
        );
        if deck_calls > 0 {
            println!(
                "      the deck's own library made {deck_calls} container calls: {deck_recorded} recorded ({deck_unsupported} as unsupported_api), {} answered without an event (a report of the slide already shown, slideExit, getPresenter)",
                deck_calls - deck_recorded
            );
        }
    }

    // ---- back online ------------------------------------------------------------------
    section("back online: the tablets upload the day, exactly once");
    // The hub's worker analyses calls as they arrive, so some plans may already come down in
    // the download phase of this sync; count them with the ones the next sync pulls.
    let mut early_plans = Vec::new();
    for t in &tablets {
        t.clock.set_wall(Utc::now());
        let r = t.engine.sync_now().context("evening sync")?;
        println!("  {}: {} events accepted, {} duplicates, {} parked", t.rep, r.events_accepted, r.events_duplicates, r.events_parked);
        early_plans.push(r.plans_stored);
    }
    // The ingest worker analyses calls as their batches arrive; this run catches up on any left.
    let analysed = hub.analyze_pending()?;
    let mut hcps: Vec<&str> = visits.iter().map(|v| v.hcp).collect();
    hcps.sort_unstable();
    hcps.dedup();
    let mut microsites = 0;
    for h in &hcps {
        microsites += hub.microsites_for(h)?.len();
    }
    println!(
        "  hub analysis caught up ({} call(s) pending; {} analysed by this run, the rest by the ingest worker): \
         {} follow-up microsite(s) open",
        hub.store().pending_call_count()?,
        analysed.calls_analysed,
        microsites
    );
    for (t, early) in tablets.iter().zip(early_plans) {
        let r = t.engine.sync_now().context("plan sync")?;
        println!("  {} pulled {} plan(s)", t.rep, early + r.plans_stored);
    }

    // ---- what the loop answers, per HCP ----------------------------------------------------
    section("per HCP: what was seen, the adoption stage, the next-call plan (as the tablet offers it)");
    for v in &visits {
        let t = &tablets[v.tablet];
        let profile = hub.hcp_profile(v.hcp)?.context("profile missing")?;
        let product = product_of(v.bundle);
        let facts = profile.products.get(product);
        println!("\n  {} ({}), {}", v.hcp, v.behaviour, product);
        let seen: Vec<String> =
            facts.map(|f| f.slides_seen.iter().map(|(s, x)| format!("{s} {}s", x.max_dwell_ms / 1000)).collect()).unwrap_or_default();
        println!("    seen: {}", if seen.is_empty() { "nothing counted (no slide held 2 s)".into() } else { seen.join(", ") });
        let top: Vec<String> = profile.top_topics().into_iter().take(3).map(|(t, s)| format!("{t} {s:.2}")).collect();
        println!("    interest: {}", if top.is_empty() { "none yet".into() } else { top.join(", ") });
        let stage = profile.stage(product);
        match facts.and_then(|f| f.stage_history.last()) {
            Some(c) => {
                println!("    stage: {} (rule {}: {}; {} event(s))", stage.as_str(), c.rule_id, c.rule_description, c.event_uuids.len())
            }
            None => println!("    stage: {}", stage.as_str()),
        }
        let offered = t.device.plans().suggestion(v.hcp, v.bundle)?;
        println!("    next call, offered by the tablet: {}", suggestion_source(Some(&offered)));
        if let Some(p) = t.device.plans().plan_for(v.hcp, v.bundle)? {
            let mandatory: Vec<&str> = p.items.iter().filter(|i| i.mandatory).map(|i| i.slide_id.as_str()).collect();
            println!(
                "    objective: {} · arm: {} · {} content slide(s) + mandatory {:?} · {} left out",
                p.objective.as_deref().unwrap_or("none"),
                p.arm.as_deref().unwrap_or("-"),
                p.items.len() - mandatory.len(),
                mandatory,
                p.skipped.len()
            );
            for sk in p.skipped.iter().take(3) {
                println!("      left out {:<18} {}", sk.slide_id, sk.reason);
            }
        }
        for (i, s) in offered.slides.iter().take(6).enumerate() {
            println!("      {}. {:<18} {}", i + 1, s.slide_id, s.reason);
        }
        if offered.slides.len() > 6 {
            println!("      … {} more", offered.slides.len() - 6);
        }
        for r in &offered.reasons {
            println!("      why: {r}");
        }
    }

    // ---- the second channel -------------------------------------------------------------
    section("second channel: follow-up microsites (tokenized, expiring)");
    let client = reqwest::Client::new();
    let mut visited = 0;
    for v in &visits {
        for m in hub.microsites_for(v.hcp)? {
            let link = format!("{url}{}", hub.microsite_path(&m.id));
            println!("  {}: {} slide(s) on {:?}, expires {}  {}", v.hcp, m.slides.len(), m.topics, m.expires_at.format("%Y-%m-%d"), link);
            let page = rt.block_on(async { client.get(&link).send().await?.error_for_status()?.text().await })?;
            if page.contains(v.hcp) {
                bail!("the microsite page shows the HCP id");
            }
            // The doctor opens the link and reads the first slide for 40 s; the report carries
            // the visit id the hub issued for this page view (`<body data-visit>`).
            let Some(visit_id) = page.split("data-visit=\"").nth(1).and_then(|s| s.split('"').next()) else {
                bail!("the microsite page carries no visit id");
            };
            let visit = serde_json::json!({
                "visit_id": visit_id,
                "duration_ms": 45_000,
                "views": [{"slide": m.slides[0], "dwell_ms": 40_000}],
            });
            let status = rt.block_on(async { client.post(format!("{link}/visit")).json(&visit).send().await.map(|r| r.status()) })?;
            if !status.is_success() {
                bail!("recording the microsite visit answered {status}");
            }
            visited += 1;
        }
    }
    // The serving hub's worker analyses visits as they arrive; this settles whatever is left.
    hub.analyze_pending()?;
    println!("  {visited} microsite visit(s) recorded as calls of channel \"microsite\" and analysed like tablet calls");
    for v in &visits {
        let product = product_of(v.bundle);
        if let Some(p) = hub.hcp_profile(v.hcp)?
            && let Some(f) = p.products.get(product)
            && f.channels.contains_key("microsite")
        {
            let channels: Vec<String> = f.channels.iter().map(|(c, n)| format!("{c} {n}")).collect();
            println!("  {}: calls by channel: {}; stage {}", v.hcp, channels.join(", "), f.stage.as_str());
        }
    }

    // ---- the next visits: the rep builds each call from the plan ---------------------------
    section("the next visits: rep-anna builds each call from the hub's plan on her tablet (offline)");
    for t in &tablets {
        // The plans made after the microsite visits come down with this sync.
        t.clock.set_wall(Utc::now());
        t.engine.sync_now().context("sync before the next visits")?;
    }
    let anna = &tablets[0];
    anna.clock.advance(Duration::from_secs(3600));
    for (hcp, edit) in [("hcp-0101", "drop the video"), ("hcp-0102", "add the intent survey first")] {
        let plan = anna.device.plans().plan_for(hcp, CARDIOZEN)?.with_context(|| format!("{hcp} has a hub plan on the tablet"))?;
        let seq = anna.device.sequences().start(hcp, CARDIOZEN)?;
        println!(
            "  {hcp}: starts from plan {} (stage {}, objective {}, arm {}): {:?}",
            &plan.plan_id[..8],
            plan.stage,
            plan.objective.as_deref().unwrap_or("none"),
            plan.arm.as_deref().unwrap_or("-"),
            seq.slide_ids()
        );
        // She knows these doctors: no time for the video with hcp-0101 today; hcp-0102 is
        // asked about prescribing first.
        let seq = if edit == "drop the video" {
            anna.device.sequences().remove(&seq.sequence_id, "moa-video")?
        } else {
            let seq = anna.device.sequences().add(&seq.sequence_id, "survey")?;
            let seq = anna.device.sequences().move_item(&seq.sequence_id, seq.items.len() - 1, 0)?;
            for (what, refused) in [
                ("remove isi-1", anna.device.sequences().remove(&seq.sequence_id, "isi-1").err()),
                ("add references (hidden)", anna.device.sequences().add(&seq.sequence_id, "references").err()),
            ] {
                println!("    {what}: {}", refused.map_or_else(|| "ACCEPTED (should not be)".into(), |e| format!("refused: {e}")));
            }
            seq
        };
        let saved = anna.device.sequences().saved(hcp, CARDIOZEN)?.context("the sequence is saved on the tablet")?;
        println!("    rep's edit ({edit}), saved on the tablet for rep-anna: {:?}", saved.slide_ids());
        let call = anna.device.start_call_from_sequence(&seq.sequence_id, Channel::FaceToFace, None)?.call_id;
        for item in &seq.items {
            let goto =
                NavAction::Goto { slide: Some(item.slide_id.clone()), presentation: Some(item.presentation_id.clone()), key_message: None };
            anna.device.calls().navigate(&call, &goto, NavSource::Overview, false)?;
            anna.clock.advance(Duration::from_secs(15));
            if item.slide_id == "survey" {
                anna.device.calls().answer(&call, "cz_q3_intent", &["very_likely".to_string()], None)?;
            }
            if item.slide_id == "peer-exchange" && hcp == "hcp-0102" {
                // The slide's own "I would speak" button: the deck calls edetail.advocacy.
                let msg = json!({"v": 1, "id": 1, "method": "advocacy", "params": {"action": "agreed_to_speak"}});
                let reply: serde_json::Value = serde_json::from_str(&edetail_core::bridge::handle(&anna.device, &msg.to_string()))?;
                if reply["ok"] != true {
                    bail!("the slide's advocacy call was refused: {reply}");
                }
            }
        }
        anna.device.calls().end_call(&call)?;
        let events = anna.device.outbox().for_call(&call)?;
        let recorded = events.iter().find(|e| e.kind == "call_plan").context("call_plan recorded")?;
        println!(
            "    {} call presented the sequence; recorded with it: planned {}, kept {}, dropped {}, added {}{}",
            clock_time(&anna.clock),
            recorded.payload["planned"].as_array().map_or(0, Vec::len),
            recorded.payload["kept"].as_array().map_or(0, Vec::len),
            recorded.payload["dropped"],
            recorded.payload["added"],
            if events.iter().any(|e| e.kind == "advocacy") { "; the doctor tapped \"I would speak\" (advocacy)" } else { "" }
        );
        anna.clock.advance(Duration::from_secs(40 * 60));
    }
    anna.clock.set_wall(Utc::now());
    anna.engine.sync_now().context("sync after the visits")?;
    hub.analyze_pending()?;
    for hcp in ["hcp-0101", "hcp-0102"] {
        let p = hub.hcp_profile(hcp)?.context("profile")?;
        let f = &p.products["cardiozen"];
        let change = f.stage_history.last().context("a stage change")?;
        println!("  hub: {hcp} is now {} (rule {}: {})", f.stage.as_str(), change.rule_id, change.rule_description);
        for r in f.plans.iter().rev().take(2) {
            println!(
                "    plan {} aimed for {}: {} by {} call{}",
                &r.plan_id[..8],
                r.objective.as_str(),
                r.outcome,
                if r.settled_by.starts_with("microsite") { "the microsite" } else { "the next" },
                if r.followed { " (which followed it)" } else { "" }
            );
        }
    }
    if let Some(stats) = hub.deck_stats(CARDIOZEN)? {
        let edits: Vec<String> = stats
            .respond
            .rep_edits
            .iter()
            .filter(|(_, e)| e.dropped + e.added > 0)
            .map(|(s, e)| format!("{s} (dropped {}, added {})", e.dropped, e.added))
            .collect();
        println!("  the deck learns from reps' edits: {}", edits.join(", "));
    }

    // ---- remote detailing -----------------------------------------------------------------
    section("remote detailing: rep-ben presents to hcp-0203 (who cannot see him today) from a link; she follows in her browser");
    remote_call(&rt, &tablets[1], &url, &hub)?;

    // ---- the experiment -------------------------------------------------------------------
    section("the experiment: personalized plans against the holdout (on the dashboard at /dashboard/experiment)");
    {
        use edetail_hub::dashboard::DashboardSource;
        let x = edetail_hub::insights::HubInsights::new(hub.clone()).experiment()?;
        println!(
            "  {:.0}% of HCPs per product held out (seeded, stable); at least {} per arm before an effect is shown",
            x.holdout_share * 100.0,
            x.min_per_arm
        );
        for p in &x.products {
            let show = |e: &edetail_hub::analytics::Estimate| match e {
                edetail_hub::analytics::Estimate::NotEnoughData { .. } => "not enough data".to_string(),
                edetail_hub::analytics::Estimate::Effect { difference, low, high, .. } => {
                    format!("{difference:+.2} (95% CI {low:+.2} to {high:+.2})")
                }
            };
            println!(
                "  {}: treatment {} HCPs, holdout {}: stage progression {}, prescriptions {}",
                p.product,
                p.treatment_n,
                p.holdout_n,
                show(&p.progression),
                show(&p.rx_change)
            );
        }
    }

    if let Some(path) = &expect {
        use edetail_hub::dashboard::DashboardSource;
        let src = edetail_hub::insights::HubInsights::new(hub.clone());
        let x = serde_json::json!({
            "decks": src.decks()?,
            "hcps": src.hcps()?,
            "channels": src.channels()?,
            "sync_health": src.sync_health()?,
            "deck": src.deck(CARDIOZEN, None)?,
            "deck_segment": src.deck(CARDIOZEN, Some("cardiology"))?,
            "hcp": src.hcp("hcp-0102")?,
            "experiment": src.experiment()?,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&x)?)?;
    }

    section("done");
    println!("  dashboard: {url}/dashboard");
    println!("  field day took {:.1} s (tablets and hub data in {})", started.elapsed().as_secs_f64(), out.display());
    if serve {
        // The dashboard needs an operator (issue 7): a token for this run, typed at the login form.
        let operator = hub.add_operator("field-day", 1, &edetail_hub::cli_actor())?;
        println!("  dashboard login: {url}/dashboard/login  operator token (valid 1 day): {operator}");
        println!("  serving until Ctrl-C (or SIGTERM)");
        rt.block_on(async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            anyhow::Ok(())
        })?;
    }
    let _ = stop_tx.send(());
    let _ = rt.block_on(server);
    Ok(())
}

/// One remote call: rep-ben opens a session for a call on his tablet, hcp-0203 follows from the
/// link (here her browser's socket, a WebSocket client; scripts/remote-test drives the real
/// follower page in Chromium), takes control and moves on by herself; the tablet performs and
/// records her navigation, uploads it, and the hub counts the call under channel `remote`.
fn remote_call(rt: &tokio::runtime::Runtime, ben: &Tablet, url: &str, hub: &Hub) -> anyhow::Result<()> {
    use edetail_protocol::remote::{AttendeeMessage, HubMessage, NavigateTo};
    use edetail_sync::remote::{Control, RemoteEvent, RemotePresenter};
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

    ben.clock.set_wall(Utc::now());
    let hcp = "hcp-0203";
    let start = StartCall {
        hcp_id: Some(hcp.into()),
        channel: Channel::Remote,
        bundle_id: CARDIOZEN.into(),
        presentation_id: None,
        location: None,
    };
    let (call, first) = ben.device.start_call(start)?;
    let presenter = RemotePresenter::open(ben.device.clone(), ben.engine.config(), &call, 30, false)?;
    let join = presenter.join_url();
    println!(
        "  join link for her (by phone, email or QR; valid until {} UTC): {}/r/<64 hex>{}",
        presenter.expires_at().format("%H:%M"),
        url,
        if presenter.recorded() { "; the page tells her which of her clicks the tablet records" } else { "" }
    );
    let wait_for = |want: &dyn Fn(&RemoteEvent) -> bool| -> anyhow::Result<RemoteEvent> {
        loop {
            match presenter.next_event(Duration::from_secs(10)) {
                Some(e) if want(&e) => return Ok(e),
                Some(_) => {}
                None => bail!("the presenter reported nothing for 10 s"),
            }
        }
    };
    wait_for(&|e| matches!(e, RemoteEvent::Connected))?;

    let mut shown = rt.block_on(async {
        // Her browser: the follower page's socket.
        let ws_url = join.replacen("http://", "ws://", 1) + "/ws";
        let req = ws_url.as_str().into_client_request()?;
        let addr = req.uri().authority().context("authority")?.as_str().to_string();
        let (doctor, _) = tokio_tungstenite::client_async(req, tokio::net::TcpStream::connect(addr).await?).await?;
        let (mut clicks, mut shown) = doctor.split();
        let mut next = async || -> anyhow::Result<HubMessage> {
            loop {
                match tokio::time::timeout(Duration::from_secs(10), shown.next()).await? {
                    Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t)?),
                    Some(Ok(_)) => {}
                    other => bail!("her socket closed: {other:?}"),
                }
            }
        };
        let HubMessage::Welcome { recorded, .. } = next().await? else { bail!("no welcome") };
        let HubMessage::Current { slide, .. } = next().await? else { bail!("no current slide") };
        println!("  she joins (recorded: {recorded}) and sees the rep's slide: {slide} (the tablet's {})", first.slide);
        wait_for(&|e| matches!(e, RemoteEvent::AttendeeJoined { .. }))?;
        for _ in 0..2 {
            ben.clock.advance(Duration::from_secs(20));
            let t = ben.device.calls().navigate(&call, &NavAction::Next, NavSource::Swipe, false)?;
            let HubMessage::Current { slide, .. } = next().await? else { bail!("she did not follow") };
            println!("  the rep swipes to {}: her page shows {slide}", t.slide);
        }
        presenter.set_control(Control::Hcp)?;
        while !matches!(next().await?, HubMessage::Presenter { .. }) {}
        println!("  the rep hands her control");
        for action in [NavigateTo::Slide { slide: "efficacy-primary".into() }, NavigateTo::Next] {
            ben.clock.advance(Duration::from_secs(30));
            let asked = match &action {
                NavigateTo::Slide { slide } => format!("the slide {slide}"),
                other => format!("{other:?}").to_lowercase(),
            };
            let m = AttendeeMessage::Navigate { action };
            clicks.send(Message::Text(serde_json::to_string(&m)?.into())).await?;
            let RemoteEvent::Navigated { slide, .. } =
                wait_for(&|e| matches!(e, RemoteEvent::Navigated { .. } | RemoteEvent::NavigationRefused { .. }))?
            else {
                bail!("her navigation was refused")
            };
            let HubMessage::Current { slide: shown, .. } = next().await? else { bail!("her page did not move") };
            println!("  she asks for {asked}: the tablet moves to {slide} and records it as HCP-led; her page shows {shown}");
        }
        presenter.set_control(Control::Rep)?;
        anyhow::Ok(shown)
    })?;
    ben.clock.advance(Duration::from_secs(30));
    presenter.end()?;
    rt.block_on(async {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), shown.next()).await? {
                Some(Ok(Message::Text(t))) if matches!(serde_json::from_str(&t)?, HubMessage::Ended) => break,
                Some(Ok(_)) => {}
                other => bail!("her socket closed before the end: {other:?}"),
            }
        }
        anyhow::Ok(())
    })?;
    let gone = reqwest::blocking::get(&join)?.status();
    println!("  the rep ends the session: her page says the meeting has ended; the link now answers {gone}");
    ben.device.calls().end_call(&call)?;
    let events = ben.device.outbox().for_call(&call)?;
    let led = events.iter().filter(|e| e.kind == "slide_enter" && e.payload["hcp_led"] == true && e.payload["source"] == "remote").count();
    println!("  the tablet recorded the call (channel remote): {} events, {led} slide views she led", events.len());
    ben.engine.sync_now().context("sync after the remote call")?;
    hub.analyze_pending()?;
    let p = hub.hcp_profile(hcp)?.context("profile")?;
    let f = &p.products["cardiozen"];
    let channels: Vec<String> = f.channels.iter().map(|(c, n)| format!("{c} {n}")).collect();
    println!("  hub: {hcp}'s calls by channel: {} (the dashboard's channels page counts remote calls)", channels.join(", "));
    Ok(())
}

/// An Agnitio `monitoringEvent` as the deck's library invokes it: `objc://iplanner/monitoringEvent?<encoded JSON>`.
fn agnitio_monitoring(event: serde_json::Value) -> serde_json::Value {
    let encoded: String = event
        .to_string()
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    json!({"url": format!("objc://iplanner/monitoringEvent?{encoded}")})
}

fn section(title: &str) {
    println!("\n== {title}");
}

fn short(bundle: &str) -> &str {
    bundle.rsplit('.').nth(1).unwrap_or(bundle)
}

fn clock_time(c: &ManualClock) -> String {
    use edetail_core::Clock;
    c.now_utc().format("%H:%M").to_string()
}

fn suggestion_source(s: Option<&Suggestion>) -> String {
    match s {
        None => "no suggestion".into(),
        Some(Suggestion { source: SuggestionSource::Hub { plan_id, stage }, .. }) => {
            format!("the hub's signed plan {} (stage {stage})", &plan_id[..8.min(plan_id.len())])
        }
        Some(s) if s.slides.is_empty() => "the local suggestion (no history yet)".into(),
        Some(_) => "the local suggestion".into(),
    }
}
