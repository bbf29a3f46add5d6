/* Safety slide: re-open the important safety information (normally shown first, as this slide's
   sub-presentation) and remember to come back here afterwards. */
(function () {
  "use strict";
  CZ.$("#open-isi").addEventListener("click", function () {
    CZ.track("isi_reopened", { from: CZ.slideId });
    CZ.save("isi-return", CZ.slideId).then(function () { CZ.goTo("isi-1", "isi"); });
  });
})();
