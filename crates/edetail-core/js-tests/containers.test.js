// Tests for crates/edetail-core/js/containers.js: the Veeva, Agnitio and OCE container emulation.
// Each test drives a miniature vendor-like library written here (from the transports' described
// behaviour, not vendor code) and checks what reaches the fake host and what comes back.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const { createEnv, plain, settle } = require("./harness");

/** A fake core: answers the vendor bridge methods the way ADR 0013 describes (simplified). */
function vendorHost(overrides = {}) {
  let n = 0;
  return (msg) => {
    if (overrides[msg.method]) {
      const r = overrides[msg.method](msg);
      if (r !== undefined) return r;
    }
    n += 1;
    switch (msg.method) {
      case "veeva.request": {
        let s = msg.params.request;
        try { s = decodeURIComponent(s); } catch (e) { /* as is */ }
        s = s.replace(/^veeva:/, "").replace(/[;\s]+$/, "");
        let callback = null, m;
        if ((m = /\),(\d+)$/.exec(s))) callback = Number(m[1]);
        else if ((m = /callback\(([\w$.]+)\)$/.exec(s))) callback = m[1];
        else if ((m = /,([\w$.]+)\(result\)$/.exec(s))) callback = m[1];
        return { result: { callback, result: { success: true, api: s.split("(")[0], n } } };
      }
      case "agnitio.invoke": {
        let fn = null;
        try { fn = JSON.parse(msg.params.params).resultFunction || null; } catch (e) {
          if (/^[\w$.]+$/.test(msg.params.params)) fn = msg.params.params;
        }
        return { result: { result: { api: msg.params.api, n }, result_function: fn } };
      }
      case "oce.call":
        return { result: { result: { request: msg.params.request, n } } };
      default:
        return { result: {} };
    }
  };
}

function containersEnv(opts = {}) {
  const env = createEnv(Object.assign({ host: vendorHost(opts.overrides || {}) }, opts));
  env.loadEdetail().loadContainers();
  return env;
}

/** Every string containers.js posts to the window must be JSON (deck libraries JSON.parse each
 * message). What a top-level deck posted to its own window (its requests) is left out. */
function assertAllJson(env) {
  const deck = new Set(env.calls("veeva.request").map((m) => m.params.request));
  for (const d of env.posted) {
    if (deck.has(d)) continue;
    assert.equal(typeof d, "string", "only strings are posted");
    assert.doesNotThrow(() => JSON.parse(d), "posted JSON: " + d);
  }
}

// ------------------------------------------------------------------ miniature vendor libraries

// Veeva-like, frame ("Engage") transport: posts to the parent with a numeric callback id as the
// last "),"-separated token; listens on its own window for JSON {"callback": id, ...}.
const ENGAGE_LIB = `
var miniEngage = (function () {
  var waiting = {}, next = 40;
  window.addEventListener("message", function (ev) {
    var data;
    try { data = JSON.parse(ev.data); } catch (e) { window.__notJson = (window.__notJson || 0) + 1; return; }
    if (data && waiting[data.callback]) { var cb = waiting[data.callback]; delete waiting[data.callback]; cb(data); }
  });
  function run(request, cb) {
    var id = ++next;
    waiting[id] = cb;
    var parts = request.split("),");
    parts[parts.length - 1] = String(id);
    window.parent.postMessage(parts.join("),"), "*");
  }
  return {
    save: function (values, cb) { run("veeva:saveObjectV2(Call_Clickstream_vod__c),value(" + JSON.stringify(values) + "),callback(x)", cb); },
    get: function (object, field, cb) { run("veeva:getDataForObjectV2(" + object + "),fieldName(" + field + "),callback(x)", cb); }
  };
})();`;

// Veeva-like, webkit transport: callback by a named global, request posted as {message}; falls
// back to document.location (which native shells intercept) when the handler is absent.
const WEBKIT_LIB = `
var miniVeeva = {
  locations: [],
  send: function (request) {
    if (window.parent === window && Boolean(window.webkit && window.webkit.messageHandlers && window.webkit.messageHandlers.veeva)) {
      window.webkit.messageHandlers.veeva.postMessage({ message: request });
    } else {
      miniVeeva.locations.push("veeva:" + encodeURIComponent(request.replace(/^veeva:/, "")));
    }
  },
  createRecord: function (object, values, cb) {
    window.com_veeva_clm_createRecord = function (r) { cb(r); };
    miniVeeva.send("veeva:saveObjectV2(" + object + "),value(" + JSON.stringify(values) + "),callback(com_veeva_clm_createRecord)");
  },
  gotoSlideOld: function (key, cb) {
    window.com_veeva_clm_gotoSlide = function (r) { cb(r); };
    miniVeeva.send("veeva:gotoSlide(" + key + "),com_veeva_clm_gotoSlide(result)");
  }
};`;

// Agnitio-like: selects the objc://iplanner interface from window.agnitioInfo at load (and when
// the container calls setAgnitioPlatform), invokes through a hidden iframe's src.
const AGNITIO_LIB = `
(function () {
  var iface = null;
  function choose(info) { if (info && info.localizedModel === "iPad") iface = "objc://iplanner"; }
  window.setAgnitioPlatform = function (json) { window.__platformCalls = (window.__platformCalls || 0) + 1; choose(JSON.parse(json)); };
  choose(window.agnitioInfo);
  function invoke(api, params) {
    if (!iface) { window.__noInterface = true; return; }
    var f = document.createElement("IFRAME");
    f.setAttribute("src", iface + "/" + api + "?" + encodeURIComponent(params));
    document.body.appendChild(f);
    f.parentNode.removeChild(f);
  }
  var ag = window.ag || {};
  ag.setAgnitioInterface = function () {};
  ag.submit = { event: function (d) { invoke("monitoringEvent", JSON.stringify({ type: "custom", category: d.category, label: d.label, value: d.value })); } };
  ag.data = {
    presenter: null,
    getPresenter: function () { invoke("getPresenter", '{"resultFunction": "ag.data._savePresenter"}'); },
    getCallContacts: function () { invoke("getCallContacts", "ag.data._saveContacts"); },
    _savePresenter: function (json) { ag.data.presenter = JSON.parse(json); },
    _saveContacts: function (json) { ag.data.contacts = JSON.parse(json); }
  };
  ag.viaSrc = function (api, params) { var f = document.createElement("iframe"); f.src = "objc://iplanner/" + api + "?" + encodeURIComponent(params); };
  ag.viaBeacon = function (api, params) { var i = new Image(); i.src = "objc://iplanner/" + api + "?" + encodeURIComponent(params); };
  window.ag = ag;
})();`;

// OCE-like clmplayer.js: posts JSON {request, params} to webkit nativeCall, or to the parent.
const CLMPLAYER_LIB = (target) => `
var CLMPlayer = {
  post: function (m) { ${target === "parent" ? "parent.postMessage(JSON.stringify(m), '*');" : "window.webkit.messageHandlers.nativeCall.postMessage(JSON.stringify(m));"} },
  gotoSlide: function (seq, slide, anim) { CLMPlayer.post({ request: "gotoSlide", params: { sequenceId: seq, slideName: slide, animation: anim } }); },
  startTrackingPage: function (pageid) { CLMPlayer.post({ request: "startTrackingPage", params: { pageid: pageid } }); },
  registeredEvents: {},
  registerEventListener: function (t, f) { (CLMPlayer.registeredEvents[t] = CLMPlayer.registeredEvents[t] || []).push(f); },
  executeEvent: function (t) { (CLMPlayer.registeredEvents[t] || []).forEach(function (f) { f(); }); }
};`;

// ------------------------------------------------------------------ Veeva

test("Veeva frame transport: the parent hands the raw string over, answers reach each numeric callback", async () => {
  const env = containersEnv({ frame: "shell" });
  env.run(ENGAGE_LIB);
  env.run(`window.__got = [];
    miniEngage.save({Track_Element_Id_vod__c: "chart", Answer_vod__c: "a),b"}, function (r) { __got.push(["save", r]); });
    miniEngage.get("Account", "Name", function (r) { __got.push(["get", r]); });`);
  await settle(10);
  const calls = env.calls("veeva.request");
  assert.equal(calls.length, 2);
  assert.deepEqual(calls.map((m) => m.params.request), env.parentPosts, "the raw strings, unchanged");
  assert.match(env.parentPosts[0], /^veeva:saveObjectV2\(Call_Clickstream_vod__c\),value\(.*\),41$/);
  const got = plain(env.run("__got"));
  assert.deepEqual(got.map((g) => [g[0], g[1].callback, g[1].api]).sort(), [
    ["get", 42, "getDataForObjectV2"], ["save", 41, "saveObjectV2"],
  ]);
  assert.equal(env.run("window.__notJson"), undefined);
  assert.equal(env.posted.length, 2);
  assertAllJson(env);
});

test("fromFrameMessage ignores what is not a vendor request and returns false", () => {
  const env = containersEnv({ frame: true });
  const c = env.window.edetailContainers;
  assert.equal(c.veeva.fromFrameMessage('{"name":"navigate","path":"x"}'), false);
  assert.equal(c.fromFrameMessage({ not: "a string" }), false);
  assert.equal(c.fromFrameMessage("veeva:gotoSlide(a.zip),1"), true);
  assert.equal(c.fromFrameMessage('{"request":"goNextSequence","params":{}}'), true);
});

test("Veeva webkit transport where the page can add handlers (Android, browser): named global callbacks", async () => {
  for (const transport of ["android", "webkit"]) {
    const env = containersEnv({ transport });
    env.run(WEBKIT_LIB);
    env.run(`window.__got = [];
      miniVeeva.createRecord("Call_Clickstream_vod__c", {Answer_vod__c: "1"}, function (r) { __got.push(r); });
      miniVeeva.gotoSlideOld("CZ_PI.zip", function (r) { __got.push(r); });`);
    await settle(10);
    assert.deepEqual(plain(env.run("miniVeeva.locations")), [], transport);
    assert.deepEqual(env.calls("veeva.request").map((m) => m.params.request), [
      'veeva:saveObjectV2(Call_Clickstream_vod__c),value({"Answer_vod__c":"1"}),callback(com_veeva_clm_createRecord)',
      "veeva:gotoSlide(CZ_PI.zip),com_veeva_clm_gotoSlide(result)",
    ]);
    assert.deepEqual(plain(env.run("__got")).map((r) => r.api), ["saveObjectV2", "gotoSlide"]);
    assert.equal(env.window.edetailContainers.webkit.veeva, "page");
  }
});

test("containers.js never changes edetail.js's transport choice (no messageHandlers.edetail)", () => {
  for (const transport of ["android", "http", "none"]) {
    const env = containersEnv({ transport });
    assert.equal(env.window.webkit.messageHandlers.edetail, undefined, transport);
    assert.equal(typeof env.window.webkit.messageHandlers.veeva.postMessage, "function");
    assert.equal(typeof env.window.webkit.messageHandlers.nativeCall.postMessage, "function");
    env.loadEdetail(); // a second include keeps the first instance and its transport
    assert.equal(env.edetail.transport, transport === "none" ? "offline" : transport);
    // A fresh edetail.js would still pick the same transport.
    const fresh = createEnv({ transport });
    fresh.window.webkit = env.window.webkit;
    fresh.loadEdetail();
    assert.equal(fresh.edetail.transport, transport === "none" ? "offline" : transport);
  }
});

test("iOS with native message handlers: the shell's veeva handler calls edetailContainers.veeva.request", async () => {
  let env;
  const nativeHandlers = {
    edetail: undefined, // placeholder replaced below (edetail transport comes from opts.transport)
    veeva: (value) => setTimeout(() => env.window.edetailContainers.veeva.request(value), 0),
    nativeCall: (value) => setTimeout(() => env.window.edetailContainers.oce.nativeCall(value), 0),
  };
  delete nativeHandlers.edetail;
  env = createEnv({ transport: "webkit", nativeHandlers, host: vendorHost() });
  env.loadEdetail().loadContainers();
  assert.deepEqual(plain(env.window.edetailContainers.webkit), { veeva: "native", nativeCall: "native" });
  env.run(WEBKIT_LIB);
  env.run(`window.__got = []; miniVeeva.createRecord("Call_Clickstream_vod__c", {a: 1}, function (r) { __got.push(r); });`);
  env.run(CLMPLAYER_LIB("webkit") + `CLMPlayer.startTrackingPage("p1");`);
  await settle(10);
  assert.equal(env.calls("veeva.request")[0].params.request,
    'veeva:saveObjectV2(Call_Clickstream_vod__c),value({"a":1}),callback(com_veeva_clm_createRecord)');
  assert.equal(plain(env.run("__got"))[0].success, true);
  assert.deepEqual(env.calls("oce.call").map((m) => m.params), [{ request: "startTrackingPage", params: { pageid: "p1" } }]);
});

test("Veeva document.location requests: the shell's veeva.request(url) calls the named global back", async () => {
  const env = containersEnv({ frame: true });
  env.run(WEBKIT_LIB); // in a frame: the library falls back to document.location
  env.run(`window.__got = []; miniVeeva.createRecord("Call_Clickstream_vod__c", {q: "a b&c"}, function (r) { __got.push(r); });`);
  const url = env.run("miniVeeva.locations[0]");
  assert.match(url, /^veeva:saveObjectV2\(Call_Clickstream_vod__c\)%2Cvalue\(%7B/);
  env.window.edetailContainers.veeva.request(url); // what a native shell does
  await settle(10);
  assert.equal(env.calls("veeva.request")[0].params.request, url, "still URI-encoded: the core decodes");
  assert.equal(plain(env.run("__got"))[0].api, "saveObjectV2");
});

test("Navigation API: veeva: and objc:// navigations are cancelled and forwarded, others proceed", async () => {
  const env = createEnv({ host: vendorHost() });
  // Chromium's window.navigation: a cancelable "navigate" event for every navigation the page starts.
  const listeners = [];
  env.window.navigation = { addEventListener: (type, fn) => { if (type === "navigate") listeners.push(fn); } };
  env.loadEdetail().loadContainers();
  assert.equal(env.window.edetailContainers.navigations, true);
  const go = (url) => {
    const ev = { destination: { url }, cancelable: true, prevented: false, preventDefault() { this.prevented = true; } };
    listeners.forEach((fn) => fn(ev));
    return ev.prevented;
  };
  env.run("window.__got = []; window.cbLoc = function (r) { __got.push(r); };");
  const req = "veeva:saveObjectV2(Call_Clickstream_vod__c)%2Cvalue(%7B%22a%22%3A1%7D)%2Ccallback(cbLoc)";
  assert.equal(go(req), true, "document.location = veeva:... is cancelled");
  assert.equal(go("objc://iplanner/monitoringEvent?%7B%22category%22%3A%22slideEnter%22%7D"), true);
  assert.equal(go("http://127.0.0.1/com.x/slides/b/index.html"), false, "ordinary navigations proceed");
  await settle(10);
  assert.deepEqual(env.calls("veeva.request").map((m) => m.params.request), [req]);
  assert.deepEqual(env.calls("agnitio.invoke").map((m) => [m.params.api, m.params.params]), [["monitoringEvent", '{"category":"slideEnter"}']]);
  assert.equal(plain(env.run("__got")).length, 1, "the named callback is answered");
  // Without the Navigation API (WKWebView today) the shell does it: nothing is registered here.
  assert.equal(containersEnv().window.edetailContainers.navigations, false);
});

test("Veeva: a failed bridge request still answers the callback named in the request (2100)", async () => {
  const env = containersEnv({
    overrides: { "veeva.request": () => ({ error: { code: "no_call", message: "no call open" } }) },
  });
  env.run(ENGAGE_LIB + WEBKIT_LIB);
  env.run(`window.__got = [];
    miniEngage.save({a: 1}, function (r) { __got.push(r); });
    miniVeeva.createRecord("Call_Clickstream_vod__c", {a: 1}, function (r) { __got.push(r); });`);
  await settle(10);
  const got = plain(env.run("__got"));
  assert.equal(got.length, 2);
  for (const r of got) {
    assert.equal(r.success, false);
    assert.equal(r.code, 2100);
    assert.match(r.message, /no_call/);
  }
  assert.ok(env.logs.some((l) => l.level === "warn" && /^\[edetail\] veeva\.request failed/.test(l.text)));
  assertAllJson(env);
});

test("Veeva offline page (file:): the deck gets a failure answer, nothing is thrown", async () => {
  const env = containersEnv({ transport: "none" });
  env.run(WEBKIT_LIB + `window.__got = []; miniVeeva.gotoSlideOld("A.zip", function (r) { __got.push(r); });`);
  await settle(10);
  assert.deepEqual(plain(env.run("__got")), [{ success: false, code: 2100, message: "edetail is offline; the request was logged" }]);
});

test("a top-level library posting to window.parent (its own window) is still forwarded", async () => {
  const env = containersEnv();
  env.run(ENGAGE_LIB + `window.__got = []; miniEngage.get("User", "ID", function (r) { __got.push(r.callback); });`);
  env.run(CLMPLAYER_LIB("parent") + `CLMPlayer.gotoSlide("seq-1", "slide-2", "fade");`);
  await settle(10);
  assert.deepEqual(env.calls().map((m) => m.method).sort(), ["oce.call", "veeva.request"]);
  assert.deepEqual(plain(env.run("__got")), [41]);
  assert.deepEqual(env.calls("oce.call")[0].params, { request: "gotoSlide", params: { sequenceId: "seq-1", slideName: "slide-2", animation: "fade" } });
  assertAllJson(env);
});

test("a non-string Veeva message is recorded as vendor.unsupported, not dropped", async () => {
  const env = containersEnv({ transport: "android" });
  env.run(`window.webkit.messageHandlers.veeva.postMessage({ notMessage: 1 })`);
  await settle();
  assert.deepEqual(env.calls().map((m) => [m.method, m.params.vendor, m.params.api]), [["vendor.unsupported", "veeva", "postMessage"]]);
});

// ------------------------------------------------------------------ navigate in results

test("a navigate in a vendor result is followed over HTTP only, and never when moved is false", async () => {
  const url = "/com.example.cardiozen.launch/slides/safety-ae/index.html";
  let moved = true;
  const overrides = {
    "oce.call": () => ({ result: { result: {}, navigate: { slide: "safety-ae", presentation: "main", url, moved } } }),
  };
  for (const transport of ["http", "webkit"]) {
    moved = true;
    const env = containersEnv({ transport, overrides });
    env.window.CLMPlayer.goNextSequence();
    await settle(10);
    moved = false;
    env.window.CLMPlayer.goNextSequence();
    await settle(10);
    assert.equal(env.calls("oce.call").length, 2);
    assert.deepEqual(env.navigations, transport === "http" ? [url] : [], transport);
  }
});

// ------------------------------------------------------------------ Agnitio

test("Agnitio: agnitioInfo selects objc://iplanner; iframe invocations are swallowed and forwarded decoded", async () => {
  const env = containersEnv();
  assert.equal(env.window.agnitioInfo.localizedModel, "iPad");
  env.run(AGNITIO_LIB);
  env.run(`ag.submit.event({category: "Chart", label: "toggle", value: "HF & hosp"});
    ag.data.getPresenter(); ag.data.getCallContacts();
    ag.viaSrc("openPDF", "docs/pi.pdf"); ag.viaBeacon("monitoringEvent", '{"category":"beacon"}');`);
  await settle(10);
  assert.deepEqual(env.loads, [], "no objc:// URL ever loads");
  assert.equal(env.document.body.children.length, 0);
  assert.deepEqual(env.calls("agnitio.invoke").map((m) => m.params), [
    { api: "monitoringEvent", params: '{"type":"custom","category":"Chart","label":"toggle","value":"HF & hosp"}' },
    { api: "getPresenter", params: '{"resultFunction": "ag.data._savePresenter"}' },
    { api: "getCallContacts", params: "ag.data._saveContacts" },
    { api: "openPDF", params: "docs/pi.pdf" },
    { api: "monitoringEvent", params: '{"category":"beacon"}' },
  ]);
  assert.deepEqual(plain(env.run("ag.data.presenter")), { api: "getPresenter", n: 3 }, "result function got JSON");
  assert.deepEqual(plain(env.run("ag.data.contacts")), { api: "getCallContacts", n: 4 });
});

test("Agnitio: setAgnitioPlatform is called with the platform JSON once the document is parsed", async () => {
  const env = createEnv({ host: vendorHost(), readyState: "loading" });
  env.loadEdetail().loadContainers();
  env.run("delete window.agnitioInfo;"); // a library that only learns the platform from the hook
  env.run(AGNITIO_LIB);
  env.run("ag.submit.event({category: 'c', label: 'l', value: 'v'})");
  assert.equal(env.run("window.__noInterface"), true);
  env.fireDom("DOMContentLoaded");
  env.fireWindow("load");
  assert.equal(env.run("window.__platformCalls"), 1);
  env.run("ag.submit.event({category: 'c', label: 'l', value: 'v'})");
  await settle(10);
  assert.equal(env.calls("agnitio.invoke").length, 1);
});

test("other src values load normally; objc:// of another host is recorded as unsupported", async () => {
  const env = containersEnv();
  env.run(`var f = document.createElement("iframe"); f.setAttribute("src", "video.html"); f.src = "other.html";
    var g = document.createElement("iframe"); g.setAttribute("src", "objc://engager/doThing?x%3D1");`);
  await settle(10);
  assert.deepEqual(env.loads.map((l) => l.url), ["video.html", "other.html"]);
  assert.deepEqual(env.calls().map((m) => [m.method, m.params.vendor, m.params.api, m.params.args]), [
    ["vendor.unsupported", "agnitio", "objc://engager/doThing", ["x=1"]],
  ]);
});

test("the ag stand-in (no Agnitio library) goes through the same objc:// path, and survives window.ag = {}", async () => {
  const env = containersEnv({ readyState: "loading" });
  env.run(`ag.submit.slide({id: "s1", name: "Intro"}); ag.submit.slide({id: "s2", name: "Efficacy", chapter: "Main"});
    ag.submit.document("pi.pdf", "PI"); ag.submit.reference("r1", "Ref 1"); ag.submit.data({category: "c", label: "l", value: 1});
    ag.openPDF("docs/pi.pdf"); ag.sendMail("a@example.com", "s", "b", ["x.pdf"]);
    ag.data.getPresenter(); ag.data.getCallContacts(); ag.data.getCallAttributes(["Region"]);`);
  await settle(10);
  const calls = env.calls("agnitio.invoke").map((m) => m.params);
  assert.deepEqual(calls.map((p) => p.api), ["monitoringEvent", "monitoringEvent", "monitoringEvent", "monitoringEvent",
    "monitoringEvent", "monitoringEvent", "openPDF", "sendMail", "getPresenter", "getCallContacts", "getMeetingDynamicAttributes"]);
  assert.deepEqual(calls.slice(0, 6).map((p) => JSON.parse(p.params).category),
    ["slideEnter", "slideExit", "slideEnter", "documentOpen", "referenceOpen", "c"]);
  assert.equal(JSON.parse(calls[0].params).valueId, "s1");
  assert.deepEqual(plain(env.run("ag.data.presenter")), { api: "getPresenter", n: 9 });
  assert.equal(typeof env.run("ag.getVersion()"), "string");
  // A deck replaces the global after us: the stand-in is re-asserted when the document is parsed.
  env.run("window.ag = {};");
  env.fireDom("DOMContentLoaded");
  env.run("ag.submit.event({category: 'after', label: 'l', value: 'v'})");
  await settle(10);
  assert.equal(JSON.parse(env.calls("agnitio.invoke").pop().params.params).category, "after");
  assert.deepEqual(env.loads, []);
});

test("ag.on / off / publish are page-local", async () => {
  const env = containersEnv();
  env.run(`window.__ev = []; var t = ag.on("monitoringEvent", function (d) { __ev.push(d.category); });
    ag.submit.event({category: "one", label: "l", value: 1});`);
  await settle();
  env.run(`ag.off(t); ag.submit.event({category: "two", label: "l", value: 1}); ag.publish("x", 1);`);
  await settle();
  assert.deepEqual(plain(env.run("__ev")), ["one"]);
});

test("a deck's own Agnitio library is kept, not mixed with the stand-in", () => {
  const env = containersEnv();
  env.run("window.ag = undefined;");
  env.run(AGNITIO_LIB);
  env.window.edetailContainers.install();
  assert.equal(env.run("typeof ag.openPDF"), "undefined", "nothing of ours added to a real library");
});

// ------------------------------------------------------------------ OCE

test("CLMPlayer stand-in: each call goes through oce.call with named params", async () => {
  const env = containersEnv();
  const args17 = Array.from({ length: 17 }, (_, i) => "v" + i);
  env.run(`CLMPlayer.gotoSlide("seq-1", "slide-3", "none"); CLMPlayer.goNextSequence(); CLMPlayer.goPreviousSequence();
    CLMPlayer.addAction.apply(null, ${JSON.stringify(args17)});
    CLMPlayer.startTrackingPage("p-1"); CLMPlayer.stopTrackingPage(); CLMPlayer.saveState("{\\"a\\":1}"); CLMPlayer.alert("hi");
    CLMPlayer.defineNoSwipeRegion("r", 1, 2, 3, 4); CLMPlayer.destroyNoSwipeRegion("r");
    CLMPlayer.getSurveyFlowJson("{}"); CLMPlayer.getSurveyFlowJsonForCall("{}"); CLMPlayer.updateFeedback("like");`);
  await settle(10);
  const calls = env.calls("oce.call").map((m) => m.params);
  assert.deepEqual(calls.map((c) => c.request), ["gotoSlide", "goNextSequence", "goPreviousSequence", "addAction",
    "startTrackingPage", "stopTrackingPage", "saveState", "alert", "defineNoSwipeRegion", "destroyNoSwipeRegion",
    "getSurveyFlowJson", "getSurveyFlowJsonForCall", "updateFeedback"]);
  assert.deepEqual(calls[0].params, { sequenceId: "seq-1", slideName: "slide-3", animation: "none" });
  assert.deepEqual(Object.keys(calls[3].params), ["action__c", "detailedtime__c", "fromtime__c", "totime__c", "product__c",
    "pageid__c", "productmessageexternalid__c", "slideorder__c", "category__c", "reaction__c", "questionraised__c",
    "extra1__c", "extra2__c", "extra3__c", "extra4__c", "extra5__c", "assets"]);
  assert.equal(calls[3].params.assets, "v16");
  assert.deepEqual(calls[8].params, { regionId: "r", x: 1, y: 2, width: 3, height: 4 });
  assert.equal(env.window.edetailContainers.oce.player, env.window.CLMPlayer);
  // concurrent calls each resolve with their own answer
  const [a, b] = await Promise.all([env.window.CLMPlayer.startTrackingPage("x"), env.window.CLMPlayer.stopTrackingPage()]);
  assert.deepEqual([plain(a).request, plain(b).request], ["startTrackingPage", "stopTrackingPage"]);
});

test("CLMPlayer stand-in: calls it does not know still reach the core (recorded there as unsupported)", async () => {
  const env = containersEnv();
  env.run(`CLMPlayer.openDocument("doc-1", {page: 2}); CLMPlayer.sendEmail("tpl", function () {});`);
  await settle(10);
  assert.deepEqual(env.calls("oce.call").map((m) => plain(m.params)), [
    { request: "openDocument", params: { args: ["doc-1", { page: 2 }] } },
    { request: "sendEmail", params: { args: ["tpl", "[function]"] } },
  ]);
  // What programs probe without calling stays undefined (a thenable player would break await).
  assert.equal(env.run("typeof CLMPlayer.then + typeof CLMPlayer.toJSON + typeof CLMPlayer._secret"), "undefinedundefinedundefined");
  assert.equal(env.run("CLMPlayer === window.edetailContainers.oce.player"), true);
  assert.equal(env.calls("oce.call").length, 2, "probing sent nothing");
});

test("CLMPlayer events: viewappearing after load, viewdisappearing at pagehide", () => {
  const env = containersEnv();
  env.run(`window.__ev = []; CLMPlayer.registerEventListener("viewappearing", function () { __ev.push("in"); });
    CLMPlayer.registerEventListener("viewdisappearing", function () { __ev.push("out"); });
    CLMPlayer.executeEvent("custom");`);
  env.fireWindow("load");
  env.fireWindow("pagehide", { persisted: false });
  env.fireWindow("pagehide", { persisted: false });
  assert.deepEqual(plain(env.run("__ev")), ["in", "out"]);
  assert.equal(env.calls().length, 0, "events are page-local");
});

test("a deck's own clmplayer.js posting to webkit nativeCall is kept and forwarded; its events fire", async () => {
  const env = containersEnv({ transport: "android" });
  env.run(CLMPLAYER_LIB("webkit") + `window.__ev = []; CLMPlayer.registerEventListener("viewappearing", function () { __ev.push("in"); });
    CLMPlayer.gotoSlide("seq", "s", "fade");`);
  env.fireDom("DOMContentLoaded");
  env.fireWindow("load");
  assert.notEqual(env.window.CLMPlayer, env.window.edetailContainers.oce.player, "the deck's CLMPlayer is kept");
  env.run(`window.webkit.messageHandlers.nativeCall.postMessage("not json")`);
  await settle(10);
  assert.deepEqual(plain(env.run("__ev")), ["in"]);
  assert.deepEqual(env.calls().map((m) => [m.method, m.params.request || m.params.api]), [
    ["oce.call", "gotoSlide"], ["vendor.unsupported", "nativeCall"],
  ]);
});

test("decks redefining CLMPlayer, ag, com and edetail after load still record", async () => {
  const env = containersEnv({ readyState: "loading", transport: "android" });
  env.run("var com; var ag; window.CLMPlayer = undefined; window.edetail = { _request: function () { throw new Error('deck edetail'); } };");
  env.fireDom("DOMContentLoaded");
  env.run(WEBKIT_LIB + `window.__got = [];
    miniVeeva.createRecord("Call_Clickstream_vod__c", {a: 1}, function (r) { __got.push(r.success); });
    CLMPlayer.goNextSequence(); ag.submit.event({category: "c", label: "l", value: 1});`);
  await settle(10);
  assert.deepEqual(env.calls().map((m) => m.method), ["veeva.request", "oce.call", "agnitio.invoke"]);
  assert.deepEqual(plain(env.run("__got")), [true]);
});

// ------------------------------------------------------------------ loading

test("without edetail.js containers.js logs a clear error; included twice it keeps one instance", () => {
  const bare = createEnv();
  bare.loadContainers();
  assert.equal(bare.window.edetailContainers, undefined);
  assert.ok(bare.logs.some((l) => l.level === "error" && /^\[edetail\] .*edetail\.js/.test(l.text)));
  const env = containersEnv();
  const first = env.window.edetailContainers;
  env.loadContainers();
  assert.equal(env.window.edetailContainers, first);
  assert.equal(env.windowListeners.message.length, 1);
});

test("console output is prefixed [edetail] and carries no request content", async () => {
  const env = containersEnv({ overrides: { "veeva.request": () => ({ error: { code: "storage", message: "disk full" } }) } });
  env.window.edetailContainers.veeva.request('veeva:saveObjectV2(Call_Clickstream_vod__c),value({"Name":"Dr. Jane Doe"}),callback(cb)');
  await settle(10);
  assert.ok(env.logs.length > 0);
  for (const l of env.logs) {
    assert.match(l.text, /^\[edetail\]/);
    assert.doesNotMatch(l.text, /Jane/);
  }
});
