/*
 * The `edetail preview` shell: shows the call's current slide in a 1024x768 iframe scaled to
 * fit, and navigates through the preview API:
 *   GET  /_preview/deck        titles, version, signature, validity, slides + thumbnails
 *   GET  /_preview/state       the call's current slide (the device's navigation state wins)
 *   POST /_preview/nav         {action: next|prev|goto, slide?} -> {slide, presentation, url}
 *   POST /_preview/visibility  {visible} -> app background / foreground (dwell pauses)
 *   GET  /_edetail/preview/unsupported  the call's unsupported_api events (the panel)
 * Slides navigate themselves too (edetail.js sets location.href from the bridge reply): the
 * iframe's load event re-reads the state. Arrow keys and swipe act like the tablet's gestures
 * and honour the slide's `disabled_gestures`; the toolbar buttons and the overview always work.
 * A navigation answered with `moved: false` (next on the last slide, prev on the first) loads
 * nothing.
 *
 * Frame host (ADR 0013): the shell is the slide frame's parent, as a vendor's container is.
 *   - Veeva Engage: a slide running in a frame posts its `veeva:` request strings to
 *     window.parent; the shell hands each one to the slide's own
 *     `edetailContainers.fromFrameMessage` (from /_edetail/containers.js), which asks the
 *     core and posts the `{callback, ...}` answer back to the slide. Only messages whose source
 *     is the current slide frame are accepted.
 *   - OCE: `window.CLMPlayer` here forwards every call (`window.parent.CLMPlayer.x(...)` in the
 *     slide) to the active frame's `edetailContainers.oce.player`.
 * Viewport: the slide is laid out at the width its `<meta name="viewport">` declares
 * (`width=2048px`, `width=1024`, `device-width`, `initial-scale`), as on the iPad, and scaled to
 * the 1024x768 stage, so the whole slide shows.
 * `window.previewShell` exposes the state for tests; `document.body.dataset.slide` mirrors it.
 */
(function () {
  "use strict";

  var frame = document.getElementById("slide-frame");
  var box = document.getElementById("frame-box");
  var stage = document.getElementById("stage");
  var overview = document.getElementById("overview");
  var overviewToggle = document.getElementById("overview-toggle");
  var toastEl = document.getElementById("toast");

  var STAGE_W = 1024, STAGE_H = 768; // the tablet's CSS viewport the stage stands for
  var deck = null;
  var slides = {};      // id -> slide from the deck description
  var state = null;     // last /_preview/state
  var busy = false;
  var toastTimer = null;
  var shell = { deck: null, state: null, loads: 0, navigations: 0, relayed: 0, refused: 0, layout: { width: 1024, height: 768, scale: 1 }, unsupported: [] };
  window.previewShell = shell;

  function $(id) { return document.getElementById(id); }

  function toast(text, isError) {
    toastEl.textContent = text;
    toastEl.className = "show" + (isError ? " error" : "");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { toastEl.className = ""; }, 2600);
  }

  function api(method, path, body) {
    var init = { method: method, headers: {} };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (json) {
        if (!res.ok) {
          var err = new Error((json && json.error) || ("HTTP " + res.status));
          err.status = res.status;
          throw err;
        }
        return json;
      });
    });
  }

  // ------------------------------------------------------------------ layout

  // The layout width a slide's viewport meta asks for, as the iPad (1024 CSS px wide) applies
  // it: `width=2048px` / `width=2048` -> 2048, `device-width` -> 1024, else 1024 / initial-scale.
  function viewportWidth(content) {
    var width = null, scale = null;
    String(content || "").split(/[,;]/).forEach(function (part) {
      var kv = part.split("=");
      if (kv.length !== 2) return;
      var k = kv[0].trim().toLowerCase(), v = kv[1].trim().toLowerCase();
      if (k === "width") {
        if (v === "device-width") width = STAGE_W;
        else if (/^\d+(\.\d+)?(px)?$/.test(v)) width = parseFloat(v);
      } else if (k === "initial-scale" && /^\d+(\.\d+)?$/.test(v)) {
        scale = parseFloat(v);
      }
    });
    if (width === null && scale) width = STAGE_W / scale;
    if (!width || !isFinite(width)) width = STAGE_W;
    return Math.max(320, Math.min(width, 8192)); // the iPad clamps absurd values too
  }

  // Lays the slide out at its declared width (height from the stage's 4:3) and scales it back
  // to the stage, so a 2048-px slide shows whole instead of its top-left quarter.
  function applyViewport() {
    var content = null;
    try {
      var meta = frame.contentDocument && frame.contentDocument.querySelector('meta[name="viewport"]');
      content = meta && meta.getAttribute("content");
    } catch (e) { /* not same-origin: keep the default */ }
    var w = viewportWidth(content);
    var h = Math.round(w * STAGE_H / STAGE_W);
    var s = STAGE_W / w;
    if (shell.layout.width !== w) {
      frame.style.width = w + "px";
      frame.style.height = h + "px";
      frame.width = String(w);
      frame.height = String(h);
    }
    frame.style.transform = s === 1 ? "" : "scale(" + s + ")";
    shell.layout = { width: w, height: h, scale: s, meta: content };
    box.setAttribute("data-layout-width", String(w));
  }

  function fit() {
    applyViewport();
    var w = stage.clientWidth - 24, h = stage.clientHeight - 24;
    var s = Math.min(w / 1024, h / 768);
    if (!isFinite(s) || s <= 0) s = 1;
    box.style.transform = "scale(" + s + ")";
    // The box keeps its layout size; shrink the flex item so the scaled frame stays centred.
    box.style.margin = (-(768 * (1 - s)) / 2) + "px " + (-(1024 * (1 - s)) / 2) + "px";
  }
  window.addEventListener("resize", fit);

  // ------------------------------------------------------------------ deck and state

  // "2026-01-01" for midnight starts and 23:59:59 ends, else the exact UTC minute.
  function formatDate(iso, end) {
    if (typeof iso !== "string") return "";
    var time = iso.slice(11, 19);
    if ((!end && time === "00:00:00") || (end && time === "23:59:59")) return iso.slice(0, 10);
    return iso.slice(0, 10) + " " + iso.slice(11, 16) + " UTC";
  }

  function renderDeck() {
    document.title = deck.title + " · edetail preview";
    $("deck-title").textContent = deck.title;
    $("deck-version").textContent = "v" + deck.version + (deck.version_label ? " · " + deck.version_label : "");
    var badge = $("signature-badge");
    var sig = deck.signature || {};
    if (sig.status === "unsigned") {
      badge.textContent = "UNSIGNED — preview only";
      badge.className = "badge";
      badge.title = "This bundle has no signature: devices refuse it. Sign it with `edetail bundle sign` before publishing.";
    } else if (sig.status === "verified") {
      badge.textContent = "SIGNED";
      badge.className = "badge ok";
      badge.title = sig.label;
    } else {
      badge.textContent = "SIGNATURE NOT VERIFIED — preview only";
      badge.className = "badge";
      badge.title = sig.label || "";
    }
    badge.hidden = false;
    var now = new Date();
    var from = new Date(deck.valid_from), until = new Date(deck.valid_until);
    var validity = "valid " + formatDate(deck.valid_from) + " → " + formatDate(deck.valid_until, true);
    if (now < from) validity += " (not yet valid)";
    else if (now > until) validity += " (expired)";
    $("validity").textContent = validity;
    $("validity").title = "Approval code " + deck.approval_code + " · " + deck.bundle_id + " · product " + deck.product;
    deck.slides.forEach(function (s) { slides[s.id] = s; });
    renderOverview();
  }

  function renderOverview() {
    var list = $("overview-list");
    list.textContent = "";
    var ordered = deck.presentations.filter(function (p) { return !p.hidden; })
      .concat(deck.presentations.filter(function (p) { return p.hidden; }));
    ordered.forEach(function (p) {
      var h = document.createElement("h3");
      h.className = "pres-title";
      h.textContent = p.title;
      if (p.hidden) {
        var tag = document.createElement("span");
        tag.className = "tag";
        tag.textContent = "hidden deck";
        h.appendChild(tag);
      }
      list.appendChild(h);
      var grid = document.createElement("div");
      grid.className = "thumbs";
      p.slides.forEach(function (id, i) {
        var s = slides[id];
        if (!s) return;
        var b = document.createElement("button");
        b.type = "button";
        b.className = "thumb" + (s.hidden ? " hidden-slide" : "");
        b.setAttribute("data-slide", id);
        var img = document.createElement("span");
        img.className = "img";
        if (s.thumbnail) {
          var im = document.createElement("img");
          im.loading = "lazy";
          im.alt = "";
          im.src = s.thumbnail;
          img.appendChild(im);
        } else {
          img.textContent = "no thumbnail";
        }
        var label = document.createElement("span");
        label.className = "label";
        label.textContent = (i + 1) + ". " + s.title;
        var small = document.createElement("small");
        small.textContent = id + (s.hidden ? " · hidden" : "") + (s.bridge && s.bridge !== "edetail" ? " · " + s.bridge : "");
        label.appendChild(small);
        b.appendChild(img);
        b.appendChild(label);
        b.addEventListener("click", function () {
          showOverview(false);
          navigate({ action: "goto", slide: id });
        });
        grid.appendChild(b);
      });
      list.appendChild(grid);
    });
    markCurrent();
  }

  function markCurrent() {
    var cur = state && state.slide;
    [].forEach.call(document.querySelectorAll(".thumb"), function (t) {
      t.classList.toggle("current", t.getAttribute("data-slide") === cur);
    });
  }

  function applyState(s) {
    state = s;
    shell.state = s;
    var slide = s && s.slide && slides[s.slide];
    document.body.setAttribute("data-slide", (s && s.slide) || "");
    $("slide-title").textContent = slide ? slide.title : (s && s.slide) || "";
    var pos = "";
    if (slide && deck) {
      var p = deck.presentations.filter(function (d) { return d.id === s.presentation; })[0];
      if (p) pos = (p.slides.indexOf(slide.id) + 1) + " / " + p.slides.length + (p.hidden ? " · " + p.title : "");
    }
    $("slide-pos").textContent = pos;
    markCurrent();
  }

  function refreshState() {
    return api("GET", "/_preview/state").then(function (s) {
      applyState(s);
      return s;
    });
  }

  // Path of a slide URL without its route (`?path=…` / `#…`).
  function pathOf(url) { return String(url || "").split(/[?#]/)[0]; }

  function show(url) {
    if (!url) return;
    var current = null;
    try {
      var l = frame.contentWindow.location;
      current = l.pathname + l.search + l.hash;
    } catch (e) { /* not loaded yet */ }
    if (current === url) {
      // Same page: reload so the slide's own state starts afresh, like a slide change on a device.
      frame.contentWindow.location.reload();
    } else {
      frame.src = url;
    }
  }

  // ------------------------------------------------------------------ navigation

  function navigate(body) {
    if (busy) return Promise.resolve(null);
    busy = true;
    var before = state && state.slide;
    return api("POST", "/_preview/nav", body).then(function (t) {
      shell.navigations++;
      // ADR 0013: "next" on the last slide / "prev" on the first answers moved: false.
      if (t.moved === false || (t.moved === undefined && t.slide === before && body.action !== "goto")) {
        toast(body.action === "next" ? "Last slide of this presentation" : "First slide of this presentation");
        return refreshState();
      }
      applyState({ slide: t.slide, presentation: t.presentation, url: t.url, call: state && state.call });
      show(t.url);
      return t;
    }).catch(function (e) {
      toast("Navigation failed: " + e.message, true);
    }).then(function (r) {
      busy = false;
      return r;
    });
  }

  function gestureAllowed(gesture) {
    var s = state && slides[state.slide];
    if (s && s.disabled_gestures && s.disabled_gestures.indexOf(gesture) >= 0) {
      toast("This slide disables " + gesture.replace("_", " ") + " (manifest); use the toolbar buttons to override");
      return false;
    }
    return true;
  }

  function next(byGesture) {
    if (byGesture && !gestureAllowed("swipe_next")) return;
    navigate({ action: "next" });
  }
  function prev(byGesture) {
    if (byGesture && !gestureAllowed("swipe_previous")) return;
    navigate({ action: "prev" });
  }

  function showOverview(open) {
    overview.hidden = !open;
    overviewToggle.setAttribute("aria-expanded", String(open));
    if (open) {
      var cur = overview.querySelector(".thumb.current");
      if (cur && cur.scrollIntoView) cur.scrollIntoView({ block: "nearest" });
    }
  }

  $("next").addEventListener("click", function () { next(false); });
  $("prev").addEventListener("click", function () { prev(false); });
  overviewToggle.addEventListener("click", function () { showOverview(overview.hidden); });
  $("overview-close").addEventListener("click", function () { showOverview(false); });

  function isEditable(el) {
    if (!el || !el.tagName) return false;
    var t = el.tagName.toLowerCase();
    return t === "input" || t === "textarea" || t === "select" || el.isContentEditable;
  }

  function onKey(ev) {
    if (ev.defaultPrevented || ev.altKey || ev.ctrlKey || ev.metaKey || isEditable(ev.target)) return;
    var k = ev.key;
    if (k === "ArrowRight" || k === "PageDown") { ev.preventDefault(); next(true); }
    else if (k === "ArrowLeft" || k === "PageUp") { ev.preventDefault(); prev(true); }
    else if (k === "o" || k === "O") { ev.preventDefault(); showOverview(overview.hidden); }
    else if (k === "Escape" && !overview.hidden) { ev.preventDefault(); showOverview(false); }
  }
  document.addEventListener("keydown", onKey);

  // Swipe: a mostly horizontal drag of at least 90 slide pixels within 900 ms.
  function swipeDetector(target) {
    var start = null;
    target.addEventListener("pointerdown", function (ev) {
      if (!ev.isPrimary) return;
      start = { x: ev.screenX, y: ev.screenY, t: Date.now() };
    }, true);
    target.addEventListener("pointercancel", function () { start = null; }, true);
    target.addEventListener("pointerup", function (ev) {
      if (!start || !ev.isPrimary) return;
      var dx = ev.screenX - start.x, dy = ev.screenY - start.y, dt = Date.now() - start.t;
      start = null;
      var scale = box.getBoundingClientRect().width / 1024 || 1;
      if (dt > 900 || Math.abs(dx) < 90 * scale || Math.abs(dy) > Math.abs(dx) / 2) return;
      if (dx < 0) next(true); else prev(true);
    }, true);
  }
  swipeDetector(stage);

  // ------------------------------------------------------------------ the slide frame

  frame.addEventListener("load", function () {
    shell.loads++;
    var win = null, path = null;
    try {
      win = frame.contentWindow;
      path = win.location.pathname;
    } catch (e) { /* cross-origin: cannot happen for bundle pages */ }
    fit();
    refreshUnsupported();
    if (win && !win.__edetailPreviewHooked) {
      // Gestures inside the slide reach the shell too (the slide is same-origin).
      win.__edetailPreviewHooked = true;
      win.addEventListener("keydown", onKey);
      swipeDetector(win);
    }
    refreshState().then(function (s) {
      if (s && s.url && path && path !== "blank" && path !== pathOf(s.url)) {
        toast("The page shown is not the call's current slide (" + s.slide + ")", true);
      }
    }).catch(function (e) { toast("Could not read the call state: " + e.message, true); });
  });

  document.addEventListener("visibilitychange", function () {
    api("POST", "/_preview/visibility", { visible: document.visibilityState === "visible" }).catch(function () {});
  });

  // ------------------------------------------------------------------ frame host (ADR 0013)

  function containersOf(win) {
    try { return (win && win.edetailContainers) || null; } catch (e) { return null; }
  }

  // A framed slide's library posts container requests to its parent: Veeva Engage `veeva:`
  // strings, and OCE clmplayer.js `{"request", "params"}` JSON. The slide's own containers.js
  // routes them (fromFrameMessage answers false for anything else, which is left alone).
  window.addEventListener("message", function (ev) {
    var data = ev.data;
    if (typeof data !== "string") return;
    var veeva = data.slice(0, 6) === "veeva:";
    if (!frame.contentWindow || ev.source !== frame.contentWindow) {
      if (veeva) shell.refused++; // another window (a nested frame, a popup): not the slide
      return;
    }
    var c = containersOf(ev.source);
    if (!c || typeof c.fromFrameMessage !== "function") {
      if (veeva) {
        shell.refused++;
        toast("A Veeva request could not be relayed: this runtime has no /_edetail/containers.js", true);
      }
      return;
    }
    try {
      if (c.fromFrameMessage(data)) shell.relayed++;
    } catch (e) {
      toast("Relaying a container request failed: " + (e && e.message ? e.message : e), true);
    }
  });

  // OCE: slides call window.parent.CLMPlayer.<method>(...); the active frame's player answers.
  var OCE_METHODS = ["gotoSlide", "goNext", "goPrevious", "goNextSequence", "goPreviousSequence", "getCurrentSlide",
    "getPresentationStructure", "addAction", "startTrackingPage", "stopTrackingPage", "openDocument", "openPresentation",
    "registerEventListener", "getCurrentPresentation", "getAccount", "getUser", "getCall", "defineNavigationZones",
    "closePresentation", "openUrl"];
  function activePlayer() {
    var c = containersOf(frame.contentWindow);
    return c && c.oce && c.oce.player ? c.oce.player : null;
  }
  function forward(name) {
    return function () {
      var p = activePlayer();
      if (!p) {
        toast("CLMPlayer." + name + " could not be forwarded: this runtime has no /_edetail/containers.js", true);
        return undefined;
      }
      var f = p[name];
      if (typeof f !== "function") return f;
      return f.apply(p, arguments);
    };
  }
  var player = {};
  OCE_METHODS.forEach(function (n) { player[n] = forward(n); });
  // Names that must not look like methods (promise and JSON probes).
  var NOT_FORWARDED = { then: 1, toJSON: 1, constructor: 1, valueOf: 1, toString: 1 };
  window.CLMPlayer = typeof Proxy === "function" ? new Proxy(player, {
    get: function (target, key) {
      if (Object.prototype.hasOwnProperty.call(target, key)) return target[key];
      if (typeof key !== "string" || NOT_FORWARDED[key]) return target[key];
      return forward(key); // unknown methods reach the player too (it records them as unsupported)
    }
  }) : player;

  // ------------------------------------------------------------------ unsupported vendor calls

  var panel = $("unsupported");
  var unsupportedSeen = -1;
  function renderUnsupported(r) {
    var summary = (r && r.summary) || [];
    shell.unsupported = summary;
    var total = ((r && r.events) || []).length;
    if (total === unsupportedSeen) return;
    unsupportedSeen = total;
    panel.hidden = summary.length === 0;
    var list = $("unsupported-list");
    list.textContent = "";
    summary.forEach(function (s) {
      var li = document.createElement("li");
      li.textContent = s.label + (s.count > 1 ? " \u00d7" + s.count : "");
      li.setAttribute("data-api", s.api || "");
      list.appendChild(li);
    });
    $("unsupported-count").textContent = String(total);
  }
  var pollFailures = 0;
  function refreshUnsupported() {
    return api("GET", "/_edetail/preview/unsupported").then(function (r) {
      pollFailures = 0;
      renderUnsupported(r);
    }).catch(function () { pollFailures++; });
  }
  // The slide's bridge calls bypass the shell: poll while visible, until the preview is gone.
  // The state too: a single-page framework (Agnitio) moves between slides inside its own page,
  // and its slideEnter reports move the call without any load the shell would see.
  var poller = setInterval(function () {
    if (pollFailures >= 3) { clearInterval(poller); return; }
    if (document.visibilityState === "hidden") return;
    refreshUnsupported();
    if (deck) {
      api("GET", "/_preview/state").then(function (s) {
        if (s && (!state || s.slide !== state.slide || s.presentation !== state.presentation)) applyState(s);
      }).catch(function () {});
    }
  }, 1500);
  $("unsupported-toggle").addEventListener("click", function () {
    var open = panel.classList.toggle("open");
    $("unsupported-toggle").setAttribute("aria-expanded", String(open));
  });

  // ------------------------------------------------------------------ start

  fit();
  shell.ready = Promise.all([api("GET", "/_preview/deck"), api("GET", "/_preview/state")]).then(function (r) {
    deck = r[0];
    shell.deck = deck;
    renderDeck();
    applyState(r[1]);
    show(r[1].url);
    fit();
    refreshUnsupported();
    return true;
  }).catch(function (e) {
    $("deck-title").textContent = "Preview unavailable";
    toast("Could not load the preview: " + e.message, true);
    return false;
  });
})();
