//! The hub's dashboard (closed-loop marketing, "see it"): deck performance (slide dwell heat
//! map, drop-off, reactions), HCP views (interest profile, adoption stage history, the plan
//! and its reasons), channels and sync health, as server-rendered HTML with inline SVG charts.
//!
//! The numbers come from a [`DashboardSource`] (the analytics engine over the hub's store
//! implements it); this module only renders. Pages need nothing from the internet: no
//! scripts, no external URLs, and a Content-Security-Policy that forbids loading anything.
//! Every chart is `<svg data-chart="…">` and each mark carries its data in `data-*`
//! attributes, which the browser test (`scripts/dashboard-test`) asserts.
//!
//! Routes (all GET): `/dashboard`, `/dashboard/decks`, `/dashboard/decks/{bundle_id}?segment=S`,
//! `/dashboard/hcps`, `/dashboard/hcps/{hcp_id}`, `/dashboard/channels`, `/dashboard/sync`,
//! `/dashboard/experiment`.
//! Unknown ids answer a 404 page; source errors a 500 page (details in the log only).
//!
//! Mounting: `hub.router().merge(dashboard::router(Arc::new(source)))` (this router has no
//! fallback, so it merges with the `/v1` one). The dashboard has no authentication of its
//! own: serve it only where operators are (loopback, an internal network, behind the
//! operator's reverse proxy).
//!
//! Testing against any source: [`expectations`] serializes what the pages must show, in the
//! format `scripts/dashboard-test URL EXPECT_JSON` reads.

pub mod html;
pub mod model;
mod pages;
mod respond;
mod svg;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

use crate::error::{Error, Result};
pub use crate::store::{HcpQuery, HcpSort};
pub use html::{html_escape, url_segment};
pub use model::*;

/// Where the dashboard's numbers come from. Methods are synchronous (the hub's store is);
/// handlers call them on the blocking pool.
pub trait DashboardSource: Send + Sync + 'static {
    /// Every published deck.
    fn decks(&self) -> Result<Vec<DeckSummary>>;
    /// One deck's slide-level performance, for every HCP (`segment` None) or one segment;
    /// `None` when the deck is unknown.
    fn deck(&self, bundle_id: &str, segment: Option<&str>) -> Result<Option<DeckView>>;
    /// Every HCP seen in events (small sources and tests; the pages ask for
    /// [`DashboardSource::hcp_page`] and [`DashboardSource::hcp_overview`]).
    fn hcps(&self) -> Result<Vec<HcpRow>>;
    /// One page of HCPs matching `q`. The default filters [`DashboardSource::hcps`] in memory;
    /// a source over a store answers with indexed queries.
    fn hcp_page(&self, q: &HcpQuery) -> Result<HcpList> {
        Ok(page_in_memory(self.hcps()?, q))
    }
    /// How many HCPs, and the counts per stage (one per HCP and product). The default counts
    /// [`DashboardSource::hcps`].
    fn hcp_overview(&self) -> Result<HcpOverview> {
        let hcps = self.hcps()?;
        let mut stages: std::collections::BTreeMap<String, u64> = Default::default();
        for s in hcps.iter().flat_map(|h| &h.stages) {
            *stages.entry(s.stage.clone()).or_default() += 1;
        }
        Ok(HcpOverview { total: hcps.len() as u64, stages: stages.into_iter().collect() })
    }
    /// One HCP; `None` when unknown.
    fn hcp(&self, hcp_id: &str) -> Result<Option<HcpView>>;
    fn channels(&self) -> Result<ChannelsView>;
    fn sync_health(&self) -> Result<SyncHealthView>;
    /// The built-in experiment, per product.
    fn experiment(&self) -> Result<ExperimentView>;
}

type Source = Arc<dyn DashboardSource>;

/// HCPs per page of the list.
pub const HCPS_PER_PAGE: u64 = 50;

/// [`DashboardSource::hcp_page`] over a list in memory: the same filters and order as the
/// store's query.
pub fn page_in_memory(mut hcps: Vec<HcpRow>, q: &HcpQuery) -> HcpList {
    let territories: std::collections::BTreeSet<String> = hcps.iter().flat_map(|h| h.territories.iter().cloned()).collect();
    hcps.retain(|h| {
        q.segment.as_ref().is_none_or(|s| h.segment.as_ref() == Some(s))
            && q.territory.as_ref().is_none_or(|t| h.territories.contains(t))
            && q.id_prefix.as_ref().is_none_or(|p| h.hcp_id.starts_with(p.as_str()))
            && q.product.as_ref().is_none_or(|p| h.stages.iter().any(|s| &s.product == p))
            && q.stage
                .as_ref()
                .is_none_or(|st| h.stages.iter().any(|s| &s.stage == st && q.product.as_ref().is_none_or(|p| &s.product == p)))
    });
    match q.sort {
        HcpSort::Id => hcps.sort_by(|a, b| a.hcp_id.cmp(&b.hcp_id)),
        HcpSort::Calls => hcps.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.hcp_id.cmp(&b.hcp_id))),
        HcpSort::LastCall => hcps.sort_by(|a, b| {
            (a.last_call_at.is_none(), std::cmp::Reverse(a.last_call_at), &a.hcp_id).cmp(&(
                b.last_call_at.is_none(),
                std::cmp::Reverse(b.last_call_at),
                &b.hcp_id,
            ))
        }),
    }
    let total = hcps.len() as u64;
    let rows = hcps.into_iter().skip(q.offset.min(usize::MAX as u64) as usize).take(q.limit.min(usize::MAX as u64) as usize).collect();
    HcpList { rows, total, territories: territories.into_iter().collect(), query: q.clone() }
}

/// The HCP list's query from its URL: `stage`, `product`, `segment`, `territory`, `q` (id prefix), `sort`
/// (`id`, `calls`, `last_call`), `page` (from 1). Empty values are no filter.
pub fn hcp_query(params: &HashMap<String, String>) -> HcpQuery {
    let text = |k: &str| params.get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let page = params.get("page").and_then(|p| p.parse::<u64>().ok()).unwrap_or(1).max(1);
    HcpQuery {
        stage: text("stage"),
        product: text("product"),
        segment: text("segment"),
        id_prefix: text("q"),
        territory: text("territory"),
        sort: match params.get("sort").map(String::as_str) {
            Some("calls") => HcpSort::Calls,
            Some("last_call") => HcpSort::LastCall,
            _ => HcpSort::Id,
        },
        offset: (page - 1).saturating_mul(HCPS_PER_PAGE),
        limit: HCPS_PER_PAGE,
    }
}

/// Devices per page of the sync page's list (and parked calls shown at most).
pub const DEVICES_PER_PAGE: u64 = 100;

/// The sync page's device list: its territory filter and page, from the URL (`territory`,
/// `page` from 1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncQuery {
    pub territory: Option<String>,
    pub offset: u64,
    pub limit: u64,
}

/// The sync page's query from its URL. Empty values are no filter.
pub fn sync_query(params: &HashMap<String, String>) -> SyncQuery {
    let page = params.get("page").and_then(|p| p.parse::<u64>().ok()).unwrap_or(1).max(1);
    SyncQuery {
        territory: params.get("territory").map(|v| v.trim().to_string()).filter(|v| !v.is_empty()),
        offset: (page - 1).saturating_mul(DEVICES_PER_PAGE),
        limit: DEVICES_PER_PAGE,
    }
}

/// What the dashboard must show for `source`, as the browser test reads it:
/// `{decks, hcps, channels, sync_health, experiment, deck?, deck_segment?, hcp?, hcp_without_plan?}` where
/// `deck` is the first deck with slide data (and `deck_segment` its first segment's view),
/// `hcps` the HCP list's first page as shown, `hcp` the first HCP with a plan (else the first HCP) and `hcp_without_plan` the first other
/// HCP without one. Keys without a candidate are left out (the test skips their scenarios).
pub fn expectations(source: &dyn DashboardSource) -> Result<serde_json::Value> {
    let decks = source.decks()?;
    // The list's first page as shown (by id): the HCP scenarios click rows on it.
    let hcps = source.hcp_page(&HcpQuery::default())?.rows;
    let mut x = serde_json::json!({
        "decks": decks,
        "hcps": hcps,
        "channels": source.channels()?,
        "sync_health": source.sync_health()?,
        "experiment": source.experiment()?,
    });
    for d in &decks {
        let Some(view) = source.deck(&d.bundle_id, None)? else { continue };
        if view.slides.is_empty() {
            continue;
        }
        if let Some(seg) = view.segments.first()
            && let Some(sv) = source.deck(&d.bundle_id, Some(seg))?
            && !sv.slides.is_empty()
        {
            x["deck_segment"] = to_json(&sv)?;
        }
        x["deck"] = to_json(&view)?;
        break;
    }
    let mut views = Vec::new();
    for h in &hcps {
        if let Some(v) = source.hcp(&h.hcp_id)? {
            views.push(v);
        }
    }
    let with_plan = views.iter().position(|v| v.plan.is_some()).or((!views.is_empty()).then_some(0));
    if let Some(i) = with_plan {
        x["hcp"] = to_json(&views[i])?;
        if let Some(other) = views.iter().enumerate().find(|(j, v)| *j != i && v.plan.is_none()) {
            x["hcp_without_plan"] = to_json(other.1)?;
        }
    }
    Ok(x)
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| Error::Internal(format!("dashboard expectations: {e}")))
}

/// The dashboard's routes, to merge into the hub's router (or serve alone).
pub fn router(source: Arc<dyn DashboardSource>) -> Router {
    Router::new()
        .route("/dashboard", get(overview))
        .route("/dashboard/", get(overview))
        .route("/dashboard/decks", get(decks))
        .route("/dashboard/decks/{bundle_id}", get(deck))
        .route("/dashboard/hcps", get(hcps))
        .route("/dashboard/hcps/{hcp_id}", get(hcp))
        .route("/dashboard/channels", get(channels))
        .route("/dashboard/sync", get(sync))
        .route("/dashboard/experiment", get(experiment))
        .route("/dashboard/{*rest}", get(|| async { page(StatusCode::NOT_FOUND, pages::not_found("No such dashboard page.")) }))
        .with_state(source)
}

/// Security headers: nothing may be loaded from anywhere (styles and SVG are inline).
fn page(status: StatusCode, body: String) -> Response {
    crate::web::html_page(
        status,
        body,
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    )
}

/// Runs `load` on the blocking pool and renders its result; `Ok(None)` is a 404 saying `missing`.
async fn render<T: Send + 'static>(
    load: impl FnOnce() -> Result<Option<T>> + Send + 'static,
    missing: impl FnOnce() -> String,
    view: impl FnOnce(&T) -> String,
) -> Response {
    let loaded = tokio::task::spawn_blocking(load).await.map_err(|e| Error::Internal(format!("dashboard task failed: {e}")));
    match loaded {
        Ok(Ok(Some(v))) => page(StatusCode::OK, view(&v)),
        Ok(Ok(None)) | Ok(Err(Error::NotFound(_))) => page(StatusCode::NOT_FOUND, pages::not_found(&missing())),
        Ok(Err(e)) | Err(e) => {
            tracing::error!(error = %e, "dashboard page failed");
            page(StatusCode::INTERNAL_SERVER_ERROR, pages::error())
        }
    }
}

async fn overview(State(src): State<Source>) -> Response {
    render(
        move || Ok(Some((src.decks()?, src.hcp_overview()?, src.channels()?, src.sync_health()?))),
        String::new,
        |(d, h, c, s)| pages::overview(d, h, c, s),
    )
    .await
}

async fn decks(State(src): State<Source>) -> Response {
    render(move || Ok(Some(src.decks()?)), String::new, |d| pages::decks(d)).await
}

async fn deck(State(src): State<Source>, Path(bundle_id): Path<String>, Query(q): Query<HashMap<String, String>>) -> Response {
    let segment = q.get("segment").filter(|s| !s.is_empty()).cloned();
    let id = bundle_id.clone();
    let seg = segment.clone();
    render(
        move || src.deck(&id, seg.as_deref()),
        move || match segment {
            None => format!("No deck {bundle_id}."),
            Some(s) => format!("No deck {bundle_id} (segment {s})."),
        },
        pages::deck,
    )
    .await
}

async fn hcps(State(src): State<Source>, Query(params): Query<HashMap<String, String>>) -> Response {
    let q = hcp_query(&params);
    render(move || Ok(Some(src.hcp_page(&q)?)), String::new, pages::hcps).await
}

async fn hcp(State(src): State<Source>, Path(hcp_id): Path<String>) -> Response {
    let id = hcp_id.clone();
    render(move || src.hcp(&id), move || format!("No HCP {hcp_id}."), pages::hcp).await
}

async fn channels(State(src): State<Source>) -> Response {
    render(move || Ok(Some(src.channels()?)), String::new, pages::channels).await
}

async fn experiment(State(src): State<Source>) -> Response {
    render(move || Ok(Some(src.experiment()?)), String::new, pages::experiment).await
}

async fn sync(State(src): State<Source>, Query(params): Query<HashMap<String, String>>) -> Response {
    let q = sync_query(&params);
    render(move || Ok(Some(src.sync_health()?)), String::new, move |s| pages::sync(s, &q)).await
}
