/*
 * Stand-in for Veeva's veeva-library.js (com.veeva.clm). The real CRM app injects its own
 * implementation; the edetail runtime's Veeva bridge overrides these functions. Calling them
 * outside either logs what would have happened, so slides can be previewed in a browser.
 */
var com = com || {};
com.veeva = com.veeva || {};
com.veeva.clm = com.veeva.clm || {
  gotoSlide: function (keyMessage, presentation) {
    console.log('[veeva stub] gotoSlide', keyMessage, presentation || '(current)');
  },
  nextSlide: function () { console.log('[veeva stub] nextSlide'); },
  prevSlide: function () { console.log('[veeva stub] prevSlide'); },
  createRecord: function (object, values, callback) {
    console.log('[veeva stub] createRecord', object, JSON.stringify(values));
    if (callback) { callback({ success: true, [object]: { ID: 'stub-' + Date.now() } }); }
  },
  getDataForCurrentObject: function (object, field, callback) {
    if (callback) { callback({ success: false, message: 'not running inside CRM' }); }
  }
};
