/*
 * Cardiozen launch deck — shared slide helpers.
 *
 * Load order in every slide:
 *   <script src="/_edetail/edetail.js"></script>   (served by the edetail runtime)
 *   <script src="../../shared/deck.js"></script>
 *   <script src="slide.js"></script>                (optional, per slide)
 *
 * When a slide is opened straight from disk (authoring, thumbnail rendering) the runtime's
 * /_edetail/edetail.js does not exist, so `window.edetail` is undefined. CZ.ed is then a
 * stand-in that logs every call to the console and keeps state in sessionStorage, so every
 * slide still works on its own. Every call returns a Promise in both cases.
 *
 * Declarative hooks, wired on load:
 *   <div data-reactions></div>                        thumbs up / neutral / down -> edetail.react()
 *   <button data-goto="dosing">                       -> edetail.goTo('dosing')
 *   <button data-goto="pi-1" data-presentation="pi">  -> edetail.goTo('pi-1', 'pi')
 *   <button data-track="event_name" data-track-x="1"> -> edetail.track('event_name', {x: '1'})
 */
(function () {
  "use strict";

  var doc = document;
  var root = doc.documentElement;
  var body = doc.body;
  var slideId = (body && body.getAttribute("data-slide")) || "unknown";
  var presentationId = (body && body.getAttribute("data-presentation")) || "main";
  var isThumb = /[?&]thumb\b/.test(location.search);
  if (isThumb) root.classList.add("is-thumb");

  // ---------------------------------------------------------------- the edetail guard

  function log() {
    if (window.console && console.info) {
      console.info.apply(console, ["[edetail fallback]"].concat([].slice.call(arguments)));
    }
  }

  function makeFallback() {
    var prefix = "edetail-fallback:";
    var store = null;
    try { store = window.sessionStorage; store.setItem(prefix + "probe", "1"); } catch (e) { store = null; }
    var memory = {};
    function done(value) { return Promise.resolve(value); }
    return {
      isFallback: true,
      next: function () { log("next()"); return done(); },
      prev: function () { log("prev()"); return done(); },
      goTo: function (slide, presentation) {
        log("goTo()", slide, presentation || "(current presentation)");
        // Authoring convenience: slide folders are siblings, so follow the link on disk.
        if (!isThumb && slide && /^[a-z0-9-]+$/.test(slide)) location.href = "../" + slide + "/index.html";
        return done();
      },
      track: function (name, data) { log("track()", name, data || {}); return done(); },
      answer: function (id, answers, text) { log("answer()", id, answers, text); return done(); },
      react: function (value) { log("react()", value); return done(); },
      followUp: function (topic, note) { log("followUp()", topic, note || ""); return done(); },
      advocacy: function (action) { log("advocacy()", action); return done(); },
      context: function () {
        return done({ hcp: null, call: null, rep: null, slide: { id: slideId, presentation: presentationId } });
      },
      state: {
        save: function (key, value) {
          var raw = JSON.stringify(value === undefined ? null : value);
          if (store) store.setItem(prefix + key, raw); else memory[key] = raw;
          return done();
        },
        load: function (key) {
          var raw = store ? store.getItem(prefix + key) : memory[key];
          try { return done(raw == null ? null : JSON.parse(raw)); } catch (e) { return done(null); }
        }
      }
    };
  }

  var fallback = makeFallback();
  var ed = window.edetail || fallback;

  // Call one API function; never throws, always returns a Promise, falls back per function
  // (so a runtime that lacks a function still behaves).
  function call(path) {
    var args = [].slice.call(arguments, 1);
    function pick(obj) {
      var parts = path.split("."), ctx = obj, fn = obj;
      for (var i = 0; i < parts.length; i++) { ctx = fn; fn = fn ? fn[parts[i]] : undefined; }
      return typeof fn === "function" ? { fn: fn, ctx: ctx } : null;
    }
    var target = pick(ed) || pick(fallback);
    try {
      return Promise.resolve(target.fn.apply(target.ctx, args)).catch(function (err) {
        log("edetail." + path + " failed", err);
        return null;
      });
    } catch (err) {
      log("edetail." + path + " threw", err);
      return Promise.resolve(null);
    }
  }

  var CZ = {
    ed: ed,
    slideId: slideId,
    presentationId: presentationId,
    isThumb: isThumb,
    next: function () { return call("next"); },
    prev: function () { return call("prev"); },
    goTo: function (slide, presentation) {
      return presentation ? call("goTo", slide, presentation) : call("goTo", slide);
    },
    track: function (name, data) { return call("track", name, data || {}); },
    answer: function (id, answers, text) { return call("answer", id, answers, text); },
    react: function (value) { return call("react", value); },
    followUp: function (topic, note) { return note ? call("followUp", topic, note) : call("followUp", topic); },
    advocacy: function (action) { return call("advocacy", action); },
    context: function () { return call("context"); },
    save: function (key, value) { return call("state.save", key, value); },
    load: function (key) { return call("state.load", key); },
    $: function (sel, ctx) { return (ctx || doc).querySelector(sel); },
    $$: function (sel, ctx) { return [].slice.call((ctx || doc).querySelectorAll(sel)); }
  };
  window.CZ = CZ;

  // ---------------------------------------------------------------- canvas scaling

  function fit() {
    var s = Math.min(window.innerWidth / 1024, window.innerHeight / 768);
    if (!isFinite(s) || s <= 0) s = 1;
    root.style.setProperty("--deck-scale", String(s));
  }
  fit();
  window.addEventListener("resize", fit);
  window.addEventListener("orientationchange", fit);

  // ---------------------------------------------------------------- reactions

  var ICONS = {
    positive: '<svg viewBox="0 0 24 24" aria-hidden="true"><path fill="currentColor" d="M2 21h4V9H2v12zm20-11a2 2 0 0 0-2-2h-6.3l1-4.6v-.3c0-.4-.2-.8-.4-1.1L13.2 1 6.6 7.6C6.2 8 6 8.5 6 9v10a2 2 0 0 0 2 2h9c.8 0 1.5-.5 1.8-1.2l3-7.1c.1-.2.2-.5.2-.7v-2z"/></svg>',
    neutral: '<svg viewBox="0 0 24 24" aria-hidden="true"><circle cx="12" cy="12" r="9.5" fill="none" stroke="currentColor" stroke-width="2"/><circle cx="8.8" cy="10" r="1.4" fill="currentColor"/><circle cx="15.2" cy="10" r="1.4" fill="currentColor"/><path d="M8 15.5h8" stroke="currentColor" stroke-width="2" stroke-linecap="round"/></svg>',
    negative: '<svg viewBox="0 0 24 24" aria-hidden="true"><path fill="currentColor" d="M22 3h-4v12h4V3zM2 14a2 2 0 0 0 2 2h6.3l-1 4.6v.3c0 .4.2.8.4 1.1l1.1 1 6.6-6.6c.4-.4.6-.9.6-1.4V5a2 2 0 0 0-2-2H7c-.8 0-1.5.5-1.8 1.2l-3 7.1c-.1.2-.2.5-.2.7v2z"/></svg>'
  };
  var LABELS = { positive: "Helpful", neutral: "Neutral", negative: "Not helpful" };

  CZ.$$("[data-reactions]").forEach(function (holder) {
    holder.classList.add("reactions");
    holder.setAttribute("role", "group");
    holder.setAttribute("aria-label", "Reaction to this slide");
    var buttons = ["positive", "neutral", "negative"].map(function (value) {
      var b = doc.createElement("button");
      b.type = "button";
      b.className = "reaction";
      b.setAttribute("data-value", value);
      b.setAttribute("aria-pressed", "false");
      b.setAttribute("aria-label", LABELS[value]);
      b.title = LABELS[value];
      b.innerHTML = ICONS[value];
      holder.appendChild(b);
      return b;
    });
    function show(value) {
      buttons.forEach(function (b) { b.setAttribute("aria-pressed", String(b.getAttribute("data-value") === value)); });
    }
    buttons.forEach(function (b) {
      b.addEventListener("click", function () {
        var value = b.getAttribute("data-value");
        show(value);
        CZ.react(value);
        CZ.save("reaction:" + slideId, value);
      });
    });
    CZ.load("reaction:" + slideId).then(function (v) { if (v) show(v); });
  });

  // ---------------------------------------------------------------- declarative links & tracking

  doc.addEventListener("click", function (ev) {
    var el = ev.target.closest ? ev.target.closest("[data-goto],[data-track]") : null;
    if (!el) return;
    if (el.hasAttribute("data-track")) {
      var data = {};
      Object.keys(el.dataset).forEach(function (k) {
        if (k.indexOf("track") === 0 && k.length > 5) data[k.charAt(5).toLowerCase() + k.slice(6)] = el.dataset[k];
      });
      CZ.track(el.getAttribute("data-track"), data);
    }
    if (el.hasAttribute("data-goto")) {
      ev.preventDefault();
      var target = el.getAttribute("data-goto");
      var pres = el.getAttribute("data-presentation");
      var jump = function () { return CZ.goTo(target, pres || undefined); };
      if (pres && pres !== presentationId) {
        // Remember where we came from so a hidden deck's "back" button can return here.
        CZ.save("return-to", { slide: slideId, presentation: presentationId }).then(jump);
      } else {
        jump();
      }
    }
  });

  // A "back to presentation" button in hidden decks: <button data-return data-fallback="efficacy-primary">
  CZ.$$("[data-return]").forEach(function (el) {
    el.addEventListener("click", function () {
      CZ.load("return-to").then(function (r) {
        var slide = (r && r.slide) || el.getAttribute("data-fallback") || "intro";
        var pres = (r && r.presentation) || "main";
        CZ.track("return_to_presentation", { from: slideId, to: slide });
        CZ.goTo(slide, pres);
      });
    });
  });
})();
