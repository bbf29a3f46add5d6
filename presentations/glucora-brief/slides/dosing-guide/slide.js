/* Dosing: eGFR selector -> recommendation. Tracked and kept in call state. */
(function () {
  "use strict";
  var R = {
    "ge45": { dose: "10 → 25 mg", text: "Start 10 mg once daily. Increase to 25 mg after at least 4 weeks if additional glycaemic control is needed and 10 mg is well tolerated." },
    "30-44": { dose: "10 mg", text: "Use 10 mg once daily; do not increase. Glucose-lowering efficacy is reduced at this eGFR: consider an additional agent if needed." },
    "lt30": { dose: "Do not start", stop: true, text: "Do not initiate when eGFR is below 30 mL/min/1.73 m². Discontinue in patients on dialysis." }
  };
  function show(key, user) {
    var r = R[key];
    GL.qa(".gl-band button").forEach(function (b) { b.setAttribute("aria-checked", String(b.getAttribute("data-egfr") === key)); });
    GL.q("#rec-dose").textContent = r.dose;
    GL.q("#rec-text").textContent = r.text;
    GL.q("#gl-rec").classList.toggle("is-stop", !!r.stop);
    if (user) { GL.track("dose_selector", { egfr_band: key, recommendation: r.dose }); GL.save("gl-egfr", key); }
  }
  GL.qa(".gl-band button").forEach(function (b) { b.addEventListener("click", function () { show(b.getAttribute("data-egfr"), true); }); });
  show("ge45", false);
  GL.load("gl-egfr").then(function (k) { if (k && R[k]) show(k, false); });
})();
