/* Peer exchange: each button records the HCP's advocacy through edetail.advocacy(action)
   (agreed_to_speak, referred_colleague, shared_microsite), once per action and call. */
(function () {
  "use strict";
  var status = CZ.$("#advocacy-status");
  var labels = { agreed_to_speak: "speak at a round table", referred_colleague: "refer a colleague", shared_microsite: "share the follow-up page" };
  function mark(done) {
    CZ.$$("[data-advocacy]").forEach(function (b) {
      if (done.indexOf(b.getAttribute("data-advocacy")) >= 0) {
        b.disabled = true;
        b.textContent = "Noted ✓";
      }
    });
    if (done.length) status.textContent = "Thank you — noted: " + done.map(function (a) { return labels[a]; }).join(", ") + ".";
  }
  var done = [];
  CZ.$$("[data-advocacy]").forEach(function (b) {
    b.addEventListener("click", function () {
      var action = b.getAttribute("data-advocacy");
      if (done.indexOf(action) >= 0) return;
      b.disabled = true;
      CZ.advocacy(action).then(function () {
        done.push(action);
        CZ.save("advocacy", done);
        mark(done);
      });
    });
  });
  CZ.load("advocacy").then(function (saved) {
    if (saved && saved.length) {
      done = saved;
      mark(done);
    }
  });
})();
