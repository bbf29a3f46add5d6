// Navigation buttons: <button data-goto="CZ_Vault_Dosing.zip">. Uses com.veeva.clm when the
// player provides it, and does nothing in a plain browser.
document.addEventListener('click', function (event) {
  var target = event.target.closest('[data-goto]');
  if (!target) { return; }
  event.preventDefault();
  if (window.com && com.veeva && com.veeva.clm) {
    com.veeva.clm.gotoSlide(target.getAttribute('data-goto'), '');
  }
});
