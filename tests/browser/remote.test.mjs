// Browser test of remote detailing (issue 17, ADR 0023): a rep presents a call from the tablet,
// doctors follow in headless Chromium from the join link, the hub relays over WebSockets.
// Run through scripts/remote-test, which installs what is missing, builds the CLI and the
// library, generates the Python bindings and signs the deck; it passes EDETAIL_BIN,
// EDETAIL_PY_BINDINGS, PUBLISHER_KEY, CARDIOZEN_ZIP and SCREENSHOT in the environment.
//
// Everything is real: `edetail hub serve` (SQLite, 127.0.0.1:0, its URL read from stdout), the
// tablet (tests/browser/remote_tablet.py on the real library through its Python bindings,
// syncing the deck and consent from that hub, driven here over stdin / stdout JSON lines), a
// TCP proxy in this process between the tablet's presenter socket and the hub (cut to lose
// the presenter), and two doctors in separate browser contexts. Each step asserts what each
// attendee SHOWS: body[data-slide] and the iframe loaded that slide's URL, waited for with a
// deadline (never a bare sleep; the one settle is the check that nothing happens).
// Every process started is killed at the end, whatever happened. Last line: "N passed,
// M failed"; exit status 1 on any failure. Scenarios never skip.

import { spawn, spawnSync } from "node:child_process";
import crypto from "node:crypto";
import { createRequire } from "node:module";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const requireTool = createRequire(path.join(root, ".tools/node/package.json"));
const puppeteer = requireTool("puppeteer-core");

const ED = process.env.EDETAIL_BIN || path.join(root, "target/debug/edetail");
const PY_BINDINGS = process.env.EDETAIL_PY_BINDINGS;
const PUBLISHER_KEY = process.env.PUBLISHER_KEY;
const CARDIOZEN_ZIP = process.env.CARDIOZEN_ZIP;
const SCREENSHOT = process.env.SCREENSHOT || path.join(root, "target/browser/remote-attendee.png");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SCENARIO_TIMEOUT_MS = Number(process.env.SCENARIO_TIMEOUT_MS || 90000);
const TABLET = path.join(root, "tests/browser/remote_tablet.py");
const CZ = "com.example.cardiozen.launch";
const HCP = "hcp-remote-1"; // full consent (no record on the hub)
const HCP_OFF = "hcp-remote-2"; // consent off on the hub
const TERRITORY = "uk-north";

if (!PY_BINDINGS || !PUBLISHER_KEY || !CARDIOZEN_ZIP) {
  console.error("EDETAIL_PY_BINDINGS, PUBLISHER_KEY and CARDIOZEN_ZIP must be set (scripts/remote-test sets them)");
  process.exit(2);
}

// The deck as its source declares it: each slide's entry page.
const deck = JSON.parse(fs.readFileSync(path.join(root, "presentations/cardiozen-launch/edetail.json"), "utf8"));
const entry = (slide) => deck.slides.find((s) => s.id === slide).entry;
const mainSlides = deck.presentations.find((p) => p.id === "main").slides;
const after = (slide) => mainSlides[mainSlides.indexOf(slide) + 1];

// ------------------------------------------------------------------ small helpers

class CheckError extends Error {}
function check(cond, message, detail) {
  if (!cond) throw new CheckError(message + (detail === undefined ? "" : ": " + JSON.stringify(detail).slice(0, 800)));
  console.log("    ok: " + message);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const tmpDirs = [];
function tmpDir(prefix) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpDirs.push(d);
  return d;
}

// Polls `fn` (async; errors count as "not yet", e.g. a frame navigating) until it answers
// truthy; throws a CheckError naming `what` and the last answer at the deadline.
async function waitFor(fn, what, timeout = 20000) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = "error: " + (e && e.message);
    }
    if (Date.now() > deadline) throw new CheckError(`timed out after ${timeout} ms waiting for ${what}; last: ${JSON.stringify(last).slice(0, 600)}`);
    await sleep(100);
  }
}

function rawGet(url, headers = {}) {
  return new Promise((resolve, reject) => {
    http.get(url, { headers }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
    }).on("error", reject);
  });
}

// ------------------------------------------------------------------ processes

const running = new Set(); // child processes, killed at the end whatever happened

function track(child) {
  running.add(child);
  child.on("exit", () => running.delete(child));
  return child;
}

function killAll() {
  for (const c of running) {
    try { c.kill("SIGKILL"); } catch (e) { /* gone */ }
  }
}

function cli(...args) {
  const r = spawnSync(ED, args, { encoding: "utf8", timeout: 60000 });
  if (r.status !== 0) throw new Error(`edetail ${args.slice(0, 3).join(" ")} failed (${r.status}): ${(r.stderr || "").trim().slice(0, 600)}`);
  return r.stdout;
}
const cliJson = (...args) => JSON.parse(cli(...args));

// SQL on a SQLite file through Python's sqlite3 (the hub's database is plain SQLite).
function sqlite(file, sql, params = []) {
  const r = spawnSync("python3", ["-c", `
import json, sqlite3, sys
c = sqlite3.connect(sys.argv[1], timeout=10)
cur = c.execute(sys.argv[2], json.loads(sys.argv[3]))
rows = cur.fetchall()
c.commit()
print(json.dumps({"rows": rows, "changed": c.total_changes}))
`, file, sql, JSON.stringify(params)], { encoding: "utf8" });
  if (r.status !== 0) throw new Error("sqlite failed: " + r.stderr);
  return JSON.parse(r.stdout);
}

class Hub {
  static async start() {
    const h = new Hub();
    h.data = path.join(tmpDir("edetail-remote-hub-"), "hub");
    h.child = track(spawn(ED, ["hub", "serve", "--data", h.data, "--listen", "127.0.0.1:0", "--publisher-key", PUBLISHER_KEY],
      { stdio: ["ignore", "pipe", "pipe"] }));
    h.stderr = "";
    h.child.stderr.on("data", (d) => { h.stderr = (h.stderr + d).slice(-4000000); });
    let stdout = "";
    h.url = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("hub did not print its URL within 30 s: " + h.stderr)), 30000);
      h.child.stdout.on("data", (d) => {
        stdout += d;
        const m = /^hub: (http:\/\/\S+?)\/?\n/.exec(stdout);
        if (m) { clearTimeout(timer); resolve(m[1]); }
      });
      h.child.on("exit", (code) => { clearTimeout(timer); reject(new Error("hub exited (" + code + "): " + h.stderr.trim())); });
    });
    h.port = Number(new URL(h.url).port);
    h.db = path.join(h.data, "hub.sqlite3");
    return h;
  }

  cli(...args) { return cliJson("hub", ...args, "--data", this.data, "--json"); }
}

// A TCP proxy to the hub for the presenter's socket: `cut()` drops every connection through it
// and refuses new ones (accepted, then closed at once) until `restore()`.
class Proxy {
  constructor(port) {
    this.target = port;
    this.sockets = new Set();
    this.up = true;
    this.server = net.createServer((client) => {
      if (!this.up) { client.destroy(); return; }
      const upstream = net.connect(this.target, "127.0.0.1");
      const pair = [client, upstream];
      for (const s of pair) {
        this.sockets.add(s);
        s.on("error", () => {});
        s.on("close", () => { this.sockets.delete(s); for (const o of pair) o.destroy(); });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }

  listen() {
    return new Promise((resolve) => this.server.listen(0, "127.0.0.1", () => {
      this.url = "http://127.0.0.1:" + this.server.address().port;
      resolve(this);
    }));
  }

  cut() {
    this.up = false;
    for (const s of this.sockets) s.destroy();
  }

  restore() { this.up = true; }

  close() {
    this.cut();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

// The tablet: tests/browser/remote_tablet.py on the real library. `send` answers the command's
// reply (throws on failure); the session's events are collected in `events` as they come.
class Tablet {
  static async start(args) {
    const t = new Tablet();
    t.child = track(spawn("python3", [TABLET, ...args], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, EDETAIL_PY_BINDINGS: PY_BINDINGS, PYTHONUNBUFFERED: "1" },
    }));
    t.events = [];
    t.waiting = new Map();
    t.nextId = 1;
    t.stderr = "";
    t.child.stderr.on("data", (d) => { t.stderr = (t.stderr + d).slice(-20000); });
    const ready = new Promise((resolve, reject) => {
      t.onReady = resolve;
      t.child.on("exit", (code) => {
        const e = new Error("the tablet exited (" + code + "): " + t.stderr.trim().slice(-1500));
        reject(e);
        for (const w of t.waiting.values()) w.reject(e);
      });
    });
    readline.createInterface({ input: t.child.stdout }).on("line", (line) => {
      let m;
      try { m = JSON.parse(line); } catch (e) { console.log("    [tablet] " + line); return; }
      if (m.event === "ready") { t.onReady(); return; }
      if (m.event) { t.events.push(m); return; }
      const w = t.waiting.get(m.id);
      if (!w) return;
      t.waiting.delete(m.id);
      if (m.ok) w.resolve(m);
      else w.reject(new Error(`tablet ${w.cmd} failed: ${m.error}\n${m.trace || ""}`));
    });
    await Promise.race([ready, sleep(30000).then(() => { throw new Error("the tablet did not start within 30 s: " + t.stderr); })]);
    return t;
  }

  send(cmd, args = {}, timeout = 60000) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.waiting.delete(id); reject(new Error(`tablet ${cmd}: no answer within ${timeout} ms`)); }, timeout);
      this.waiting.set(id, {
        cmd,
        resolve: (v) => { clearTimeout(timer); resolve(v); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this.child.stdin.write(JSON.stringify({ id, cmd, ...args }) + "\n");
    });
  }

  mark() { return this.events.length; }

  // The first event since `since` (an index from mark()) of the session matching `pred`.
  async waitEvent(what, pred, since, timeout = 20000) {
    return waitFor(() => this.events.slice(since).find((e) => e.session === this.session && pred(e)), "the tablet's " + what, timeout);
  }

  eventsSince(since) { return this.events.slice(since).filter((e) => e.session === this.session); }

  async open(args = {}) {
    const s = await this.send("open", args);
    this.session = s.session_id;
    return s;
  }

  async slide() { return (await this.send("status")).slide; }
}

// ------------------------------------------------------------------ attendees

let browser;
const contexts = new Set();
const pageErrors = [];

// A doctor: a page in a browser context of her own (no shared cookies or storage).
async function attendee(name, url, context) {
  if (!context) {
    context = await browser.createBrowserContext();
    contexts.add(context);
  }
  const page = await context.newPage();
  page.doctor = name;
  await page.setViewport({ width: 1100, height: 1000 });
  page.on("pageerror", (e) => pageErrors.push(`[${name}] ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) console.log(`    [${name} console] ${m.text()}`);
  });
  // A resource of the page or its slide that failed (the favicon aside; the join page itself
  // answers 404 / 410 where a scenario expects it, checked there).
  page.on("response", (r) => {
    const req = r.request();
    if (r.status() < 400 || new URL(r.url()).pathname === "/favicon.ico") return;
    if (req.resourceType() === "document" && req.frame() === page.mainFrame()) return;
    pageErrors.push(`[${name}] ${r.status()} ${req.method()} ${r.url()}`);
  });
  if (url) page.lastResponse = await page.goto(url, { waitUntil: "load" });
  return page;
}

const body = (page) => page.evaluate(() => ({ ...document.body.dataset }));

// Waits until `page` shows `slide`: body[data-slide], the latest position rendered
// (data-rendered == data-seq), the page live, and its iframe loaded that slide's URL.
async function shows(page, slide, link, what) {
  const want = world.hub.url + link + "/a/" + entry(slide);
  await waitFor(async () => {
    const b = await body(page);
    if (b.slide !== slide || b.rendered !== b.seq || b.state !== "live") return false;
    const frame = await (await page.$("#slide")).contentFrame();
    if (!frame || frame.url() !== want) return false;
    return (await frame.evaluate(() => document.readyState)) === "complete";
  }, `${page.doctor} to show ${slide}`);
  check(true, `${page.doctor} shows ${slide}${what ? " (" + what + ")" : ""}`);
}

async function showAll(pages, slide, link, what) {
  for (const p of pages) await shows(p, slide, link, what);
}

async function slideFrame(page) { return (await page.$("#slide")).contentFrame(); }

async function waitState(page, state) {
  await waitFor(async () => (await body(page)).state === state, `${page.doctor}'s data-state ${state}`);
}

// ------------------------------------------------------------------ the world

const world = {};

// The hub with the deck published to a territory, a tablet provisioned there, an operator; the
// tablet syncs the deck (and consent) from it, starts a remote call and opens a session whose
// presenter socket goes through the proxy.
async function setUp() {
  const hub = world.hub = await Hub.start();
  console.log("    hub: " + hub.url);
  const publisher = hub.cli("publisher", "add", "--name", "content-team").token;
  const published = cliJson("publish", CARDIOZEN_ZIP, "--hub", hub.url, "--token", publisher, "--territory", TERRITORY, "--json");
  check(published.bundle_id === CZ, "the signed Cardiozen deck published to " + TERRITORY, published);
  const dev = hub.cli("device", "add", "--rep", "rep-remote-1", "--territory", TERRITORY);
  world.deviceId = dev.device_id;
  world.operator = hub.cli("operator", "add", "--name", "remote-test").token;
  hub.cli("consent", "set", HCP_OFF, "off");

  world.proxy = await new Proxy(hub.port).listen();
  const tablet = world.tablet = await Tablet.start(["--data", path.join(tmpDir("edetail-remote-tablet-"), "device"), "--hub", hub.url,
    "--device-id", dev.device_id, "--token", dev.token, "--publisher-key", PUBLISHER_KEY]);
  const sync = await tablet.send("sync");
  check(sync.bundles_activated.includes(CZ + "@1"), "the tablet synced the deck from the hub", sync);
  check((await tablet.send("consent", { hcp: HCP })).level === "full", "no consent record for the first HCP: full");
  check((await tablet.send("consent", { hcp: HCP_OFF })).level === "off", "the second HCP's consent off reached the tablet");
  const call = await tablet.send("start", { hcp: HCP });
  world.call = call.call_id;
  check(call.slide === mainSlides[0], "a remote call started on the deck's first slide", call);
  const s = await tablet.open({ minutes: 30, via: world.proxy.url });
  world.link = s.join_path;
  world.links = [s.join_path];
  world.session = s.session_id;
  check(/^\/r\/[0-9a-f]{64}$/.test(s.join_path) && s.recorded === true, "a session opened: join link, recorded (full consent)", s);
  await tablet.waitEvent("connected", (e) => e.event === "connected", 0);
  check(true, "the presenter connected (through the proxy)");
}

// ------------------------------------------------------------------ scenarios

// 1. Two doctors follow the rep through three moves, the slide's saved state and the pointer.
async function follow() {
  const { tablet, hub } = world;
  const url = hub.url + world.link;
  const raw = await rawGet(url);
  check(raw.status === 200 && !raw.body.includes(HCP) && !raw.body.includes(world.deviceId), "the join page: 200, no HCP id or device id in it");
  const since = tablet.mark();
  const a = world.a = await attendee("doctor A", url);
  const b = world.b = await attendee("doctor B", url);
  await showAll([a, b], mainSlides[0], world.link, "late joiners land on the current slide");
  const joined = await waitFor(() => {
    const j = tablet.eventsSince(since).filter((e) => e.event === "attendee_joined");
    return j.length >= 2 && j;
  }, "two attendee_joined on the tablet");
  check(new Set(joined.map((e) => e.attendee)).size === 2 && joined.every((e) => !e.waiting), "the tablet saw two distinct attendees join, admitted", joined);
  for (const p of [a, b]) {
    const d = await body(p);
    check(d.recorded === "true" && d.control === "rep", `${p.doctor}: recorded, the rep has control`, d);
    check(await p.$eval("#controls", (c) => c.hidden), `${p.doctor}: no controls while the rep has control`);
  }
  const frame = await slideFrame(a);
  check(await frame.evaluate(() => !!(window.edetail && window.edetail.follower)), "the slide runs the follower bridge (records nothing)");

  let r = await tablet.send("next");
  check(r.moved && r.slide === mainSlides[1], "tablet: next", r);
  await showAll([a, b], mainSlides[1], world.link, "after next");
  r = await tablet.send("next");
  await showAll([a, b], mainSlides[2], world.link, "after next");
  r = await tablet.send("goto", { slide: "dosing" });
  check(r.slide === "dosing", "tablet: goto dosing", r);
  await showAll([a, b], "dosing", world.link, "after goto");

  // dosing restores its eGFR band with CZ.load("dosing-band") on load: the rep's save shows.
  for (const p of [a, b]) {
    const pressed = await waitFor(async () => (await slideFrame(p)).evaluate(() =>
      document.querySelector('button[data-band="ge60"][aria-checked="true"]') && document.querySelector("#r-start").textContent), `${p.doctor}'s dosing default`);
    check(pressed === "10 mg", `${p.doctor}: dosing shows the default band (eGFR >=60, 10 mg)`);
  }
  await tablet.send("state", { key: "dosing-band", value: "30-44" });
  for (const p of [a, b]) {
    const shown = await waitFor(async () => (await slideFrame(p)).evaluate(() => {
      const on = document.querySelector('button[aria-checked="true"]');
      const start = document.querySelector("#r-start").textContent;
      return on && on.getAttribute("data-band") === "30-44" && start === "5 mg" && { band: on.getAttribute("data-band"), start };
    }), `${p.doctor}'s dosing to show the saved band`);
    check(shown, `${p.doctor}: the rep's saved band 30-44 shows (starting dose 5 mg)`, shown);
    await shows(p, "dosing", world.link, "still, after the state reload");
  }

  await tablet.send("pointer", { x: 0.3, y: 0.6 });
  for (const p of [a, b]) {
    await waitFor(async () => (await body(p)).pointer === "0.300,0.600", `${p.doctor}'s pointer`);
    const pt = await p.$eval("#pointer", (e) => ({ hidden: e.hidden, left: e.style.left, top: e.style.top }));
    check(!pt.hidden && pt.left === "30%" && pt.top === "60%", `${p.doctor}: the pointer shows at 30% / 60%`, pt);
  }
}

// 2. Control handed to the doctors: their navigation and taps performed and recorded by the
// tablet (once each), then taken back; the hub gets the events by sync.
async function control() {
  const { tablet, a, b } = world;
  const before = (await tablet.send("events")).events;
  await tablet.send("control", { to: "hcp" });
  for (const p of [a, b]) {
    await waitFor(async () => (await body(p)).control === "hcp" && !(await p.$eval("#controls", (c) => c.hidden)), `${p.doctor}'s controls`);
    check(true, `${p.doctor}: the controls show (she has control)`);
  }
  fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
  await a.screenshot({ path: SCREENSHOT });
  console.log("    screenshot: " + SCREENSHOT);

  let since = tablet.mark();
  await a.click("#next");
  const n1 = await tablet.waitEvent("navigated", (e) => e.event === "navigated", since);
  check(n1.slide === after("dosing"), "doctor A's next: the tablet performed it", n1);
  check((await tablet.slide()) === n1.slide, "the tablet's call is on " + n1.slide);
  await showAll([a, b], n1.slide, world.link, "after doctor A's next");

  since = tablet.mark();
  await b.select("#picker", "safety-ae");
  const n2 = await tablet.waitEvent("navigated", (e) => e.event === "navigated", since);
  check(n2.slide === "safety-ae", "doctor B picked safety-ae: the tablet performed it", n2);
  await showAll([a, b], "safety-ae", world.link, "after doctor B's pick");

  since = tablet.mark();
  const box = await (await a.$("#overlay")).boundingBox();
  await a.mouse.click(box.x + box.width * 0.25, box.y + box.height * 0.75);
  const tap = await tablet.waitEvent("tapped", (e) => e.event === "tapped", since);
  check(Math.abs(tap.x - 0.25) < 0.02 && Math.abs(tap.y - 0.75) < 0.02, "doctor A's tap on the slide: the tablet reports it at (0.25, 0.75)", tap);

  await tablet.send("control", { to: "rep" });
  for (const p of [a, b]) {
    await waitFor(async () => (await body(p)).control === "rep" && (await p.$eval("#controls", (c) => c.hidden)), `${p.doctor}'s controls hidden`);
    check(true, `${p.doctor}: the controls are hidden again`);
  }
  since = tablet.mark();
  // The button is hidden: a doctor who clicks it anyway (script) moves nothing.
  await a.evaluate(() => document.getElementById("next").click());
  await b.evaluate(() => { const p = document.getElementById("picker"); p.value = "summary"; p.dispatchEvent(new Event("change")); });
  await sleep(1500); // the one settle: nothing must happen
  const nav = tablet.eventsSince(since).filter((e) => e.event === "navigated");
  check(nav.length === 0, "with control back at the rep, the doctors' next and pick do nothing on the tablet", nav);
  check((await tablet.slide()) === "safety-ae", "the tablet's call stays on safety-ae");
  for (const p of [a, b]) check((await body(p)).slide === "safety-ae", `${p.doctor} still shows safety-ae`);

  const evs = (await tablet.send("events")).events;
  const fresh = evs.filter((e) => !before.some((x) => x.uuid === e.uuid));
  const enters = fresh.filter((e) => e.type === "slide_enter");
  check(JSON.stringify(enters.map((e) => [e.payload.slide, e.payload.source, e.payload.hcp_led])) ===
    JSON.stringify([[n1.slide, "remote", true], ["safety-ae", "remote", true]]),
    "the outbox: one slide_enter per doctor navigation, source remote, hcp_led", enters.map((e) => e.payload));
  const taps = fresh.filter((e) => e.type === "custom" && e.payload.event === "remote_tap");
  check(taps.length === 1 && Math.abs(taps[0].payload.data.x - 0.25) < 0.02 && taps[0].payload.data.hcp_led === true && taps[0].payload.slide === "safety-ae",
    "the outbox: one custom remote_tap on safety-ae", taps.map((e) => e.payload));
  const repEnters = evs.filter((e) => e.type === "slide_enter" && !e.payload.hcp_led).map((e) => e.payload.slide);
  check(JSON.stringify(repEnters) === JSON.stringify([mainSlides[0], mainSlides[1], mainSlides[2], "dosing"]), "the rep's own moves recorded as not HCP-led", repEnters);
  const started = evs.find((e) => e.type === "call_started");
  check(started && started.payload.channel === "remote", "the call started on channel remote", started && started.payload);

  const sync = await tablet.send("sync");
  check(sync.events_uploaded >= evs.length, "the tablet synced its outbox", sync);
  const mine = [...enters, ...taps].map((e) => e.uuid);
  const rows = sqlite(world.hub.db, `SELECT uuid, type, payload FROM events WHERE call_id = ? AND uuid IN (${mine.map(() => "?").join(",")})`, [world.call, ...mine]).rows;
  const onHub = rows.map(([uuid, type, payload]) => ({ uuid, type, payload: JSON.parse(payload) }));
  check(onHub.length === mine.length && onHub.every((e) => (e.type === "slide_enter" && e.payload.source === "remote" && e.payload.hcp_led === true) ||
    (e.type === "custom" && e.payload.event === "remote_tap")), "the hub has them: the doctors' slide_enter (remote, hcp_led) and remote_tap, once each", onHub);
  const all = sqlite(world.hub.db, "SELECT COUNT(*), COUNT(DISTINCT uuid) FROM events WHERE call_id = ?", [world.call]).rows[0];
  check(all[0] === evs.length && all[1] === evs.length, "the hub holds the call's events exactly once", { hub: all, device: evs.length });
  const stats = world.hub.cli("stats").devices.find((d) => d.device_id === world.deviceId);
  check(stats && stats.events_received >= evs.length && stats.rejected === 0, "hub stats: the device's events received, none rejected", stats);
}

// 3. A doctor's page reconnects: away (another page in her tab) while the rep moves, back on
// the link: the current slide, the same attendee id (sessionStorage).
async function attendeeReconnect() {
  const { tablet, a, b } = world;
  const key = "edetail-remote:" + world.link.split("/").pop();
  const idBefore = await b.evaluate((k) => sessionStorage.getItem(k), key);
  check(/^[0-9a-f]{32}$/.test(idBefore || ""), "doctor B's attendee id is in sessionStorage", idBefore);
  let since = tablet.mark();
  await b.goto("about:blank");
  const left = await tablet.waitEvent("attendee_left", (e) => e.event === "attendee_left", since);
  check(left.attendee === idBefore, "the tablet saw doctor B leave", left);
  const r = await tablet.send("next");
  await shows(a, r.slide, world.link, "while doctor B is away");
  since = tablet.mark();
  b.lastResponse = await b.goto(world.hub.url + world.link, { waitUntil: "load" });
  await shows(b, r.slide, world.link, "back: the slide the rep moved to meanwhile");
  check((await b.evaluate((k) => sessionStorage.getItem(k), key)) === idBefore, "doctor B kept her attendee id");
  const back = await tablet.waitEvent("attendee_joined", (e) => e.event === "attendee_joined", since);
  check(back.attendee === idBefore && !back.waiting, "the tablet saw the same attendee join again", back);

  // A reload of the page: the same again.
  await b.reload({ waitUntil: "load" });
  await shows(b, r.slide, world.link, "after a reload");
  check((await b.evaluate((k) => sessionStorage.getItem(k), key)) === idBefore, "doctor B kept her attendee id over the reload");
  const next = await tablet.send("next");
  await showAll([a, b], next.slide, world.link, "both follow the next move");
}

// 4. The presenter's connection is cut (the proxy drops it and refuses new ones): the doctors
// see the presenter reconnecting; restored, the tablet reconnects by itself (backoff) and the
// doctors follow, including the move made while it was away.
async function presenterReconnect() {
  const { tablet, a, b, proxy } = world;
  let since = tablet.mark();
  proxy.cut();
  for (const p of [a, b]) {
    await waitState(p, "presenter-reconnecting");
    check(true, `${p.doctor}: "the presenter reconnects" (data-state presenter-reconnecting)`);
  }
  const lost = await tablet.waitEvent("disconnected", (e) => e.event === "disconnected", since);
  check(lost.retry_in_ms >= 0, "the tablet reports the connection lost, retrying with backoff", lost);
  const moved = await tablet.send("next"); // the call goes on offline
  since = tablet.mark();
  proxy.restore();
  await tablet.waitEvent("connected (again)", (e) => e.event === "connected", since, 45000);
  check(true, "the presenter reconnected by itself");
  await showAll([a, b], moved.slide, world.link, "the move made while the presenter was away");
  const next = await tablet.send("next");
  await showAll([a, b], next.slide, world.link, "the next move after the reconnect");
}

// 6. A wrong token is a 404 page; a revoked link (relink) ends the doctors on it, then 404s,
// and the new link works.
async function links() {
  const { tablet, hub, a, b } = world;
  const wrong = await attendee("doctor C", null);
  world.c = wrong;
  const res = await wrong.goto(hub.url + "/r/" + crypto.randomBytes(32).toString("hex"), { waitUntil: "load" });
  check(res.status() === 404, "a random token: 404", res.status());
  check((await body(wrong)).state === "ended" && (await wrong.$eval("h1", (h) => h.textContent)) === "This link is not valid.", "the page says the link is not valid (data-state ended)");

  const old = world.link;
  const current = await tablet.slide();
  const relinked = await tablet.send("relink");
  check(/^\/r\/[0-9a-f]{64}$/.test(relinked.join_path) && relinked.join_path !== old, "the tablet replaced the link", relinked);
  for (const p of [a, b]) {
    await waitState(p, "ended");
    check(await p.$eval("#slide", (f) => f.hidden), `${p.doctor} on the old link: the meeting ended for her (data-state ended)`);
  }
  const again = await a.reload({ waitUntil: "load" });
  check(again.status() === 404 && (await body(a)).state === "ended", "the old link now answers 404", again.status());
  world.link = relinked.join_path;
  world.links.push(relinked.join_path);
  const back = await b.goto(hub.url + world.link, { waitUntil: "load" });
  check(back.status() === 200, "the new link: 200", back.status());
  await shows(b, current, world.link, "through the new link");
  const fresh = await wrong.goto(hub.url + world.link, { waitUntil: "load" });
  check(fresh.status() === 200, "another doctor joins through the new link", fresh.status());
  await shows(wrong, current, world.link, "through the new link");
}

// 5. The session's time is up (its expiry set in the past in the hub's database): the join
// page answers "this meeting has ended", 410.
async function expiry() {
  const { hub, b } = world;
  const past = new Date(Date.now() - 5000).toISOString();
  const upd = sqlite(hub.db, "UPDATE remote_sessions SET expires_at = ? WHERE id = ?", [past, world.session]);
  check(upd.changed === 1, "the session's expiry set in the past in the hub's database", upd);
  const res = await b.reload({ waitUntil: "load" });
  check(res.status() === 410, "reloading the join page: 410", res.status());
  check((await body(b)).state === "ended" && (await b.$eval("h1", (h) => h.textContent)) === "This meeting has ended.", "the page says the meeting has ended (data-state ended)");
  const asset = await rawGet(hub.url + world.link + "/a/" + entry("intro"));
  check(asset.status === 410, "its slides are gone too (410)", asset.status);
  await world.tablet.send("end");
  await world.tablet.send("end_call");
  check(true, "the tablet ended the session and the call");
}

// 7. Consent off: the page says nothing is recorded; the doctor's navigation is performed on
// the tablet and nothing of it reaches the outbox.
async function consentOff() {
  const { tablet, hub } = world;
  const call = await tablet.send("start", { hcp: HCP_OFF });
  const s = await tablet.open({ minutes: 30 });
  world.links.push(s.join_path);
  check(s.recorded === false, "the session is not recorded (consent off)", s);
  await tablet.waitEvent("connected", (e) => e.event === "connected", 0);
  const d = await attendee("doctor D", hub.url + s.join_path);
  await shows(d, call.slide, s.join_path, "the call's first slide");
  check((await body(d)).recorded === "false", "data-recorded=false");
  const privacy = await d.$eval("#privacy", (p) => p.textContent);
  check(privacy.includes("Nothing of this meeting is recorded"), "#privacy says nothing is recorded", privacy);
  const before = (await tablet.send("events")).events;
  await tablet.send("control", { to: "hcp" });
  await waitFor(async () => !(await d.$eval("#controls", (c) => c.hidden)), "doctor D's controls");
  const since = tablet.mark();
  await d.click("#next");
  const nav = await tablet.waitEvent("navigated", (e) => e.event === "navigated", since);
  check(nav.slide === after(call.slide), "her next: the tablet performed it", nav);
  check((await tablet.slide()) === nav.slide, "the tablet's call moved to " + nav.slide);
  await shows(d, nav.slide, s.join_path, "after her next");
  const evs = (await tablet.send("events")).events;
  check(evs.length === before.length && before.length === 0, "the outbox has nothing of the call, before or after her navigation", { before: before.length, after: evs.length });
  await tablet.send("end");
  await waitState(d, "ended");
  check(true, "ended by the rep: doctor D's page says so");
  await tablet.send("end_call");
}

// The hub's analytics see the remote call: after a sync and an analysis, the dashboard's
// channels page (operator token) lists channel remote with one call (consent off: none). And
// the hub's log (its whole stderr) names sessions, never a join token or an HCP id.
async function dashboard() {
  const { tablet, hub } = world;
  await tablet.send("sync");
  hub.cli("analyze");
  const page = await rawGet(hub.url + "/dashboard/channels", { authorization: "Bearer " + world.operator });
  check(page.status === 200, "the dashboard's channels page (operator token): 200", page.status);
  const row = /<tr data-channel="remote" data-calls="(\d+)" data-views="(\d+)"/.exec(page.body);
  check(row && row[1] === "1" && Number(row[2]) > 0, "channel remote: one call with its slide views", row && row.slice(1));
  // Logs name session ids, never a join link's token or an HCP (ADR 0023).
  const log = hub.stderr;
  check(log.includes(world.session), "the hub's log names the session");
  const leaks = [...world.links.map((l) => l.split("/").pop()), HCP, HCP_OFF].filter((x) => log.includes(x));
  check(leaks.length === 0, "the hub's log holds no join token and no HCP id", leaks.map((x) => x.slice(0, 12)));
}

// ------------------------------------------------------------------ runner

const scenarios = [
  ["set-up: hub, deck published, tablet synced, remote call and session", setUp],
  ["1. two doctors follow three moves, the slide's saved state and the pointer", follow],
  ["2. control handed over: doctors navigate and tap, recorded once, synced; taken back", control],
  ["3. a doctor reconnects: the current slide, the same attendee id", attendeeReconnect],
  ["4. the presenter's connection cut and restored: doctors wait, then follow", presenterReconnect],
  ["6. a wrong token 404s; a revoked link ends its doctors, 404s, the new one works", links],
  ["5. an expired session: the join page says the meeting has ended (410)", expiry],
  ["7. consent off: nothing recorded, the doctor's navigation still performed", consentOff],
  ["the hub: the dashboard shows the call under channel remote; no token or HCP id in its log", dashboard],
];

async function main() {
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: tmpDir("edetail-chromium-"),
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--mute-audio"],
  });
  let passed = 0, failed = 0;
  try {
    const only = process.env.SCENARIO_FILTER;
    for (const [name, fn] of scenarios) {
      if (only && fn !== setUp && !name.includes(only)) continue;
      console.log("# " + name);
      let timer;
      const t0 = Date.now();
      try {
        await Promise.race([
          fn(),
          new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${SCENARIO_TIMEOUT_MS} ms`)), SCENARIO_TIMEOUT_MS); }),
        ]);
        if (pageErrors.length) throw new CheckError("errors in the doctors' pages: " + pageErrors.splice(0).join(" | "));
        passed++;
        console.log(`ok - ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      } catch (e) {
        failed++;
        console.log("not ok - " + name + "\n    " + (e instanceof CheckError ? e.message : (e && e.stack) || e));
        if (world.hub && world.hub.stderr) console.log("    hub log (tail): " + world.hub.stderr.slice(-1500).replace(/\n/g, "\n      "));
        if (world.tablet && world.tablet.stderr) console.log("    tablet stderr (tail): " + world.tablet.stderr.slice(-1500).replace(/\n/g, "\n      "));
        if (fn === setUp) break; // nothing else can run
      } finally {
        clearTimeout(timer);
      }
    }
  } finally {
    for (const c of contexts) await c.close().catch(() => {});
    await browser.close().catch(() => {});
    if (world.tablet) await world.tablet.send("quit", {}, 5000).catch(() => {});
    if (world.proxy) await world.proxy.close().catch(() => {});
    killAll();
    for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
  }
  const total = scenarios.filter(([n, fn]) => !process.env.SCENARIO_FILTER || fn === setUp || n.includes(process.env.SCENARIO_FILTER)).length;
  failed += total - passed - failed; // scenarios that could not run after a failed set-up
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => { killAll(); process.exit(130); });
}
process.on("exit", killAll);

main().catch((e) => {
  killAll();
  console.error(e);
  console.log("0 passed, 1 failed");
  process.exit(1);
});
