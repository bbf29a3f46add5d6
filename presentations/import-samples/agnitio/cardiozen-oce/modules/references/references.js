// Numbered references shown on the references slide (fictional sources).
window.czReferences = [
  'ZEN-1 Investigators. Zenolapril in essential hypertension. J Fict Cardiol. 2025;12:101-110.',
  'ZEN-2 Investigators. Long-term safety of zenolapril. Fict Heart Rev. 2025;4:55-63.'
];
document.addEventListener('DOMContentLoaded', function () {
  var list = document.getElementById('references');
  window.czReferences.forEach(function (text) {
    var item = document.createElement('li');
    item.textContent = text;
    list.appendChild(item);
  });
});
