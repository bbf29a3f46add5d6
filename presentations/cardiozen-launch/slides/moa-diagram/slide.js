/* Mechanism diagram: toggle untreated / treated, tap nodes for an explanation; both are tracked. */
(function () {
  "use strict";
  var svg = CZ.$("#moa");
  var title = CZ.$("#explain-title");
  var text = CZ.$("#explain-text");
  var INFO = {
    stress: ["Neurohormonal stress", "Angiotensin II and noradrenaline remain elevated in chronic HFrEF. Existing therapies blunt these signals at the receptor, but intracellular signalling persists."],
    crk7: ["CRK-7 kinase", "Cardiac remodelling kinase 7 is activated by chronic neurohormonal stress. In failing myocardium its activity is up to three times higher than in healthy tissue."],
    calcium: ["Calcium leak", "Over-active CRK-7 phosphorylates ryanodine receptors, so calcium leaks from the sarcoplasmic reticulum during diastole, wasting energy and weakening contraction."],
    fibrosis: ["Pro-fibrotic signalling", "CRK-7 drives transcription of pro-fibrotic genes, stiffening the ventricle and promoting adverse remodelling."],
    arrhythmia: ["Arrhythmic triggers", "Diastolic calcium leak favours delayed after-depolarisations, a substrate for ventricular arrhythmias."]
  };
  var TREATED = {
    crk7: ["Zenacardin blocks CRK-7", "Zenacardin binds the ATP pocket of CRK-7 selectively and reversibly (>500-fold over related kinases), returning its activity towards normal."],
    calcium: ["Calcium handling restored", "With CRK-7 inhibited, diastolic calcium leak falls and contractile efficiency improves in preclinical models."],
    fibrosis: ["Fibrosis signalling reduced", "Pro-fibrotic gene expression is reduced, slowing adverse remodelling in preclinical models."],
    arrhythmia: ["Fewer arrhythmic triggers", "Less diastolic calcium leak means fewer after-depolarisations in preclinical models."]
  };
  var mode = "untreated";
  var current = "crk7";

  function show(node) {
    current = node;
    var info = (mode === "treated" && TREATED[node]) || INFO[node];
    title.textContent = info[0];
    text.textContent = info[1];
    CZ.$$(".node", svg).forEach(function (n) { n.classList.toggle("is-selected", n.getAttribute("data-node") === node); });
  }

  function setMode(next, user) {
    mode = next;
    svg.classList.toggle("is-treated", mode === "treated");
    CZ.$$(".segmented button").forEach(function (b) { b.setAttribute("aria-pressed", String(b.getAttribute("data-mode") === mode)); });
    show(current);
    if (user) {
      CZ.track("moa_mode_changed", { mode: mode });
      CZ.save("moa-mode", mode);
    }
  }

  CZ.$$(".segmented button").forEach(function (b) {
    b.addEventListener("click", function () { setMode(b.getAttribute("data-mode"), true); });
  });
  CZ.$$(".node", svg).forEach(function (n) {
    function pick() {
      var node = n.getAttribute("data-node");
      show(node);
      CZ.track("moa_node_viewed", { node: node, mode: mode });
    }
    n.addEventListener("click", pick);
    n.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); pick(); } });
  });
  show("crk7");
})();
