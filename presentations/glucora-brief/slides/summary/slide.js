/* Summary: follow-up requests via edetail.followUp(); a referral via edetail.advocacy(). */
(function () {
  "use strict";
  var done = GL.q("#fu-done");
  function ask(btn, topic, note, msg) {
    btn.addEventListener("click", function () {
      btn.disabled = true;
      GL.followUp(topic, note).then(function () { done.textContent = msg; GL.save("gl-fu-" + topic, true); });
    });
    GL.load("gl-fu-" + topic).then(function (v) { if (v) btn.disabled = true; });
  }
  ask(GL.q("#fu-efficacy"), "efficacy", "Send GLOW-2 efficacy data", "Thank you — the GLOW-2 data will be sent to you.");
  ask(GL.q("#fu-visit"), "follow-up", "Requested from Glucora brief summary", "Thank you — your representative will contact you.");
  var refer = GL.q("#refer-colleague");
  refer.addEventListener("click", function () {
    refer.disabled = true;
    GL.advocacy("referred_colleague").then(function () { done.textContent = "Thank you — your representative will contact your colleague."; GL.save("gl-referred", true); });
  });
  GL.load("gl-referred").then(function (v) { if (v) refer.disabled = true; });
})();
