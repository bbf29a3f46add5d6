/*
 * Cardiozen content library (sample, written for edetail). It talks to the Agnitio container
 * the way Agnitio content libraries do: a hidden iframe whose src is
 * objc://iplanner/<api>?<encodeURIComponent(JSON)>. That interface is used when the container
 * says it is an iPad (window.agnitioInfo.localizedModel === "iPad"); elsewhere the calls are
 * only logged. Every container call is counted in window.__vendorCalls so that a test can
 * compare the calls made with the events recorded.
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

  function invoke(url, params) {
    var api = url.slice('objc://iplanner/'.length, -1);
    if (!onIPad()) {
      if (w.console) { w.console.log('[cz-lib] ' + api + ' (no container)', JSON.stringify(params)); }
      return false;
    }
    calls.push({ api: api, params: params });
    var frame = document.createElement('iframe');
    frame.style.display = 'none';
    frame.setAttribute('src', url + encodeURIComponent(JSON.stringify(params)));
    document.documentElement.appendChild(frame);
    setTimeout(function () { if (frame.parentNode) { frame.parentNode.removeChild(frame); } }, 0);
    return true;
  }

  function monitor(type, category, label, labelId, value, valueId, slidePath) {
    return invoke(MONITORING_EVENT, {
      type: type,
      category: category,
      label: label,
      labelId: labelId,
      value: value,
      valueId: valueId,
      time: Math.round(Date.now() / 1000),
      slidePath: slidePath
    });
  }

  w.czLib = {
    slideEnter: function (slideId, name, path) { return monitor('system', 'slideEnter', name, slideId, '', '', path); },
    slideExit: function (slideId, name, path) { return monitor('system', 'slideExit', name, slideId, '', '', path); },
    custom: function (category, label, value, path) { return monitor('custom', category, label, label, value, value, path); },
    openPDF: function (file) { return invoke(OPEN_PDF, { filename: file }); },
    // Not wired to any control: shows up as unsupported in edetail's compatibility report.
    sendMail: function (template) { return invoke(SEND_MAIL, { template: template }); }
  };
})(window);
