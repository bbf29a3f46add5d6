//! The follower page a doctor opens from a remote session's link (`/r/{token}`): the rep's
//! current slide in a sandboxed frame, kept in step over the session's WebSocket, the rep's
//! pointer, and the controls she gets when the rep hands control over; plus the follower copy
//! of the slide bridge (`/_edetail/edetail.js`), which records nothing and gives slides the
//! state the rep's copy saved. No install, no plugin: one HTML page and a small script.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use edetail_bundle::Manifest;

use crate::microsite::{esc, url_path};
use crate::store::RemoteSession;

/// The page's answer when a link is unknown or the meeting is over (plain, no details).
pub(super) fn unavailable(status: StatusCode, text: &str) -> Response {
    let body = format!(
        "<!doctype html><meta charset=utf-8><meta name=referrer content=no-referrer><title>Meeting unavailable</title>\
         <body data-state=ended style=\"font-family:system-ui;margin:3rem;color:#333\"><h1>{}</h1>\
         <p>Please ask your representative for a new link.</p></body>",
        esc(text)
    );
    crate::web::html_page(status, body, crate::web::DEFAULT_HTML_CSP)
}

/// The follower page's script. Static, so the page's policy allows exactly it by hash; the
/// page passes the session's slides in `#slides` (JSON) and its link in `data-link`.
const PAGE_SCRIPT: &str = r#"
(function () {
  "use strict";
  var body = document.body, link = body.getAttribute("data-link");
  var slides = JSON.parse(document.getElementById("slides").textContent);
  var frame = document.getElementById("slide"), pointer = document.getElementById("pointer");
  var overlay = document.getElementById("overlay"), status = document.getElementById("status");
  var controls = document.getElementById("controls"), picker = document.getElementById("picker");
  var key = "edetail-remote:" + link.split("/").pop();
  var attendee = null;
  try { attendee = sessionStorage.getItem(key); } catch (e) { /* private mode */ }
  var ws = null, ended = false, retry = 0, control = "rep", state = {}, shownSeq = -1;
  function set(name, value) { body.setAttribute("data-" + name, String(value)); }
  function say(text) { status.textContent = text; status.hidden = !text; }
  function send(m) { if (ws && ws.readyState === 1) ws.send(JSON.stringify(m)); }
  function setControl(to) {
    control = to; set("control", to);
    controls.hidden = to !== "hcp";
    overlay.className = to === "hcp" ? "active" : "";
  }
  function load(slide, force) {
    var s = slides[slide];
    if (!s) return;
    if (!force && frame.getAttribute("data-slide") === slide) { set("slide", slide); return; }
    frame.setAttribute("data-slide", slide);
    frame.src = s.url;
    picker.value = slide;
  }
  frame.addEventListener("load", function () {
    set("slide", frame.getAttribute("data-slide") || "");
    set("rendered", shownSeq);
  });
  // The follower bridge in the slide asks for the slide's saved state.
  window.addEventListener("message", function (ev) {
    if (ev.source === frame.contentWindow && ev.data && ev.data.edetail_follower === "hello") {
      frame.contentWindow.postMessage({ edetail_follower: "state", state: state }, "*");
    }
  });
  function current(m) {
    state = m.state || {};
    shownSeq = m.seq; set("seq", m.seq);
    setControl(m.control);
    say(""); set("state", "live");
    load(m.slide, false);
    if (frame.getAttribute("data-slide") === m.slide && body.getAttribute("data-slide") === m.slide) set("rendered", m.seq);
  }
  function presenter(m) {
    if (m.type === "state") {
      state[m.key] = m.value;
      // The slide reads its state when it loads: show the rep's copy of it.
      load(frame.getAttribute("data-slide"), true);
    } else if (m.type === "pointer") {
      if (m.at) { pointer.style.left = (m.at.x * 100) + "%"; pointer.style.top = (m.at.y * 100) + "%"; pointer.hidden = false; }
      else pointer.hidden = true;
      set("pointer", m.at ? m.at.x.toFixed(3) + "," + m.at.y.toFixed(3) : "");
    } else if (m.type === "control") {
      setControl(m.to);
    }
  }
  function end() {
    ended = true; set("state", "ended");
    frame.removeAttribute("src"); frame.hidden = true; controls.hidden = true;
    say("This meeting has ended. Thank you for joining.");
  }
  function connect() {
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + link + "/ws" + (attendee ? "?attendee=" + attendee : "");
    ws = new WebSocket(url);
    ws.onopen = function () { retry = 0; };
    ws.onmessage = function (ev) {
      var m; try { m = JSON.parse(ev.data); } catch (e) { return; }
      switch (m.type) {
        case "welcome":
          attendee = m.attendee;
          try { sessionStorage.setItem(key, attendee); } catch (e) { /* private mode */ }
          set("recorded", m.recorded);
          if (body.getAttribute("data-state") === "connecting" || body.getAttribute("data-state") === "reconnecting") say("Waiting for the presenter\u2026");
          break;
        case "waiting": set("state", "waiting"); say("Waiting for your representative to let you in\u2026"); break;
        case "admitted": set("state", "admitted"); say(""); break;
        case "current": current(m); break;
        case "presenter": presenter(m.message); break;
        case "presenter_reconnecting": set("state", "presenter-reconnecting"); say("The presenter reconnects\u2026"); break;
        case "ended": end(); break;
      }
    };
    ws.onclose = function (ev) {
      if (ended || ev.code === 4410) { end(); return; }
      if (ev.code === 4429) { set("state", "full"); say("This meeting is full."); return; }
      set("state", "reconnecting"); say("Reconnecting\u2026");
      var wait = Math.min(10000, 500 * Math.pow(2, retry++)) * (0.5 + Math.random() / 2);
      setTimeout(connect, wait);
    };
  }
  document.getElementById("prev").addEventListener("click", function () { send({ type: "navigate", action: { to: "previous" } }); });
  document.getElementById("next").addEventListener("click", function () { send({ type: "navigate", action: { to: "next" } }); });
  picker.addEventListener("change", function () { send({ type: "navigate", action: { to: "slide", slide: picker.value } }); });
  overlay.addEventListener("click", function (ev) {
    if (control !== "hcp") return;
    var r = overlay.getBoundingClientRect();
    var x = Math.min(1, Math.max(0, (ev.clientX - r.left) / r.width)), y = Math.min(1, Math.max(0, (ev.clientY - r.top) / r.height));
    send({ type: "tap", at: { x: x, y: y } });
  });
  setControl("rep"); set("state", "connecting");
  connect();
})();
"#;

/// The follower copy of `edetail.js` (slides include `/_edetail/edetail.js`): nothing a slide
/// does in a follower's browser is recorded (the tablet records), navigation stays with the
/// rep, and `state.load` answers the state the rep's copy of the slide saved.
const FOLLOWER_BRIDGE: &str = r#"/* edetail follower bridge: remote detailing attendees (records nothing). */
(function (w) {
  "use strict";
  if (w.edetail && w.edetail._bridge) return;
  var state = null, waiting = [];
  w.addEventListener("message", function (ev) {
    if (ev.source !== w.parent || !ev.data || ev.data.edetail_follower !== "state") return;
    state = ev.data.state || {};
    waiting.splice(0).forEach(function (f) { f(state); });
  });
  function ready() {
    return new Promise(function (resolve) {
      if (state) return resolve(state);
      waiting.push(resolve);
      setTimeout(function () { resolve(state || {}); }, 1000);
    });
  }
  try { w.parent.postMessage({ edetail_follower: "hello" }, "*"); } catch (e) { /* not framed */ }
  function nothing() { return Promise.resolve({ offline: true, follower: true }); }
  w.edetail = {
    _bridge: 1, follower: true,
    next: nothing, prev: nothing, goTo: nothing, track: nothing, answer: nothing, react: nothing,
    followUp: nothing, advocacy: nothing,
    context: function () { return Promise.resolve({ hcp: null, call: null, rep: null, follower: true }); },
    state: {
      save: nothing,
      load: function (key) {
        return ready().then(function (s) { return Object.prototype.hasOwnProperty.call(s, key) ? s[key] : null; });
      }
    }
  };
})(window);
"#;

pub(super) async fn follower_bridge() -> Response {
    let mut resp = FOLLOWER_BRIDGE.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// The page's policy: its own script (by hash) and styles, slides framed from the hub, the
/// session's socket on the hub; nothing else, and no one may frame the page.
fn page_csp() -> &'static str {
    static CSP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CSP.get_or_init(|| crate::web::one_script_page_csp(PAGE_SCRIPT))
}

/// `</` inside JSON embedded in a `<script>` element, escaped.
fn script_json(v: &serde_json::Value) -> String {
    v.to_string().replace("</", "<\\/")
}

pub(super) fn follower(token: &str, s: &RemoteSession, manifest: &Manifest) -> Response {
    let link = format!("/r/{token}");
    let mut slides = serde_json::Map::new();
    for slide in &manifest.slides {
        slides.insert(
            slide.id.clone(),
            serde_json::json!({"url": format!("{link}/a/{}", url_path(slide.entry.as_str())), "title": slide.title}),
        );
    }
    let mut options = String::new();
    for p in manifest.presentations.iter().filter(|p| !p.hidden) {
        for id in &p.slides {
            if let Some(slide) = manifest.slide(id) {
                options.push_str(&format!("<option value=\"{}\">{}</option>", esc(id), esc(&slide.title)));
            }
        }
    }
    let recorded = if s.recorded {
        "Your representative's tablet records which slides you are shown and, when you are given control, \
         the slides you move to and where you tap, as part of this call. Nothing else: no audio, no video, \
         no name, nothing you type."
    } else {
        "Nothing of this meeting is recorded: your representative's tablet has no consent on record for it."
    };
    let body = format!(
        r#"<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer"><meta name="robots" content="noindex"><link rel="icon" href="data:,">
<title>{title}</title>
<style>
body{{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:0;background:#0f2233;color:#eef3f7}}
header{{display:flex;justify-content:space-between;align-items:center;padding:.6rem 1.2rem;background:#123b5d}}
header h1{{font-size:1rem;margin:0}} header small{{opacity:.8}}
main{{max-width:1200px;margin:0 auto;padding:1rem}}
#stage{{position:relative;width:100%;aspect-ratio:4/3;background:#fff;border-radius:6px;overflow:hidden}}
#slide{{position:absolute;inset:0;width:100%;height:100%;border:0;background:#fff}}
#overlay{{position:absolute;inset:0}} #overlay.active{{cursor:pointer;outline:3px solid #f5b335;outline-offset:-3px}}
#pointer{{position:absolute;width:22px;height:22px;margin:-11px 0 0 -11px;border-radius:50%;background:#e3343fcc;
  box-shadow:0 0 0 6px #e3343f44;pointer-events:none;transition:left .08s linear,top .08s linear}}
#status{{margin:.8rem 0;padding:.7rem 1rem;background:#f5b33522;border:1px solid #f5b335;border-radius:6px}}
#controls{{display:flex;gap:.6rem;align-items:center;margin:.8rem 0}}
#controls button,#controls select{{font:inherit;padding:.45rem .9rem;border-radius:5px;border:0}}
footer{{font-size:.8rem;opacity:.75;padding:0 1rem 1.5rem;max-width:1200px;margin:0 auto}}
</style></head>
<body data-link="{link}" data-state="connecting">
<header><h1>{title}</h1><small>Live with your representative &middot; until {expires} UTC</small></header>
<main>
<p id="status" role="status">Connecting&hellip;</p>
<div id="stage"><iframe id="slide" title="Current slide" sandbox="allow-scripts"></iframe><div id="overlay"></div><div id="pointer" hidden></div></div>
<div id="controls" hidden><span>You have control:</span><button id="prev" type="button">&larr; Previous</button>
<button id="next" type="button">Next &rarr;</button><select id="picker" aria-label="Go to slide">{options}</select></div>
</main>
<footer><p id="privacy">{recorded}</p><p>The voice of this meeting is not carried here: stay on the phone or meeting your representative set up. Approval code {approval} &middot; {product}</p></footer>
<script type="application/json" id="slides">{slides}</script>
<script>{script}</script></body></html>"#,
        lang = esc(&manifest.locale),
        title = esc(&manifest.title),
        link = esc(&link),
        expires = s.expires_at.format("%H:%M"),
        options = options,
        recorded = recorded,
        approval = esc(&manifest.approval_code),
        product = esc(&manifest.product),
        slides = script_json(&serde_json::Value::Object(slides)),
        script = PAGE_SCRIPT,
    );
    crate::web::html_page(StatusCode::OK, body, page_csp())
}
