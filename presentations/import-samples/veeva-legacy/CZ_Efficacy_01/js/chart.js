// Grows each bar to its value (25 px per mmHg) once the slide is shown.
document.addEventListener('DOMContentLoaded', function () {
  var bars = document.querySelectorAll('#chart .bar');
  window.setTimeout(function () {
    Array.prototype.forEach.call(bars, function (bar) {
      var value = Math.abs(parseFloat(bar.getAttribute('data-value')));
      bar.style.height = (value * 25) + 'px';
    });
  }, 150);
});
