/* Patient profile: preselect the eGFR 45–59 band on the dosing slide, then jump there. */
(function () {
  "use strict";
  CZ.$("#see-dosing").addEventListener("click", function () {
    CZ.track("patient_profile_cta", { profile: "graham-68", egfr_band: "45–59" });
    CZ.save("dosing-band", "45-59").then(function () { CZ.goTo("dosing"); });
  });
})();
