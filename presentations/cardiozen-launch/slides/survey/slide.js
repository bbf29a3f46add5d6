/* In-slide survey: enable submit once every question is answered; submit sends edetail.answer()
   per question. The manifest disables swipe_next on this slide; answers are kept in call state. */
(function () {
  "use strict";
  var form = CZ.$("#survey-form");
  var root = CZ.$("#survey");
  var submit = CZ.$("#survey-submit");
  var hint = CZ.$("#survey-hint");
  var questions = CZ.$$("fieldset.question", form);

  function answersOf(fs) {
    return CZ.$$("input:checked", fs).map(function (i) { return i.value; });
  }
  function questionText(fs) {
    return CZ.$("legend", fs).textContent.replace(/^\d/, "").replace(/\(select all that apply\)/, "").trim();
  }
  function update() {
    var missing = questions.filter(function (fs) { return answersOf(fs).length === 0; }).length;
    submit.disabled = missing > 0;
    hint.textContent = missing ? "Answer all three questions to submit (" + missing + " left)." : "Ready to submit.";
  }
  form.addEventListener("change", update);

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    if (submit.disabled) return;
    var saved = {};
    var sends = questions.map(function (fs) {
      var id = fs.getAttribute("data-qid");
      var answers = answersOf(fs);
      saved[id] = answers;
      return CZ.answer(id, answers, questionText(fs));
    });
    Promise.all(sends).then(function () {
      CZ.track("survey_submitted", { survey: "cz_launch_perspective", questions: questions.length });
      CZ.save("survey", saved);
    });
    root.classList.add("is-submitted");
  });

  CZ.$("#survey-edit").addEventListener("click", function () {
    root.classList.remove("is-submitted");
    CZ.track("survey_edit", { survey: "cz_launch_perspective" });
  });

  // Restore answers already given in this call.
  CZ.load("survey").then(function (saved) {
    if (!saved) return;
    questions.forEach(function (fs) {
      var vals = saved[fs.getAttribute("data-qid")] || [];
      CZ.$$("input", fs).forEach(function (i) { i.checked = vals.indexOf(i.value) >= 0; });
    });
    update();
    root.classList.add("is-submitted");
  });
  update();
})();
