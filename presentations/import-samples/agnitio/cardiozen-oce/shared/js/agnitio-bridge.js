/*
 * Stand-in for the Agnitio / OCE "ag" API. The edetail runtime's Agnitio bridge replaces it;
 * in a plain browser the calls are logged so slides can be previewed.
 */
window.ag = window.ag || {
  submit: {
    data: function (entry) { console.log('[ag stub] submit.data', JSON.stringify(entry)); }
  },
  navigate: {
    goTo: function (slideId, structureId) { console.log('[ag stub] goTo', slideId, structureId || ''); }
  }
};
document.addEventListener('click', function (event) {
  var link = event.target.closest('[data-goto]');
  if (link) {
    event.preventDefault();
    ag.navigate.goTo(link.getAttribute('data-goto'), link.getAttribute('data-structure'));
  }
});
