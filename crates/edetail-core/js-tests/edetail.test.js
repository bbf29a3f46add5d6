// Tests for crates/edetail-core/js/edetail.js: message shape, transports, replies, timeouts,
// idempotent include, hello on load and navigation (node --test).
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const { createEnv, cardiozenHost, plain, settle } = require("./harness");

const BUNDLE = "com.example.cardiozen.launch";

async function rejection(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  assert.fail("expected the promise to reject");
}

test("defines window.edetail with version 1 and the documented API", () => {
  const env = createEnv().loadEdetail();
  const ed = env.edetail;
  assert.equal(ed.version, 1);
  for (const fn of ["next", "prev", "goTo", "track", "answer", "react", "followUp", "advocacy", "context", "_receive"]) {
    assert.equal(typeof ed[fn], "function", fn);
  }
  assert.equal(typeof ed.state.save, "function");
  assert.equal(typeof ed.state.load, "function");
  assert.equal(ed.transport, "webkit");
});

test("request shape: v, id, method, params, slide and bundle from the URL path", () => {
  const env = createEnv().loadEdetail();
  env.edetail.track("chart_toggle", { endpoint: "hf_hosp" });
  assert.equal(env.raw.length, 2, "hello, then track");
  assert.equal(typeof env.raw[1], "string", "the transport receives a string");
  assert.deepEqual(env.sent[1], {
    v: 1, id: 2, method: "track", params: { event: "chart_toggle", data: { endpoint: "hf_hosp" } },
    slide: "slides/efficacy-primary/index.html", bundle: BUNDLE,
  });
  env.answerAll();
});

test("slide comes from <meta name=edetail-slide> first", () => {
  const env = createEnv({ meta: "efficacy-primary" }).loadEdetail();
  env.edetail.react("positive");
  const m = env.last();
  assert.equal(m.slide, "efficacy-primary");
  assert.equal(m.bundle, BUNDLE);
  env.answerAll();
});

test("ids increase per call and every API function maps to its method and params", () => {
  const env = createEnv().loadEdetail();
  const ed = env.edetail;
  ed.next(); ed.prev(); ed.goTo("dosing"); ed.goTo("pi-1", "pi");
  ed.track("video_play"); ed.answer("q1", ["a", "b"], "Which?"); ed.answer("q2", ["c"]);
  ed.react("neutral"); ed.followUp("safety"); ed.followUp("dosing", "renal"); ed.advocacy("agreed_to_speak"); ed.context();
  ed.state.save("k", { x: 1 }); ed.state.save("u"); ed.state.load("k");
  const got = env.calls().map((m) => [m.method, m.params]);
  assert.deepEqual(got, [
    ["navigate", { action: "next" }],
    ["navigate", { action: "prev" }],
    ["navigate", { action: "goto", slide: "dosing" }],
    ["navigate", { action: "goto", slide: "pi-1", presentation: "pi" }],
    ["track", { event: "video_play", data: {} }],
    ["answer", { question: "q1", answers: ["a", "b"], text: "Which?" }],
    ["answer", { question: "q2", answers: ["c"] }],
    ["react", { value: "neutral" }],
    ["follow_up", { topic: "safety" }],
    ["follow_up", { topic: "dosing", note: "renal" }],
    ["advocacy", { action: "agreed_to_speak" }],
    ["context", {}],
    ["state.save", { key: "k", value: { x: 1 } }],
    ["state.save", { key: "u", value: null }],
    ["state.load", { key: "k" }],
  ]);
  const ids = env.sent.map((m) => m.id);
  assert.deepEqual(ids, ids.map((_, i) => i + 1));
  env.answerAll();
});

test("concurrent calls are resolved by id whatever the reply order", async () => {
  const env = createEnv().loadEdetail();
  const ed = env.edetail;
  const a = ed.state.load("a");
  const b = ed.state.load("b");
  const c = ed.context();
  const [ma, mb, mc] = env.calls();
  assert.equal(env.reply(mc.id, { call: { id: "C" } }), true);
  assert.equal(env.reply(ma.id, { value: "A" }), true);
  assert.equal(env.reply(mb.id, { value: "B" }), true);
  assert.equal(await a, "A");
  assert.equal(await b, "B");
  assert.deepEqual(plain(await c), { call: { id: "C" } });
  assert.equal(env.reply(mb.id, { value: "again" }), false, "a second reply to the same id is ignored");
});

test("ok:false rejects with an Error carrying the reply's code and message", async () => {
  const env = createEnv().loadEdetail();
  const p = env.edetail.react("meh");
  env.fail(env.last().id, "invalid_params", "react: value must be positive, neutral or negative");
  const err = await rejection(p);
  assert.equal(err.name, "Error");
  assert.equal(err.code, "invalid_params");
  assert.equal(err.message, "react: value must be positive, neutral or negative");
});

test("a call without a reply rejects with code timeout (default 10 s, configurable)", async () => {
  const env = createEnv().loadEdetail();
  assert.equal(env.edetail.timeout, 10000);
  env.edetail.timeout = 25;
  const p = env.edetail.track("x", {});
  const id = env.last().id;
  const err = await rejection(p);
  assert.equal(err.code, "timeout");
  assert.match(err.message, /track/);
  assert.equal(env.reply(id, {}), false, "a late reply is ignored");
});

test("malformed or unknown replies are ignored safely and leave pending calls intact", async () => {
  const env = createEnv().loadEdetail();
  const p = env.edetail.state.load("k");
  const id = env.last().id;
  const ed = env.edetail;
  for (const bad of ["not json", "", "[]", "42", "null", '{"v":1}', '{"v":1,"id":999,"ok":true,"result":{}}',
    '{"v":1,"id":null,"ok":false,"error":{"code":"malformed","message":"not JSON"}}']) {
    assert.equal(ed._receive(bad), false, bad);
  }
  assert.equal(ed._receive(undefined), false);
  assert.equal(ed._receive(null), false);
  assert.ok(env.logs.some((l) => l.level === "warn"), "ignored replies are logged");
  assert.equal(env.reply(id, { value: 7 }), true);
  assert.equal(await p, 7);
});

test("a reply for a known id without ok rejects with bad_reply", async () => {
  const env = createEnv().loadEdetail();
  const p = env.edetail.context();
  env.edetail._receive(JSON.stringify({ v: 1, id: env.last().id, result: {} }));
  assert.equal((await rejection(p)).code, "bad_reply");
});

test("params that are not JSON reject with invalid_params and send nothing", async () => {
  const env = createEnv().loadEdetail();
  const data = {};
  data.self = data;
  const before = env.sent.length;
  assert.equal((await rejection(env.edetail.track("loop", data))).code, "invalid_params");
  assert.equal(env.sent.length, before);
});

test("including edetail.js twice keeps one instance, one hello and the pending calls", async () => {
  const env = createEnv().loadEdetail();
  const first = env.edetail;
  const p = first.state.load("k");
  const id = env.last().id;
  env.loadEdetail();
  assert.equal(env.edetail, first);
  assert.equal(env.sent.filter((m) => m.method === "hello").length, 1);
  env.reply(id, { value: "kept" });
  assert.equal(await p, "kept");
  env.edetail.context();
  assert.equal(env.last().id, id + 1, "ids keep counting");
  env.answerAll();
});

test("hello is sent on load, after the document is parsed; edetail.ready gets the context", async () => {
  const env = createEnv({ readyState: "loading", meta: "intro", host: cardiozenHost() }).loadEdetail();
  assert.equal(env.sent.length, 0, "nothing before DOMContentLoaded");
  env.fireDom("DOMContentLoaded");
  assert.equal(env.sent.length, 1);
  assert.deepEqual(env.sent[0], { v: 1, id: 1, method: "hello", params: {}, slide: "intro", bundle: BUNDLE });
  const ctx = plain(await env.edetail.ready);
  assert.equal(ctx.call.id, "call-0001");
  env.fireDom("DOMContentLoaded");
  assert.equal(env.sent.length, 1, "hello is sent once");
});

test("hello is sent at once when the document is already parsed; a failed hello gives ready null", async () => {
  const env = createEnv().loadEdetail();
  assert.equal(env.sent[0].method, "hello");
  env.fail(1, "no_call", "no call is open");
  assert.equal(await env.edetail.ready, null);
});

test("Android transport: window.EdetailAndroid.postMessage, replies through _receive", async () => {
  const env = createEnv({ transport: "android" }).loadEdetail();
  assert.equal(env.edetail.transport, "android");
  const p = env.edetail.state.load("k");
  const m = env.last();
  assert.equal(m._android, true);
  assert.equal(m.method, "state.load");
  env.reply(m.id, { value: [1, 2] });
  assert.deepEqual(plain(await p), [1, 2]);
});

test("the webkit handler is preferred when both native interfaces exist", () => {
  const env = createEnv({ transport: "both" }).loadEdetail();
  assert.equal(env.edetail.transport, "webkit");
  env.edetail.track("x", {});
  assert.equal(env.last()._android, undefined);
  env.answerAll();
});

test("HTTP transport: POST /_edetail/bridge, the response body is the reply", async () => {
  const env = createEnv({ transport: "http" }).loadEdetail();
  assert.equal(env.edetail.transport, "http");
  const p = env.edetail.track("chart_toggle", { endpoint: "cvd" });
  const f = env.fetches[1];
  assert.equal(f.url, "/_edetail/bridge");
  assert.equal(f.init.method, "POST");
  assert.equal(typeof f.init.body, "string");
  assert.equal(JSON.parse(f.init.body).method, "track");
  const id = env.last().id;
  env.respond(id, 200, { v: 1, id, ok: true, result: { event_id: "e-1" } });
  assert.deepEqual(plain(await p), { event_id: "e-1" });
});

test("HTTP transport: concurrent requests answered out of order", async () => {
  const env = createEnv({ transport: "http" }).loadEdetail();
  const a = env.edetail.state.load("a");
  const b = env.edetail.state.load("b");
  const [ma, mb] = env.calls();
  env.respond(mb.id, 200, { v: 1, id: mb.id, ok: true, result: { value: "B" } });
  env.respond(ma.id, 200, { v: 1, id: ma.id, ok: true, result: { value: "A" } });
  assert.deepEqual([await a, await b], ["A", "B"]);
});

test("HTTP transport: ok:false, non-2xx, bad body and network failure reject with a code", async () => {
  const env = createEnv({ transport: "http" }).loadEdetail();
  const ed = env.edetail;

  const p1 = ed.react("x");
  const id1 = env.last().id;
  env.respond(id1, 200, { v: 1, id: id1, ok: false, error: { code: "invalid_params", message: "bad value" } });
  const e1 = await rejection(p1);
  assert.deepEqual([e1.code, e1.message], ["invalid_params", "bad value"]);

  const p2 = ed.context();
  env.respond(env.last().id, 500, "Internal Server Error");
  const e2 = await rejection(p2);
  assert.equal(e2.code, "http_error");
  assert.equal(e2.status, 500);

  const p3 = ed.context();
  env.respond(env.last().id, 400, { v: 1, id: null, ok: false, error: { code: "malformed", message: "not JSON" } });
  assert.equal((await rejection(p3)).code, "malformed", "a non-2xx reply body's own code wins");

  const p4 = ed.context();
  env.respond(env.last().id, 200, "<html>proxy error</html>");
  assert.equal((await rejection(p4)).code, "bad_reply");

  const p5 = ed.context();
  env.respond(env.last().id, 200, { v: 1, id: null, ok: false, error: { code: "malformed", message: "missing method" } });
  assert.equal((await rejection(p5)).code, "malformed", "the HTTP reply answers its own request even with id null");
});

test("HTTP transport: a network failure rejects with code network", async () => {
  const env = createEnv({
    transport: "http",
    fetch: () => Promise.reject(new TypeError("Failed to fetch")),
  }).loadEdetail();
  const err = await rejection(env.edetail.track("x", {}));
  assert.equal(err.code, "network");
  assert.match(err.message, /Failed to fetch/);
});

test("navigate sets location.href to the result url only over HTTP", async () => {
  const url = "/com.example.cardiozen.launch/slides/safety-ae/index.html";
  for (const transport of ["http", "webkit", "android"]) {
    const env = createEnv({ transport, host: cardiozenHost() }).loadEdetail();
    const result = plain(await env.edetail.goTo("safety-ae"));
    assert.equal(result.url, url, transport);
    await env.edetail.next();
    await env.edetail.prev();
    if (transport === "http") assert.deepEqual(env.navigations, [url, url, url]);
    else assert.deepEqual(env.navigations, [], transport + " shells navigate themselves");
  }
});

test("a navigate result with moved: false (next on the last slide) loads nothing", async () => {
  const url = "/com.example.cardiozen.launch/slides/closing/index.html";
  const env = createEnv({ transport: "http", host: cardiozenHost({
    navigate: () => ({ result: { slide: "closing", presentation: "main", url, moved: false } }) }) }).loadEdetail();
  const result = plain(await env.edetail.next());
  assert.equal(result.moved, false);
  assert.deepEqual(env.navigations, []);
  assert.equal(env.edetail._follow({ url, moved: true }), true, "_follow is the shared helper");
  assert.equal(env.edetail._follow({ url, moved: false }), false);
  assert.deepEqual(env.navigations, [url]);
});

test("a failed navigation does not touch location", async () => {
  const env = createEnv({ transport: "http", host: cardiozenHost({ navigate: () => ({ error: { code: "not_found", message: "no slide" } }) }) }).loadEdetail();
  assert.equal((await rejection(env.edetail.goTo("nope"))).code, "not_found");
  assert.deepEqual(env.navigations, []);
});

test("offline (file:) mode resolves {offline: true}, logs, and sends nothing", async () => {
  const env = createEnv({ transport: "none", fetch: () => assert.fail("must not fetch from file:") }).loadEdetail();
  const ed = env.edetail;
  assert.equal(ed.transport, "offline");
  assert.deepEqual(plain(await ed.track("chart_toggle", { a: 1 })), { offline: true });
  assert.deepEqual(plain(await ed.goTo("dosing")), { offline: true });
  assert.equal(await ed.state.load("k"), null);
  assert.equal(env.sent.length, 0);
  assert.deepEqual(env.navigations, []);
  assert.ok(env.logs.some((l) => /offline/.test(l.text) && /track/.test(l.text)), "calls are logged");
  await settle();
  assert.equal(ed._pendingCount(), 0);
});

test("a transport that throws rejects the call with code transport", async () => {
  const env = createEnv().loadEdetail();
  env.window.webkit.messageHandlers.edetail.postMessage = () => { throw new Error("handler gone"); };
  const err = await rejection(env.edetail.context());
  assert.equal(err.code, "transport");
  assert.equal(env.edetail._pendingCount(), 1, "only the unanswered hello is pending");
  env.answerAll();
});
