// Browser test of the hub's dashboard: real headless Chromium driven by puppeteer-core.
// Run through scripts/dashboard-test, which installs what is missing and builds the fixture.
//
//   node tests/browser/dashboard.test.mjs [DASHBOARD_URL EXPECT_JSON] [--mutate]
//   (against a running hub, DASHBOARD_TOKEN holds an operator token; the fixture prints its own)
//
// With a URL and an expectations file (the dashboard's view models serialized as JSON:
// {decks, hcps, channels, sync_health, deck?, deck_segment?, hcp?, hcp_without_plan?,
// hostile_hcp?}) it tests that dashboard, e.g. a real hub started by the field-day demo.
// Without them it starts the fixture (FIXTURE_BIN, default target/debug/examples/
// dashboard_fixture) on 127.0.0.1:0 and uses the expectations it writes.
// --mutate corrupts the expectations first (the self-check: the run must then fail).
//
// It loads the overview, navigates by clicking links (deck, segment, HCPs, channels, sync),
// screenshots each page into target/dashboard-shots/, and asserts the charts' data-*
// attributes carry the expected values, that no request left the dashboard's loopback host
// and that no console errors occurred. Last line: "N passed, M failed"; exit 1 on failure.

import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const requireTool = createRequire(path.join(root, ".tools/node/package.json"));
const puppeteer = requireTool("puppeteer-core");

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SHOTS = process.env.DASHBOARD_SHOTS || path.join(root, "target/dashboard-shots");
const FIXTURE_BIN = process.env.FIXTURE_BIN || path.join(process.env.CARGO_TARGET_DIR || path.join(root, "target"), "debug/examples/dashboard_fixture");
const SCENARIO_TIMEOUT_MS = Number(process.env.SCENARIO_TIMEOUT_MS || 60000);

const args = process.argv.slice(2);
const mutate = args.includes("--mutate");
const positional = args.filter((a) => !a.startsWith("--"));
if (positional.length !== 0 && positional.length !== 2) {
  console.error("usage: dashboard.test.mjs [DASHBOARD_URL EXPECT_JSON] [--mutate]");
  process.exit(2);
}

// ------------------------------------------------------------------ helpers

class CheckError extends Error {}
function check(cond, message, detail) {
  if (!cond) throw new CheckError(message + (detail === undefined ? "" : ": " + JSON.stringify(detail).slice(0, 800)));
  console.log("    ok: " + message);
}
const near = (a, b, tol) => Math.abs(Number(a) - Number(b)) <= tol;
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const sum = (xs) => xs.reduce((a, b) => a + b, 0);

// The operator session cookie ("name=value") once logged in; sent by rawGet too.
let sessionCookie = "";
function rawGet(url) {
  return new Promise((resolve, reject) => {
    http.get(url, { headers: sessionCookie ? { cookie: sessionCookie } : {} }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
    }).on("error", reject);
  });
}

async function startFixture(expectPath) {
  if (!fs.existsSync(FIXTURE_BIN)) throw new Error("fixture not built: " + FIXTURE_BIN + " (cargo build -p edetail-hub --example dashboard_fixture)");
  const child = spawn(FIXTURE_BIN, ["--listen", "127.0.0.1:0", "--expect", expectPath], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "", stderr = "";
  child.stderr.on("data", (d) => { stderr += d; });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("fixture did not print its URL within 30 s: " + stderr)), 30000);
    child.stdout.on("data", (d) => {
      stdout += d;
      const m = /^dashboard: (http:\/\/\S+)\noperator-token: (\S+)\nmicrosite-slide: (\S+)\n/.exec(stdout);
      if (m) { clearTimeout(timer); resolve({ url: m[1], token: m[2], slide: m[3] }); }
    });
    child.on("exit", (code) => { clearTimeout(timer); reject(new Error("fixture exited (" + code + "): " + stderr.trim())); });
  });
  return { url: url.url, token: url.token, slide: url.slide, child };
}

// The dashboard needs an operator: without a session it sends the browser to the login form;
// typing the operator token there sets an HttpOnly, SameSite=Strict session cookie.
async function login(page, base, token) {
  await page.goto(base, { waitUntil: "load" });
  check(new URL(page.url()).pathname === "/dashboard/login", "without a session the dashboard shows the login form", page.url());
  await page.type("#token", token);
  await Promise.all([page.waitForNavigation({ waitUntil: "load" }), page.click("#login")]);
  check(new URL(page.url()).pathname === "/dashboard", "logged in: the overview", page.url());
  const c = (await page.cookies()).find((k) => k.name === "edetail_session");
  check(c && c.httpOnly && c.sameSite === "Strict", "session cookie is HttpOnly and SameSite=Strict", c);
  sessionCookie = c.name + "=" + c.value;
}

// Deliberately wrong expectations: every scenario whose data is corrupted must now fail.
// Returns how many scenarios were corrupted (the self-check requires at least that many failures).
function corrupt(x) {
  let n = 1;
  x.decks.push({ bundle_id: "not.a.deck", title: "Missing", product: "none", version: 1, calls: 0, views: 0 });
  if (x.deck && x.deck.slides.length) {
    x.deck.slides[0].median_dwell_ms += 1000;
    n++;
  }
  if (x.hcp && x.hcp.topics.length) {
    x.hcp.topics[0].score += 0.5;
    if (x.hcp.plan && x.hcp.plan.items.length > 1) x.hcp.plan.items.reverse();
    n++;
  }
  if (x.channels.rows.length) {
    x.channels.rows[0].calls += 1;
    n++;
  }
  if (x.sync_health.devices.length) {
    x.sync_health.devices[0].rejected += 2;
    n++;
  }
  if (x.experiment && x.experiment.products.length) {
    const e = x.experiment.products[0].progression;
    if (e.result === "effect") e.low -= 0.25;
    else e.treatment_n += 1;
    n++;
  }
  return n;
}

// ------------------------------------------------------------------ page helpers

// One browser page for the whole run; every request and console message is recorded.
function watch(page, host) {
  const log = { requests: [], foreign: [], errors: [] };
  page.on("request", (r) => {
    const u = r.url();
    log.requests.push(u);
    if (u.startsWith("data:") || u === "about:blank") return;
    try {
      const p = new URL(u);
      if (p.host !== host) log.foreign.push(u);
    } catch (e) {
      log.foreign.push(u);
    }
  });
  page.on("console", (m) => { if (m.type() === "error") log.errors.push("[console] " + m.text()); });
  page.on("pageerror", (e) => log.errors.push("[page error] " + e.message));
  page.on("requestfailed", (r) => log.errors.push("[request failed] " + r.url() + " " + (r.failure() && r.failure().errorText)));
  return log;
}

async function clickNav(page, selector) {
  await page.waitForSelector(selector, { visible: true, timeout: 10000 });
  const [resp] = await Promise.all([page.waitForNavigation({ waitUntil: "load", timeout: 15000 }), page.click(selector)]);
  return resp;
}

async function pageName(page) {
  return page.$eval("body", (b) => b.dataset.page);
}

async function shot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  const file = path.join(SHOTS, name + ".png");
  await page.screenshot({ path: file, fullPage: true });
  console.log("    screenshot: " + path.relative(root, file));
}

// Attribute-selector-safe quoting for ids (which may be hostile).
const q = (s) => JSON.stringify(String(s));

// Attributes of every element matching `selector`, in document order.
function attrs(page, selector) {
  return page.$$eval(selector, (els) => els.map((el) => Object.fromEntries([...el.attributes].map((a) => [a.name, a.value]))));
}

// ------------------------------------------------------------------ checks of one page

async function checkDeckPage(page, deck, label) {
  check((await pageName(page)) === "deck", label + ": deck page loaded");
  const h1 = await page.$eval("h1", (el) => el.dataset.deck);
  check(h1 === deck.bundle_id, label + ": page is for " + deck.bundle_id, h1);
  const sel = await page.$eval("nav.segments", (el) => el.dataset.selectedSegment);
  check(sel === (deck.segment || ""), label + ": selected segment", sel);
  const active = await page.$eval("nav.segments a.active", (el) => el.dataset.segment);
  check(active === (deck.segment || ""), label + ": active segment link", active);

  const cells = await attrs(page, 'svg[data-chart="dwell-heatmap"] rect[data-slide]');
  check(cells.length === deck.slides.length, label + ": one heat-map cell per slide", { cells: cells.length, slides: deck.slides.length });
  check(same(cells.map((c) => c["data-slide"]), deck.slides.map((s) => s.slide_id)), label + ": heat-map cells in deck order", cells.map((c) => c["data-slide"]));
  const dwell = cells.map((c) => Number(c["data-median-dwell-ms"]));
  check(same(dwell, deck.slides.map((s) => s.median_dwell_ms)), label + ": heat-map median dwell per slide", dwell);
  check(same(cells.map((c) => Number(c["data-views"])), deck.slides.map((s) => s.views)), label + ": heat-map views per slide");
  const max = Math.max(...deck.slides.map((s) => s.median_dwell_ms));
  check(cells.every((c, i) => near(c["data-intensity"], max ? deck.slides[i].median_dwell_ms / max : 0, 0.0006)), label + ": heat-map intensity = dwell / deck max");
  // The colour really follows the intensity: the longest-dwell cell is the darkest.
  const lum = (hex) => { const n = parseInt(hex.slice(1), 16); return ((n >> 16) & 255) * 0.3 + ((n >> 8) & 255) * 0.59 + (n & 255) * 0.11; };
  const lums = cells.map((c) => lum(c.fill));
  const darkest = lums.indexOf(Math.min(...lums));
  check(deck.slides[darkest].median_dwell_ms === max, label + ": longest-dwell slide is the darkest cell", { darkest, lums });
  const cellText = await page.$$eval('svg[data-chart="dwell-heatmap"] g.cell', (gs) => gs.map((g) => g.textContent));
  // As the dashboard writes seconds: tenths rounded half up in whole numbers.
  const secs = (ms) => { const t = Math.floor((ms + 50) / 100); return Math.floor(t / 10) + "." + (t % 10) + " s"; };
  check(cellText.every((t, i) => t.includes(secs(deck.slides[i].median_dwell_ms))), label + ": heat-map cells show the seconds", cellText);

  const bars = await attrs(page, 'svg[data-chart="drop-off"] rect[data-slide]');
  check(bars.length === deck.slides.length, label + ": one drop-off bar per slide", bars.length);
  check(bars.every((b, i) => b["data-slide"] === deck.slides[i].slide_id && near(b["data-drop-off"], deck.slides[i].drop_off, 0.0006)), label + ": drop-off per slide", bars.map((b) => b["data-drop-off"]));
  const plotH = 160;
  check(bars.every((b, i) => near(Number(b.height) / plotH, Math.min(1, deck.slides[i].drop_off), 0.002)), label + ": drop-off bar heights proportional");

  const mix = await attrs(page, 'svg[data-chart="reactions"] g.stack');
  check(mix.length === deck.slides.length, label + ": one reaction bar per slide");
  check(mix.every((m, i) => {
    const s = deck.slides[i];
    return m["data-slide"] === s.slide_id && Number(m["data-positive"]) === s.reactions_positive && Number(m["data-neutral"]) === s.reactions_neutral && Number(m["data-negative"]) === s.reactions_negative;
  }), label + ": reaction mix per slide");
  const rows = await attrs(page, 'table[data-table="slides"] tbody tr');
  check(rows.length === deck.slides.length, label + ": slide table rows");

  // Issue 16: plan outcomes and the slides before stage moves.
  const outcomes = await attrs(page, '#outcomes table[data-table="outcomes"] tbody tr');
  check(same(outcomes.map((r) => [r["data-arm"], r["data-objective"], Number(r["data-achieved"]), Number(r["data-missed"])]), (deck.outcomes || []).map((o) => [o.arm, o.objective, o.achieved, o.missed])), label + ": plan outcomes by arm and objective", outcomes);
  const moves = await attrs(page, '#stage-moves table[data-table="stage-moves"] tbody tr');
  check(same(moves.map((r) => [r["data-slide"], r["data-stage"], Number(r["data-calls"])]), (deck.stage_moves || []).map((m) => [m.slide_id, m.stage, m.calls])), label + ": slides before stage moves", moves);
}

// The experiment page for one product: the estimate (with its interval) or "not enough data".
async function checkEstimate(page, product, metric, est) {
  const sel = `[data-estimate=${q(metric)}][data-product=${q(product)}]`;
  const a = (await attrs(page, sel))[0];
  check(a !== undefined, `${product} ${metric}: shown`);
  check(a["data-result"] === est.result, `${product} ${metric}: ${est.result}`, a["data-result"]);
  check(Number(a["data-treatment-n"]) === est.treatment_n && Number(a["data-holdout-n"]) === est.holdout_n, `${product} ${metric}: arm sizes`, [a["data-treatment-n"], a["data-holdout-n"]]);
  if (est.result === "effect") {
    check(near(a["data-difference"], est.difference, 0.00006) && near(a["data-low"], est.low, 0.00006) && near(a["data-high"], est.high, 0.00006), `${product} ${metric}: difference and 95% interval`, [a["data-difference"], a["data-low"], a["data-high"]]);
    // The drawn interval: the point between the whiskers, zero on the axis.
    const geo = await page.$eval(`${sel} svg[data-chart="effect"]`, (svg) => {
      const lines = [...svg.querySelectorAll("line.ci")].map((l) => [Number(l.getAttribute("x1")), Number(l.getAttribute("x2"))]);
      return { ci: lines[0], point: Number(svg.querySelector("circle.point").getAttribute("cx")) };
    });
    check(geo.ci[0] <= geo.point && geo.point <= geo.ci[1], `${product} ${metric}: point inside the drawn interval`, geo);
    const text = await page.$eval(sel, (el) => el.textContent);
    check(!/not enough data/i.test(text), `${product} ${metric}: a number, not the notice`);
  } else {
    const text = await page.$eval(sel, (el) => el.textContent);
    check(/Not enough data/.test(text) && (await page.$(`${sel} svg`)) === null, `${product} ${metric}: says not enough data, draws nothing`, text);
  }
}

// ------------------------------------------------------------------ scenarios

function scenarios(ctx) {
  const { base, x, log, page, slide } = ctx;
  const list = [];
  const add = (name, fn) => list.push({ name, fn });

  add("overview: headline numbers, decks, stage funnel, channels", async () => {
    const resp = await page.goto(base, { waitUntil: "load" });
    check(resp.status() === 200, "overview answers 200", resp.status());
    check((await pageName(page)) === "overview", "overview page loaded");
    const stats = Object.fromEntries((await attrs(page, ".stat[data-stat]")).map((s) => [s["data-stat"], Number(s["data-value"])]));
    const want = {
      decks: x.decks.length,
      hcps: x.hcps.length,
      calls: sum(x.channels.rows.map((r) => r.calls)),
      views: sum(x.channels.rows.map((r) => r.views)),
      devices: x.sync_health.devices.length,
      rejected: sum(x.sync_health.devices.map((d) => d.rejected)),
      pending: sum(x.sync_health.devices.map((d) => d.pending_analysis)),
    };
    check(same(stats, want), "headline numbers", { got: stats, want });
    const decks = await attrs(page, 'table[data-table="decks"] tbody tr');
    check(same(decks.map((d) => [d["data-deck"], Number(d["data-calls"]), Number(d["data-views"])]), x.decks.map((d) => [d.bundle_id, d.calls, d.views])), "deck rows (id, calls, views)", decks.map((d) => d["data-deck"]));
    const funnel = await attrs(page, 'svg[data-chart="stage-funnel"] g[data-stage]');
    const counts = {};
    for (const h of x.hcps) for (const s of h.stages) counts[s.stage] = (counts[s.stage] || 0) + 1;
    const got = Object.fromEntries(funnel.filter((f) => Number(f["data-count"]) > 0).map((f) => [f["data-stage"], Number(f["data-count"])]));
    check(same(Object.entries(got).sort(), Object.entries(counts).sort()), "HCPs per adoption stage", { got, counts });
    const ch = await attrs(page, 'svg[data-chart="channels"] g[data-channel]');
    check(same(ch.map((c) => [c["data-channel"], Number(c["data-calls"])]), x.channels.rows.map((r) => [r.channel, r.calls])), "channel bars on the overview");
    await shot(page, "overview");
  });

  if (x.deck) add("deck: heat map, drop-off, reactions; segment selector", async () => {
    await page.goto(base, { waitUntil: "load" });
    await clickNav(page, `tr[data-deck=${q(x.deck.bundle_id)}] a[data-link="deck"]`);
    await checkDeckPage(page, x.deck, "all HCPs");
    await shot(page, "deck");
    if (x.deck_segment) {
      await clickNav(page, `nav.segments a[data-segment=${q(x.deck_segment.segment)}]`);
      const u = new URL(page.url());
      check(u.searchParams.get("segment") === x.deck_segment.segment, "segment in the URL", page.url());
      await checkDeckPage(page, x.deck_segment, "segment " + x.deck_segment.segment);
      await shot(page, "deck-segment");
      await clickNav(page, 'nav.segments a[data-segment=""]');
      check(!new URL(page.url()).searchParams.has("segment"), "back to all HCPs");
    }
  });

  if (x.hcp) add("HCP: interest profile, stage history, plan in order, Rx beside engagement", async () => {
    const h = x.hcp;
    await page.goto(base, { waitUntil: "load" });
    await clickNav(page, 'a[data-link="hcps"]');
    check((await pageName(page)) === "hcps", "HCP list loaded");
    const rows = await attrs(page, 'table[data-table="hcps"] tbody tr');
    check(same(rows.map((r) => [r["data-hcp"], Number(r["data-calls"])]), x.hcps.map((r) => [r.hcp_id, r.calls])), "HCP rows (id, calls)");
    await shot(page, "hcps");
    // Issue 15: the order comes from the server; the link keeps the page, its rows re-sort.
    await clickNav(page, 'a[data-sort="calls"]');
    check(new URL(page.url()).searchParams.get("sort") === "calls", "ordered by calls via the URL");
    const byCalls = (await attrs(page, 'table[data-table="hcps"] tbody tr')).map((r) => [r["data-hcp"], Number(r["data-calls"])]);
    const expected = x.hcps.map((r) => [r.hcp_id, r.calls]).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    check(same(byCalls, expected), "HCP rows by calls, most first");
    // The territory filter (HCPs called on by its devices) keeps the order.
    const terr = x.hcps.flatMap((r) => r.territories || [])[0];
    check(terr !== undefined, "the fixture's HCPs have territories");
    await clickNav(page, `a[data-filter-territory=${q(terr)}]`);
    const url = new URL(page.url());
    check(url.searchParams.get("territory") === terr && url.searchParams.get("sort") === "calls", "territory filter via the URL, order kept", url.search);
    const inTerr = (await attrs(page, 'table[data-table="hcps"] tbody tr')).map((r) => [r["data-hcp"], JSON.parse(r["data-territories"]).includes(terr)]);
    const wantTerr = expected.filter(([id]) => x.hcps.find((r) => r.hcp_id === id).territories.includes(terr)).map(([id]) => [id, true]);
    check(wantTerr.length > 0 && wantTerr.length < expected.length, "the filter narrows the list", wantTerr.length);
    check(same(inTerr, wantTerr), "HCP rows of territory " + terr + " by calls", inTerr);
    await clickNav(page, 'a[data-filter-territory=""]');
    await clickNav(page, 'a[data-sort="id"]');
    await clickNav(page, `tr[data-hcp=${q(h.hcp_id)}] a[data-link="hcp"]`);
    check((await pageName(page)) === "hcp", "HCP page loaded");
    check((await page.$eval("h1", (el) => el.dataset.hcp)) === h.hcp_id, "page is for " + h.hcp_id);

    const topics = await attrs(page, 'svg[data-chart="interest-profile"] g[data-topic]');
    check(topics.length === h.topics.length, "one interest bar per topic", topics.length);
    check(topics.every((t, i) => t["data-topic"] === h.topics[i].topic && near(t["data-score"], h.topics[i].score, 0.0051) && Number(t["data-views"]) === h.topics[i].views), "interest scores in profile order", topics.map((t) => [t["data-topic"], t["data-score"]]));
    const widths = await page.$$eval('svg[data-chart="interest-profile"] g[data-topic] rect', (rs) => rs.map((r) => Number(r.getAttribute("width"))));
    const maxScore = Math.max(...h.topics.map((t) => t.score));
    const maxW = Math.max(...widths);
    check(widths.every((w, i) => near(w / maxW, h.topics[i].score / maxScore, 0.002)), "interest bar lengths proportional to score", widths);
    for (const t of h.topics) {
      const ev = await page.$$eval(`[data-topic-evidence=${q(t.topic)}] li`, (lis) => lis.map((li) => li.textContent));
      check(same(ev, t.evidence), "evidence for " + t.topic);
    }

    for (const s of h.stages) {
      const title = await page.$eval(`h3[data-product=${q(s.product)}]`, (el) => el.dataset.stage);
      check(title === s.stage, `current stage for ${s.product}: ${s.stage}`, title);
      if (!s.history.length) continue;
      const steps = await attrs(page, `svg[data-chart="stage-timeline"][data-product=${q(s.product)}] g.step`);
      check(same(steps.map((st) => [st["data-from"], st["data-stage"], st["data-rule"], new Date(st["data-at"]).toISOString()]), s.history.map((st) => [st.from, st.to, st.rule, new Date(st.at).toISOString()])), `stage history for ${s.product}`, steps.map((st) => st["data-stage"]));
    }

    if (h.plan) {
      const p = h.plan;
      check((await page.$eval("[data-plan-id]", (el) => el.dataset.planId)) === p.plan_id, "plan id shown");
      const items = await page.$$eval('ol[data-list="plan-items"] > li', (lis) => lis.map((li) => li.dataset.slide));
      check(same(items, p.items.map((i) => i.slide_id)), "plan items in the plan's order", items);
      const reasons = await page.$$eval('ol[data-list="plan-items"] > li', (lis) => lis.map((li) => li.textContent));
      check(reasons.every((t, i) => t.includes(p.items[i].reason)), "each plan item shows its reason");
      const skipped = await page.$$eval('ul[data-list="plan-skipped"] > li', (lis) => lis.map((li) => li.dataset.slide));
      check(same(skipped, p.skipped.map((i) => i.slide_id)), "skipped slides listed", skipped);
      check((await page.$('[data-empty="plan"]')) === null, "no empty-plan notice");
      const head = (await attrs(page, "[data-plan-id]"))[0];
      check(head["data-objective"] === (p.objective || "") && head["data-arm"] === (p.arm || ""), "the plan's objective and arm", head);
      const mandatory = await page.$$eval('ol[data-list="plan-items"] > li', (lis) => lis.map((li) => li.dataset.mandatory === "true"));
      check(same(mandatory, p.items.map((i) => !!i.mandatory)), "mandatory slides marked", mandatory);
    }
    const outcomes = await attrs(page, 'table[data-table="plan-outcomes"] tbody tr');
    check(same(outcomes.map((r) => [r["data-plan"], r["data-objective"], r["data-outcome"]]), (h.plans || []).map((o) => [o.plan_id, o.objective, o.outcome])), "plans with objectives and outcomes", outcomes);

    const eng = await attrs(page, 'svg[data-chart="rx-engagement"] g[data-period]');
    const engGot = eng.filter((g) => h.engagement_by_period.some((e) => e.period === g["data-period"])).map((g) => [g["data-period"], Number(g["data-calls"]), Number(g["data-views"])]);
    check(same(engGot, h.engagement_by_period.map((e) => [e.period, e.calls, e.views])), "engagement bars per period");
    const rx = await attrs(page, 'svg[data-chart="rx-engagement"] circle[data-rx]');
    const key = (r) => r.period + "|" + r.product;
    check(same(rx.map((r) => [r["data-period"] + "|" + r["data-product"], Number(r["data-rx"])]).sort(), h.prescriptions.map((r) => [key(r), r.count]).sort()), "prescription points per period and product");
    await shot(page, "hcp");
  });

  if (x.hcp_without_plan) add("HCP without a plan: empty state", async () => {
    const h = x.hcp_without_plan;
    await page.goto(base, { waitUntil: "load" });
    await clickNav(page, 'header nav a[data-nav="HCPs"]');
    await clickNav(page, `tr[data-hcp=${q(h.hcp_id)}] a[data-link="hcp"]`);
    check((await page.$eval("h1", (el) => el.dataset.hcp)) === h.hcp_id, "page is for " + h.hcp_id);
    check((await page.$('[data-empty="plan"]')) !== null, "says there is no plan");
    check((await page.$('ol[data-list="plan-items"]')) === null, "no plan list");
    for (const s of h.stages) {
      const steps = await attrs(page, `svg[data-chart="stage-timeline"][data-product=${q(s.product)}] g.step`);
      check(same(steps.map((st) => st["data-stage"]), s.history.map((st) => st.to)), `stage history for ${s.product}`);
    }
    await shot(page, "hcp-without-plan");
  });

  if (x.hostile_hcp) add("hostile HCP id: escaped on the list, encoded in the link, round-trips", async () => {
    const h = x.hostile_hcp;
    await page.goto(base, { waitUntil: "load" });
    await clickNav(page, 'header nav a[data-nav="HCPs"]');
    const injected = await page.$$eval("main table b, main table script", (els) => els.length);
    check(injected === 0, "no markup injected into the HCP list");
    const href = await page.$eval(`tr[data-hcp=${q(h.hcp_id)}] a[data-link="hcp"]`, (a) => a.getAttribute("href"));
    check(!/[<>"#?&]/.test(href.slice("/dashboard/hcps/".length)), "link percent-encoded", href);
    await clickNav(page, `tr[data-hcp=${q(h.hcp_id)}] a[data-link="hcp"]`);
    check((await page.$eval("h1", (el) => el.dataset.hcp)) === h.hcp_id, "id round-trips through the URL");
    check((await page.$eval("h1", (el) => el.textContent)).includes(h.hcp_id), "id shown as text");
    check((await page.$$eval("main h1 b, main script", (els) => els.length)) === 0, "no markup injected into the HCP page");
  });

  if (x.experiment) add("experiment page: treatment against holdout, intervals or not enough data", async () => {
    await page.goto(base, { waitUntil: "load" });
    await clickNav(page, 'header nav a[data-nav="Experiment"]');
    check((await pageName(page)) === "experiment", "experiment page loaded");
    const sub = (await attrs(page, "[data-holdout-share]"))[0];
    check(near(sub["data-holdout-share"], x.experiment.holdout_share, 1e-9) && Number(sub["data-min-per-arm"]) === x.experiment.min_per_arm, "holdout share and minimum sample", sub);
    const sections = (await attrs(page, "section[data-experiment]")).map((s) => s["data-experiment"]);
    check(same(sections, x.experiment.products.map((p) => p.product)), "one section per product", sections);
    if (!x.experiment.products.length) check((await page.$('[data-empty="experiment"]')) !== null, "says no HCP has had a plan yet");
    for (const p of x.experiment.products) {
      const sec = `section[data-experiment=${q(p.product)}]`;
      const n = Object.fromEntries((await attrs(page, `${sec} [data-arm-n]`)).map((b) => [b["data-arm-n"], Number(b["data-n"])]));
      check(n.treatment === p.treatment_n && n.holdout === p.holdout_n, `${p.product}: HCPs per arm`, n);
      await checkEstimate(page, p.product, "progression", p.progression);
      await checkEstimate(page, p.product, "rx_change", p.rx_change);
      const outcomes = await attrs(page, `${sec} table[data-table="outcomes"] tbody tr`);
      check(same(outcomes.map((r) => [r["data-arm"], r["data-objective"], Number(r["data-achieved"]), Number(r["data-missed"])]), p.outcomes.map((o) => [o.arm, o.objective, o.achieved, o.missed])), `${p.product}: plan outcomes`, outcomes);
      const moves = await attrs(page, `${sec} table[data-table="stage-moves"] tbody tr`);
      check(same(moves.map((r) => [r["data-slide"], r["data-stage"], Number(r["data-calls"])]), p.stage_moves.map((m) => [m.slide_id, m.stage, m.calls])), `${p.product}: slides before stage moves`, moves);
    }
    await shot(page, "experiment");
  });

  add("channels page", async () => {
    await page.goto(base, { waitUntil: "load" });
    await clickNav(page, 'a[data-link="channels"]');
    check((await pageName(page)) === "channels", "channels page loaded");
    const bars = await attrs(page, 'svg[data-chart="channels"] g[data-channel]');
    check(bars.length === x.channels.rows.length, "one bar per channel");
    const rows = await attrs(page, 'table[data-table="channels"] tbody tr');
    check(same(rows.map((r) => [r["data-channel"], Number(r["data-calls"]), Number(r["data-views"]), Number(r["data-hcps"])]), x.channels.rows.map((r) => [r.channel, r.calls, r.views, r.hcps_reached])), "channel rows (calls, views, HCPs reached)");
    await shot(page, "channels");
  });

  add("sync health page", async () => {
    await page.goto(base, { waitUntil: "load" });
    await clickNav(page, 'a[data-link="sync"]');
    check((await pageName(page)) === "sync", "sync page loaded");
    const rows = await attrs(page, 'table[data-table="devices"] tbody tr');
    const want = x.sync_health.devices.map((d) => [d.device_id, d.watermark, d.events_received, d.duplicates, d.rejected, d.pending_analysis]);
    check(same(rows.map((r) => [r["data-device"], ...["watermark", "received", "duplicates", "rejected", "pending"].map((k) => Number(r["data-" + k]))]), want), "device rows (watermark, received, duplicates, rejected, pending)");
    const chart = await attrs(page, 'svg[data-chart="sync-events"] g.stack');
    check(same(chart.map((g) => [g["data-device"], Number(g["data-rejected"])]), x.sync_health.devices.map((d) => [d.device_id, d.rejected])), "events chart per device");
    for (const d of x.sync_health.devices) {
      const status = await page.$eval(`tr[data-device=${q(d.device_id)}] [data-status]`, (el) => el.dataset.status);
      check((status === "rejected") === d.rejected > 0, `${d.device_id} flagged iff it has rejected events`, status);
    }
    await shot(page, "sync");
    // The device list's territory filter (from the URL): only that territory's devices, totals for them.
    const terr = x.sync_health.devices.map((d) => d.territory).sort()[0];
    const inTerr = x.sync_health.devices.filter((d) => d.territory === terr);
    check(inTerr.length > 0 && inTerr.length < x.sync_health.devices.length, "the fixture's devices are in several territories");
    await clickNav(page, `a[data-filter-territory=${q(terr)}]`);
    check(new URL(page.url()).searchParams.get("territory") === terr, "territory filter via the URL");
    const shown = (await attrs(page, 'table[data-table="devices"] tbody tr')).map((r) => r["data-device"]);
    check(same(shown, inTerr.map((d) => d.device_id)), "device rows of territory " + terr, shown);
    check(Number(await page.$eval('[data-stat="devices"]', (el) => el.dataset.value)) === inTerr.length, "device total of the territory");
  });

  add("unknown ids answer 404 pages", async () => {
    for (const p of ["/dashboard/decks/no.such.deck", "/dashboard/hcps/no-such-hcp"]) {
      const r = await rawGet(new URL(p, base).href);
      check(r.status === 404 && r.body.includes('data-page="not-found"'), p + " is a 404 page", r.status);
    }
  });

  // A microsite slide is HCP-facing content on the dashboard's origin. Opened directly in the
  // browser of a logged-in operator, its script must not read the dashboard (CSP sandbox: an
  // opaque origin, no cookies). Control: the same slide without the hub's CSP header does read
  // it, so the check can fail.
  if (slide) add("microsite slide opened directly cannot read the dashboard", async () => {
    const outcome = async (stripCsp) => {
      const p = await page.browser().newPage();
      try {
        if (stripCsp) {
          await p.setRequestInterception(true);
          p.on("request", (req) => {
            if (req.url() !== slide) return req.continue();
            rawGet(slide).then((r) => req.respond({ status: r.status, contentType: r.headers["content-type"], body: r.body }));
          });
        }
        const resp = await p.goto(slide, { waitUntil: "load" });
        if (!stripCsp) check(/sandbox allow-scripts/.test(resp.headers()["content-security-policy"] || "") && !/allow-same-origin/.test(resp.headers()["content-security-policy"]), "slide served sandboxed", resp.headers()["content-security-policy"]);
        await p.waitForFunction(() => document.title !== "waiting", { timeout: 10000 });
        return await p.title();
      } finally {
        await p.close();
      }
    };
    const sandboxed = await outcome(false);
    check(sandboxed !== "read:yes", "the sandboxed slide could not read /dashboard/hcps", sandboxed);
    const control = await outcome(true);
    check(control === "read:yes", "control: without the CSP the same slide reads it (the check is meaningful)", control);
  });

  // The microsite page itself keeps working under its policy: its script runs and its visit
  // report (with the page's hub-issued visit id) is accepted.
  if (slide) add("microsite page: script allowed by its CSP, visit report accepted", async () => {
    const p = await page.browser().newPage();
    try {
      const errors = [];
      p.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
      const sitePath = slide.replace(/\/a\/.*$/, "");
      const resp = await p.goto(sitePath, { waitUntil: "load" });
      check(resp.status() === 200, "microsite page answers 200", resp.status());
      check(await p.evaluate(() => typeof window.edetailMicrositeSend === "function"), "the page's script ran under its CSP", errors);
      const visit = p.waitForResponse((r) => r.url().endsWith("/visit"), { timeout: 10000 });
      await p.evaluate(() => window.edetailMicrositeSend());
      check((await visit).status() === 204, "visit report accepted (204)");
      // (The framed fixture slide's own refused read of /dashboard/hcps logs a CORS error: expected.)
      const violations = errors.filter((e) => /Content Security Policy/i.test(e));
      check(violations.length === 0, "no CSP violations on the page", violations);
    } finally {
      await p.close();
    }
  });

  add("offline: every request stayed on the dashboard's host; no console errors", async () => {
    check(log.requests.length > 0, "requests were recorded", log.requests.length);
    check(log.foreign.length === 0, "no request left " + new URL(base).host, log.foreign);
    check(log.errors.length === 0, "no console errors, page errors or failed requests", log.errors);
  });
  return list;
}

// ------------------------------------------------------------------ main

async function main() {
  let fixture = null, base, expectPath, token = process.env.DASHBOARD_TOKEN || "";
  if (positional.length === 2) {
    [base, expectPath] = positional;
    if (!token) throw new Error("set DASHBOARD_TOKEN to an operator token (edetail hub operator add) to test a running hub");
  } else {
    expectPath = path.join(root, "target/dashboard-expect.json");
    fixture = await startFixture(expectPath);
    base = fixture.url;
    token = fixture.token;
    console.log("fixture: " + base);
  }
  let x = JSON.parse(fs.readFileSync(expectPath, "utf8"));
  let corrupted = 0;
  if (mutate) {
    corrupted = corrupt(x);
    console.log(`(expectations of ${corrupted} scenarios deliberately corrupted: they must fail)`);
  }
  const host = new URL(base).host;
  check(["127.0.0.1", "localhost", "[::1]"].includes(new URL(base).hostname), "dashboard is on loopback", base);
  const browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking", "--disable-component-update"] });
  let passed = 0, failed = 0;
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    const log = watch(page, host);
    await login(page, base, token);
    for (const s of scenarios({ base, x, log, page, slide: fixture ? fixture.slide : "" })) {
      console.log("# " + s.name);
      try {
        let timer;
        await Promise.race([s.fn(), new Promise((_, rej) => { timer = setTimeout(() => rej(new Error("scenario timed out")), SCENARIO_TIMEOUT_MS); })]).finally(() => clearTimeout(timer));
        passed++;
        console.log("ok - " + s.name);
      } catch (e) {
        failed++;
        console.log("not ok - " + s.name + "\n    " + (e instanceof CheckError ? e.message : (e && e.stack) || e));
      }
    }
  } finally {
    await browser.close().catch(() => {});
    if (fixture) fixture.child.kill("SIGTERM");
  }
  // Under --mutate the last line also says how many scenarios must have failed.
  console.log(`${passed} passed, ${failed} failed` + (mutate ? ` (${corrupted} corrupted)` : ""));
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  console.log("0 passed, 1 failed");
  process.exit(1);
});
