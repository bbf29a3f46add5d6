// Tiny tap helper kept for slides that want instant taps (no 300 ms delay). Not used yet.
window.czTap = function (element, handler) {
  element.addEventListener('touchend', function (event) { event.preventDefault(); handler(event); });
  element.addEventListener('click', handler);
};
