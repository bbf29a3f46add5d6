// Shows the (fictional) starting dose for the selected renal function.
var doses = { normal: '10 mg', moderate: '5 mg' };
document.getElementById('egfr').addEventListener('change', function (event) {
  document.getElementById('dose').textContent = doses[event.target.value];
});
