/* Important safety information (sub-presentation of the safety slide). "Continue" acknowledges and
   moves on; the host then shows the safety slide itself. */
(function () {
  "use strict";
  CZ.$("#isi-continue").addEventListener("click", function () {
    CZ.track("isi_acknowledged", { slide: CZ.slideId });
    CZ.save("isi-acknowledged", true);
    // Re-opened from the safety slide's link: go back there. Otherwise (shown as the safety
    // slide's sub-presentation) let the host continue.
    CZ.load("isi-return").then(function (back) {
      if (back) CZ.save("isi-return", null).then(function () { CZ.goTo(back, "main"); });
      else CZ.next();
    });
  });
})();
