/* Summary / call to action: toggle follow-up topics, "Request follow-up" calls edetail.followUp(topic)
   once per selected topic. */
(function () {
  "use strict";
  var chips = CZ.$$(".chip[data-topic]");
  var btn = CZ.$("#request-follow-up");
  var status = CZ.$("#fu-status");
  function selected() {
    return chips.filter(function (c) { return c.getAttribute("aria-pressed") === "true"; }).map(function (c) { return c.getAttribute("data-topic"); });
  }
  chips.forEach(function (c) {
    c.addEventListener("click", function () {
      c.setAttribute("aria-pressed", String(c.getAttribute("aria-pressed") !== "true"));
      btn.disabled = selected().length === 0;
    });
  });
  btn.addEventListener("click", function () {
    var topics = selected();
    if (!topics.length) return;
    btn.disabled = true;
    Promise.all(topics.map(function (t) { return CZ.followUp(t, "Requested from Cardiozen launch summary slide"); })).then(function () {
      CZ.save("follow-up", topics);
      status.textContent = "Thank you — follow-up requested on: " + topics.join(", ") + ".";
      btn.textContent = "Requested ✓";
    });
  });
  CZ.load("follow-up").then(function (topics) {
    if (!topics || !topics.length) return;
    chips.forEach(function (c) { c.setAttribute("aria-pressed", String(topics.indexOf(c.getAttribute("data-topic")) >= 0)); });
    btn.disabled = true;
    btn.textContent = "Requested ✓";
    status.textContent = "Follow-up already requested on: " + topics.join(", ") + ".";
  });
})();
