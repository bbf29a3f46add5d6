/* Deck behaviour: clickstream at DOM-ready, navigation built on queryRecord + gotoSlide. */
(function () {
  "use strict";
  var clm = com.veeva.clm;
  var km = document.documentElement.getAttribute("data-key-message");

  function status(text) {
    var el = document.getElementById("status");
    if (el) el.textContent = text;
  }

  // Finds the key message by its file name, then goes there.
  function goToKeyMessage(zip) {
    clm.queryRecord("Key_Message_vod__c", "ID,Media_File_Name_vod__c", "WHERE Media_File_Name_vod__c = \"" + zip + "\"", "", "", function (r) {
      var rows = r && r.success && (r.Key_Message_vod__c || r.records);
      if (!rows || !rows.length) {
        status("Key message " + zip + " not found: " + JSON.stringify(r));
        return;
      }
      clm.gotoSlide(rows[0].Media_File_Name_vod__c || zip, "");
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    clm.createRecord("Call_Clickstream_vod__c", {
      Track_Element_Id_vod__c: "page_view",
      Track_Element_Type_vod__c: "Slide",
      Track_Element_Description_vod__c: km
    }, function (r) { if (!r || !r.success) status("Clickstream not saved: " + JSON.stringify(r)); });

    [].forEach.call(document.querySelectorAll("[data-goto-km]"), function (el) {
      el.addEventListener("click", function (ev) {
        ev.preventDefault();
        goToKeyMessage(el.getAttribute("data-goto-km"));
      });
    });
    var addresses = document.getElementById("addresses");
    if (addresses) {
      addresses.addEventListener("click", function (ev) {
        ev.preventDefault();
        clm.getAddresses_Account("001FAKE0000000042", function (r) {
          status(r && r.success ? "Addresses: " + JSON.stringify(r) : "Addresses unavailable: " + ((r && r.message) || "no answer"));
        });
      });
    }
  });
})();
