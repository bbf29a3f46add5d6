/* Primary endpoint: CSS bar chart + SVG cumulative-incidence ("Kaplan-Meier-like") curves.
   Endpoint buttons swap the data; every switch is tracked. Numbers match ZENITH-HF (fictional). */
(function () {
  "use strict";
  var DATA = {
    primary: { label: "CV death or first HF hospitalisation", placebo: 20.4, drug: 16.3, hr: "HR 0.78", ci: "95% CI 0.69–0.88 · p<0.001", abs: "ARR 4.1% · NNT 25 over 20.4 months" },
    hfh: { label: "First HF hospitalisation", placebo: 13.2, drug: 10.1, hr: "HR 0.75", ci: "95% CI 0.64–0.87 · p<0.001", abs: "ARR 3.1% · NNT 33 over 20.4 months" },
    cvd: { label: "CV death", placebo: 10.6, drug: 8.9, hr: "HR 0.83", ci: "95% CI 0.70–0.99 · p=0.04", abs: "ARR 1.7% · NNT 59 over 20.4 months" }
  };
  var RISK = { placebo: [2406, 2198, 1921, 1290, 612, 148], drug: [2406, 2231, 1979, 1342, 651, 163] };
  var X0 = 84, X1 = 460, Y0 = 222, Y1 = 12, TMAX = 30, PMAX = 30;
  var NS = "http://www.w3.org/2000/svg";
  function x(t) { return X0 + (X1 - X0) * t / TMAX; }
  function y(p) { return Y0 - (Y0 - Y1) * p / PMAX; }
  function el(name, attrs, text) {
    var e = document.createElementNS(NS, name);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text != null) e.textContent = text;
    return e;
  }

  // static grid, ticks and numbers at risk
  var grid = CZ.$("#km-grid"), risk = CZ.$("#km-risk");
  for (var p = 0; p <= PMAX; p += 10) {
    grid.appendChild(el("line", { "class": "gridline", x1: X0, x2: X1, y1: y(p), y2: y(p) }));
    grid.appendChild(el("text", { x: X0 - 8, y: y(p) + 4, "text-anchor": "end" }, String(p)));
  }
  for (var t = 0; t <= 30; t += 6) {
    grid.appendChild(el("text", { x: x(t), y: Y0 + 16, "text-anchor": "middle" }, String(t)));
  }
  [0, 6, 12, 18, 24, 30].forEach(function (t, i) {
    risk.appendChild(el("text", { "class": "risk", x: x(t), y: 283, "text-anchor": "middle", fill: "#5f6e84" }, RISK.placebo[i].toLocaleString("en-GB")));
    risk.appendChild(el("text", { "class": "risk", x: x(t), y: 298, "text-anchor": "middle", fill: "#d6323f" }, RISK.drug[i].toLocaleString("en-GB")));
  });

  // Weibull-shaped cumulative incidence through the observed rate at the median follow-up.
  function curve(rate) {
    var k = 0.92, tm = 20.4;
    var lambda = -Math.log(1 - rate / 100) / Math.pow(tm, k);
    var d = "", last = 0;
    for (var m = 0; m <= TMAX + 1e-9; m += 0.25) {
      var inc = 100 * (1 - Math.exp(-lambda * Math.pow(m, k)));
      if (m === 0) { d = "M" + x(0).toFixed(1) + " " + y(0).toFixed(1); continue; }
      // step-like KM look: horizontal then vertical
      d += "H" + x(m).toFixed(1) + "V" + y(inc).toFixed(1);
      last = inc;
    }
    var at = 21;
    return { d: d, end: last, at: 100 * (1 - Math.exp(-lambda * Math.pow(at, k))) };
  }

  function restart(path) {
    var len = path.getTotalLength ? Math.ceil(path.getTotalLength()) : 1000;
    path.style.setProperty("--len", len);
    path.style.animation = "none";
    void path.getBoundingClientRect();
    path.style.animation = "";
  }
  function restartBars() {
    CZ.$$(".bar__fill, .bar__value").forEach(function (b) {
      b.style.animation = "none"; void b.offsetHeight; b.style.animation = "";
    });
  }

  function render(key, user) {
    var d = DATA[key];
    CZ.$$(".segmented button").forEach(function (b) { b.setAttribute("aria-pressed", String(b.getAttribute("data-endpoint") === key)); });
    CZ.$("#v-placebo").textContent = d.placebo.toFixed(1) + "%";
    CZ.$("#v-drug").textContent = d.drug.toFixed(1) + "%";
    CZ.$("#b-placebo").style.setProperty("--v", (d.placebo / 25 * 100).toFixed(1));
    CZ.$("#b-drug").style.setProperty("--v", (d.drug / 25 * 100).toFixed(1));
    CZ.$("#hr-main").textContent = d.hr;
    CZ.$("#hr-sub").textContent = d.ci;
    CZ.$("#hr-abs").textContent = d.abs;
    var cp = curve(d.placebo), cd = curve(d.drug);
    var pp = CZ.$("#km-placebo"), pd = CZ.$("#km-drug");
    pp.setAttribute("d", cp.d);
    pd.setAttribute("d", cd.d);
    CZ.$("#km-lab-p").setAttribute("y", (y(cp.at) - 12).toFixed(1));
    CZ.$("#km-lab-d").setAttribute("y", (y(cd.at) + 22).toFixed(1));
    restart(pp); restart(pd);
    if (user) {
      restartBars();
      CZ.track("chart_endpoint_selected", { chart: "zenith-primary", endpoint: key, hr: d.hr });
      CZ.save("efficacy-endpoint", key);
    }
  }

  CZ.$$(".segmented button").forEach(function (b) {
    b.addEventListener("click", function () { render(b.getAttribute("data-endpoint"), true); });
  });
  render("primary", false);
  // Back on this slide (or following a remote call): the endpoint last chosen.
  CZ.load("efficacy-endpoint").then(function (saved) { if (saved && DATA[saved]) render(saved, false); });
})();
