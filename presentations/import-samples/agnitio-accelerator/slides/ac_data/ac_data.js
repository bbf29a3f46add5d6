/* ac_data: slide script, loaded by the framework with the slide. */
window.czSlides = window.czSlides || {};
window.czSlides.ac_data = { loaded: true };
