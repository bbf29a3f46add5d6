/*
 * Cardiozen OCE helper (sample, written for edetail). Calls the OCE container's CLMPlayer:
 * its own global, or window.parent.CLMPlayer when the sequence runs in a frame. Every call is
 * counted in window.__vendorCalls ({api, args}) so that a test can compare calls made with
 * events recorded; the player's answer (a Promise) is kept on the call as `result`.
 *
 * Controls: #next / #prev (goNextSequence / goPreviousSequence), [data-sequence]
 * (gotoSlide(sequence, null, null)), [data-page] (gotoSlide(null, page)), button[data-action]
 * (addAction), button[data-survey] (getSurveyFlowJson, which edetail does not support). Each
 * page calls startTrackingPage once when it loads (czOce.track).
 */
(function (w, d) {
  'use strict';
  var calls = w.__vendorCalls = w.__vendorCalls || [];
  var pageId = null;

  function framed() {
    try { return w.parent !== w && !!w.parent.CLMPlayer; } catch (e) { return false; }
  }
  function count(api, args) {
    var call = { api: api, args: args };
    calls.push(call);
    return call;
  }
  // Keeps the player's answer on the call (the player answers with a Promise, or nothing).
  function answered(call, answer) {
    if (answer && typeof answer.then === 'function') {
      answer.then(function (r) { call.result = r === undefined ? null : r; }, function (e) { call.result = { error: String(e) }; });
    } else {
      call.result = answer === undefined ? null : answer;
    }
  }

  w.czOce = {
    gotoSlide: function (sequence, page) {
      var call = count('gotoSlide', [sequence, page || null]);
      if (framed()) { answered(call, w.parent.CLMPlayer.gotoSlide(sequence, page || null, null)); }
      else { answered(call, CLMPlayer.gotoSlide(sequence, page || null, null)); }
    },
    next: function () {
      var call = count('goNextSequence', []);
      if (framed()) { answered(call, w.parent.CLMPlayer.goNextSequence()); } else { answered(call, CLMPlayer.goNextSequence()); }
    },
    prev: function () {
      var call = count('goPreviousSequence', []);
      if (framed()) { answered(call, w.parent.CLMPlayer.goPreviousSequence()); } else { answered(call, CLMPlayer.goPreviousSequence()); }
    },
    // addAction(action__c, detailedtime__c, fromtime__c, totime__c, product__c, pageid__c,
    // productmessageexternalid__c, slideorder__c, category__c, reaction__c): the value the
    // HCP gave goes to reaction__c.
    action: function (name, value) {
      var call = count('addAction', [name, value]);
      var when = new Date().toISOString();
      if (framed()) {
        answered(call, w.parent.CLMPlayer.addAction(name, when, undefined, undefined, 'Cardiozen', pageId, undefined, undefined, 'interaction', value));
      } else {
        answered(call, CLMPlayer.addAction(name, when, undefined, undefined, 'Cardiozen', pageId, undefined, undefined, 'interaction', value));
      }
    },
    // The survey flow goes through a player variable (as many decks write it): the import's
    // textual compatibility scan does not see it; the runtime records it all the same.
    survey: function (name) {
      var json = JSON.stringify({ survey: name, pageid: pageId });
      var call = count('getSurveyFlowJson', [json]);
      var player = framed() ? w.parent.CLMPlayer : w.CLMPlayer;
      answered(call, player.getSurveyFlowJson(json));
    },
    track: function (page) {
      pageId = page;
      var call = count('startTrackingPage', [page]);
      if (framed()) { answered(call, w.parent.CLMPlayer.startTrackingPage(page)); } else { answered(call, CLMPlayer.startTrackingPage(page)); }
    }
  };
  d.addEventListener('click', function (e) {
    var t = e.target.closest ? e.target.closest('[data-sequence],[data-page],[data-action],[data-survey],#next,#prev') : null;
    if (!t) { return; }
    e.preventDefault();
    if (t.id === 'next') { w.czOce.next(); }
    else if (t.id === 'prev') { w.czOce.prev(); }
    else if (t.hasAttribute('data-sequence')) { w.czOce.gotoSlide(t.getAttribute('data-sequence'), t.getAttribute('data-page')); }
    else if (t.hasAttribute('data-page')) { w.czOce.gotoSlide(null, t.getAttribute('data-page')); }
    else if (t.hasAttribute('data-survey')) { w.czOce.survey(t.getAttribute('data-survey')); }
    else { w.czOce.action(t.getAttribute('data-action'), t.getAttribute('data-value') || ''); }
  });
})(window, document);
