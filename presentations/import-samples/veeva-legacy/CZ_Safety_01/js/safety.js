// Records the doctor's question as a clickstream entry and navigates with the Veeva API.
document.getElementById('ask-question').addEventListener('click', function (event) {
  event.preventDefault();
  com.veeva.clm.createRecord('Call_Clickstream_vod__c', {
    Track_Element_Id_vod__c: 'ask-question',
    Track_Element_Type_vod__c: 'button',
    Track_Element_Description_vod__c: 'Doctor asked a safety question',
    Answer_vod__c: 'yes'
  }, function (result) {
    if (!result.success) { console.warn('clickstream not saved', result.message); }
  });
});
document.getElementById('goto-home').addEventListener('click', function (event) {
  event.preventDefault();
  com.veeva.clm.gotoSlide('CZ_Home_01.zip', '');
});
