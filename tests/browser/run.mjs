// Browser tests of `edetail preview`: real headless Chromium driven by puppeteer-core.
// Run through scripts/browser-test, which installs what is missing and builds the bundles; it
// passes EDETAIL_BIN, CARDIOZEN_ZIP, VEEVA_ZIP, VEEVA_OWN_ZIP, SCREENSHOT and SCREENSHOT_WIDE in
// the environment. Without VEEVA_OWN_ZIP the own-library scenarios FAIL (they never skip).
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
const SCREENSHOT = process.env.SCREENSHOT || path.join(root, "target/browser/shell.png");
const SCREENSHOT_WIDE = process.env.SCREENSHOT_WIDE || path.join(root, "target/browser/veeva-2048.png");
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
    check((await page.$eval("#slide-pos", (e) => e.textContent)) === "3 / 14", "arrow right twice shows the 3rd slide");

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

// ------------------------------------------------------------------ runner

const scenarios = [
  ["cardiozen: navigate, interact, record", cardiozen],
  ["veeva: imported slide through the com.veeva.clm shim", veeva],
  ["hostile: malformed, traversal, oversized, cross-origin", hostile],
  ["veeva own library: runtime scripts first, 2048-px slide scaled to the stage, shell prev on the first slide", ownLibraryViewport],
  ["veeva own library: every call recorded or answered", ownLibraryCalls],
  ["next on the last slide, prev on the first: nothing moves", edgeNavigation],
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
    for (const [name, fn] of scenarios) {
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
