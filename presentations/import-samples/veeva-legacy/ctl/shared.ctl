USER=cz.clm.uploader@cardiozen.invalid
PASSWORD=Fict1onal-Pa55word!
EMAIL=clm-team@cardiozen.invalid
FILENAME=shared.zip
Name=CZ_Shared_2026
Description_vod__c=Cardiozen shared resources
Product_vod__c=Cardiozen
is_shared_resource_vod__c=true
