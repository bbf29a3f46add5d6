/*
 * Cardiozen OCE helper (sample, written for edetail). Calls the OCE container's CLMPlayer:
 * its own global, or window.parent.CLMPlayer when the sequence runs in a frame. Every call is
 * counted in window.__vendorCalls so that a test can compare calls made with events recorded.
 */
(function (w, d) {
  'use strict';
  var calls = w.__vendorCalls = w.__vendorCalls || [];
  function framed() {
    try { return w.parent !== w && !!w.parent.CLMPlayer; } catch (e) { return false; }
  }
  function count(api, args) { calls.push({ api: api, args: args }); }
  w.czOce = {
    gotoSlide: function (sequence, page) {
      count('gotoSlide', [sequence, page || null]);
      if (framed()) { w.parent.CLMPlayer.gotoSlide(sequence, page || null, null); }
      else { CLMPlayer.gotoSlide(sequence, page || null, null); }
    },
    next: function () {
      count('goNextSequence', []);
      if (framed()) { w.parent.CLMPlayer.goNextSequence(); } else { CLMPlayer.goNextSequence(); }
    },
    prev: function () {
      count('goPreviousSequence', []);
      if (framed()) { w.parent.CLMPlayer.goPreviousSequence(); } else { CLMPlayer.goPreviousSequence(); }
    },
    action: function (name, value) {
      count('addAction', [name, value]);
      if (framed()) { w.parent.CLMPlayer.addAction(name, value); } else { CLMPlayer.addAction(name, value); }
    },
    track: function (page) {
      count('startTrackingPage', [page]);
      CLMPlayer.startTrackingPage(page);
    }
  };
  d.addEventListener('click', function (e) {
    var t = e.target.closest ? e.target.closest('[data-sequence],[data-page],[data-action],#next,#prev') : null;
    if (!t) { return; }
    e.preventDefault();
    if (t.id === 'next') { w.czOce.next(); }
    else if (t.id === 'prev') { w.czOce.prev(); }
    else if (t.hasAttribute('data-sequence')) { w.czOce.gotoSlide(t.getAttribute('data-sequence'), t.getAttribute('data-page')); }
    else if (t.hasAttribute('data-page')) { w.czOce.gotoSlide(null, t.getAttribute('data-page')); }
    else { w.czOce.action(t.getAttribute('data-action'), t.getAttribute('data-value') || ''); }
  });
})(window, document);
