/*
 * The deck's OWN Veeva-style library (written for this sample; it behaves like the library
 * Veeva publishes, it is not Veeva's code). Each com.veeva.clm function builds a `veeva:`
 * request string and sends it through runAPIRequest, over whichever transport exists:
 *   1. in a frame (Veeva Engage, edetail preview): window.parent.postMessage(request, "*"), the
 *      callback token after the last "),"" replaced by a numeric id; the answer comes back as a
 *      `message` whose data is JSON {callback: id, ...result};
 *   2. iOS CRM: window.webkit.messageHandlers.veeva.postMessage({message: request}), the
 *      container calling the named global callback with the result;
 *   3. else: document.location = "veeva:" + encodeURIComponent(rest).
 * Every call is pushed to window.__vendorCalls ({api, request, result}) so tests count calls.
 */
var com = window.com || {};
window.com = com;
com.veeva = com.veeva || {};
(function () {
  "use strict";
  var calls = (window.__vendorCalls = window.__vendorCalls || []);
  var nextId = 0;
  var pending = {};

  function isEmpty(v) { return v === undefined || v === null || v === ""; }

  window.addEventListener("message", function (ev) {
    var data = ev.data;
    if (typeof data === "string") {
      try { data = JSON.parse(data); } catch (e) { return; }
    }
    if (!data || typeof data !== "object" || !pending[data.callback]) return;
    var entry = pending[data.callback];
    delete pending[data.callback];
    var result = {};
    Object.keys(data).forEach(function (k) { if (k !== "callback") result[k] = data[k]; });
    entry.call.result = result;
    if (entry.callback) entry.callback(result);
  });

  function runAPIRequest(api, request, callback) {
    var call = { api: api, request: request };
    calls.push(call);
    var id = ++nextId;
    var answer = function (result) {
      call.result = result;
      if (callback) callback(result);
    };
    var cut = request.lastIndexOf("),");
    if (window.self !== window.top) {
      var framed = request;
      if (cut >= 0) {
        framed = request.slice(0, cut + 2) + id;
        pending[id] = { call: call, callback: callback };
      }
      window.parent.postMessage(framed, "*");
      return;
    }
    var name = "olVeevaCallback" + id;
    window[name] = function (result) {
      delete window[name];
      if (typeof result === "string") {
        try { result = JSON.parse(result); } catch (e) { /* keep the string */ }
      }
      answer(result);
    };
    var named = cut >= 0 ? request.slice(0, cut + 2) + "callback(" + name + ")" : request;
    var wk = window.webkit && window.webkit.messageHandlers && window.webkit.messageHandlers.veeva;
    if (wk) {
      wk.postMessage({ message: named });
    } else {
      document.location = "veeva:" + encodeURIComponent(named.slice("veeva:".length));
    }
  }

  com.veeva.clm = {
    runAPIRequest: function (request, callback) { runAPIRequest("runAPIRequest", request, callback); },
    createRecord: function (object, values, callback) {
      runAPIRequest("createRecord", "veeva:saveObjectV2(" + object + "),value(" + JSON.stringify(values) + "),callback(result)", callback);
    },
    queryRecord: function (object, fields, where, sort, limit, callback) {
      var r = "veeva:queryObject(" + object + "),fields(" + fields + ")";
      if (!isEmpty(where)) r += ",where(" + where + ")";
      if (!isEmpty(sort)) r += ",sort(" + sort + ")";
      if (!isEmpty(limit)) r += ",limit(" + limit + ")";
      runAPIRequest("queryRecord", r + ",callback(result)", callback);
    },
    getAddresses_Account: function (accountId, callback) {
      runAPIRequest("getAddresses_Account", "veeva:queryObject(Address_vod__c),fields(ID,Name,City_vod__c),where(WHERE Account_vod__c = \"" +
        accountId + "\"),callback(result)", callback);
    },
    // gotoSlide("X.zip", "PRES") or the single-string gotoSlide("X.zip, PRES"): no answer.
    gotoSlide: function (keyMessage, presentation) {
      var target = isEmpty(presentation) ? keyMessage : keyMessage + "," + presentation;
      runAPIRequest("gotoSlide", "veeva:gotoSlide(" + target + ")");
    }
  };
})();
