/*
 * containers.js: the page side of the vendor containers (ADR 0013, docs/bridge-protocol.md,
 * "Vendor containers").
 *
 * Real Veeva, Agnitio and OCE decks ship their vendor's library, which talks to a native
 * container over a transport. This script plays the container: it intercepts each transport
 * and forwards the RAW request to the core, which parses the vendor language:
 *
 *   veeva.request      {request}        -> {callback, result, navigate?}
 *   agnitio.invoke     {api, params}    -> {result, result_function, navigate?}
 *   oce.call           {request, params}-> {result, navigate?}
 *   vendor.unsupported {vendor, api, args} -> {}
 *
 * A `navigate` in any result is followed exactly as edetail.js follows its own (`edetail._follow`:
 * over HTTP the page sets location.href; native shells load the slide themselves; `moved: false`
 * loads nothing).
 *
 * Served at /_edetail/containers.js; loaded right after /_edetail/edetail.js and before any
 * content script. Plain ES2017 classic script, no dependencies. It keeps a private reference to
 * `window.edetail` taken at load, so a deck that overwrites `window.edetail` still records.
 *
 * Public surface: `window.edetailContainers` (see the bottom of this file and
 * crates/edetail-core/js/README.md).
 *
 * Shell duties this script cannot do in page JavaScript:
 * - `document.location = "veeva:..."`: the native shell intercepts the navigation and calls
 *   `window.edetailContainers.veeva.request(urlString)`.
 * - iOS: WKWebView's `window.webkit.messageHandlers` may refuse page-defined handlers; the iOS
 *   shell registers native `veeva` and `nativeCall` handlers that hand the posted value to
 *   `window.edetailContainers.veeva.request(value)` / `window.edetailContainers.oce.nativeCall(value)`.
 * - `objc://` URLs this script cannot see (`location.href = "objc://..."`, markup): the shell
 *   cancels the navigation and calls `window.edetailContainers.agnitio.invoke(url)`.
 * - Slide in a frame (preview): the parent calls
 *   `event.source.edetailContainers.fromFrameMessage(event.data)` for each message of the frame.
 */
(function (window) {
  "use strict";

  var console = window.console || { log: function () {}, info: function () {}, warn: function () {}, error: function () {} };
  function log(level) {
    var args = ["[edetail]"].concat([].slice.call(arguments, 1));
    try { (console[level] || console.log).apply(console, args); } catch (e) { /* no console */ }
  }

  if (window.edetailContainers && window.edetailContainers.version === 1) return; // included twice
  var ed = window.edetail;
  if (!ed || typeof ed._request !== "function") {
    log("error", "/_edetail/containers.js needs /_edetail/edetail.js loaded before it; vendor containers were not installed");
    return;
  }

  // Private references, taken before any content script runs.
  var bridgeRequest = ed._request;
  var follow = typeof ed._follow === "function" ? ed._follow : function () { return false; };
  var document = window.document;
  var setTimeoutRef = window.setTimeout || setTimeout;
  var selfPost = typeof window.postMessage === "function" ? window.postMessage : null;
  var stringify = JSON.stringify, parse = JSON.parse;

  var AGNITIO_INFO = {
    applicationName: "edetail",
    applicationVersion: "1.0",
    localizedModel: "iPad",
    model: "iPad",
    systemName: "edetail",
    version: "1.0"
  };

  // ------------------------------------------------------------------ helpers

  // Sends one bridge request; resolves with the result ({} when empty), after following its
  // `navigate`. Rejects with edetail.js's error (logged here, without params).
  function send(method, params) {
    var p;
    try { p = bridgeRequest(method, params); } catch (e) { p = Promise.reject(e); }
    return Promise.resolve(p).then(function (result) {
      result = result && typeof result === "object" ? result : {};
      if (result.navigate && typeof result.navigate === "object") {
        try { follow(result.navigate); } catch (e) { log("error", method + ": following navigate failed", e && e.message); }
      }
      return result;
    }, function (err) {
      log("warn", method + " failed", err && err.code, err && err.message);
      throw err;
    });
  }

  function unsupported(vendor, api, args) {
    var list = [];
    for (var i = 0; i < (args ? args.length : 0); i++) list.push(safeArg(args[i]));
    log("info", vendor + "." + api + " is not supported by edetail; recorded");
    return send("vendor.unsupported", { vendor: vendor, api: api, args: list }).catch(function () { return {}; });
  }

  // Arguments as JSON values: functions and other non-JSON values become their type name.
  function safeArg(v) {
    if (v === undefined) return null;
    if (typeof v === "function") return "[function]";
    try { var s = stringify(v); return s === undefined ? String(v) : parse(s); } catch (e) { return "[" + typeof v + "]"; }
  }

  // "a.b.c" -> {fn, self} of the function at that path under window, or null.
  function lookup(path) {
    if (typeof path !== "string" || !/^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*$/.test(path)) return null;
    var parts = path.split("."), self = window, obj = window;
    for (var i = 0; i < parts.length; i++) {
      if (obj === null || obj === undefined) return null;
      self = obj;
      try { obj = obj[parts[i]]; } catch (e) { return null; }
    }
    return typeof obj === "function" ? { fn: obj, self: self } : null;
  }

  // Calls the deck function at `path` with `arg`; its exceptions are logged, never propagated.
  function callPath(path, arg, what) {
    var target = lookup(path);
    if (!target) { log("warn", what + ": the answer names no function of the page: " + path); return false; }
    try { target.fn.call(target.self, arg); } catch (e) { log("error", what + ": " + path + " threw", e && e.message); }
    return true;
  }

  function decode(s) {
    try { return decodeURIComponent(s); } catch (e) { return s; }
  }

  // ------------------------------------------------------------------ Veeva

  // Where the core gave no answer (offline page, bridge failure), the callback is read from the
  // request's tail so the deck still gets Veeva's failure shape: a numeric Engage id
  // ("...),42"), "callback(name)" or "name(result)".
  function localCallback(raw) {
    var s = decode(String(raw)).replace(/[;\s]+$/, "");
    var m = /\),\s*(\d+)$/.exec(s);
    if (m) return Number(m[1]);
    m = /callback\(\s*([A-Za-z_$][\w$.]*)\s*\)$/.exec(s) || /(?:^|[,:])\s*([A-Za-z_$][\w$.]*)\(\s*result\s*\)$/.exec(s);
    return m ? m[1] : null;
  }

  function postJson(obj) {
    var s;
    try { s = stringify(obj); } catch (e) { log("error", "veeva: an answer is not JSON"); return; }
    if (typeof s !== "string") return;
    try { selfPost.call(window, s, "*"); } catch (e) { log("error", "veeva: could not post an answer", e && e.message); }
  }

  function answerVeeva(callback, result) {
    if (callback === null || callback === undefined || callback === "") return;
    if (typeof callback === "number" || /^\d+$/.test(String(callback))) {
      // Engage (frame) transport: the library matches `callback` in a JSON string message.
      var out = {};
      if (result && typeof result === "object") Object.keys(result).forEach(function (k) { out[k] = result[k]; });
      out.callback = Number(callback);
      postJson(out);
    } else {
      callPath(String(callback), result, "veeva");
    }
  }

  function veevaFailure(code, message) { return { success: false, code: code, message: message }; }

  // Forwards one Veeva request (a string, or the {message} object the library posts to
  // webkit.messageHandlers.veeva) and answers the callback it names.
  function veevaRequest(value) {
    var raw = typeof value === "string" ? value : (value && typeof value.message === "string" ? value.message : null);
    if (raw === null) {
      unsupported("veeva", "postMessage", [value]);
      return Promise.resolve(null);
    }
    return send("veeva.request", { request: raw }).then(function (r) {
      if (Object.prototype.hasOwnProperty.call(r, "callback")) {
        answerVeeva(r.callback, r.result === undefined ? null : r.result);
      } else {
        // No answer from a core (offline page): the deck still hears back.
        answerVeeva(localCallback(raw), r.result !== undefined ? r.result : veevaFailure(2100, "edetail is offline; the request was logged"));
      }
      return r;
    }, function (err) {
      answerVeeva(localCallback(raw), veevaFailure(2100, "Request failed: " + ((err && err.code) || "error")));
      return null;
    });
  }

  function isVeevaString(data) {
    return typeof data === "string" && /^\s*veeva(:|%3A)/i.test(data);
  }

  // Frame ("Engage") transport: the parent hands over what the slide posted to it.
  function veevaFromFrame(data) {
    if (!isVeevaString(data)) return false;
    veevaRequest(data);
    return true;
  }

  // ------------------------------------------------------------------ Agnitio

  var OBJC = /^\s*objc:\/\//i;
  function isObjc(v) {
    return (typeof v === "string" || v instanceof String) && OBJC.test(String(v));
  }

  // Forwards one objc:// URL (as a deck set it as an iframe src) and calls its result function.
  function agnitioInvoke(url) {
    var m = /^\s*objc:\/\/([^\/?#]*)\/?([^?#]*)(?:\?([^#]*))?/i.exec(String(url));
    if (!m) { unsupported("agnitio", "objc", [String(url)]); return Promise.resolve(null); }
    var host = m[1].toLowerCase(), api = decode(m[2]), params = decode(m[3] || "");
    if (host !== "iplanner") {
      unsupported("agnitio", "objc://" + host + "/" + api, [params]);
      return Promise.resolve(null);
    }
    return send("agnitio.invoke", { api: api, params: params }).then(function (r) {
      if (typeof r.result_function === "string" && r.result_function) {
        var arg;
        try { arg = stringify(r.result === undefined ? null : r.result); } catch (e) { arg = "null"; }
        callPath(r.result_function, arg, "agnitio " + api);
      }
      return r;
    }, function () { return null; });
  }

  // Never let an objc:// URL load: setAttribute("src", ...) and the src setters of iframes and
  // images (the beacon variant) hand it to agnitioInvoke instead.
  function interceptObjc() {
    var El = window.Element;
    var proto = El && El.prototype;
    if (proto && typeof proto.setAttribute === "function" && !proto.setAttribute._edetail) {
      var origSet = proto.setAttribute;
      var patched = function setAttribute(name, value) {
        if (String(name).toLowerCase() === "src" && isObjc(value)) { agnitioInvoke(String(value)); return undefined; }
        return origSet.apply(this, arguments);
      };
      patched._edetail = true;
      proto.setAttribute = patched;
    }
    ["HTMLIFrameElement", "HTMLImageElement"].forEach(function (name) {
      var ctor = window[name];
      var p = ctor && ctor.prototype;
      var d = p && Object.getOwnPropertyDescriptor(p, "src");
      if (!d || typeof d.set !== "function" || !d.configurable || d.set._edetail) return;
      var setter = function (v) {
        if (isObjc(v)) { agnitioInvoke(String(v)); return; }
        d.set.call(this, v);
      };
      setter._edetail = true;
      Object.defineProperty(p, "src", { configurable: true, enumerable: d.enumerable, get: d.get, set: setter });
    });
  }

  // The stand-in `ag` (decks that ship no Agnitio library): the same objc:// path as a real one.
  function agCall(api, params) {
    return agnitioInvoke("objc://iplanner/" + api + "?" + encodeURIComponent(params));
  }
  function now() { return Math.floor(Date.now() / 1000); }

  var agListeners = {}; // event -> [{token, fn}]
  var agTokens = 0;
  function agPublish(event, data) {
    (agListeners[event] || []).slice().forEach(function (l) {
      try { l.fn.call(null, data); } catch (e) { log("error", "an ag listener threw", e && e.message); }
    });
  }
  function agPublishLater(event, data) { setTimeoutRef(function () { agPublish(event, data); }, 0); }
  function agSave(data) {
    agCall("monitoringEvent", stringify(data));
    agPublishLater("monitoringEvent", data);
  }
  function monitoring(type, category, valueId, value, extra) {
    var d = { type: type, categoryId: null, category: category, labelId: "id", label: "name",
      valueId: valueId === undefined ? null : valueId, value: value === undefined ? null : value, valueType: null, time: now() };
    if (extra) Object.keys(extra).forEach(function (k) { d[k] = extra[k]; });
    return d;
  }

  var agCurrentSlide = null;
  var agStandIn = {
    getVersion: function () { return "edetail"; },
    on: function (event, fn) {
      var token = event + "_" + (++agTokens);
      (agListeners[event] = agListeners[event] || []).push({ token: token, fn: fn });
      return token;
    },
    off: function (token) {
      Object.keys(agListeners).forEach(function (ev) {
        agListeners[ev] = agListeners[ev].filter(function (l) { return l.token !== token; });
      });
    },
    publish: function (event, data) { agPublish(event, data); },
    openPDF: function (path, name) {
      agCall("openPDF", String(path));
      agPublishLater("openPDF", path);
      if (name) agStandIn.submit.document(String(path).replace(/^.*[\\\/]/, ""), name);
    },
    sendMail: function (address, subject, body, files) {
      var params = { address: address, subject: subject, body: body };
      if (Array.isArray(files)) params.fileNames = files; else params.fileName = files || "";
      agCall("sendMail", stringify(params));
      agPublishLater("sendMail", params);
    },
    submit: {
      save: agSave,
      slide: function (data) {
        data = data || {};
        if (agCurrentSlide !== null) agStandIn.submit._slideExit();
        agCurrentSlide = data.id === undefined ? null : data.id;
        agSave(monitoring("system", "slideEnter", data.id, data.name, {
          slideIndex: data.slideIndex || null, slidePath: data.path || null,
          chapterName: data.chapter || null, chapterId: data.chapterId || null,
          subChapterName: data.subChapter || null, subChapterId: data.subChapterId || null,
          parentSlideName: data.parent || data.subChapter || data.chapter || null,
          parentOfParentSlideName: data.grandParent || (data.subChapter ? data.chapter || null : null)
        }));
      },
      _slideExit: function () {
        if (agCurrentSlide === null) return;
        var id = agCurrentSlide;
        agCurrentSlide = null;
        agSave(monitoring("system", "slideExit", id, null));
      },
      document: function (id, name) { agSave(monitoring("system", "documentOpen", id, name)); },
      reference: function (id, name) { agSave(monitoring("system", "referenceOpen", id, name)); },
      data: function (data) { agStandIn.submit.event(data); },
      event: function (data) {
        data = data || {};
        agSave({ isUnique: !!data.unique, type: "custom", category: data.category || "Uncategorized",
          categoryId: data.categoryId || null, label: data.label, labelId: data.labelId || null,
          value: data.value, valueId: data.valueId || null, valueType: data.valueType || "text",
          slidePath: data.path || null, time: now() });
      }
    },
    data: {
      presenter: null,
      call_contacts: [],
      call_attributes: [],
      getPresenter: function () {
        agCall("getPresenter", stringify({ resultFunction: "ag.data._savePresenter" }));
        agPublishLater("getPresenter", null);
      },
      getCallContacts: function () {
        agCall("getCallContacts", "ag.data._saveContacts");
        agPublishLater("getCallContacts", null);
      },
      getCallAttributes: function (attributes) {
        var wanted = attributes || [];
        agCall("getMeetingDynamicAttributes", stringify({ wantedAttributes: wanted, resultFunction: "ag.data._saveCallAttributes" }));
        agPublishLater("getCallAttributes", wanted);
      },
      _savePresenter: function (json) { currentAg().data.presenter = parseOr(json, null); },
      _saveContacts: function (json) { currentAg().data.call_contacts = parseOr(json, []); },
      _saveCallAttributes: function (json) { currentAg().data.call_attributes = parseOr(json, []); }
    }
  };
  agStandIn._edetail = true;

  function parseOr(json, fallback) {
    try { return parse(json); } catch (e) { log("warn", "agnitio: an answer is not JSON"); return fallback; }
  }
  function currentAg() {
    var ag = window.ag;
    return ag && typeof ag === "object" && ag.data && typeof ag.data === "object" ? ag : agStandIn;
  }

  // A real Agnitio library sets its interface; ours is marked `_edetail`.
  function isRealAg(ag) {
    return !!ag && typeof ag === "object" && ag._edetail !== true &&
      (typeof ag.setAgnitioInterface === "function" || typeof ag.setInvoke === "function" || typeof ag.init === "function");
  }

  // Fills in what is missing (or not a function) on `target` from `source`, recursively.
  function fillMissing(target, source) {
    Object.keys(source).forEach(function (k) {
      var v = source[k], cur = target[k];
      if (typeof v === "function") {
        if (typeof cur !== "function") target[k] = v;
      } else if (v && typeof v === "object" && !Array.isArray(v)) {
        if (!cur || typeof cur !== "object") target[k] = cur = {};
        fillMissing(cur, v);
      } else if (!(k in target)) {
        target[k] = v;
      }
    });
  }

  function installAg() {
    var ag = window.ag;
    if (isRealAg(ag)) return false; // a deck's own library: its calls come through objc://
    if (!ag || typeof ag !== "object") {
      try { window.ag = agStandIn; } catch (e) { return false; }
      return true;
    }
    if (ag !== agStandIn) fillMissing(ag, agStandIn);
    return true;
  }

  // ------------------------------------------------------------------ OCE

  var ADD_ACTION = ["action__c", "detailedtime__c", "fromtime__c", "totime__c", "product__c", "pageid__c",
    "productmessageexternalid__c", "slideorder__c", "category__c", "reaction__c", "questionraised__c",
    "extra1__c", "extra2__c", "extra3__c", "extra4__c", "extra5__c", "assets"];
  var OCE_CALLS = {
    gotoSlide: ["sequenceId", "slideName", "animation"],
    goNextSequence: [],
    goPreviousSequence: [],
    addAction: ADD_ACTION,
    startTrackingPage: ["pageid"],
    stopTrackingPage: [],
    saveState: ["state"],
    alert: ["msg"],
    defineNoSwipeRegion: ["regionId", "x", "y", "width", "height"],
    destroyNoSwipeRegion: ["regionId"],
    getSurveyFlowJson: ["json"],
    getSurveyFlowJsonForCall: ["json"],
    updateFeedback: ["type"]
  };

  function oceCall(request, params) {
    return send("oce.call", { request: request, params: params || {} }).then(function (r) {
      return r.result === undefined ? null : r.result;
    }, function () { return null; });
  }

  // A clmplayer.js message ({request, params} as a JSON string, or the object itself).
  function oceNativeCall(value) {
    var msg = value;
    if (typeof value === "string") {
      try { msg = parse(value); } catch (e) { msg = null; }
    }
    if (!msg || typeof msg !== "object" || typeof msg.request !== "string" || !msg.request) {
      unsupported("oce", "nativeCall", [typeof value === "string" ? value : safeArg(value)]);
      return Promise.resolve(null);
    }
    var params = msg.params && typeof msg.params === "object" ? msg.params : {};
    return oceCall(msg.request, params);
  }

  function isOceString(data) {
    if (typeof data !== "string" || !/^\s*\{/.test(data)) return false;
    try {
      var m = parse(data);
      return !!m && typeof m === "object" && typeof m.request === "string" && !("callback" in m);
    } catch (e) { return false; }
  }

  function oceFromFrame(data) {
    if (!isOceString(data)) return false;
    oceNativeCall(data);
    return true;
  }

  var oceEvents = {}; // eventType -> [fn]
  var player = {
    registeredEvents: oceEvents,
    registerEventListener: function (eventType, fn) {
      if (typeof fn !== "function") { log("warn", "CLMPlayer.registerEventListener: not a function"); return; }
      (oceEvents[eventType] = oceEvents[eventType] || []).push(fn);
    },
    executeEvent: function (eventType, param) {
      (oceEvents[eventType] || []).slice().forEach(function (fn) {
        try { fn(param); } catch (e) { log("error", "a CLMPlayer " + eventType + " listener threw", e && e.message); }
      });
    }
  };
  Object.keys(OCE_CALLS).forEach(function (name) {
    var names = OCE_CALLS[name];
    player[name] = function () {
      var params = {};
      for (var i = 0; i < names.length; i++) if (arguments[i] !== undefined) params[names[i]] = arguments[i];
      return oceCall(name, params);
    };
  });
  player._edetail = true;

  // Calls the stand-in does not know (openDocument, sendEmail, ... of other OCE versions) still
  // reach the core, which records them as unsupported_api: through a Proxy where there is one.
  // Names a program probes without calling (then, toJSON, symbols, _private) stay undefined.
  var NOT_CALLS = ["then", "toJSON", "constructor", "valueOf", "toString", "inspect", "nodeType", "length"];
  var unknownCalls = {};
  var exposed = typeof Proxy === "function" ? new Proxy(player, {
    get: function (target, name) {
      if (name in target || typeof name !== "string" || name.charAt(0) === "_" || NOT_CALLS.indexOf(name) >= 0) return target[name];
      if (!unknownCalls[name]) {
        unknownCalls[name] = function () { return oceCall(name, { args: jsonArgs(arguments) }); };
      }
      return unknownCalls[name];
    }
  }) : player;

  function jsonArgs(args) {
    var out = [];
    for (var i = 0; i < args.length; i++) out.push(safeArg(args[i]));
    return out;
  }

  function installPlayer() {
    var cur = window.CLMPlayer;
    if (cur === exposed || cur === player) return true;
    if (cur && typeof cur === "object" && cur._edetail !== true) return false; // the deck's own
    if (cur && typeof cur === "object" && cur._edetail === true) { fillMissing(cur, player); return true; }
    try { window.CLMPlayer = exposed; } catch (e) { return false; }
    return true;
  }

  // The container tells the slide it appears / disappears: through whichever CLMPlayer the page has.
  function fireOce(eventType) {
    var p = window.CLMPlayer;
    var target = p && typeof p.executeEvent === "function" ? p : player;
    try { target.executeEvent(eventType); } catch (e) { log("error", "CLMPlayer.executeEvent(" + eventType + ") threw", e && e.message); }
  }

  // ------------------------------------------------------------------ webkit handlers

  // Adds a page-side messageHandlers.<name>. Where WKWebView's native object refuses it (or a
  // native handler of that name exists), the shell's native handler forwards instead.
  function installWebkit(name, postMessage) {
    var wk = window.webkit;
    try {
      if (!wk || (typeof wk !== "object" && typeof wk !== "function")) { window.webkit = wk = {}; }
      var mh = wk.messageHandlers;
      if (!mh || (typeof mh !== "object" && typeof mh !== "function")) { wk.messageHandlers = mh = {}; }
      var cur = mh[name];
      if (cur && typeof cur.postMessage === "function" && !cur._edetail) return "native";
      var handler = { postMessage: postMessage, _edetail: true };
      mh[name] = handler;
      return mh[name] === handler ? "page" : "none";
    } catch (e) {
      return "none";
    }
  }

  var webkitMode = {
    veeva: installWebkit("veeva", function (msg) { veevaRequest(msg); }),
    nativeCall: installWebkit("nativeCall", function (msg) { oceNativeCall(msg); })
  };
  if (webkitMode.veeva === "none" || webkitMode.nativeCall === "none") {
    log("info", "webkit message handlers are native here; the shell forwards veeva/nativeCall");
  }

  // ------------------------------------------------------------------ messages to this window

  // At the top level (no parent), a library that posts to window.parent posts to this window.
  function onMessage(event) {
    if (!event || event.source !== window) return;
    var top = !window.parent || window.parent === window;
    if (!top) return;
    if (isVeevaString(event.data)) veevaRequest(event.data);
    else if (isOceString(event.data)) oceNativeCall(event.data);
  }

  // ------------------------------------------------------------------ navigations

  // `document.location = "veeva:..."`, `location.href = "objc://..."` and links to those URLs:
  // where the Navigation API exists (Chromium: preview, Android WebView 102+), its cancelable
  // `navigate` event hands them to the container instead of letting the navigation fail;
  // elsewhere (WKWebView) the native shell cancels them in its navigation policy and calls
  // veeva.request / agnitio.invoke itself. Returns whether navigations are intercepted here.
  function interceptNavigations() {
    var nav = window.navigation;
    if (!nav || typeof nav.addEventListener !== "function") return false;
    nav.addEventListener("navigate", function (event) {
      var url = event && event.destination && event.destination.url;
      if (typeof url !== "string" || !event.cancelable) return;
      if (/^\s*veeva:/i.test(url)) {
        event.preventDefault();
        veevaRequest(url);
      } else if (isObjc(url)) {
        event.preventDefault();
        agnitioInvoke(url);
      }
    });
    return true;
  }

  // ------------------------------------------------------------------ install

  function installAll() {
    installAg();
    installPlayer();
  }

  interceptObjc();
  var navigationsIntercepted = interceptNavigations();
  if (window.agnitioInfo === undefined) window.agnitioInfo = AGNITIO_INFO;
  installAll();

  // Agnitio's container announces itself through the library's setAgnitioPlatform hook, once
  // the deck's scripts have run (DOMContentLoaded, or load for a script added late).
  var announced = false;
  function onReady() {
    installAll();
    if (announced) return;
    announced = true;
    var hook = window.setAgnitioPlatform;
    if (typeof hook === "function") {
      try { hook(stringify(window.agnitioInfo || AGNITIO_INFO)); } catch (e) { log("error", "setAgnitioPlatform threw", e && e.message); }
    }
  }

  var appeared = false;
  if (document && typeof document.addEventListener === "function") document.addEventListener("DOMContentLoaded", onReady);
  if (typeof window.addEventListener === "function") {
    window.addEventListener("message", onMessage);
    window.addEventListener("load", function () {
      onReady();
      if (!appeared) { appeared = true; fireOce("viewappearing"); }
    });
    window.addEventListener("pagehide", function () {
      if (appeared) { appeared = false; fireOce("viewdisappearing"); }
    });
    window.addEventListener("pageshow", function (ev) {
      if (ev && ev.persisted && !appeared) { appeared = true; fireOce("viewappearing"); }
    });
  }

  window.edetailContainers = {
    version: 1,
    /** Routes a message a slide frame posted to its parent; true when it was a vendor request. */
    fromFrameMessage: function (data) { return veevaFromFrame(data) || oceFromFrame(data); },
    /** Re-asserts the stand-ins (ag, CLMPlayer) where a deck removed them. */
    install: installAll,
    webkit: webkitMode,
    /** Whether `veeva:` / `objc://` navigations are intercepted here (Navigation API). */
    navigations: navigationsIntercepted,
    veeva: {
      request: veevaRequest,
      fromFrameMessage: veevaFromFrame
    },
    agnitio: {
      invoke: agnitioInvoke,
      info: AGNITIO_INFO,
      ag: agStandIn
    },
    oce: {
      call: oceCall,
      nativeCall: oceNativeCall,
      fromFrameMessage: oceFromFrame,
      player: exposed,
      fire: fireOce
    },
    unsupported: unsupported
  };
})(typeof window !== "undefined" ? window : this);
