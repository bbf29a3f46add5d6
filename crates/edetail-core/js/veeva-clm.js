/*
 * veeva-clm.js: Veeva CLM's `com.veeva.clm` JavaScript API implemented on the edetail bridge,
 * so slides imported from Veeva run unchanged (docs/bridge-protocol.md, "Veeva shim").
 *
 * Served at /_edetail/veeva-clm.js; the runtime injects it after /_edetail/edetail.js, which it
 * requires (without `window.edetail` it logs an error and installs nothing).
 *
 * - Merges into an existing `window.com` / `com.veeva`. At load it overrides the functions of a
 *   `com.veeva.clm` stub already there (content often ships a veeva-library.js stub), but never
 *   touches Veeva's real library (recognised by `com.veeva.clm.runAPIRequest`): a deck's own
 *   library talks to the container, and containers.js captures its requests.
 * - Re-asserted on DOMContentLoaded and load (and by `window.edetailVeevaShim.install()`): only
 *   functions that are missing or were replaced by non-functions are put back; functions a deck
 *   defined itself are kept (createRecordsOnExit excepted: the content's is kept as a hook).
 * - Every call it answers as unsupported (code 1000) is also recorded through the bridge method
 *   `vendor.unsupported {vendor: "veeva", api, args}`: nothing a deck sends vanishes.
 * - Every call has its own bridge request (edetail.js keys pending calls by message id), so
 *   concurrent calls of one kind each get their own answer, unlike Veeva's library, which keeps
 *   one global callback per call type.
 * - Callbacks always run asynchronously; a callback that throws is logged and never breaks
 *   the shim. Results use Veeva's shapes: {success: true, <Object>: {...}} or
 *   {success: false, code: <number>, message: "<function>: ..."}.
 *   Codes: 1000 not supported by edetail, 2002 argument empty, 2003 arrays of unequal length,
 *   2100 the bridge request failed (the message carries the edetail error code).
 * - createRecordsOnExit: records are queued and sent (`track veeva_clickstream`) when the page
 *   hides/unloads and before any navigation this shim performs. A createRecordsOnExit defined by
 *   the content itself (Veeva's convention: it returns formatCreateRecords(...)) is kept as a hook
 *   and called at that point too; the records its string describes are sent the same way.
 */
(function (window) {
  "use strict";

  var console = window.console || { log: function () {}, warn: function () {}, error: function () {} };
  var ed = window.edetail;
  if (!ed || typeof ed._request !== "function") {
    console.error("[edetail veeva] /_edetail/veeva-clm.js needs /_edetail/edetail.js loaded before it; com.veeva.clm was not installed");
    return;
  }
  if (window.edetailVeevaShim && window.edetailVeevaShim.version === 1) {
    window.edetailVeevaShim.install(); // included twice: just re-assert the functions
    return;
  }

  var CLICKSTREAM = "Call_Clickstream_vod__c";
  var DATA_OBJECTS = ["Account", "Call", "Presentation", "KeyMessage", "User"];
  // Functions of Veeva's library edetail does not implement: they answer with failure 1000.
  var UNSUPPORTED = [
    "getDataForObject", "getRecordType_Object",
    "getAddresses_Account", "getAddressFields", "getProduct_MySetup", "getProduct_OrderActive_Account",
    "getListPrice_Product_Account", "getSurveyQuestions_Survey", "getQuestionResponse_SurveyTarget",
    "getSurveyTarget_Account", "updateCurrentRecord",
    "createMultichannelActivityLine", "getFieldLabel", "getObjectLabels", "getLocalizedLabels",
    "updateRecordsOnExit"
  ];

  function log(level) {
    var args = ["[edetail veeva]"].concat([].slice.call(arguments, 1));
    try { (console[level] || console.log).apply(console, args); } catch (e) { /* no console */ }
  }

  // Runs a Veeva callback later, isolated: its exceptions are logged, never propagated.
  function deliver(callback, result) {
    if (typeof callback !== "function") return;
    setTimeout(function () {
      try { callback(result); } catch (e) { log("error", "a com.veeva.clm callback threw", e); }
    }, 0);
  }

  function failure(name, code, message) {
    return { success: false, code: code, message: name + ": " + message };
  }
  // "<name> is not supported by edetail" (the documented message), or "<name>: <what> is not ...".
  function unsupported(name, what) {
    if (!what) return { success: false, code: 1000, message: name + " is not supported by edetail" };
    return failure(name, 1000, what + " is not supported by edetail");
  }
  // Arguments as JSON values for vendor.unsupported (functions become "[function]").
  function jsonArgs(args) {
    var out = [];
    for (var i = 0; i < args.length; i++) {
      var v = args[i];
      if (typeof v === "function") { out.push("[function]"); continue; }
      if (v === undefined) { out.push(null); continue; }
      try { var j = JSON.stringify(v); out.push(j === undefined ? String(v) : JSON.parse(j)); } catch (e) { out.push("[" + typeof v + "]"); }
    }
    return out;
  }
  // Answers `name` as unsupported (code 1000) and records the call (`vendor.unsupported`).
  function refuse(name, what, args) {
    try {
      ed._request("vendor.unsupported", { vendor: "veeva", api: name, args: jsonArgs(args || []) }).catch(function (e) {
        log("warn", name + ": the unsupported call was not recorded", e && e.code);
      });
    } catch (e) { log("warn", name + ": the unsupported call was not recorded"); }
    return unsupported(name, what);
  }
  // Sends a `veeva:` request to the core's container (`veeva.request`); `shape` turns the
  // container's answer into what Veeva's library gives the deck's callback.
  function containerRequest(name, request, callback, shape) {
    ed._request("veeva.request", { request: request }).then(function (reply) {
      var r = reply && reply.result ? reply.result : { success: false, code: 2100, message: "no answer" };
      if (r.success === false && typeof r.message === "string" && r.message.indexOf(name + ":") !== 0) {
        r = { success: false, code: r.code, message: name + ": " + r.message };
      }
      deliver(callback, shape(r));
    }, function (err) { deliver(callback, bridgeFailure(name, err)); });
  }
  function bridgeFailure(name, err) {
    var code = err && err.code ? err.code : "error";
    return failure(name, 2100, "Request failed: " + code + ": " + (err && err.message ? err.message : String(err)));
  }
  function isEmpty(v) { return v === undefined || v === null || v === ""; }
  function lastFunction(args) {
    for (var i = args.length - 1; i >= 0; i--) if (typeof args[i] === "function") return args[i];
    return null;
  }
  function uuid() {
    var c = window.crypto;
    if (c && typeof c.randomUUID === "function") return c.randomUUID();
    var b = [];
    for (var i = 0; i < 16; i++) b.push(Math.floor(Math.random() * 256));
    if (c && typeof c.getRandomValues === "function") { var a = new Uint8Array(16); c.getRandomValues(a); b = [].slice.call(a); }
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    var h = b.map(function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }
  function copy(values) {
    var out = {};
    if (values && typeof values === "object") Object.keys(values).forEach(function (k) { out[k] = values[k]; });
    return out;
  }

  // ------------------------------------------------------------------ records on exit

  var queue = [];      // values objects of Call_Clickstream_vod__c records to send on exit
  var hooks = [];      // content-defined createRecordsOnExit functions
  var hooksRan = false;

  // Parses Veeva's formatCreateRecords() string: "veeva:saveObjectV2(Obj),value({...}),callback();..."
  // A value's JSON may itself contain "),callback(", so each candidate end is tried until the
  // JSON parses.
  function parseRecordRequests(text) {
    var out = [];
    var s = String(text);
    var head = /saveObjectV2\(([^)]*)\)(?:,updateCurrentRecord\(\))?,value\(/g;
    var m;
    while ((m = head.exec(s)) !== null) {
      var from = head.lastIndex;
      var end = s.indexOf("),callback(", from);
      var parsed = false;
      while (end >= 0 && !parsed) {
        try {
          out.push({ object: m[1], values: JSON.parse(s.slice(from, end)) });
          parsed = true;
          head.lastIndex = end;
        } catch (e) {
          end = s.indexOf("),callback(", end + 1);
        }
      }
      if (!parsed) log("warn", "unreadable record in createRecordsOnExit", s.slice(from, from + 200));
    }
    return out;
  }

  function queueRecords(records, name) {
    records.forEach(function (r) {
      if (r.object === CLICKSTREAM) queue.push(copy(r.values));
      else log("warn", name + ": " + r.object + " records are not supported by edetail; dropped");
    });
  }

  function runHooks() {
    var clm = currentClm();
    if (clm && typeof clm.createRecordsOnExit === "function" && clm.createRecordsOnExit !== fns.createRecordsOnExit &&
        hooks.indexOf(clm.createRecordsOnExit) < 0) {
      hooks.push(clm.createRecordsOnExit);
    }
    if (hooksRan) return "";
    hooksRan = true;
    var all = "";
    hooks.forEach(function (hook) {
      try {
        var out = hook.call(clm);
        if (typeof out === "string" && out) { all += out; queueRecords(parseRecordRequests(out), "createRecordsOnExit"); }
      } catch (e) { log("error", "createRecordsOnExit hook threw", e); }
    });
    return all;
  }

  // Sends every queued record; resolves once each has been answered (or failed).
  function flush() {
    runHooks();
    var batch = queue.splice(0, queue.length);
    return Promise.all(batch.map(function (values) {
      return ed.track("veeva_clickstream", values).catch(function (e) {
        log("warn", "createRecordsOnExit record not saved", e && e.code, e && e.message);
      });
    }));
  }

  // ------------------------------------------------------------------ navigation

  function navigate(name, params, callback) {
    return flush().then(function () {
      return ed._navigate(params);
    }).then(function () {
      deliver(callback, { success: true });
    }, function (err) {
      log("warn", name + " failed", err && err.code, err && err.message);
      deliver(callback, bridgeFailure(name, err));
    });
  }

  function gotoKeyMessage(name, keyMessage, presentation, callback) {
    if (isEmpty(keyMessage)) {
      var r = failure(name, 2002, "keyMessage is empty");
      deliver(callback, r);
      return r;
    }
    var params = { action: "goto", key_message: String(keyMessage) };
    if (!isEmpty(presentation) && typeof presentation === "string") params.presentation = presentation;
    navigate(name, params, callback);
  }

  // ------------------------------------------------------------------ com.veeva.clm

  var fns = {
    gotoSlide: function (keyMessage, presentation) {
      return gotoKeyMessage("gotoSlide", keyMessage, presentation, lastFunction(arguments));
    },
    // (keyMessage, subPresentations, presentation) as documented; the older two-argument form
    // (keyMessage, presentation) is accepted too. Sub-presentations are the host's business.
    gotoSlideV2: function (keyMessage, second, third) {
      var presentation = typeof third === "string" ? third : (typeof second === "string" && arguments.length <= 2 ? second : null);
      return gotoKeyMessage("gotoSlideV2", keyMessage, presentation, lastFunction(arguments));
    },
    nextSlide: function () { navigate("nextSlide", { action: "next" }, lastFunction(arguments)); },
    prevSlide: function () { navigate("prevSlide", { action: "prev" }, lastFunction(arguments)); },

    createRecord: function (object, values, callback) {
      if (object !== CLICKSTREAM) return deliver(callback, refuse("createRecord", "creating " + object + " records", arguments));
      if (isEmpty(values) || typeof values !== "object") return deliver(callback, failure("createRecord", 2002, "values is empty"));
      ed.track("veeva_clickstream", copy(values)).then(function (result) {
        var out = { success: true };
        out[CLICKSTREAM] = { ID: (result && (result.event_id || result.id)) || uuid() };
        deliver(callback, out);
      }, function (err) { deliver(callback, bridgeFailure("createRecord", err)); });
    },

    updateRecord: function (object, record, values, callback) {
      if (object !== CLICKSTREAM) return deliver(callback, refuse("updateRecord", "updating " + object + " records", arguments));
      if (isEmpty(record)) return deliver(callback, failure("updateRecord", 2002, "record is empty"));
      if (isEmpty(values) || typeof values !== "object") return deliver(callback, failure("updateRecord", 2002, "values is empty"));
      var data = { id: record };
      Object.keys(values).forEach(function (k) { data[k] = values[k]; });
      ed.track("veeva_clickstream_update", data).then(function () {
        var out = { success: true };
        out[CLICKSTREAM] = { ID: record };
        deliver(callback, out);
      }, function (err) { deliver(callback, bridgeFailure("updateRecord", err)); });
    },

    // createRecordsOnExit(objects, values[, callback]) queues records; a single string argument
    // (formatCreateRecords output) is queued the same way. Called without arguments (content
    // calling "its" exit hook), it runs the content's own hooks and returns their string.
    createRecordsOnExit: function (objects, values) {
      var callback = lastFunction(arguments);
      if (arguments.length === 0 || (arguments.length === 1 && callback)) return runHooks();
      if (typeof objects === "string" && (values === undefined || typeof values === "function")) {
        queueRecords(parseRecordRequests(objects), "createRecordsOnExit");
        deliver(callback, { success: true });
        return objects;
      }
      var objs = Array.isArray(objects) ? objects : [objects];
      var vals = Array.isArray(values) ? values : [values];
      var r;
      if (objs.length !== vals.length) r = failure("createRecordsOnExit", 2003, "Parameter arrays must be of equal length");
      else if (objs.some(function (o) { return o !== CLICKSTREAM; })) {
        r = refuse("createRecordsOnExit", "creating " + objs.filter(function (o) { return o !== CLICKSTREAM; })[0] + " records", arguments);
      } else if (vals.some(function (v) { return !v || typeof v !== "object"; })) r = failure("createRecordsOnExit", 2002, "values is empty");
      else {
        vals.forEach(function (v) { queue.push(copy(v)); });
        r = { success: true };
      }
      deliver(callback, r);
      return r;
    },

    getDataForCurrentObject: function (object, field, callback) {
      if (isEmpty(object)) return deliver(callback, failure("getDataForCurrentObject", 2002, "object is empty"));
      if (isEmpty(field)) return deliver(callback, failure("getDataForCurrentObject", 2002, "field is empty"));
      if (DATA_OBJECTS.indexOf(object) < 0) return deliver(callback, refuse("getDataForCurrentObject", "object " + object, arguments));
      ed._request("veeva.get_data", { object: object, field: field }).then(function (result) {
        var value = result && result.value !== undefined && result.value !== null ? String(result.value) : "";
        var out = { success: true };
        out[object] = {};
        out[object][field] = value;
        deliver(callback, out);
      }, function (err) { deliver(callback, bridgeFailure("getDataForCurrentObject", err)); });
    },

    // queryRecord(object, fields, where, sort, limit, callback): the `veeva:queryObject` request
    // Veeva's library builds, answered by the core (key messages, presentations, the call's
    // own ids; anything else is answered 1000 and recorded there).
    queryRecord: function (object, fields, where, sort, limit, callback) {
      callback = lastFunction(arguments);
      if (isEmpty(object)) return deliver(callback, failure("queryRecord", 2002, "object is empty"));
      var list = Array.isArray(fields) && fields.length ? fields : ["ID"];
      var req = "veeva:queryObject(" + object + "),fields(" + list.join(",") + ")";
      if (typeof where === "string" && where) req += ",where(" + (/^\s*where\b/i.test(where) ? where : "WHERE " + where) + ")";
      if (Array.isArray(sort) && sort.length) req += ",sort(" + sort.join(",") + ")";
      else if (typeof sort === "string" && sort) req += ",sort(" + sort + ")";
      if (typeof limit === "number" || (typeof limit === "string" && /^\d+$/.test(limit))) req += ",limit(" + limit + ")";
      containerRequest("queryRecord", req + ",callback(cb)", callback, function (r) { return r; });
    },

    // getDataForObjectV2(object, record, field, callback): the call's own records only (the
    // core answers 1000 and records any other).
    getDataForObjectV2: function (object, record, field, callback) {
      callback = lastFunction(arguments);
      if (isEmpty(object)) return deliver(callback, failure("getDataForObjectV2", 2002, "object is empty"));
      if (isEmpty(record)) return deliver(callback, failure("getDataForObjectV2", 2002, "record is empty"));
      if (isEmpty(field)) return deliver(callback, failure("getDataForObjectV2", 2002, "field is empty"));
      var req = "veeva:getDataForObjectV2(" + object + "),objId(" + record + "),fieldName(" + field + "),callback(cb)";
      containerRequest("getDataForObjectV2", req, callback, function (r) { return r; });
    },

    // getApprovedDocument(vaultId, documentNumber, callback): {success, Approved_Document_vod__c: {ID}}.
    getApprovedDocument: function (vaultId, documentNumber, callback) {
      if (isEmpty(documentNumber)) return deliver(lastFunction(arguments), failure("getApprovedDocument", 2002, "document_num is empty"));
      var req = "veeva:queryObject(Approved_Document_vod__c),fields(ID),where(WHERE Vault_Instance_ID_vod__c = \"" +
        String(vaultId || "") + "\" AND Vault_Document_ID_vod__c = \"" + String(documentNumber) + "\"),callback(cb)";
      containerRequest("getApprovedDocument", req, lastFunction(arguments), function (r) {
        var rows = r && r.Approved_Document_vod__c;
        if (!r || !r.success || !rows || !rows.length) return r;
        return { success: true, Approved_Document_vod__c: { ID: rows[0].ID } };
      });
    },

    // launchApprovedEmail(template, fragments, callback): the rep's request, recorded for the
    // approved email channel (`approved_email_request`).
    launchApprovedEmail: function (template, fragments, callback) {
      if (isEmpty(template)) return deliver(lastFunction(arguments), failure("launchApprovedEmail", 2002, "email_template is empty"));
      var list = Array.isArray(fragments) ? fragments : (isEmpty(fragments) || typeof fragments === "function" ? [] : [fragments]);
      var req = "veeva:launchApprovedEmail(" + template + "),fragments(" + list.join(",") + "),callback(cb)";
      containerRequest("launchApprovedEmail", req, lastFunction(arguments), function (r) { return r; });
    },

    // Veeva's string helpers, for content that builds its own createRecordsOnExit.
    formatCreateRecords: function (objects, values) {
      var objs = Array.isArray(objects) ? objects : [objects];
      var vals = Array.isArray(values) ? values : [values];
      if (objs.length !== vals.length) return failure("formatCreateRecords", 2003, "Parameter arrays must be of equal length");
      return objs.map(function (o, i) { return fns.generateSaveRecordRequest(o, vals[i], "") + ";"; }).join("");
    },
    generateSaveRecordRequest: function (object, values, callback) {
      return "veeva:saveObjectV2(" + object + "),value(" + JSON.stringify(values) + "),callback(" + (callback || "") + ")";
    }
  };

  UNSUPPORTED.forEach(function (name) {
    fns[name] = function () {
      var r = refuse(name, null, arguments);
      deliver(lastFunction(arguments), r);
      return r;
    };
  });

  function currentClm() {
    var com = window.com;
    return com && com.veeva && com.veeva.clm;
  }

  // Veeva's real library (not a stub): its requests go to the container (containers.js).
  function isRealLibrary(clm) {
    return !!clm && typeof clm.runAPIRequest === "function";
  }

  // Installs the functions on window.com.veeva.clm, creating or merging the namespaces.
  // `first` (at load, before content scripts): a stub's functions are overridden. Later calls
  // only put back what is missing or not a function, and keep the functions a deck defined.
  // Veeva's real library is never touched.
  function install(first) {
    if (!window.com || (typeof window.com !== "object" && typeof window.com !== "function")) window.com = {};
    var com = window.com;
    if (!com.veeva || typeof com.veeva !== "object") com.veeva = {};
    if (!com.veeva.clm || typeof com.veeva.clm !== "object") com.veeva.clm = {};
    var clm = com.veeva.clm;
    if (isRealLibrary(clm)) {
      if (!realLogged) { realLogged = true; log("info", "the deck ships Veeva's library; its requests are captured by containers.js"); }
      return clm;
    }
    var cur = clm.createRecordsOnExit;
    if (typeof cur === "function" && cur !== fns.createRecordsOnExit && hooks.indexOf(cur) < 0) hooks.push(cur);
    Object.keys(fns).forEach(function (name) {
      if (first === true || name === "createRecordsOnExit" || typeof clm[name] !== "function") clm[name] = fns[name];
    });
    return clm;
  }
  var realLogged = false;
  function reassert() { install(false); }

  var exitDone = false;
  function onExit() {
    if (exitDone && queue.length === 0) return;
    exitDone = true;
    flush();
  }

  window.edetailVeevaShim = {
    version: 1,
    install: reassert,
    flush: flush,
    queued: function () { return queue.length; }
  };

  install(true);
  var doc = window.document;
  if (doc && typeof doc.addEventListener === "function") doc.addEventListener("DOMContentLoaded", reassert);
  if (typeof window.addEventListener === "function") {
    window.addEventListener("load", reassert);
    window.addEventListener("pagehide", onExit);
    window.addEventListener("beforeunload", onExit);
    // Restored from the back/forward cache: the page lives again, so will its exit.
    window.addEventListener("pageshow", function (ev) { if (ev && ev.persisted) { exitDone = false; hooksRan = false; } });
  }
})(typeof window !== "undefined" ? window : this);
