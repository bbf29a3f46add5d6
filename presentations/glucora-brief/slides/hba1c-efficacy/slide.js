/* GLOW-2 chart: switch between HbA1c, weight and SBP; bars grow downwards from zero. Tracked. */
(function () {
  "use strict";
  var M = {
    hba1c: { unit: "%", step: 0.5, vals: [-0.18, -0.90, -1.04], cap: "Adjusted mean change from baseline in HbA1c (%) at week 24",
             k1: ["−0.86%", "placebo-adjusted, 25 mg (95% CI −1.00 to −0.72); p<0.001"], k2: ["−0.72%", "placebo-adjusted, 10 mg (95% CI −0.86 to −0.58); p<0.001"] },
    weight: { unit: " kg", step: 1.5, vals: [-0.6, -2.6, -3.0], cap: "Adjusted mean change from baseline in body weight (kg) at week 24",
             k1: ["−2.4 kg", "placebo-adjusted, 25 mg (95% CI −2.9 to −1.9); p<0.001"], k2: ["−2.0 kg", "placebo-adjusted, 10 mg (95% CI −2.5 to −1.5); p<0.001"] },
    sbp: { unit: " mmHg", step: 2.5, vals: [-0.9, -4.4, -5.0], cap: "Adjusted mean change from baseline in systolic BP (mmHg) at week 24",
             k1: ["−4.1 mmHg", "placebo-adjusted, 25 mg (95% CI −5.6 to −2.6); p<0.001"], k2: ["−3.5 mmHg", "placebo-adjusted, 10 mg (95% CI −5.0 to −2.0); p<0.001"] }
  };
  var ZERO = 60, PX = 180; // PX pixels per "2 steps"
  function fmt(v, d) { return (v < 0 ? "−" : "+") + Math.abs(v).toFixed(d); }
  function show(key, user) {
    var m = M[key], d = key === "hba1c" ? 2 : 1;
    GL.qa(".gl-tabs button").forEach(function (b) { b.setAttribute("aria-selected", String(b.getAttribute("data-metric") === key)); });
    m.vals.forEach(function (v, i) {
      var h = Math.abs(v) / (2 * m.step) * PX;
      GL.q("#bar-" + i).setAttribute("height", h.toFixed(1));
      var t = GL.q("#val-" + i);
      t.setAttribute("y", (ZERO + h + 24).toFixed(1));
      t.textContent = fmt(v, d);
    });
    GL.q("#tick-1").textContent = fmt(-m.step, key === "hba1c" ? 1 : 1);
    GL.q("#tick-2").textContent = fmt(-2 * m.step, 1);
    GL.q("#chart-cap").textContent = m.cap;
    GL.q("#kpi-main").textContent = m.k1[0]; GL.q("#kpi-main-cap").textContent = m.k1[1];
    GL.q("#kpi-2").textContent = m.k2[0]; GL.q("#kpi-2-cap").textContent = m.k2[1];
    if (user) GL.track("chart_metric_selected", { chart: "glow2-week24", metric: key });
  }
  GL.qa(".gl-tabs button").forEach(function (b) {
    b.addEventListener("click", function () { show(b.getAttribute("data-metric"), true); });
  });
  show("hba1c", false);
})();
