/*
 * edetail.js: the slide side of the edetail bridge (protocol v1, docs/bridge-protocol.md).
 *
 * Served by the runtime at /_edetail/edetail.js and included by every slide as a classic
 * script. It defines `window.edetail`, whose functions turn API calls into JSON bridge messages
 * and return Promises settled by the host's reply. Plain ES2017, no dependencies, no modules;
 * including it twice is harmless (the second copy keeps the first one's state).
 *
 * Transport, chosen once at load, first that exists:
 *   1. iOS WKWebView   window.webkit.messageHandlers.edetail.postMessage(string)
 *   2. Android WebView window.EdetailAndroid.postMessage(string)
 *   3. http(s) page    POST /_edetail/bridge (`edetail preview`); the response body is the reply
 *   4. anything else   (file: from disk) offline: every call resolves {offline: true} and is logged
 * Native shells answer by evaluating `window.edetail._receive(replyString)`.
 *
 * Navigation: next/prev/goTo send `navigate`. Native shells load the resulting slide themselves,
 * so the page does nothing more; only over the HTTP (preview) transport does this script follow
 * the reply by setting `location.href = result.url`, and not when the reply says `moved: false`.
 */
(function (window) {
  "use strict";

  var existing = window.edetail;
  if (existing && existing._bridge === 1) return; // included twice: keep the first instance

  var VERSION = 1;
  var BRIDGE_URL = "/_edetail/bridge";
  var KEEPALIVE_MAX = 60000; // fetch keepalive bodies are capped (64 KiB) by browsers
  var document = window.document;
  var location = window.location;
  var console = window.console || { log: function () {}, info: function () {}, warn: function () {}, error: function () {} };

  var nextId = 0;
  var pending = {}; // id -> {resolve, reject, timer, method}

  function log(level) {
    var args = ["[edetail]"].concat([].slice.call(arguments, 1));
    try { (console[level] || console.log).apply(console, args); } catch (e) { /* no console */ }
  }

  function bridgeError(code, message, extra) {
    var err = new Error(message || code);
    err.code = code;
    if (extra) Object.keys(extra).forEach(function (k) { err[k] = extra[k]; });
    return err;
  }

  // ------------------------------------------------------------------ transport

  function pickTransport() {
    var wk = window.webkit && window.webkit.messageHandlers && window.webkit.messageHandlers.edetail;
    if (wk && typeof wk.postMessage === "function") return "webkit";
    var android = window.EdetailAndroid;
    if (android && typeof android.postMessage === "function") return "android";
    var protocol = (location && location.protocol) || "";
    if ((protocol === "http:" || protocol === "https:") && typeof window.fetch === "function") return "http";
    return "offline";
  }

  var transport = pickTransport();

  // ------------------------------------------------------------------ where the page is

  function whereAmI() {
    var slide = null, bundle = null;
    try {
      var meta = document && document.querySelector && document.querySelector('meta[name="edetail-slide"]');
      var content = meta && meta.getAttribute("content");
      if (content) slide = content.trim() || null;
    } catch (e) { /* no DOM */ }
    var path = (location && location.pathname) || "";
    var parts = path.split("/").filter(function (p) { return p !== ""; }).map(function (p) {
      try { return decodeURIComponent(p); } catch (e) { return p; }
    });
    if (parts.length >= 1 && parts[0] !== "_edetail") {
      bundle = parts[0];
      if (slide === null && parts.length >= 2) slide = parts.slice(1).join("/");
    }
    return { slide: slide, bundle: bundle };
  }

  // ------------------------------------------------------------------ replies

  function settle(id, reply) {
    var entry = pending[id];
    if (!entry) return false;
    delete pending[id];
    clearTimeout(entry.timer);
    if (reply.ok === true) {
      entry.resolve(reply.result === undefined || reply.result === null ? {} : reply.result);
    } else if (reply.ok === false) {
      var e = reply.error && typeof reply.error === "object" ? reply.error : {};
      entry.reject(bridgeError(typeof e.code === "string" ? e.code : "error",
        typeof e.message === "string" ? e.message : entry.method + " failed", { method: entry.method, id: id }));
    } else {
      entry.reject(bridgeError("bad_reply", "edetail: reply to " + entry.method + " has no \"ok\"", { method: entry.method, id: id }));
    }
    return true;
  }

  function parseReply(raw) {
    var reply = raw;
    if (typeof raw === "string") {
      try { reply = JSON.parse(raw); } catch (e) { return null; }
    }
    if (!reply || typeof reply !== "object" || Array.isArray(reply)) return null;
    return reply;
  }

  // Called by native shells with the reply string. Never throws; returns whether a pending call
  // was settled (unknown ids, late replies and malformed input are logged and ignored).
  function receive(raw) {
    try {
      var reply = parseReply(raw);
      if (!reply) { log("warn", "ignored a malformed reply", raw); return false; }
      if (reply.id === null || reply.id === undefined || !pending[reply.id]) {
        log("warn", "ignored a reply for no pending call", reply.id, reply.error || "");
        return false;
      }
      return settle(reply.id, reply);
    } catch (e) {
      log("error", "reply handling failed", e);
      return false;
    }
  }

  // ------------------------------------------------------------------ requests

  function sendHttp(id, body) {
    var init = { method: "POST", headers: { "Content-Type": "application/json" }, body: body };
    if (body.length <= KEEPALIVE_MAX) init.keepalive = true; // still delivered while the page unloads
    window.fetch(BRIDGE_URL, init).then(function (res) {
      return res.text().then(function (text) {
        if (!pending[id]) return;
        var reply = parseReply(text);
        if (!res.ok) {
          var e = reply && reply.ok === false && reply.error && typeof reply.error.code === "string" ? reply.error : null;
          var entry = pending[id];
          delete pending[id];
          clearTimeout(entry.timer);
          entry.reject(bridgeError(e ? e.code : "http_error",
            e && e.message ? e.message : "edetail: bridge answered HTTP " + res.status, { status: res.status, method: entry.method, id: id }));
          return;
        }
        if (!reply) {
          settle(id, { ok: null });
          return;
        }
        // The HTTP reply answers this request even when the host could not read its id.
        settle(id, reply);
      });
    }).catch(function (err) {
      var entry = pending[id];
      if (!entry) return;
      delete pending[id];
      clearTimeout(entry.timer);
      entry.reject(bridgeError("network", "edetail: bridge unreachable: " + (err && err.message ? err.message : err), { method: entry.method, id: id }));
    });
  }

  function request(method, params, options) {
    var timeoutMs = (options && options.timeout) || api.timeout || 10000;
    var where = whereAmI();
    var id = ++nextId;
    var body;
    try {
      body = JSON.stringify({ v: VERSION, id: id, method: method, params: params || {}, slide: where.slide, bundle: where.bundle });
    } catch (e) {
      return Promise.reject(bridgeError("invalid_params", "edetail: " + method + " params are not JSON: " + e.message, { method: method }));
    }
    if (transport === "offline") {
      log("info", "offline", method, params || {});
      return Promise.resolve({ offline: true });
    }
    return new Promise(function (resolve, reject) {
      var timer = setTimeout(function () {
        if (!pending[id]) return;
        delete pending[id];
        reject(bridgeError("timeout", "edetail: " + method + " got no reply within " + timeoutMs + " ms", { method: method, id: id }));
      }, timeoutMs);
      pending[id] = { resolve: resolve, reject: reject, timer: timer, method: method };
      try {
        if (transport === "webkit") window.webkit.messageHandlers.edetail.postMessage(body);
        else if (transport === "android") window.EdetailAndroid.postMessage(body);
        else sendHttp(id, body);
      } catch (e) {
        delete pending[id];
        clearTimeout(timer);
        reject(bridgeError("transport", "edetail: could not send " + method + ": " + (e && e.message ? e.message : e), { method: method, id: id }));
      }
    });
  }

  // Follows a navigate result ({slide, presentation, url, moved}). Native shells load the slide
  // themselves, so only the preview (HTTP) page sets location.href; `moved: false` (next on the
  // last slide, prev on the first) loads nothing. Shared with containers.js (`edetail._follow`).
  function follow(result) {
    if (transport === "http" && result && result.moved !== false && typeof result.url === "string" && result.url) {
      location.href = result.url;
      return true;
    }
    return false;
  }

  function navigate(params) {
    return request("navigate", params).then(function (result) {
      follow(result);
      return result;
    });
  }

  function opt(obj, key, value) {
    if (value !== undefined && value !== null && value !== "") obj[key] = value;
    return obj;
  }

  // ------------------------------------------------------------------ public API

  var api = {
    version: VERSION,
    transport: transport,
    timeout: 10000,
    next: function () { return navigate({ action: "next" }); },
    prev: function () { return navigate({ action: "prev" }); },
    goTo: function (slideId, presentationId) {
      return navigate(opt({ action: "goto", slide: slideId }, "presentation", presentationId));
    },
    track: function (eventName, data) {
      return request("track", { event: eventName, data: data === undefined || data === null ? {} : data });
    },
    answer: function (questionId, answers, questionText) {
      return request("answer", opt({ question: questionId, answers: answers || [] }, "text", questionText));
    },
    react: function (value) { return request("react", { value: value }); },
    followUp: function (topic, note) { return request("follow_up", opt({ topic: topic }, "note", note)); },
    advocacy: function (action) { return request("advocacy", { action: action }); },
    context: function () { return request("context", {}); },
    state: {
      save: function (key, value) { return request("state.save", { key: key, value: value === undefined ? null : value }); },
      load: function (key) {
        return request("state.load", { key: key }).then(function (r) {
          return r && !r.offline && r.value !== undefined ? r.value : null;
        });
      }
    },
    _bridge: 1,
    _receive: receive,
    _request: request,
    _navigate: navigate,
    _follow: follow,
    _pendingCount: function () { return Object.keys(pending).length; }
  };

  window.edetail = api;

  // hello: once the document is parsed, so a <meta name="edetail-slide"> after this script counts.
  function hello() {
    return request("hello", {}).catch(function (e) {
      log("warn", "hello failed", e && e.code, e && e.message);
      return null;
    });
  }
  // `edetail.ready` resolves with the hello reply (the context), or null when hello failed.
  if (document && document.readyState === "loading" && typeof document.addEventListener === "function") {
    api.ready = new Promise(function (resolve) {
      document.addEventListener("DOMContentLoaded", function onReady() {
        document.removeEventListener("DOMContentLoaded", onReady);
        resolve(hello());
      });
    });
  } else {
    api.ready = hello();
  }
})(typeof window !== "undefined" ? window : this);
