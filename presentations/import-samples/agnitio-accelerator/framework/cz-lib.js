/*
 * Cardiozen content library (sample, written for edetail). It talks to the Agnitio container
 * the way Agnitio content libraries do: a hidden iframe whose src is
 * objc://iplanner/<api>?<encodeURIComponent(JSON)>. That interface is used when the container
 * says it is an iPad (window.agnitioInfo.localizedModel === "iPad"); elsewhere the calls are
 * only logged. Every container call is counted in window.__vendorCalls ({api, params}) so that
 * a test can compare the calls made with the events recorded; an answer the container sends
 * back (through the resultFunction a call names) is kept on the call as `result`.
 *
 * Monitoring events have the container's shape: {type, categoryId, category, labelId, label,
 * valueId, value, valueType, time, slidePath}; for slide views valueId is the slide id and
 * value its name.
 */
(function (w) {
  'use strict';
  var calls = w.__vendorCalls = w.__vendorCalls || [];

  function onIPad() {
    return !!(w.agnitioInfo && w.agnitioInfo.localizedModel === 'iPad');
  }

  // The container interfaces this library uses, one URL per call.
  var MONITORING_EVENT = 'objc://iplanner/monitoringEvent?';
  var OPEN_PDF = 'objc://iplanner/openPDF?';
  var SEND_MAIL = 'objc://iplanner/sendMail?';
  var GET_PRESENTER = 'objc://iplanner/getPresenter?';

  function invoke(url, params) {
    var api = url.slice('objc://iplanner/'.length, -1);
    if (!onIPad()) {
      if (w.console) { w.console.log('[cz-lib] ' + api + ' (no container)', JSON.stringify(params)); }
      return null;
    }
    var call = { api: api, params: params };
    calls.push(call);
    var frame = document.createElement('iframe');
    frame.style.display = 'none';
    frame.setAttribute('src', url + encodeURIComponent(JSON.stringify(params)));
    document.documentElement.appendChild(frame);
    setTimeout(function () { if (frame.parentNode) { frame.parentNode.removeChild(frame); } }, 0);
    return call;
  }

  function monitor(type, category, labelId, label, valueId, value, slidePath) {
    return invoke(MONITORING_EVENT, {
      type: type,
      categoryId: null,
      category: category,
      labelId: labelId,
      label: label,
      valueId: valueId,
      value: value,
      valueType: type === 'custom' ? 'text' : null,
      time: Math.round(Date.now() / 1000),
      slidePath: slidePath
    });
  }

  var presenterWaiting = [];

  w.czLib = {
    slideEnter: function (slideId, name, path) { return monitor('system', 'slideEnter', 'id', 'name', slideId, name, path); },
    slideExit: function (slideId, name, path) { return monitor('system', 'slideExit', 'id', 'name', slideId, name, path); },
    custom: function (category, label, value, path) { return monitor('custom', category, label, label, value, value, path); },
    openPDF: function (file) { return invoke(OPEN_PDF, { path: file }); },
    // edetail does not support it: the container answers nothing and records it.
    sendMail: function (template, subject) {
      return invoke(SEND_MAIL, { address: '', subject: subject || '', body: '', fileName: template });
    },
    // The container answers through the function the call names, with a JSON string.
    getPresenter: function (done) {
      var call = invoke(GET_PRESENTER, { resultFunction: 'czLib._presenter' });
      if (call && done) { presenterWaiting.push({ call: call, done: done }); }
      return call;
    },
    _presenter: function (json) {
      var value = null;
      try { value = JSON.parse(json); } catch (e) { value = null; }
      var next = presenterWaiting.shift();
      if (!next) { return; }
      next.call.result = value;
      try { next.done(value); } catch (e) { if (w.console) { w.console.error('[cz-lib] presenter callback', e); } }
    }
  };
})(window);
