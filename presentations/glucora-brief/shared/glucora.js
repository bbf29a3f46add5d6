/*
 * Glucora brief — slide helpers (self-contained; shares nothing with other decks).
 *
 * Include after the runtime API:
 *   <script src="/_edetail/edetail.js"></script>
 *   <script src="../../shared/glucora.js"></script>
 *
 * `window.edetail` only exists inside the edetail runtime. Opened from disk (authoring,
 * thumbnail rendering) GL.api is a console-logging stand-in, so slides never break.
 * Markup hooks: <div class="gl-react" data-gl-react></div>, <button data-gl-goto="slide-id">.
 */
(function () {
  "use strict";

  var body = document.body;
  var SLIDE = body.getAttribute("data-slide") || "unknown";
  var THUMB = location.search.indexOf("thumb") !== -1;
  if (THUMB) document.documentElement.classList.add("gl-thumb");

  function say() { try { console.info.apply(console, ["[glucora:no-runtime]"].concat([].slice.call(arguments))); } catch (e) { /* no console */ } }
  var mem = {};
  var standIn = {
    next: function () { say("next"); return Promise.resolve(); },
    prev: function () { say("prev"); return Promise.resolve(); },
    goTo: function (s, p) { say("goTo", s, p); if (!THUMB && /^[a-z0-9-]+$/.test(s)) location.href = "../" + s + "/index.html"; return Promise.resolve(); },
    track: function (n, d) { say("track", n, d); return Promise.resolve(); },
    answer: function (q, a, t) { say("answer", q, a, t); return Promise.resolve(); },
    react: function (v) { say("react", v); return Promise.resolve(); },
    followUp: function (t, n) { say("followUp", t, n); return Promise.resolve(); },
    advocacy: function (a) { say("advocacy", a); return Promise.resolve(); },
    context: function () { return Promise.resolve({ hcp: null, call: null, rep: null, slide: { id: SLIDE } }); },
    state: {
      save: function (k, v) { mem[k] = v; return Promise.resolve(); },
      load: function (k) { return Promise.resolve(k in mem ? mem[k] : null); }
    }
  };
  var api = window.edetail || standIn;

  function safe(fn, ctx, args, fallbackFn) {
    var f = typeof fn === "function" ? fn : fallbackFn;
    try { return Promise.resolve(f.apply(ctx, args)).catch(function (e) { say("call failed", e); return null; }); }
    catch (e) { say("call threw", e); return Promise.resolve(null); }
  }
  function st() { return api.state || standIn.state; }

  var GL = window.GL = {
    api: api,
    slide: SLIDE,
    thumb: THUMB,
    goTo: function (s, p) { return safe(api.goTo, api, p ? [s, p] : [s], standIn.goTo); },
    track: function (n, d) { return safe(api.track, api, [n, d || {}], standIn.track); },
    react: function (v) { return safe(api.react, api, [v], standIn.react); },
    followUp: function (t, n) { return safe(api.followUp, api, n ? [t, n] : [t], standIn.followUp); },
    advocacy: function (a) { return safe(api.advocacy, api, [a], standIn.advocacy); },
    save: function (k, v) { return safe(st().save, st(), [k, v], standIn.state.save); },
    load: function (k) { return safe(st().load, st(), [k], standIn.state.load); },
    q: function (s) { return document.querySelector(s); },
    qa: function (s) { return [].slice.call(document.querySelectorAll(s)); }
  };

  // scale the 1024x768 canvas
  function fit() {
    var k = Math.min(innerWidth / 1024, innerHeight / 768);
    document.documentElement.style.setProperty("--gl-scale", String(isFinite(k) && k > 0 ? k : 1));
  }
  fit();
  addEventListener("resize", fit);

  // reactions
  var SVG = {
    positive: '<svg viewBox="0 0 20 20" aria-hidden="true"><path fill="currentColor" d="M2 17h3V8H2v9zm16-8a1.6 1.6 0 0 0-1.6-1.6h-5l.8-3.7v-.3c0-.3-.1-.6-.3-.9L11 1.6 5.8 6.8c-.3.3-.5.7-.5 1.2v7.4c0 .9.7 1.6 1.6 1.6h7c.7 0 1.2-.4 1.5-1l2.4-5.6c.1-.2.1-.4.1-.6V9z"/></svg>',
    neutral: '<svg viewBox="0 0 20 20" aria-hidden="true"><circle cx="10" cy="10" r="8" fill="none" stroke="currentColor" stroke-width="1.8"/><circle cx="7.3" cy="8.3" r="1.2" fill="currentColor"/><circle cx="12.7" cy="8.3" r="1.2" fill="currentColor"/><path d="M6.5 13h7" stroke="currentColor" stroke-width="1.8" stroke-linecap="round"/></svg>',
    negative: '<svg viewBox="0 0 20 20" aria-hidden="true"><path fill="currentColor" d="M18 3h-3v9h3V3zM2 11a1.6 1.6 0 0 0 1.6 1.6h5l-.8 3.7v.3c0 .3.1.6.3.9l.9.9 5.2-5.2c.3-.3.5-.7.5-1.2V4.6c0-.9-.7-1.6-1.6-1.6h-7c-.7 0-1.2.4-1.5 1L2.2 9.6c-.1.2-.1.4-.1.6V11z"/></svg>'
  };
  GL.qa("[data-gl-react]").forEach(function (box) {
    box.setAttribute("role", "group");
    box.setAttribute("aria-label", "How useful was this slide?");
    ["positive", "neutral", "negative"].forEach(function (v) {
      var b = document.createElement("button");
      b.type = "button";
      b.setAttribute("data-value", v);
      b.setAttribute("aria-pressed", "false");
      b.setAttribute("aria-label", { positive: "Useful", neutral: "Neutral", negative: "Not useful" }[v]);
      b.innerHTML = SVG[v];
      b.addEventListener("click", function () {
        GL.qa("[data-gl-react] button").forEach(function (o) { o.setAttribute("aria-pressed", String(o === b)); });
        GL.react(v);
        GL.save("gl-reaction:" + SLIDE, v);
      });
      box.appendChild(b);
    });
    GL.load("gl-reaction:" + SLIDE).then(function (v) {
      if (v) GL.qa("[data-gl-react] button").forEach(function (o) { o.setAttribute("aria-pressed", String(o.getAttribute("data-value") === v)); });
    });
  });

  // in-slide links
  GL.qa("[data-gl-goto]").forEach(function (el) {
    el.addEventListener("click", function () {
      var to = el.getAttribute("data-gl-goto");
      GL.track("link_clicked", { from: SLIDE, to: to });
      GL.goTo(to);
    });
  });
})();
