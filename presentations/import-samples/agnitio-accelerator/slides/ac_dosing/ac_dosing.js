/* ac_dosing: slide script, loaded by the framework with the slide. */
window.czSlides = window.czSlides || {};
window.czSlides.ac_dosing = { loaded: true };
