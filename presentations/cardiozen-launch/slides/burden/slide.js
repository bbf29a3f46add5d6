/* Burden slide: size the horizontal bars from their data-v values (max 2.4 years = 100%). */
(function () {
  "use strict";
  CZ.$$(".hbars__fill").forEach(function (el, i) {
    var v = parseFloat(el.getAttribute("data-v"));
    el.style.setProperty("--w", (v / 2.4 * 100).toFixed(1) + "%");
    el.style.animationDelay = (0.4 + i * 0.15) + "s";
  });
})();
