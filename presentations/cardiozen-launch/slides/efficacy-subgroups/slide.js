/* Forest plot: tapping a subgroup row highlights it and tracks which subgroup the HCP looked at. */
(function () {
  "use strict";
  var note = CZ.$("#forest-note");
  var original = note.textContent;
  var rows = CZ.$$(".frow");
  function pick(row) {
    var active = row.classList.contains("is-active");
    rows.forEach(function (r) { r.classList.remove("is-active"); CZ.$(".row-hit", r).classList.remove("is-active"); });
    if (active) { note.textContent = original; return; }
    row.classList.add("is-active");
    CZ.$(".row-hit", row).classList.add("is-active");
    var name = row.getAttribute("data-subgroup");
    var group = row.previousElementSibling && row.previousElementSibling.classList && row.previousElementSibling.classList.contains("grp") ? row.previousElementSibling.textContent + ": " : "";
    var hr = parseFloat(row.getAttribute("data-hr"));
    note.textContent = group + name + " (n=" + Number(row.getAttribute("data-n")).toLocaleString("en-GB") + "): HR " + hr.toFixed(2) +
      " (95% CI " + row.getAttribute("data-ci") + "), a " + Math.round((1 - hr) * 100) + "% relative risk reduction.";
    CZ.track("subgroup_viewed", { subgroup: group + name, hr: hr, ci: row.getAttribute("data-ci") });
  }
  rows.forEach(function (r) {
    r.addEventListener("click", function () { pick(r); });
    r.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); pick(r); } });
  });
})();
