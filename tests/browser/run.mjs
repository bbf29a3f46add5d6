// Browser tests of `edetail preview`: real headless Chromium driven by puppeteer-core.
// Run through scripts/browser-test, which installs what is missing and builds the bundles; it
// passes EDETAIL_BIN, CARDIOZEN_ZIP, VEEVA_ZIP, VEEVA_OWN_ZIP, AGNITIO_CLASSIC_ZIP,
// AGNITIO_ACCELERATOR_ZIP, OCE_ZIP and the SCREENSHOT* paths in the environment. Without one of
// the imported decks its scenarios FAIL (they never skip).
//
// Each scenario starts its own `edetail preview ZIP --data TMPDIR --port 0`, reads the URL from
// the first stdout line, drives the shell, stops the preview with SIGTERM and checks the events
// it recorded (`edetail device --data DIR events --json`). Every preview process is killed in
// the end, whatever happened. Last line: "N passed, M failed"; exit status 1 on any failure.

import { spawn, spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const requireTool = createRequire(path.join(root, ".tools/node/package.json"));
const puppeteer = requireTool("puppeteer-core");

const ED = process.env.EDETAIL_BIN || path.join(root, "target/debug/edetail");
const CARDIOZEN_ZIP = process.env.CARDIOZEN_ZIP;
const VEEVA_ZIP = process.env.VEEVA_ZIP;
const VEEVA_OWN_ZIP = process.env.VEEVA_OWN_ZIP;
const AGNITIO_CLASSIC_ZIP = process.env.AGNITIO_CLASSIC_ZIP;
const AGNITIO_ACCELERATOR_ZIP = process.env.AGNITIO_ACCELERATOR_ZIP;
const OCE_ZIP = process.env.OCE_ZIP;
const SCREENSHOT = process.env.SCREENSHOT || path.join(root, "target/browser/shell.png");
const SCREENSHOT_WIDE = process.env.SCREENSHOT_WIDE || path.join(root, "target/browser/veeva-2048.png");
const SCREENSHOT_AGNITIO = process.env.SCREENSHOT_AGNITIO || path.join(root, "target/browser/agnitio-classic.png");
const SCREENSHOT_ACCELERATOR = process.env.SCREENSHOT_ACCELERATOR || path.join(root, "target/browser/agnitio-accelerator.png");
const SCREENSHOT_OCE = process.env.SCREENSHOT_OCE || path.join(root, "target/browser/oce.png");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SCENARIO_TIMEOUT_MS = Number(process.env.SCENARIO_TIMEOUT_MS || 120000);
const CZ = "com.example.cardiozen.launch";

if (!CARDIOZEN_ZIP || !VEEVA_ZIP) {
  console.error("CARDIOZEN_ZIP and VEEVA_ZIP must name bundle zips (scripts/browser-test sets them)");
  process.exit(2);
}

// ------------------------------------------------------------------ small helpers

class CheckError extends Error {}
function check(cond, message, detail) {
  if (!cond) throw new CheckError(message + (detail === undefined ? "" : ": " + JSON.stringify(detail).slice(0, 600)));
  console.log("    ok: " + message);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const tmpDirs = [];
function tmpDir(prefix) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpDirs.push(d);
  return d;
}

// ------------------------------------------------------------------ the preview process

const running = new Set();

class Preview {
  static async start(zip, extraArgs = []) {
    const p = new Preview();
    p.data = path.join(tmpDir("edetail-preview-data-"), "data");
    p.child = spawn(ED, ["preview", zip, "--data", p.data, "--port", "0", ...extraArgs], { stdio: ["ignore", "pipe", "pipe"] });
    running.add(p);
    p.stdout = "";
    p.stderr = "";
    p.exited = new Promise((resolve) => p.child.on("exit", (code, signal) => { running.delete(p); resolve({ code, signal }); }));
    p.child.stderr.on("data", (d) => { p.stderr += d; });
    p.url = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("preview did not print its URL within 30 s; stderr: " + p.stderr)), 30000);
      p.child.stdout.on("data", (d) => {
        p.stdout += d;
        const first = p.stdout.split("\n")[0];
        const m = /^preview: (http:\/\/\S+)$/.exec(first);
        if (m && p.stdout.includes("\n")) { clearTimeout(timer); resolve(m[1]); }
      });
      p.child.on("exit", (code) => { clearTimeout(timer); reject(new Error("preview exited (" + code + ") before serving: " + p.stderr.trim())); });
    });
    const u = new URL(p.url);
    p.port = Number(u.port);
    return p;
  }

  // SIGTERM, then SIGKILL if it does not stop in 10 s. Resolves with the exit status.
  async stop() {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.exited;
    this.child.kill("SIGTERM");
    const t = setTimeout(() => this.child.kill("SIGKILL"), 10000);
    const r = await this.exited;
    clearTimeout(t);
    return r;
  }

  kill() {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
  }

  // Recorded events: the CLI when it has `device events`, the SQLite file otherwise.
  events() {
    const r = spawnSync(ED, ["device", "--data", this.data, "events", "--json"], { encoding: "utf8" });
    if (r.status === 0) {
      try {
        return JSON.parse(r.stdout).events;
      } catch (e) { /* fall through */ }
    }
    console.log("    (edetail device events unavailable, reading SQLite directly: " + (r.stderr || "").trim().slice(0, 200) + ")");
    const py = spawnSync("python3", ["-c", `
import json, sqlite3, sys
c = sqlite3.connect(sys.argv[1])
rows = c.execute("SELECT seq, uuid, call_id, type, payload FROM events ORDER BY seq").fetchall()
print(json.dumps({"events": [{"seq": s, "uuid": u, "call_id": ci, "type": t, "payload": json.loads(p)} for s, u, ci, t, p in rows]}))
`, path.join(this.data, "edetail.sqlite3")], { encoding: "utf8" });
    if (py.status !== 0) throw new Error("cannot read events: " + py.stderr);
    return JSON.parse(py.stdout).events;
  }
}

// A raw HTTP request: the path is sent exactly as given (no client-side normalization).
function rawRequest(port, method, rawPath, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method, path: rawPath, headers }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
    });
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

// ------------------------------------------------------------------ shell helpers

const contexts = new Set(); // closed after each scenario, so old shells stop polling stopped previews

async function openShell(browser, preview) {
  const context = await browser.createBrowserContext();
  contexts.add(context);
  const page = await context.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  page.on("pageerror", (e) => console.log("    [page error] " + e.message));
  page.on("console", (m) => { if (m.type() === "error") console.log("    [console] " + m.text()); });
  await page.goto(preview.url, { waitUntil: "load" });
  const ready = await page.evaluate(() => window.previewShell.ready);
  check(ready === true, "shell loaded its deck and state");
  return { page, context };
}

// Waits until the shell shows `slide` and the iframe has finished loading that slide's page.
async function waitSlide(page, slide, timeout = 15000) {
  await page.waitForFunction((slide) => {
    const shell = window.previewShell;
    if (!shell || !shell.deck || document.body.dataset.slide !== slide) return false;
    const s = shell.deck.slides.find((x) => x.id === slide);
    const f = document.getElementById("slide-frame");
    try {
      return f.contentWindow.location.pathname === s.url && f.contentDocument.readyState === "complete";
    } catch (e) {
      return false;
    }
  }, { timeout, polling: 50 }, slide);
  const frame = await slideFrame(page);
  // The slide's bridge said hello (edetail.ready settles after the hello reply).
  await frame.evaluate(() => (window.edetail && window.edetail.ready) || null);
  return frame;
}

async function slideFrame(page) {
  const handle = await page.$("#slide-frame");
  return handle.contentFrame();
}

// Waits until the slide's pending bridge calls are all answered.
async function settled(frame) {
  await frame.waitForFunction(() => window.edetail && window.edetail._pendingCount() === 0, { timeout: 10000, polling: 50 });
}

// A real mouse click on an element inside the slide. The shell scales the 1024x768 iframe
// with a CSS transform, which puppeteer's ElementHandle.click does not account for, so the
// point is computed here: the element's centre in slide pixels, scaled into page pixels.
async function clickIn(page, frame, selector) {
  await frame.waitForSelector(selector, { visible: true, timeout: 10000 });
  const r = await frame.$eval(selector, (el) => {
    el.scrollIntoView({ block: "nearest" });
    const b = el.getBoundingClientRect();
    return { x: b.left + b.width / 2, y: b.top + b.height / 2 };
  });
  const f = await page.$eval("#slide-frame", (el) => {
    const b = el.getBoundingClientRect();
    return { x: b.left, y: b.top, scale: b.width / el.offsetWidth };
  });
  await page.mouse.click(f.x + r.x * f.scale, f.y + r.y * f.scale);
}

async function overviewJump(page, slide) {
  await page.click("#overview-toggle");
  await page.waitForSelector("#overview:not([hidden])");
  await page.click(`.thumb[data-slide="${slide}"]`);
  return waitSlide(page, slide);
}

async function pressKey(page, key, frame) {
  // The key goes wherever focus is; both the shell and the slide forward arrows.
  if (frame) await frame.focus("body").catch(() => {});
  await page.keyboard.press(key);
}

// ------------------------------------------------------------------ scenarios

async function cardiozen(browser) {
  const preview = await Preview.start(CARDIOZEN_ZIP);
  try {
    const { page } = await openShell(browser, preview);
    const badge = await page.$eval("#signature-badge", (b) => ({ text: b.textContent, hidden: b.hidden }));
    check(badge.text === "UNSIGNED — preview only" && !badge.hidden, "UNSIGNED badge shown", badge);
    check((await page.$eval("#deck-title", (e) => e.textContent)) === "Cardiozen launch", "deck title in the top bar");
    let frame = await waitSlide(page, "intro");

    await pressKey(page, "ArrowRight");
    frame = await waitSlide(page, "burden");
    await pressKey(page, "ArrowRight", frame);
    frame = await waitSlide(page, "moa-overview");
    // The main presentation's length, as the deck's source declares it.
    const source = JSON.parse(fs.readFileSync(path.join(root, "presentations/cardiozen-launch/edetail.json"), "utf8"));
    const mainLen = source.presentations.find((p) => p.id === "main").slides.length;
    check((await page.$eval("#slide-pos", (e) => e.textContent)) === `3 / ${mainLen}`, "arrow right twice shows the 3rd slide");

    for (const s of ["moa-diagram", "moa-video", "efficacy-primary"]) {
      await pressKey(page, "ArrowRight", frame);
      frame = await waitSlide(page, s);
    }
    // Efficacy: endpoint toggle (tracked) and a reaction.
    await clickIn(page, frame, 'button[data-endpoint="hfh"]');
    await frame.waitForFunction(() => document.querySelector("#hr-main").textContent === "HR 0.75");
    await clickIn(page, frame, '.reaction[data-value="positive"]');
    await settled(frame);
    check(await frame.$eval('.reaction[data-value="positive"]', (b) => b.getAttribute("aria-pressed") === "true"), "reaction button pressed");
    await sleep(1800); // let the chart animation finish for the screenshot
    fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT });
    console.log("    screenshot: " + SCREENSHOT);

    // Visibility: the shell reports background/foreground (dwell pauses).
    await page.evaluate(async () => {
      const set = (v) => {
        Object.defineProperty(document, "visibilityState", { configurable: true, get: () => v });
        document.dispatchEvent(new Event("visibilitychange"));
      };
      set("hidden");
      await new Promise((r) => setTimeout(r, 300));
      set("visible");
      await new Promise((r) => setTimeout(r, 300));
    });

    // A slide-initiated goTo: the iframe navigates itself and the shell follows.
    await clickIn(page, frame, 'button[data-goto="pi-1"]');
    frame = await waitSlide(page, "pi-1");
    check((await page.$eval("#slide-pos", (e) => e.textContent)).includes("Prescribing information"), "shell shows the hidden PI deck", await page.$eval("#slide-pos", (e) => e.textContent));

    // Survey via the overview.
    frame = await overviewJump(page, "survey");
    await clickIn(page, frame, 'input[name="q1"][value="25-50"] + span');
    await clickIn(page, frame, 'input[name="q2"][value="hf_hospitalisation"] + span');
    await clickIn(page, frame, 'input[name="q2"][value="once_daily"] + span');
    await clickIn(page, frame, 'input[name="q3"][value="likely"] + span');
    await frame.waitForFunction(() => !document.querySelector("#survey-submit").disabled);
    await clickIn(page, frame, "#survey-submit");
    await frame.waitForFunction(() => document.querySelector("#survey").classList.contains("is-submitted"));
    await frame.waitForFunction(() => window.edetail._pendingCount() === 0, { timeout: 10000 });
    await sleep(300); // survey_submitted is tracked after the answers resolve
    await settled(frame);

    // swipe_next is disabled on the survey: the arrow key does nothing, the Next button works.
    await pressKey(page, "ArrowRight", frame);
    await sleep(500);
    check((await page.evaluate(() => document.body.dataset.slide)) === "survey", "arrow key obeys the slide's disabled swipe_next");
    check((await page.$eval("#toast", (t) => t.textContent)).includes("disables swipe next"), "the shell says why");
    await page.click("#next");
    frame = await waitSlide(page, "summary");

    // Summary: request follow-up on efficacy (preselected) and dosing.
    await clickIn(page, frame, '.chip[data-topic="dosing"]');
    await clickIn(page, frame, "#request-follow-up");
    await frame.waitForFunction(() => document.querySelector("#fu-status").textContent.includes("follow-up requested"));
    await settled(frame);

    // Overview -> dosing, use the calculator.
    frame = await overviewJump(page, "dosing");
    await clickIn(page, frame, 'button[data-band="30-44"]');
    await frame.waitForFunction(() => document.querySelector("#r-start").textContent === "5 mg");
    await settled(frame);
    await sleep(200);

    const stopped = await preview.stop();
    check(stopped.code === 0, "preview exits 0 on SIGTERM", stopped);

    const ev = preview.events();
    const types = ev.map((e) => e.type);
    const of = (t) => ev.filter((e) => e.type === t);
    const started = of("call_started")[0];
    check(started && started.payload.channel === "preview" && started.payload.hcp_id === "preview-hcp", "call_started on channel preview", started);
    const enters = of("slide_enter").map((e) => [e.payload.slide, e.payload.source]);
    const expected = [
      ["intro", "start"], ["burden", "swipe"], ["moa-overview", "swipe"], ["moa-diagram", "swipe"], ["moa-video", "swipe"],
      ["efficacy-primary", "swipe"], ["pi-1", "jump"], ["survey", "overview"], ["summary", "swipe"], ["dosing", "overview"],
    ];
    check(JSON.stringify(enters) === JSON.stringify(expected), "slide_enter for each visited slide with its source", enters);
    const custom = of("custom").map((e) => e.payload);
    check(custom.some((p) => p.event === "chart_endpoint_selected" && p.data.endpoint === "hfh" && p.slide === "efficacy-primary"), "chart toggle recorded as custom event", custom);
    check(custom.some((p) => p.event === "pi_opened" && p.data.from === "efficacy-primary"), "PI link tracked", custom);
    check(custom.some((p) => p.event === "dose_calculator" && p.data.start_dose === "5 mg" && p.slide === "dosing"), "dose calculator tracked", custom);
    check(custom.some((p) => p.event === "survey_submitted"), "survey submission tracked");
    const reaction = of("reaction")[0];
    check(reaction && reaction.payload.value === "positive" && reaction.payload.slide === "efficacy-primary", "reaction recorded", reaction);
    // The three answers are sent concurrently: compare them in question order.
    const answers = Object.fromEntries(of("survey_answer").map((e) => [e.payload.question, e.payload.answers]).sort((a, b) => a[0].localeCompare(b[0])));
    check(JSON.stringify(answers) === JSON.stringify({ cz_q1_symptomatic: ["25-50"], cz_q2_factors: ["hf_hospitalisation", "once_daily"], cz_q3_intent: ["likely"] }),
      "survey answers recorded", answers);
    const fu = of("follow_up_request").map((e) => e.payload.topic).sort();
    check(JSON.stringify(fu) === JSON.stringify(["dosing", "efficacy"]), "follow-up requests recorded", fu);
    const effExit = of("slide_exit").find((e) => e.payload.slide === "efficacy-primary");
    check(effExit && effExit.payload.dwell_ms > 500, "slide_exit of the efficacy slide has its dwell", effExit);
    check(types.includes("app_background") && types.includes("app_foreground"), "visibility changes recorded");
    check(types[types.length - 1] === "call_ended" && types[types.length - 2] === "slide_exit", "call_ended after shutdown, last view closed", types.slice(-3));
    check(ev.every((e) => e.call_id === started.call_id), "every event belongs to the preview call");
  } finally {
    preview.kill();
  }
}

async function veeva(browser) {
  const preview = await Preview.start(VEEVA_ZIP, ["--hcp", "HCP-QA-0042"]);
  try {
    const { page } = await openShell(browser, preview);
    let frame = await waitSlide(page, "cz-home-01");
    check(await frame.evaluate(() => !!window.edetailVeevaShim && typeof window.edetail === "object"), "runtime scripts injected into the Veeva slide");
    const account = await frame.evaluate(() => new Promise((resolve) => com.veeva.clm.getDataForCurrentObject("Account", "ID", resolve)));
    check(account.success === true && account.Account.ID === "HCP-QA-0042", "getDataForCurrentObject(Account, ID) gives the call's HCP id", account);

    await clickIn(page, frame, "a.cz-button.secondary"); // gotoSlide('CZ_Safety_01.zip', '')
    frame = await waitSlide(page, "cz-safety-01");
    const created = await frame.evaluate(() => new Promise((resolve) => {
      // The slide's own handler records the click; observe its result through a second record.
      document.getElementById("ask-question").click();
      com.veeva.clm.createRecord("Call_Clickstream_vod__c", { Track_Element_Id_vod__c: "probe", Answer_vod__c: "x" }, resolve);
    }));
    check(created.success === true && typeof created.Call_Clickstream_vod__c.ID === "string", "createRecord answers with a record id", created);
    await settled(frame);

    await clickIn(page, frame, "#goto-home"); // gotoSlide('CZ_Home_01.zip', '')
    frame = await waitSlide(page, "cz-home-01");

    const stopped = await preview.stop();
    check(stopped.code === 0, "preview exits 0 on SIGTERM", stopped);
    const ev = preview.events();
    const enters = ev.filter((e) => e.type === "slide_enter").map((e) => [e.payload.slide, e.payload.source]);
    check(JSON.stringify(enters) === JSON.stringify([["cz-home-01", "start"], ["cz-safety-01", "jump"], ["cz-home-01", "jump"]]), "gotoSlide navigations recorded as jumps", enters);
    const clicks = ev.filter((e) => e.type === "custom" && e.payload.event === "veeva_clickstream");
    const ask = clicks.find((e) => e.payload.data.Track_Element_Id_vod__c === "ask-question");
    check(ask && ask.payload.slide === "cz-safety-01" && ask.payload.data.Answer_vod__c === "yes", "the slide's createRecord click recorded as veeva_clickstream", clicks.map((e) => e.payload));
    check(ev.some((e) => e.type === "call_started" && e.payload.hcp_id === "HCP-QA-0042"), "call recorded for --hcp");
    check(ev[ev.length - 1].type === "call_ended", "call_ended after shutdown");
  } finally {
    preview.kill();
  }
}

async function hostile(browser) {
  const preview = await Preview.start(CARDIOZEN_ZIP);
  try {
    const { page } = await openShell(browser, preview);
    await waitSlide(page, "intro");
    const bad = await page.evaluate(async () => {
      const r = await fetch("/_edetail/bridge", { method: "POST", body: "{not json" });
      return { status: r.status, body: await r.json() };
    });
    check(bad.body.ok === false && bad.body.error.code === "malformed", "malformed bridge message gets ok:false / malformed", bad);

    for (const p of [
      `/${CZ}/../edetail.sqlite3`,
      `/${CZ}/%2e%2e/edetail.sqlite3`,
      `/${CZ}/%2E%2E/edetail.sqlite3`,
      `/${CZ}/%2e%2e%2fedetail.sqlite3`,
      `/${CZ}/slides/%2e%2e/%2e%2e/%2e%2e/edetail.sqlite3`,
      `/${CZ}/..%5cedetail.sqlite3`,
      `/_edetail/../edetail.sqlite3`,
      `/_edetail/%2e%2e/edetail.sqlite3`,
      `/edetail.sqlite3`,
      `/${CZ}//etc/passwd`,
    ]) {
      const r = await rawRequest(preview.port, "GET", p);
      check(r.status === 404 && !r.body.includes("SQLite format"), `GET ${p} is 404`, r.status);
    }

    const big = await page.evaluate(async () => {
      const body = JSON.stringify({ v: 1, id: 1, method: "track", params: { event: "x", data: { pad: "a".repeat(1024 * 1024) } } });
      const r = await fetch("/_edetail/bridge", { method: "POST", body });
      return { status: r.status, body: await r.text() };
    });
    check(big.status === 413, "a 1 MB bridge message is refused with 413", big.status);
    const foreign = await rawRequest(preview.port, "POST", "/_edetail/bridge", JSON.stringify({ v: 1, id: 1, method: "hello" }),
      { Origin: "http://evil.example", "Content-Type": "text/plain" });
    check(foreign.status === 403, "a cross-origin bridge POST is refused", foreign.status);

    // Still serving and recording afterwards.
    const hello = await page.evaluate(async () => {
      const r = await fetch("/_edetail/bridge", { method: "POST", body: JSON.stringify({ v: 1, id: 7, method: "hello" }) });
      return r.json();
    });
    check(hello.ok === true && hello.id === 7 && hello.result.call.channel === "preview", "the bridge still answers", hello);
    await pressKey(page, "ArrowRight");
    await waitSlide(page, "burden");
    check(true, "the shell still navigates");
    // A swipe (pointer drag right-to-left across the slide) goes to the next slide.
    const box = await page.$eval("#slide-frame", (el) => { const b = el.getBoundingClientRect(); return { x: b.left, y: b.top, w: b.width, h: b.height }; });
    await page.mouse.move(box.x + box.w * 0.75, box.y + box.h * 0.45);
    await page.mouse.down();
    for (let i = 1; i <= 8; i++) await page.mouse.move(box.x + box.w * (0.75 - i * 0.05), box.y + box.h * 0.46);
    await page.mouse.up();
    await waitSlide(page, "moa-overview");
    check(true, "a swipe moves to the next slide");

    const stopped = await preview.stop();
    check(stopped.code === 0, "preview exits 0 on SIGTERM", stopped);
    const ev = preview.events();
    check(!ev.some((e) => e.type === "custom" && e.payload.event === "x"), "the refused message recorded nothing");
    const swiped = ev.find((e) => e.type === "slide_enter" && e.payload.slide === "moa-overview");
    check(swiped && swiped.payload.source === "swipe", "the swipe is recorded as a swipe", swiped);
    check(ev[ev.length - 1].type === "call_ended", "call_ended after shutdown");
  } finally {
    preview.kill();
  }
}

// ------------------------------------------------------------------ the deck with its own Veeva library
//
// presentations/import-samples/veeva-own-library ships its own com.veeva.clm, which talks to the
// container in the `veeva:` language (in the preview's frame: window.parent.postMessage with
// numeric callback ids, relayed by the shell to /_edetail/containers.js). Every library call is
// pushed to the slide's window.__vendorCalls.

const OWN = { home: "ol-home-01", efficacy: "ol-efficacy-01", safety: "ol-safety-01" };

function requireOwnZip() {
  // Never a skip: a missing sample is a failure of the scenario.
  check(!!VEEVA_OWN_ZIP && fs.existsSync(VEEVA_OWN_ZIP), "VEEVA_OWN_ZIP names the imported own-library deck", VEEVA_OWN_ZIP || null);
}

// Forwards the slide's __vendorCalls (those made so far and every later one) to the shell
// page's __collectedCalls, so calls made just before a navigation are not lost with the page.
async function collectCalls(page, frame) {
  await page.evaluate(() => { window.__collectedCalls = window.__collectedCalls || []; });
  await frame.evaluate(() => {
    const sink = window.parent.__collectedCalls;
    const calls = (window.__vendorCalls = window.__vendorCalls || []);
    if (calls.__collected) return;
    Object.defineProperty(calls, "__collected", { value: true });
    calls.forEach((c) => sink.push(c));
    calls.push = function (...xs) {
      xs.forEach((x) => sink.push(x));
      return Array.prototype.push.apply(this, xs);
    };
  });
}

// The slide's DOM-ready clickstream call has been answered.
async function clickstreamAnswered(frame) {
  await frame.waitForFunction(() => (window.__vendorCalls || []).some((c) => c.api === "createRecord" && c.result),
    { timeout: 10000, polling: 50 }).catch(() => {
    throw new CheckError("the slide's DOM-ready createRecord got no answer within 10 s (is /_edetail/containers.js served and relaying?)");
  });
}

async function runtimeScriptsFirst(frame) {
  const srcs = await frame.evaluate(() => ({
    first: document.head.firstElementChild && document.head.firstElementChild.getAttribute("src"),
    scripts: [...document.scripts].map((s) => s.getAttribute("src") || "(inline)"),
  }));
  check(srcs.first === "/_edetail/edetail.js", "edetail.js is the first element of <head>", srcs);
  const own = srcs.scripts.indexOf("../shared/js/veeva-lib.js");
  const runtime = srcs.scripts.filter((s) => s.startsWith("/_edetail/"));
  check(own > 0 && srcs.scripts.slice(0, own).every((s) => s.startsWith("/_edetail/")) && runtime.includes("/_edetail/veeva-clm.js"),
    "the runtime scripts load before the deck's own library", srcs.scripts);
  return srcs.scripts;
}

// The 2048-px slide is laid out at 2048 and scaled so all of it, ISI included, is on the stage.
async function checkScaled(page, frame, label) {
  await page.waitForFunction(() => window.previewShell.layout.width === 2048, { timeout: 5000 }).catch(() => {});
  const layout = await page.evaluate(() => window.previewShell.layout);
  check(layout.width === 2048 && layout.height === 1536, label + ": slide laid out at its viewport width, 2048x1536", layout);
  const inner = await frame.evaluate(() => ({ w: window.innerWidth, h: window.innerHeight }));
  check(inner.w === 2048 && inner.h === 1536, label + ": the slide's window is 2048x1536", inner);
  const geo = await page.evaluate(() => {
    const r = (el) => { const b = el.getBoundingClientRect(); return { left: b.left, top: b.top, right: b.right, bottom: b.bottom, width: b.width, height: b.height }; };
    const f = document.getElementById("slide-frame");
    return { stage: r(document.getElementById("stage")), box: r(document.getElementById("frame-box")), frame: r(f), scale: f.getBoundingClientRect().width / f.offsetWidth };
  });
  const inside = (a, b, tol = 1) => a.left >= b.left - tol && a.top >= b.top - tol && a.right <= b.right + tol && a.bottom <= b.bottom + tol;
  check(inside(geo.frame, geo.stage) && inside(geo.frame, geo.box) && Math.abs(geo.frame.width - geo.box.width) < 2, label + ": the frame's bounding box fits the stage", geo);
  const isi = await frame.$eval("#isi", (el) => { const b = el.getBoundingClientRect(); return { left: b.left, top: b.top, right: b.right, bottom: b.bottom }; });
  check(isi.right > 2000 && isi.bottom > 1500, label + ": the ISI sits at the bottom right of the 2048-px layout", isi);
  const onPage = { left: geo.frame.left + isi.left * geo.scale, top: geo.frame.top + isi.top * geo.scale,
    right: geo.frame.left + isi.right * geo.scale, bottom: geo.frame.top + isi.bottom * geo.scale };
  check(inside(onPage, geo.stage) && inside(onPage, geo.box), label + ": the ISI box is inside the visible stage", { isi: onPage, stage: geo.stage, box: geo.box });
}

// Passes on today's tree: injection order, moved:false on the first slide, viewport scaling.
async function ownLibraryViewport(browser) {
  requireOwnZip();
  const preview = await Preview.start(VEEVA_OWN_ZIP);
  try {
    const { page } = await openShell(browser, preview);
    let frame = await waitSlide(page, OWN.home);
    await runtimeScriptsFirst(frame);

    // "prev" on the first slide: the shell stays (the core's side: edgeNavigation).
    const loads = await page.evaluate(() => window.previewShell.loads);
    await page.click("#prev");
    await sleep(700);
    check((await page.evaluate(() => window.previewShell.loads)) === loads && (await page.evaluate(() => document.body.dataset.slide)) === OWN.home,
      "the shell's prev on the first slide reloads nothing");
    check((await page.$eval("#toast", (t) => t.textContent)).includes("First slide"), "the shell says it is the first slide");

    frame = await overviewJump(page, OWN.efficacy);
    await checkScaled(page, frame, "1280x900 window");
    fs.mkdirSync(path.dirname(SCREENSHOT_WIDE), { recursive: true });
    await page.screenshot({ path: SCREENSHOT_WIDE });
    console.log("    screenshot: " + SCREENSHOT_WIDE);
    await page.setViewport({ width: 820, height: 640 });
    await sleep(300);
    await checkScaled(page, frame, "after a resize to 820x640");
    await page.setViewport({ width: 1280, height: 900 });

    // Back to a 1024 slide: the layout follows the slide.
    frame = await overviewJump(page, OWN.safety);
    await page.waitForFunction(() => window.previewShell.layout.width === 1024, { timeout: 5000 }).catch(() => {});
    check((await frame.evaluate(() => window.innerWidth)) === 1024, "a width=1024 slide is laid out at 1024");

    const stopped = await preview.stop();
    check(stopped.code === 0, "preview exits 0 on SIGTERM", stopped);
    const enters = preview.events().filter((e) => e.type === "slide_enter").map((e) => [e.payload.slide, e.payload.source]);
    check(enters.length >= 3 && JSON.stringify(enters.filter((e) => e[1] !== "swipe")) === JSON.stringify([[OWN.home, "start"], [OWN.efficacy, "overview"], [OWN.safety, "overview"]]),
      "the overview jumps recorded", enters);
  } finally {
    preview.kill();
  }
}

// ADR 0013 (6): next on the last slide and prev on the first do nothing, in the core (no
// events, `moved: false`), in edetail.js (no reload) and in the shell. Needs the core and
// edetail.js changes: fails, never skips, until they are there.
async function edgeNavigation(browser) {
  requireOwnZip();
  const preview = await Preview.start(VEEVA_OWN_ZIP);
  try {
    const { page } = await openShell(browser, preview);
    let frame = await waitSlide(page, OWN.home);
    const loads = () => page.evaluate(() => window.previewShell.loads);
    let before = await loads();
    await page.click("#prev");
    await sleep(600);
    check((await loads()) === before, "the shell's prev on the first slide reloads nothing");
    const r = await frame.evaluate(() => window.edetail.prev().then((x) => x, (e) => ({ error: e.code || String(e) })));
    check(r && r.moved === false && r.slide === OWN.home, "the core answers navigate prev on the first slide with moved: false", r);
    await sleep(600);
    check((await loads()) === before, "edetail.prev() on the first slide reloads nothing");

    frame = await overviewJump(page, OWN.safety);
    before = await loads();
    await pressKey(page, "ArrowRight", frame);
    await sleep(600);
    check((await loads()) === before && (await page.evaluate(() => document.body.dataset.slide)) === OWN.safety, "next (arrow key) on the last slide reloads nothing");
    const n = await frame.evaluate(() => window.edetail.next().then((x) => x, (e) => ({ error: e.code || String(e) })));
    check(n && n.moved === false && n.slide === OWN.safety, "the core answers navigate next on the last slide with moved: false", n);
    await sleep(600);
    check((await loads()) === before, "edetail.next() on the last slide reloads nothing");

    const stopped = await preview.stop();
    check(stopped.code === 0, "preview exits 0 on SIGTERM", stopped);
    const ev = preview.events();
    const enters = ev.filter((e) => e.type === "slide_enter").map((e) => [e.payload.slide, e.payload.source]);
    check(JSON.stringify(enters) === JSON.stringify([[OWN.home, "start"], [OWN.safety, "overview"]]), "next/prev at the ends recorded no slide change", enters);
    check(ev.filter((e) => e.type === "slide_exit").length === 2, "and no extra slide exit", ev.filter((e) => e.type === "slide_exit").map((e) => e.payload.slide));
  } finally {
    preview.kill();
  }
}

// Legacy Veeva decks talk to the app without the library: `<a href="veeva:...">` and
// `document.location = "veeva:" + encodeURIComponent(...)`. In a browser those navigations
// would fail; containers.js cancels them (Navigation API) and sends them to the core.
async function legacyLocation(browser) {
  requireOwnZip();
  const preview = await Preview.start(VEEVA_OWN_ZIP);
  try {
    const { page } = await openShell(browser, preview);
    await waitSlide(page, OWN.home);
    let frame = await overviewJump(page, OWN.safety);
    check(await frame.evaluate(() => window.edetailContainers && window.edetailContainers.navigations === true),
      "containers.js intercepts navigations here (Navigation API)");
    await clickIn(page, frame, "#legacy-track");
    const answer = await frame.waitForFunction(() => window.__legacyDone, { timeout: 8000 }).then((h) => h.jsonValue()).catch(() => null);
    check(answer && answer.success === true && typeof answer.objectId === "string", "document.location = veeva:saveObjectV2... is answered through its callback", answer);
    check((await page.evaluate(() => document.body.dataset.slide)) === OWN.safety, "and the slide stays (the navigation was cancelled)");
    await clickIn(page, frame, "#legacy-home");
    frame = await waitSlide(page, OWN.home);
    const stopped = await preview.stop();
    check(stopped.code === 0, "preview exits 0 on SIGTERM", stopped);
    const ev = preview.events();
    const tracked = ev.filter((e) => e.type === "custom" && e.payload.event === "veeva_clickstream" && e.payload.data.Track_Element_Id_vod__c === "legacy-isi");
    check(tracked.length === 1 && tracked[0].payload.data.Answer_vod__c === "read, (all)" && tracked[0].payload.slide === OWN.safety,
      "the legacy tracking request is one veeva_clickstream event on the safety slide, its value intact", tracked.map((e) => e.payload));
    const enters = ev.filter((e) => e.type === "slide_enter").map((e) => [e.payload.slide, e.payload.source]);
    check(JSON.stringify(enters.slice(-1)) === JSON.stringify([[OWN.home, "jump"]]), "the legacy link is a jump to the key message", enters);
  } finally {
    preview.kill();
  }
}

// Needs the core's veeva.request + unsupported_api and /_edetail/containers.js (ADR 0013):
// fails, never skips, until they are there.
async function ownLibraryCalls(browser) {
  requireOwnZip();
  const preview = await Preview.start(VEEVA_OWN_ZIP, ["--hcp", "HCP-QA-0077"]);
  try {
    const { page } = await openShell(browser, preview);
    let frame = await waitSlide(page, OWN.home);
    await collectCalls(page, frame);
    const scripts = await runtimeScriptsFirst(frame);
    check(scripts.includes("/_edetail/containers.js") && (await frame.evaluate(() => !!(window.edetailContainers && window.edetailContainers.veeva))),
      "the container emulation (/_edetail/containers.js) is injected", scripts);
    check(await frame.evaluate(() => typeof com.veeva.clm.getAddresses_Account === "function" && Array.isArray(window.__vendorCalls)),
      "the deck's own com.veeva.clm is in place");
    await clickstreamAnswered(frame);

    // An unsupported call: answered with Veeva's failure, recorded, listed by the shell.
    await clickIn(page, frame, "#addresses");
    await frame.waitForFunction(() => document.getElementById("status").textContent.startsWith("Addresses"), { timeout: 10000 }).catch(() => {
      throw new CheckError("getAddresses_Account got no answer within 10 s");
    });
    const status = await frame.$eval("#status", (e) => e.textContent);
    check(status.startsWith("Addresses unavailable"), "getAddresses_Account is answered as unsupported", status);
    await page.waitForFunction(() => {
      const p = document.getElementById("unsupported");
      return p && !p.hidden && /Address_vod__c|getAddresses_Account/.test(p.textContent);
    }, { timeout: 8000 }).catch(() => {});
    const panel = await page.$eval("#unsupported", (p) => ({ hidden: p.hidden, text: p.textContent.replace(/\s+/g, " ").trim() }));
    check(!panel.hidden && panel.text.includes("Not supported by edetail") && /veeva .*(Address_vod__c|getAddresses_Account)/.test(panel.text),
      "the shell lists the unsupported call", panel);

    // Navigation built on queryRecord + gotoSlide, through the deck's own buttons.
    await clickIn(page, frame, "#to-efficacy");
    frame = await waitSlide(page, OWN.efficacy);
    await collectCalls(page, frame);
    await clickstreamAnswered(frame);
    await checkScaled(page, frame, "the 2048-px slide");
    await page.screenshot({ path: SCREENSHOT_WIDE });
    console.log("    screenshot: " + SCREENSHOT_WIDE);

    await clickIn(page, frame, "#to-safety"); // gotoSlide('OL_Safety_01.zip, OL_Deck_2026')
    frame = await waitSlide(page, OWN.safety);
    await collectCalls(page, frame);
    await clickstreamAnswered(frame);

    await clickIn(page, frame, "#to-home");
    frame = await waitSlide(page, OWN.home);
    await collectCalls(page, frame);
    await clickstreamAnswered(frame);
    check((await page.evaluate(() => window.previewShell.relayed)) > 0 && (await page.evaluate(() => window.previewShell.refused)) === 0,
      "the shell relayed the frame's veeva: requests", await page.evaluate(() => ({ relayed: window.previewShell.relayed, refused: window.previewShell.refused })));

    const calls = await page.evaluate(() => JSON.parse(JSON.stringify(window.__collectedCalls)));
    const stopped = await preview.stop();
    check(stopped.code === 0, "preview exits 0 on SIGTERM", stopped);
    const ev = preview.events();

    const byApi = (api) => calls.filter((c) => c.api === api);
    const apis = calls.map((c) => c.api);
    check(JSON.stringify(apis) === JSON.stringify(["createRecord", "getAddresses_Account", "queryRecord", "gotoSlide", "createRecord", "gotoSlide",
      "createRecord", "queryRecord", "gotoSlide", "createRecord"]), "the deck made the calls its controls make", apis);
    check(byApi("createRecord")[0].request.startsWith("veeva:saveObjectV2(Call_Clickstream_vod__c),value({"), "clickstream sent as veeva:saveObjectV2", byApi("createRecord")[0]);

    const clicks = ev.filter((e) => e.type === "custom" && e.payload.event === "veeva_clickstream");
    const views = clicks.filter((e) => e.payload.data && e.payload.data.Track_Element_Id_vod__c === "page_view");
    check(views.length === byApi("createRecord").length && clicks.length === views.length, "one veeva_clickstream event per createRecord call",
      { calls: byApi("createRecord").length, events: clicks.map((e) => e.payload) });
    check(JSON.stringify(views.map((e) => [e.payload.slide, e.payload.data.Track_Element_Description_vod__c])) ===
      JSON.stringify([[OWN.home, "OL_Home_01"], [OWN.efficacy, "OL_Efficacy_01"], [OWN.safety, "OL_Safety_01"], [OWN.home, "OL_Home_01"]]),
      "the DOM-ready clickstream records are there, on their slides", views.map((e) => e.payload));
    check(byApi("createRecord").every((c) => c.result && c.result.success === true), "every createRecord answered success", byApi("createRecord").map((c) => c.result));

    const enters = ev.filter((e) => e.type === "slide_enter").map((e) => [e.payload.slide, e.payload.source]);
    check(JSON.stringify(enters) === JSON.stringify([[OWN.home, "start"], [OWN.efficacy, "jump"], [OWN.safety, "jump"], [OWN.home, "jump"]]),
      "each gotoSlide (two after queryRecord, one single-string) recorded as a jump", enters);
    const jumps = enters.filter((e) => e[1] === "jump").length;
    check(jumps === byApi("gotoSlide").length, "one slide change per gotoSlide call", { jumps, calls: byApi("gotoSlide").length });

    const queries = byApi("queryRecord");
    check(queries.every((c) => c.result && c.result.success === true), "queryRecord(Key_Message_vod__c) answered success", queries.map((c) => c.result));

    const unsupported = ev.filter((e) => e.type === "unsupported_api");
    check(unsupported.length === byApi("getAddresses_Account").length && unsupported.every((e) => e.payload.vendor === "veeva" &&
      /Address_vod__c|getAddresses_Account/.test(e.payload.api + " " + JSON.stringify(e.payload.args))) && unsupported[0].payload.slide === OWN.home,
      "the unsupported call recorded as unsupported_api (and nothing else is)", unsupported.map((e) => e.payload));

    // Nothing vanished: each call is a recorded event or an answered query.
    const recorded = clicks.length + jumps + unsupported.length;
    check(recorded + queries.length === calls.length, "calls made == events recorded + answered queries",
      { calls: calls.length, recorded, queries: queries.length });
    check(ev[ev.length - 1].type === "call_ended", "call_ended after shutdown");
  } finally {
    preview.kill();
  }
}

// ------------------------------------------------------------------ Agnitio and OCE decks (issue 12)
//
// The samples presentations/import-samples/agnitio-classic, agnitio-accelerator and oce, imported
// as a content team imports them (scripts/browser-test). They ship their own framework and
// content library, which push every container call to the page's window.__vendorCalls. The
// scenarios drive the decks only through their own controls (plus the shell's Next / Overview
// where the runtime has to drive the framework), collect the calls of each page before it
// goes away, and compare them, computed call by call, with the events recorded.

function requireZip(name, zip) {
  // Never a skip: a missing import is a failure of the scenario.
  check(!!zip && fs.existsSync(zip), name + " names the imported deck", zip || null);
}

// Like collectCalls, but each call is tagged with the page it was made on (`page`: a counter
// of pages hooked, `route`: the URL the page was loaded with, before any replaceState).
async function hookPageCalls(page, frame) {
  await page.evaluate(() => { window.__collectedCalls = window.__collectedCalls || []; window.__pagesHooked = window.__pagesHooked || 0; });
  return frame.evaluate(() => {
    const shell = window.parent;
    const calls = (window.__vendorCalls = window.__vendorCalls || []);
    if (calls.__collected) return calls.__page;
    const nav = performance.getEntriesByType("navigation")[0];
    const tag = { page: ++shell.__pagesHooked, route: nav ? nav.name : location.href };
    Object.defineProperty(calls, "__collected", { value: true });
    Object.defineProperty(calls, "__page", { value: tag.page });
    const sink = shell.__collectedCalls;
    const add = (c) => { try { c.page = tag.page; c.route = tag.route; } catch (e) { /* frozen */ } sink.push(c); };
    calls.forEach(add);
    calls.push = function (...xs) {
      xs.forEach(add);
      return Array.prototype.push.apply(this, xs);
    };
    return tag.page;
  });
}

// The calls collected so far, as plain JSON (answers the library stored on them included).
async function collected(page) {
  return page.evaluate(() => JSON.parse(JSON.stringify(window.__collectedCalls || [])));
}

// Waits until the slide's library made one more call of `api` than `before` (a deck control
// did reach its library and the library reached the container).
async function callMade(page, api, before, what) {
  await page.waitForFunction((api, before) => (window.__collectedCalls || []).filter((c) => c.api === api).length > before,
    { timeout: 8000, polling: 50 }, api, before).catch(() => {
    throw new CheckError(what + ": the deck's library made no " + api + " call (is the container emulated, /_edetail/containers.js?)");
  });
}

function countApi(calls, api) { return calls.filter((c) => c.api === api).length; }

// The call's current slide, as the core sees it.
async function coreSlide(page) {
  return page.evaluate(() => fetch("/_preview/state").then((r) => r.json()).then((s) => s.slide));
}

async function waitCoreSlide(page, slide, what) {
  const until = Date.now() + 6000;
  let cur = null;
  while (Date.now() < until) {
    cur = await coreSlide(page);
    if (cur === slide) return;
    await sleep(100);
  }
  throw new CheckError(what + ": the call's current slide is " + JSON.stringify(cur) + ", not " + slide);
}

// The unsupported panel of the shell lists `label` (it polls every 1.5 s).
async function panelLists(page, label) {
  await page.waitForFunction((label) => {
    const p = document.getElementById("unsupported");
    return p && !p.hidden && p.textContent.includes(label);
  }, { timeout: 8000, polling: 100 }, label).catch(() => {});
  const panel = await page.$eval("#unsupported", (p) => ({ hidden: p.hidden, text: p.textContent.replace(/\s+/g, " ").trim() }));
  check(!panel.hidden && panel.text.includes("Not supported by edetail") && panel.text.includes(label), "the shell lists the unsupported call (" + label + ")", panel);
}

// The runtime scripts come first in <head>, before the deck's own library (`own`).
async function runtimeBefore(frame, own, vendor) {
  const srcs = await frame.evaluate(() => ({
    first: document.head.firstElementChild && document.head.firstElementChild.getAttribute("src"),
    scripts: [...document.scripts].map((s) => s.getAttribute("src") || "(inline)"),
  }));
  check(srcs.first === "/_edetail/edetail.js", vendor + ": edetail.js is the first element of <head>", srcs);
  const i = srcs.scripts.indexOf(own);
  check(i > 0 && srcs.scripts.slice(0, i).every((s) => s.startsWith("/_edetail/")) && srcs.scripts.slice(0, i).includes("/_edetail/containers.js"),
    vendor + ": /_edetail/containers.js loads before the deck's own " + own, srcs.scripts);
}

// --- Agnitio: objc:// never loads -------------------------------------------------------

// Records, for the whole scenario, every objc:// URL that reached the network stack, a frame
// navigation or an element's src attribute (checked in every frame before its scripts run),
// and how many iframes the slide pages created (the library's transport).
async function watchObjc(page) {
  const seen = { requests: [], navigations: [] };
  page.on("request", (r) => { if (/^objc:/i.test(r.url())) seen.requests.push(r.url()); });
  page.on("requestfailed", (r) => { if (/^objc:/i.test(r.url())) seen.requests.push(r.url()); });
  page.on("framenavigated", (f) => { if (/^objc:/i.test(f.url())) seen.navigations.push(f.url()); });
  await page.evaluateOnNewDocument(() => {
    const report = (kind, v) => {
      try {
        const t = window.top;
        (t.__objcSeen = t.__objcSeen || []).push(kind + " " + String(v).slice(0, 120));
      } catch (e) { /* not reachable */ }
    };
    const count = () => { try { window.top.__iframesMade = (window.top.__iframesMade || 0) + 1; } catch (e) { /* */ } };
    const look = (el) => {
      if (!el || el.nodeType !== 1) return;
      if (el.tagName === "IFRAME" && window !== window.top) count();
      const src = el.getAttribute && el.getAttribute("src");
      if (src && /^\s*objc:/i.test(src)) report("src", src);
    };
    new MutationObserver((list) => {
      for (const m of list) {
        if (m.type === "attributes") look(m.target);
        else m.addedNodes.forEach((n) => { look(n); if (n.querySelectorAll) n.querySelectorAll("[src]").forEach(look); });
      }
    }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ["src"] });
  });
  return seen;
}

async function checkNoObjc(page, seen, iframesAtLeast) {
  const inPage = await page.evaluate(() => ({ src: window.__objcSeen || [], iframes: window.__iframesMade || 0 }));
  const frames = page.frames().map((f) => f.url()).filter((u) => /^objc:/i.test(u));
  check(seen.requests.length === 0 && seen.navigations.length === 0 && inPage.src.length === 0 && frames.length === 0,
    "no objc:// iframe ever loaded (no request, navigation or src attribute)", { requests: seen.requests, navigations: seen.navigations, src: inPage.src, frames });
  check(inPage.iframes >= iframesAtLeast, "the library used its iframe transport for every call (" + inPage.iframes + " iframes, " + iframesAtLeast + " calls)");
}

// --- Agnitio ------------------------------------------------------------------------------

// The framework page (index.html) shows the Agnitio slide `km`, after the frame's load number
// went past `loadsBefore` when given (the shell loaded a new page), else in place.
async function waitFramework(page, slide, km, loadsBefore) {
  await page.waitForFunction((slide, km, loadsBefore) => {
    const shell = window.previewShell;
    const f = document.getElementById("slide-frame");
    if (!shell || (loadsBefore !== null && shell.loads <= loadsBefore)) return false;
    if (loadsBefore !== null && document.body.dataset.slide !== slide) return false;
    try {
      return f.contentDocument.readyState === "complete" && f.contentDocument.documentElement.getAttribute("data-slide") === km &&
        !!f.contentDocument.querySelector("#slide article");
    } catch (e) {
      return false;
    }
  }, { timeout: 15000, polling: 50 }, slide, km, loadsBefore).catch(() => {
    throw new CheckError("the framework page did not show " + km + " (" + slide + ") within 15 s");
  });
  const frame = await slideFrame(page);
  await frame.evaluate(() => (window.edetail && window.edetail.ready) || null);
  return frame;
}

// Every Agnitio call the deck made and what it must have left in the event log, computed call
// by call: slideEnter of another slide than the one shown -> slide_enter (source link) of the
// bundle slide whose key_message is its valueId; of the slide shown -> nothing (answered);
// slideExit -> nothing (answered); other monitoring categories -> custom agnitio_monitoring;
// getPresenter -> answered through its resultFunction; anything else -> unsupported_api.
function expectAgnitio(calls, deck) {
  const byKm = (km) => (deck.slides.find((s) => s.key_message === km) || {}).id;
  const routeKm = (route) => {
    const m = /[?&]path=([^&#]*)/.exec(route || "");
    return m ? decodeURIComponent(m[1]).split("/").filter(Boolean).pop() : null;
  };
  const out = { links: [], monitoring: [], unsupported: [], answered: [], unknown: [] };
  let current = null, lastPage = null;
  for (const c of calls) {
    if (c.page !== lastPage) { lastPage = c.page; current = routeKm(c.route); }
    const p = c.params || {};
    const slide = byKm(current);
    if (c.api === "monitoringEvent" && p.category === "slideEnter") {
      if (p.valueId === current) out.answered.push(c);
      else if (byKm(p.valueId)) { out.links.push(byKm(p.valueId)); current = p.valueId; }
      else out.unknown.push(c);
    } else if (c.api === "monitoringEvent" && p.category === "slideExit") {
      out.answered.push(c);
    } else if (c.api === "monitoringEvent") {
      out.monitoring.push({ category: p.category, value: p.value, slide });
    } else if (c.api === "getPresenter") {
      out.answered.push(c);
    } else {
      out.unsupported.push({ api: c.api, slide });
    }
  }
  return out;
}

// One Agnitio sample, driven by `steps`:
//   {deck: selector, to: [slide, km] | undefined, api}   a control of the deck (framework page)
//   {shell: "next" | "overview", to: [slide, km]}        the shell moves the call: index.html?path=
async function agnitioDeck(browser, cfg) {
  requireZip(cfg.env, cfg.zip);
  const preview = await Preview.start(cfg.zip, ["--hcp", "HCP-QA-0120"]);
  try {
    const context = await browser.createBrowserContext();
    contexts.add(context);
    const page = await context.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    page.on("pageerror", (e) => console.log("    [page error] " + e.message));
    const objc = await watchObjc(page);
    const loaded = []; // every document the slide frame loaded, with its query
    page.on("request", (r) => { if (r.isNavigationRequest() && r.frame() && r.frame() !== page.mainFrame()) loaded.push(r.url()); });
    await page.goto(preview.url, { waitUntil: "load" });
    check((await page.evaluate(() => window.previewShell.ready)) === true, "shell loaded its deck and state");
    const deck = await page.evaluate(() => window.previewShell.deck);
    const slideOf = (id) => deck.slides.find((s) => s.id === id);
    check(deck.slides.every((s) => s.bridge === "agnitio" && /\/index\.html\?path=[^&#]+$/.test(s.href) && s.key_message),
      "every slide is the framework's index.html with a ?path= route and a key message", deck.slides.map((s) => [s.id, s.href, s.key_message]));

    let [slide, km] = cfg.start;
    let frame = await waitFramework(page, slide, km, 0);
    await hookPageCalls(page, frame);
    await runtimeBefore(frame, "framework/cz-lib.js", "agnitio");
    const info = await frame.evaluate(() => window.agnitioInfo && { model: window.agnitioInfo.localizedModel, app: window.agnitioInfo.applicationName });
    check(info && info.model === "iPad", "window.agnitioInfo.localizedModel is \"iPad\" for the deck's library", info);
    check(loaded.some((u) => u.endsWith(slideOf(slide).href)), "the first slide loaded as " + slideOf(slide).href, loaded);
    // The library asked who presents; the container answered through czLib._presenter.
    await frame.waitForFunction(() => /Presenter \S+/.test((document.getElementById("presenter") || {}).textContent || ""), { timeout: 8000 }).catch(() => {
      throw new CheckError("getPresenter got no answer through its resultFunction within 8 s");
    });
    check(true, "getPresenter answered through its resultFunction: " + (await frame.$eval("#presenter", (e) => e.textContent)));
    if (cfg.module) {
      await frame.waitForFunction((t) => document.querySelector("#slide [data-module]") && document.querySelector("#slide [data-module]").textContent.includes(t),
        { timeout: 5000 }, cfg.module).catch(() => { throw new CheckError("the slide did not embed its module"); });
      check(true, "the framework embedded the module in the slide");
    }

    const shellMoves = [[slide, "start"]];
    for (const step of cfg.steps) {
      if (step.deck) {
        const before = countApi(await collected(page), step.api);
        const loads = await page.evaluate(() => window.previewShell.loads);
        await clickIn(page, frame, step.deck);
        await callMade(page, step.api, before, step.deck);
        if (step.to) {
          [slide, km] = step.to;
          await waitFramework(page, slide, km, null);
          await waitCoreSlide(page, slide, step.deck);
          check((await page.evaluate(() => window.previewShell.loads)) === loads, step.deck + ": the framework showed " + km + " in place; the call is on " + slide);
        } else {
          await settled(frame);
        }
        if (step.panel) await panelLists(page, step.panel);
      } else {
        const loads = await page.evaluate(() => window.previewShell.loads);
        [slide, km] = step.to;
        if (step.shell === "next") {
          await page.click("#next");
          shellMoves.push([slide, "swipe"]);
        } else {
          await page.click("#overview-toggle");
          await page.waitForSelector("#overview:not([hidden])");
          await page.click(`.thumb[data-slide="${slide}"]`);
          shellMoves.push([slide, "overview"]);
        }
        frame = await waitFramework(page, slide, km, loads);
        await hookPageCalls(page, frame);
        const href = slideOf(slide).href;
        const at = await frame.evaluate(() => ({ path: location.pathname, nav: performance.getEntriesByType("navigation")[0].name }));
        check(at.path.endsWith("/index.html") && at.nav.endsWith(href) && loaded.some((u) => u.endsWith(href)),
          "shell " + step.shell + ": the framework's index.html loaded with the route " + href.replace(/^.*index\.html/, ""), { at, href });
        // The framework reports the slide it shows; the call is already on it: nothing moves.
        await frame.waitForFunction((km) => (window.__vendorCalls || []).some((c) => c.params && c.params.category === "slideEnter" && c.params.valueId === km),
          { timeout: 8000 }, km).catch(() => { throw new CheckError("the framework reported no slideEnter of " + km); });
        await settled(frame);
        check((await coreSlide(page)) === slide, "the framework's own slideEnter report of " + km + " leaves the call on " + slide);
      }
      if (step.screenshot) {
        await sleep(300);
        fs.mkdirSync(path.dirname(cfg.screenshot), { recursive: true });
        await page.screenshot({ path: cfg.screenshot });
        console.log("    screenshot: " + cfg.screenshot);
      }
    }
    await settled(frame);
    await sleep(300);

    const calls = await collected(page);
    await checkNoObjc(page, objc, calls.length);
    const stopped = await preview.stop();
    check(stopped.code === 0, "preview exits 0 on SIGTERM", stopped);
    const ev = preview.events();

    const exp = expectAgnitio(calls, deck);
    console.log("    calls: " + calls.map((c) => c.api + (c.params && c.params.category ? ":" + c.params.category : "")).join(" "));
    check(exp.unknown.length === 0, "every slideEnter names a slide of the deck", exp.unknown);
    for (const [api, n] of Object.entries(cfg.atLeast)) check(countApi(calls, api) >= n, `the deck's controls made ${api} calls (${countApi(calls, api)})`);

    const enters = ev.filter((e) => e.type === "slide_enter");
    const links = enters.filter((e) => e.payload.source === "link").map((e) => e.payload.slide);
    check(JSON.stringify(links) === JSON.stringify(exp.links), "one slide_enter (link) per slideEnter of another slide, none for the slide shown", { recorded: links, expected: exp.links });
    const moves = enters.filter((e) => e.payload.source !== "link").map((e) => [e.payload.slide, e.payload.source]);
    check(JSON.stringify(moves) === JSON.stringify(shellMoves), "the shell's own moves recorded once each", { recorded: moves, expected: shellMoves });

    const monitoring = ev.filter((e) => e.type === "custom" && e.payload.event === "agnitio_monitoring");
    const got = monitoring.map((e) => ({ category: e.payload.data.category, value: e.payload.data.value, slide: e.payload.slide }));
    check(JSON.stringify(got) === JSON.stringify(exp.monitoring), "each custom monitoring call recorded as custom agnitio_monitoring, on its slide", { recorded: got, expected: exp.monitoring });
    const otherCustom = ev.filter((e) => e.type === "custom" && e.payload.event !== "agnitio_monitoring").map((e) => e.payload.event);
    check(otherCustom.length === 0, "no other custom event (no agnitio_unknown_slide)", otherCustom);

    const unsupported = ev.filter((e) => e.type === "unsupported_api").map((e) => ({ api: e.payload.api, slide: e.payload.slide }));
    check(ev.filter((e) => e.type === "unsupported_api").every((e) => e.payload.vendor === "agnitio") &&
      JSON.stringify(unsupported) === JSON.stringify(exp.unsupported), "each unsupported call (sendMail) recorded as unsupported_api", { recorded: unsupported, expected: exp.unsupported });
    const presenter = calls.filter((c) => c.api === "getPresenter");
    check(presenter.every((c) => c.result && typeof c.result.id === "string"), "every getPresenter answered with the rep id", presenter.map((c) => c.result));

    const recorded = links.length + monitoring.length + unsupported.length;
    check(recorded + exp.answered.length === calls.length, "calls made == events recorded + calls explicitly answered (slideExit, slideEnter of the slide shown, getPresenter)",
      { calls: calls.length, recorded, answered: exp.answered.length });
    check(ev[ev.length - 1].type === "call_ended", "call_ended after shutdown");
  } finally {
    preview.kill();
  }
}

function agnitioClassic(browser) {
  return agnitioDeck(browser, {
    env: "AGNITIO_CLASSIC_ZIP", zip: AGNITIO_CLASSIC_ZIP, screenshot: SCREENSHOT_AGNITIO,
    start: ["cz-home", "cz_home"],
    steps: [
      { deck: "#next", api: "monitoringEvent", to: ["cz-efficacy", "cz_efficacy"], screenshot: true },
      { deck: "button[data-track]", api: "monitoringEvent" },
      { deck: "#next", api: "monitoringEvent", to: ["cz-safety", "cz_safety"] },
      { deck: "button[data-track]", api: "monitoringEvent" },
      { deck: "button[data-mail]", api: "sendMail", panel: "agnitio sendMail" },
      { deck: 'a[data-goto="main/cz_home"]', api: "monitoringEvent", to: ["cz-home", "cz_home"] },
      { deck: 'a[data-goto="appendix/cz_refs"]', api: "monitoringEvent", to: ["cz-refs", "cz_refs"] },
      { shell: "overview", to: ["cz-efficacy", "cz_efficacy"] },
      { shell: "next", to: ["cz-safety", "cz_safety"] },
      { deck: "#prev", api: "monitoringEvent", to: ["cz-efficacy", "cz_efficacy"] },
      { deck: "button[data-track]", api: "monitoringEvent" },
    ],
    atLeast: { monitoringEvent: 10, sendMail: 1, getPresenter: 3 },
  });
}

function agnitioAccelerator(browser) {
  return agnitioDeck(browser, {
    env: "AGNITIO_ACCELERATOR_ZIP", zip: AGNITIO_ACCELERATOR_ZIP, screenshot: SCREENSHOT_ACCELERATOR,
    start: ["ac-intro", "ac_intro"], module: "fictional",
    steps: [
      { deck: 'a[data-goto="cz_story/ac_dosing"]', api: "monitoringEvent", to: ["ac-dosing", "ac_dosing"] },
      { deck: "button[data-track]", api: "monitoringEvent" },
      { deck: "#next", api: "monitoringEvent", to: ["ac-summary", "ac_summary"] },
      { deck: "button[data-mail]", api: "sendMail", panel: "agnitio sendMail" },
      { deck: 'a[data-goto="cz_story/ac_intro"]', api: "monitoringEvent", to: ["ac-intro", "ac_intro"] },
      { shell: "next", to: ["ac-data", "ac_data"] },
      { deck: "button[data-track]", api: "monitoringEvent", screenshot: true },
      { deck: 'a[data-goto="cz_backup/ac_backup"]', api: "monitoringEvent", to: ["ac-backup", "ac_backup"] },
      { shell: "overview", to: ["ac-summary", "ac_summary"] },
      { deck: "#prev", api: "monitoringEvent", to: ["ac-dosing", "ac_dosing"] },
    ],
    atLeast: { monitoringEvent: 10, sendMail: 1, getPresenter: 3 },
  });
}

// --- OCE ----------------------------------------------------------------------------------

// Every OCE call and what it must have left, computed call by call while following the deck's
// position (`order`: the visible presentation's slides): gotoSlide -> slide_enter (jump) of the
// slide whose key_message it names; goNext/PreviousSequence -> slide_enter (link) of the
// neighbour, nothing at either end (answered); addAction -> custom oce_action;
// startTrackingPage -> custom oce_page_tracking; anything else -> unsupported_api.
function expectOce(calls, deck, start) {
  const order = deck.presentations.find((p) => !p.hidden).slides;
  const byKm = (km) => (deck.slides.find((s) => s.key_message === km) || {}).id;
  const out = { moves: [], actions: [], tracking: [], unsupported: [], answered: [], pages: [] };
  let current = start, lastPage = null;
  for (const c of calls) {
    if (c.page !== lastPage) { lastPage = c.page; out.pages.push(current); }
    const a = c.args || [];
    if (c.api === "gotoSlide") {
      const to = byKm(a[0]);
      if (to) { out.moves.push([to, "jump"]); current = to; } else out.answered.push(c);
    } else if (c.api === "goNextSequence" || c.api === "goPreviousSequence") {
      const i = order.indexOf(current) + (c.api === "goNextSequence" ? 1 : -1);
      if (i >= 0 && i < order.length) { current = order[i]; out.moves.push([current, "link"]); } else out.answered.push(c);
    } else if (c.api === "addAction") {
      out.actions.push({ action: a[0], reaction: a[1], slide: current });
    } else if (c.api === "startTrackingPage") {
      out.tracking.push({ pageid: a[0], slide: current });
    } else {
      out.unsupported.push({ api: c.api, slide: current });
    }
  }
  return out;
}

async function oceDeck(browser) {
  requireZip("OCE_ZIP", OCE_ZIP);
  const preview = await Preview.start(OCE_ZIP, ["--hcp", "HCP-QA-0300"]);
  try {
    const { page } = await openShell(browser, preview);
    const deck = await page.evaluate(() => window.previewShell.deck);
    const S = { home: "cz-oce-01-home", efficacy: "cz-oce-02-efficacy", safety: "cz-oce-03-safety" };
    check(deck.slides.every((s) => s.bridge === "oce"), "every slide's bridge is oce", deck.slides.map((s) => [s.id, s.bridge]));
    let frame = await waitSlide(page, S.home);
    await hookPageCalls(page, frame);
    await runtimeBefore(frame, "../shared/js/cz-oce.js", "oce");
    check(await frame.evaluate(() => window.parent !== window && !!window.parent.CLMPlayer && !!(window.edetailContainers && window.edetailContainers.oce)),
      "the sequence runs in a frame whose parent (the shell) has a CLMPlayer");
    const pagesShown = [S.home];

    // A deck control; `to` when it moves the call (the frame loads that sequence).
    const control = async (selector, api, to, what) => {
      const before = countApi(await collected(page), api);
      const loads = await page.evaluate(() => window.previewShell.loads);
      await clickIn(page, frame, selector);
      await callMade(page, api, before, what);
      if (to) {
        frame = await waitSlide(page, to);
        await hookPageCalls(page, frame);
        pagesShown.push(to);
      } else {
        await page.waitForFunction((api, n) => {
          const c = (window.__collectedCalls || []).filter((x) => x.api === api)[n];
          return c && "result" in c;
        }, { timeout: 8000, polling: 50 }, api, before).catch(() => { throw new CheckError(what + ": " + api + " got no answer within 8 s"); });
        await settled(frame);
        await sleep(400);
        check((await page.evaluate(() => window.previewShell.loads)) === loads, what + ": nothing reloaded");
      }
    };

    await control("#prev", "goPreviousSequence", null, "the deck's prev on the first sequence");
    await control("#next", "goNextSequence", S.efficacy, "the deck's next");
    await control('button[data-action="efficacy_chart"]', "addAction", null, "efficacy chart action");
    await control("#next", "goNextSequence", S.safety, "the deck's next");
    await control('button[data-action="safety_question"]', "addAction", null, "safety question action");
    await control("button[data-survey]", "getSurveyFlowJson", null, "the survey (unsupported)");
    await panelLists(page, "oce getSurveyFlowJson");
    fs.mkdirSync(path.dirname(SCREENSHOT_OCE), { recursive: true });
    await page.screenshot({ path: SCREENSHOT_OCE });
    console.log("    screenshot: " + SCREENSHOT_OCE);
    await control('a[data-sequence="CZ_OCE_01_Home"]', "gotoSlide", S.home, "link to Home");
    await control('a[data-sequence="CZ_OCE_03_Safety"]', "gotoSlide", S.safety, "link to Safety");
    await control("#prev", "goPreviousSequence", S.efficacy, "the deck's prev");
    await settled(frame);
    await sleep(300);

    const calls = await collected(page);
    const answers = Object.fromEntries(["addAction", "getSurveyFlowJson", "startTrackingPage"].map((api) =>
      [api, calls.filter((c) => c.api === api).map((c) => c.result)]));
    const stopped = await preview.stop();
    check(stopped.code === 0, "preview exits 0 on SIGTERM", stopped);
    const ev = preview.events();
    const exp = expectOce(calls, deck, S.home);
    console.log("    calls: " + calls.map((c) => c.api).join(" "));
    check(JSON.stringify(exp.pages) === JSON.stringify(pagesShown), "each page's calls were made on the sequence the shell showed", { computed: exp.pages, shown: pagesShown });
    check(countApi(calls, "startTrackingPage") === pagesShown.length, "each sequence page tracked itself once (startTrackingPage)", countApi(calls, "startTrackingPage"));

    const enters = ev.filter((e) => e.type === "slide_enter").map((e) => [e.payload.slide, e.payload.source]);
    check(JSON.stringify(enters) === JSON.stringify([[S.home, "start"], ...exp.moves]),
      "gotoSlide -> slide_enter (jump), goNext/PreviousSequence -> slide_enter (link), nothing at the first sequence", { recorded: enters, expected: exp.moves });
    const actions = ev.filter((e) => e.type === "custom" && e.payload.event === "oce_action")
      .map((e) => ({ action: e.payload.data.action__c, reaction: e.payload.data.reaction__c, slide: e.payload.slide }));
    check(JSON.stringify(actions) === JSON.stringify(exp.actions), "each addAction recorded as custom oce_action, on its slide", { recorded: actions, expected: exp.actions });
    check(answers.addAction.every((r) => r && r.success === true), "addAction answered success", answers.addAction);
    const tracking = ev.filter((e) => e.type === "custom" && e.payload.event === "oce_page_tracking")
      .map((e) => ({ pageid: e.payload.data.pageid, slide: e.payload.slide }));
    check(JSON.stringify(tracking) === JSON.stringify(exp.tracking), "each startTrackingPage recorded as custom oce_page_tracking", { recorded: tracking, expected: exp.tracking });
    const unsupported = ev.filter((e) => e.type === "unsupported_api").map((e) => ({ api: e.payload.api, slide: e.payload.slide }));
    check(ev.filter((e) => e.type === "unsupported_api").every((e) => e.payload.vendor === "oce") && JSON.stringify(unsupported) === JSON.stringify(exp.unsupported),
      "the unsupported call recorded as unsupported_api", { recorded: unsupported, expected: exp.unsupported });
    check(answers.getSurveyFlowJson.every((r) => r && r.success === false), "and answered in OCE's failure shape", answers.getSurveyFlowJson);
    const other = ev.filter((e) => e.type === "custom" && !["oce_action", "oce_page_tracking"].includes(e.payload.event)).map((e) => e.payload.event);
    check(other.length === 0, "no other custom event", other);

    const recorded = exp.moves.length + actions.length + tracking.length + unsupported.length;
    check(recorded + exp.answered.length === calls.length, "calls made == events recorded + calls explicitly answered (next/prev at an end)",
      { calls: calls.length, recorded, answered: exp.answered.length });
    check(ev[ev.length - 1].type === "call_ended", "call_ended after shutdown");
  } finally {
    preview.kill();
  }
}

// ------------------------------------------------------------------ runner

const scenarios = [
  ["cardiozen: navigate, interact, record", cardiozen],
  ["veeva: imported slide through the com.veeva.clm shim", veeva],
  ["hostile: malformed, traversal, oversized, cross-origin", hostile],
  ["veeva own library: runtime scripts first, 2048-px slide scaled to the stage, shell prev on the first slide", ownLibraryViewport],
  ["veeva own library: every call recorded or answered", ownLibraryCalls],
  ["next on the last slide, prev on the first: nothing moves", edgeNavigation],
  ["veeva legacy: veeva: links and document.location requests, intercepted and recorded", legacyLocation],
  ["agnitio classic: the deck's framework and library, every call recorded or answered", agnitioClassic],
  ["agnitio accelerator: the deck's framework and library, every call recorded or answered", agnitioAccelerator],
  ["oce: the deck's CLMPlayer calls, every call recorded or answered", oceDeck],
];

async function main() {
  const userDataDir = tmpDir("edetail-chromium-");
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
      "--autoplay-policy=no-user-gesture-required", "--mute-audio"],
  });
  let passed = 0, failed = 0;
  try {
    // SCENARIO_FILTER=text runs only the scenarios whose title contains it (for debugging).
    const only = process.env.SCENARIO_FILTER;
    for (const [name, fn] of scenarios.filter(([n]) => !only || n.includes(only))) {
      console.log("# " + name);
      let timer;
      try {
        await Promise.race([
          fn(browser),
          new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${SCENARIO_TIMEOUT_MS} ms`)), SCENARIO_TIMEOUT_MS); }),
        ]);
        passed++;
        console.log("ok - " + name);
      } catch (e) {
        failed++;
        console.log("not ok - " + name + "\n    " + (e instanceof CheckError ? e.message : (e && e.stack) || e));
      } finally {
        clearTimeout(timer);
        for (const c of contexts) await c.close().catch(() => {});
        contexts.clear();
        for (const p of running) p.kill();
      }
    }
  } finally {
    await browser.close().catch(() => {});
    for (const p of running) p.kill();
    for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => { for (const p of running) p.kill(); process.exit(130); });
}
process.on("exit", () => { for (const p of running) p.kill(); });

main().catch((e) => {
  for (const p of running) p.kill();
  console.error(e);
  console.log("0 passed, 1 failed");
  process.exit(1);
});
