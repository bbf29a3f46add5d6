// Test harness for crates/edetail-core/js: runs edetail.js / veeva-clm.js / containers.js in a
// `vm` context with a fake window, document and location, and one faked transport (webkit,
// android, http, none). For containers.js it also fakes window.postMessage (delivered to the
// window's "message" listeners), a frame parent (opts.frame), a minimal DOM (Element,
// HTMLIFrameElement, HTMLImageElement, document.createElement / body; every src that would load
// is recorded in env.loads) and WKWebView's native messageHandlers (opts.nativeHandlers).
"use strict";

const vm = require("node:vm");
const fs = require("node:fs");
const path = require("node:path");
const { after } = require("node:test");

// Answer whatever is still pending when a file's tests end, so the 10 s bridge timeouts of
// calls a test left unanswered do not keep the process alive.
const envs = [];
after(() => {
  for (const env of envs) if (env.hasEdetail()) env.answerAll();
});

const JS_DIR = path.join(__dirname, "..", "js");
const REPO = path.join(__dirname, "..", "..", "..");
const VEEVA_STUB = path.join(REPO, "presentations", "import-samples", "veeva-legacy", "shared", "js", "veeva-library.js");

const DEFAULT_URLS = {
  webkit: "edetail://library/com.example.cardiozen.launch/slides/efficacy-primary/index.html",
  android: "edetail://library/com.example.cardiozen.launch/slides/efficacy-primary/index.html",
  both: "edetail://library/com.example.cardiozen.launch/slides/efficacy-primary/index.html",
  http: "http://127.0.0.1:7070/com.example.cardiozen.launch/slides/efficacy-primary/index.html",
  none: "file:///Users/author/cardiozen-launch/slides/efficacy-primary/index.html",
};

/** Cross-realm values -> plain Node values (assert.deepStrictEqual checks prototypes). */
function plain(v) {
  return v === undefined ? undefined : JSON.parse(JSON.stringify(v));
}

/** Lets pending promise jobs and zero-delay timers run. */
async function settle(rounds = 5) {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setTimeout(r, 0));
}

function listenerTarget() {
  const listeners = {};
  return {
    listeners,
    addEventListener(type, fn) { (listeners[type] = listeners[type] || []).push(fn); },
    removeEventListener(type, fn) {
      if (listeners[type]) listeners[type] = listeners[type].filter((f) => f !== fn);
    },
    fire(type, ev) {
      for (const fn of (listeners[type] || []).slice()) fn(ev || { type });
    },
  };
}

/**
 * opts.transport: "webkit" | "android" | "both" | "http" | "none"
 * opts.url, opts.meta (content of <meta name="edetail-slide">), opts.readyState ("complete")
 * opts.host(msg) -> {result} | {error: {code, message}} | {status, body} (http) | undefined (no
 *   automatic reply; answer with env.reply / env.fail / env.respond).
 */
function createEnv(opts = {}) {
  const transport = opts.transport || "webkit";
  const url = new URL(opts.url || DEFAULT_URLS[transport]);
  const sent = []; // parsed messages, in send order
  const raw = []; // message strings as sent
  const navigations = [];
  const logs = [];
  const fetches = [];
  const httpWaiting = new Map(); // id -> resolve(response)
  let host = opts.host || null;

  const doc = listenerTarget();
  doc.readyState = opts.readyState || "complete";
  doc.querySelector = (sel) => {
    if (opts.meta != null && /edetail-slide/.test(sel)) return { getAttribute: () => opts.meta };
    return null;
  };

  const win = listenerTarget();
  const location = {
    protocol: url.protocol,
    host: url.host,
    pathname: url.pathname,
    search: url.search,
    hash: url.hash,
    get href() { return url.href; },
    set href(v) { navigations.push(String(v)); },
  };
  const logger = {};
  for (const level of ["log", "info", "warn", "error", "debug"]) {
    logger[level] = (...args) => logs.push({ level, text: args.map((a) => (a && a.message) || String(a)).join(" ") });
  }

  const sandbox = {
    console: logger,
    setTimeout,
    clearTimeout,
    document: doc,
    location,
    addEventListener: win.addEventListener,
    removeEventListener: win.removeEventListener,
  };
  sandbox.window = sandbox;

  // window.postMessage: recorded, then delivered asynchronously to this window's listeners.
  const posted = []; // data posted to this window, in order
  sandbox.postMessage = function (data, origin) {
    posted.push(data);
    // `source` is the window as the page's scripts see it (the context's global object).
    setTimeout(() => win.fire("message", { type: "message", data, origin: "null", source: pageGlobal }), 0);
  };
  // A frame parent (the preview shell): records what the slide posts to it; when
  // opts.frame === "shell" it hands each message to the slide's containers.js, as the preview does.
  const parentPosts = [];
  if (opts.frame) {
    sandbox.parent = {
      postMessage(data) {
        parentPosts.push(data);
        if (opts.frame === "shell") {
          setTimeout(() => {
            const c = sandbox.edetailContainers;
            if (c) c.fromFrameMessage(data);
          }, 0);
        }
      },
    };
  } else {
    sandbox.parent = sandbox;
  }

  // Minimal DOM: elements whose src would load record it in `loads`.
  const loads = [];
  class Element {
    constructor(tag) { this.tagName = String(tag).toUpperCase(); this.attrs = {}; this.parentNode = null; }
    setAttribute(name, value) {
      this.attrs[String(name).toLowerCase()] = String(value);
      if (String(name).toLowerCase() === "src") loads.push({ tag: this.tagName, url: String(value), via: "setAttribute" });
    }
    getAttribute(name) { const v = this.attrs[String(name).toLowerCase()]; return v === undefined ? null : v; }
  }
  class HTMLIFrameElement extends Element {}
  class HTMLImageElement extends Element {}
  for (const C of [HTMLIFrameElement, HTMLImageElement]) {
    Object.defineProperty(C.prototype, "src", {
      configurable: true,
      enumerable: true,
      get() { return this.attrs.src || ""; },
      set(v) { this.attrs.src = String(v); loads.push({ tag: this.tagName, url: String(v), via: "src" }); },
    });
  }
  const body = {
    children: [],
    appendChild(el) { el.parentNode = body; body.children.push(el); return el; },
    removeChild(el) { body.children = body.children.filter((c) => c !== el); el.parentNode = null; return el; },
  };
  doc.body = body;
  doc.documentElement = body;
  doc.createElement = (tag) => {
    const t = String(tag).toLowerCase();
    if (t === "iframe") return new HTMLIFrameElement(t);
    if (t === "img") return new HTMLImageElement(t);
    return new Element(t);
  };
  sandbox.Element = Element;
  sandbox.HTMLIFrameElement = HTMLIFrameElement;
  sandbox.HTMLImageElement = HTMLImageElement;
  sandbox.Image = function Image() { return new HTMLImageElement("img"); };

  function capture(s) {
    raw.push(s);
    const msg = JSON.parse(s);
    sent.push(msg);
    return msg;
  }
  function autoReply(msg) {
    if (!host) return;
    const r = host(msg);
    if (!r) return;
    setTimeout(() => {
      const body = r.error
        ? { v: 1, id: msg.id, ok: false, error: r.error }
        : { v: 1, id: msg.id, ok: true, result: r.result === undefined ? {} : r.result };
      (firstEdetail || sandbox.edetail)._receive(JSON.stringify(body));
    }, 0);
  }

  if (transport === "webkit" || transport === "both") {
    sandbox.webkit = { messageHandlers: { edetail: { postMessage: (s) => { autoReply(capture(s)); } } } };
  }
  // WKWebView's messageHandlers: a native object the page cannot add handlers to; the shell's
  // registered handlers (opts.nativeHandlers: {name: fn}) are there.
  if (opts.nativeHandlers) {
    sandbox.webkit = sandbox.webkit || { messageHandlers: {} };
    for (const [name, fn] of Object.entries(opts.nativeHandlers)) {
      sandbox.webkit.messageHandlers[name] = { postMessage: fn };
    }
    Object.preventExtensions(sandbox.webkit.messageHandlers);
  }
  if (transport === "android" || transport === "both") {
    sandbox.EdetailAndroid = { postMessage: (s) => { const m = capture(s); m._android = true; autoReply(m); } };
  }
  if (transport === "http" || opts.fetch) {
    sandbox.fetch = (u, init) => {
      fetches.push({ url: u, init });
      const msg = capture(init.body);
      if (opts.fetch) return opts.fetch(u, init, msg);
      return new Promise((resolve) => {
        httpWaiting.set(msg.id, resolve);
        const r = host && host(msg);
        if (!r) return;
        if (r.status !== undefined) env.respond(msg.id, r.status, r.body);
        else if (r.error) env.respond(msg.id, 200, { v: 1, id: msg.id, ok: false, error: r.error });
        else env.respond(msg.id, 200, { v: 1, id: msg.id, ok: true, result: r.result === undefined ? {} : r.result });
      });
    };
  }

  const ctx = vm.createContext(sandbox);
  const pageGlobal = vm.runInContext("globalThis", ctx);
  let firstEdetail = null; // the edetail.js instance, even after a deck overwrites window.edetail

  const env = {
    ctx,
    window: sandbox,
    document: doc,
    location,
    sent,
    raw,
    navigations,
    logs,
    fetches,
    posted,
    parentPosts,
    loads,
    setHost(fn) { host = fn; },
    load(file) {
      const full = path.isAbsolute(file) ? file : path.join(JS_DIR, file);
      vm.runInContext(fs.readFileSync(full, "utf8"), ctx, { filename: full });
      return env;
    },
    loadEdetail() {
      env.load("edetail.js");
      if (!firstEdetail) firstEdetail = sandbox.edetail;
      return env;
    },
    loadShim() { return env.load("veeva-clm.js"); },
    loadVeevaStub() { return env.load(VEEVA_STUB); },
    loadContainers() { return env.load("containers.js"); },
    run(code) { return vm.runInContext(code, ctx); },
    get edetail() { return sandbox.edetail; },
    hasEdetail() { const e = firstEdetail || sandbox.edetail; return !!(e && e._receive); },
    get clm() { return sandbox.com && sandbox.com.veeva && sandbox.com.veeva.clm; },
    /** Messages other than hello. */
    calls(method) { return sent.filter((m) => m.method !== "hello" && (!method || m.method === method)); },
    last() { return sent[sent.length - 1]; },
    /** Native reply through edetail._receive. */
    reply(id, result) { return (firstEdetail || sandbox.edetail)._receive(JSON.stringify({ v: 1, id, ok: true, result })); },
    /** Answers {} to every message sent so far (ids already settled are ignored by _receive). */
    answerAll() { for (const m of sent) (firstEdetail || sandbox.edetail)._receive(JSON.stringify({ v: 1, id: m.id, ok: true, result: {} })); },
    fail(id, code, message) { return (firstEdetail || sandbox.edetail)._receive(JSON.stringify({ v: 1, id, ok: false, error: { code, message } })); },
    /** HTTP reply for the fetch of message `id`; body object (JSON-encoded) or string; status. */
    respond(id, status, body) {
      const resolve = httpWaiting.get(id);
      if (!resolve) throw new Error("no HTTP request with id " + id);
      httpWaiting.delete(id);
      const text = typeof body === "string" ? body : JSON.stringify(body);
      resolve({ ok: status >= 200 && status < 300, status, text: () => Promise.resolve(text) });
    },
    fireDom(type) { doc.fire(type); },
    fireWindow(type, ev) { win.fire(type, ev); },
    windowListeners: win.listeners,
  };
  envs.push(env);
  return env;
}

/** A host that answers like the core would for a call in progress. */
function cardiozenHost(overrides = {}) {
  const data = {
    "Account.ID": "hcp-7f3a", "Call.ID": "call-0001", "User.ID": "rep-42",
    "Presentation.ID": "main", "Presentation.Name": "Cardiozen launch",
    "KeyMessage.ID": "efficacy-primary", "KeyMessage.Name": "ZENITH-HF primary endpoint",
  };
  let events = 0;
  return (msg) => {
    if (overrides[msg.method]) return overrides[msg.method](msg);
    switch (msg.method) {
      case "hello":
      case "context":
        return { result: { call: { id: "call-0001", channel: "f2f" }, hcp: { id: "hcp-7f3a" }, rep: { id: "rep-42" },
          slide: { id: "efficacy-primary", presentation: "main" }, bundle: { id: "com.example.cardiozen.launch", version: 3 } } };
      case "track":
        events += 1;
        return { result: { event_id: "evt-" + events } };
      case "navigate":
        return { result: { slide: "safety-ae", presentation: "main", url: "/com.example.cardiozen.launch/slides/safety-ae/index.html" } };
      case "veeva.get_data": {
        const v = data[msg.params.object + "." + msg.params.field];
        return { result: { value: v === undefined ? null : v } };
      }
      default:
        return { result: {} };
    }
  };
}

module.exports = { createEnv, cardiozenHost, plain, settle, JS_DIR, VEEVA_STUB };
