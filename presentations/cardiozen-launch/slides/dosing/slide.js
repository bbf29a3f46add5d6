/* Dose calculator: eGFR band -> starting dose, titration steps and target dose (fictional SmPC).
   Each selection is tracked and kept in call state (the patient-profile slide can preselect a band). */
(function () {
  "use strict";
  var BANDS = {
    "ge60":  { label: "≥60", start: "10 mg", steps: ["10 mg", "20 mg", "40 mg"], when: ["Day 1", "Week 2", "Week 4"], target: 2,
               note: "Increase every 2 weeks if SBP ≥100 mmHg and heart rate ≥55 bpm." },
    "45-59": { label: "45–59", start: "10 mg", steps: ["10 mg", "20 mg", "40 mg"], when: ["Day 1", "Week 2", "Week 4"], target: 2,
               note: "As for eGFR ≥60. Check renal function and potassium at week 2 before the first increase." },
    "30-44": { label: "30–44", start: "5 mg", steps: ["5 mg", "10 mg", "20 mg"], when: ["Day 1", "Week 4", "Week 8"], target: 2,
               note: "Titrate every 4 weeks. Maximum 20 mg once daily." },
    "15-29": { label: "15–29", start: "5 mg", steps: ["5 mg", "10 mg", "—"], when: ["Day 1", "Week 4", "not advised"], target: 1,
               note: "Maximum 10 mg once daily. Limited experience: initiate under specialist supervision." },
    "lt15":  { label: "<15", start: "—", steps: ["—", "—", "—"], when: ["not recommended", "", ""], target: -1, warn: true,
               note: "Not recommended in eGFR <15 mL/min/1.73 m² or on dialysis (no clinical data)." }
  };
  var buttons = CZ.$$(".band-picker button");

  function render(key, user) {
    var b = BANDS[key];
    if (!b) return;
    buttons.forEach(function (btn) { btn.setAttribute("aria-checked", String(btn.getAttribute("data-band") === key)); });
    for (var i = 0; i < 3; i++) {
      var step = CZ.$("#step-" + i);
      CZ.$(".timeline__dose", step).textContent = b.steps[i];
      CZ.$(".timeline__note", step).textContent = b.when[i];
      step.classList.toggle("is-target", i === b.target);
      step.classList.toggle("is-na", b.steps[i] === "—");
      CZ.$(".timeline__when", step).textContent = i === b.target ? "Target" : (i === 0 ? "Start" : (b.steps[i] === "—" ? "—" : "Step up"));
    }
    CZ.$("#r-start").textContent = b.start;
    CZ.$("#r-target").textContent = b.target >= 0 ? b.steps[b.target] : "—";
    CZ.$("#r-note").textContent = b.note;
    CZ.$("#result").classList.toggle("is-warning", !!b.warn);
    if (user) {
      CZ.track("dose_calculator", { egfr_band: b.label, start_dose: b.start, target_dose: b.target >= 0 ? b.steps[b.target] : null });
      CZ.save("dosing-band", key);
    }
  }

  buttons.forEach(function (btn) {
    btn.addEventListener("click", function () { render(btn.getAttribute("data-band"), true); });
  });
  render("ge60", false);
  CZ.load("dosing-band").then(function (saved) { if (saved && BANDS[saved]) render(saved, false); });
})();
