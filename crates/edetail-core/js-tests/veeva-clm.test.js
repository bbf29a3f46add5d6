// Tests for crates/edetail-core/js/veeva-clm.js: the com.veeva.clm shim over the edetail bridge
// (bridge messages, Veeva callback shapes, exit records, stub override, callback isolation).
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const { createEnv, cardiozenHost, plain, settle } = require("./harness");

const CS = "Call_Clickstream_vod__c";

function veevaEnv(opts = {}) {
  const env = createEnv(Object.assign({ host: cardiozenHost(opts.overrides || {}) }, opts));
  if (opts.stubFirst) env.loadVeevaStub();
  env.loadEdetail().loadShim();
  return env;
}

/** Calls a com.veeva.clm function with a recording callback appended; returns the callback's results. */
function withCallback(env, name, ...args) {
  const results = [];
  env.clm[name](...args, (r) => results.push(plain(r)));
  return results;
}

test("installs com.veeva.clm and edetailVeevaShim.install", () => {
  const env = veevaEnv();
  for (const fn of ["gotoSlide", "gotoSlideV2", "nextSlide", "prevSlide", "createRecord", "updateRecord",
    "createRecordsOnExit", "getDataForCurrentObject", "formatCreateRecords"]) {
    assert.equal(typeof env.clm[fn], "function", fn);
  }
  assert.equal(typeof env.window.edetailVeevaShim.install, "function");
});

test("gotoSlide sends navigate goto with the key message; empty presentation is left out", async () => {
  const env = veevaEnv();
  env.clm.gotoSlide("CZ_Efficacy_01.zip", "");
  await settle();
  env.clm.gotoSlide("CZ_PI_01.zip", "CZ_PI");
  await settle();
  const res = withCallback(env, "gotoSlide", "CZ_Home_01.zip", "");
  await settle();
  assert.deepEqual(env.calls("navigate").map((m) => m.params), [
    { action: "goto", key_message: "CZ_Efficacy_01.zip" },
    { action: "goto", key_message: "CZ_PI_01.zip", presentation: "CZ_PI" },
    { action: "goto", key_message: "CZ_Home_01.zip" },
  ]);
  assert.deepEqual(res, [{ success: true }]);
  assert.deepEqual(env.navigations, [], "native shells navigate themselves");
});

test("gotoSlide over HTTP (preview) follows the reply url", async () => {
  const env = veevaEnv({ transport: "http" });
  env.clm.gotoSlide("CZ_Safety_01.zip", "");
  await settle();
  assert.deepEqual(env.navigations, ["/com.example.cardiozen.launch/slides/safety-ae/index.html"]);
});

test("gotoSlideV2 accepts (keyMessage, subPresentations, presentation) and (keyMessage, presentation)", async () => {
  const env = veevaEnv();
  const res = withCallback(env, "gotoSlideV2", "CZ_PI_01", ["CZ_ISI"], "CZ_PI");
  env.clm.gotoSlideV2("CZ_Home_01", "CZ_Main");
  env.clm.gotoSlideV2("CZ_Home_01", [], "");
  await settle();
  assert.deepEqual(env.calls("navigate").map((m) => m.params), [
    { action: "goto", key_message: "CZ_PI_01", presentation: "CZ_PI" },
    { action: "goto", key_message: "CZ_Home_01", presentation: "CZ_Main" },
    { action: "goto", key_message: "CZ_Home_01" },
  ]);
  assert.deepEqual(res, [{ success: true }]);
});

test("gotoSlide with an empty key message fails with 2002 and sends nothing", async () => {
  const env = veevaEnv();
  const res = withCallback(env, "gotoSlide", "", "");
  await settle();
  assert.deepEqual(res, [{ success: false, code: 2002, message: "gotoSlide: keyMessage is empty" }]);
  assert.equal(env.calls().length, 0);
});

test("a failed navigation gives the callback Veeva's failure shape", async () => {
  const env = veevaEnv({ overrides: { navigate: () => ({ error: { code: "not_found", message: "unknown key message" } }) } });
  const res = withCallback(env, "gotoSlide", "NOPE.zip", "");
  await settle();
  assert.equal(res.length, 1);
  assert.equal(res[0].success, false);
  assert.equal(res[0].code, 2100);
  assert.match(res[0].message, /^gotoSlide: .*not_found.*unknown key message/);
});

test("nextSlide and prevSlide send navigate next / prev", async () => {
  const env = veevaEnv();
  env.clm.nextSlide();
  await settle();
  env.clm.prevSlide();
  await settle();
  assert.deepEqual(env.calls("navigate").map((m) => m.params), [{ action: "next" }, { action: "prev" }]);
});

test("createRecord(Call_Clickstream_vod__c) tracks veeva_clickstream and returns the event id", async () => {
  const env = veevaEnv();
  const values = { Track_Element_Id_vod__c: "ask-question", Track_Element_Type_vod__c: "button", Answer_vod__c: "yes" };
  const res = withCallback(env, "createRecord", CS, values);
  await settle();
  const m = env.calls("track")[0];
  assert.deepEqual(m.params, { event: "veeva_clickstream", data: values });
  assert.deepEqual(res, [{ success: true, [CS]: { ID: "evt-1" } }]);
});

test("createRecord without an event id in the reply still answers an ID", async () => {
  const env = veevaEnv({ overrides: { track: () => ({ result: {} }) } });
  const res = withCallback(env, "createRecord", CS, { Answer_vod__c: "1" });
  await settle();
  assert.equal(res[0].success, true);
  assert.match(res[0][CS].ID, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
});

test("updateRecord tracks veeva_clickstream_update with the record id", async () => {
  const env = veevaEnv();
  const res = withCallback(env, "updateRecord", CS, "evt-9", { Usage_Duration_vod__c: 12 });
  await settle();
  assert.deepEqual(env.calls("track")[0].params, {
    event: "veeva_clickstream_update", data: { id: "evt-9", Usage_Duration_vod__c: 12 },
  });
  assert.deepEqual(res, [{ success: true, [CS]: { ID: "evt-9" } }]);
});

test("records of other objects fail with Veeva's failure shape and are recorded as vendor.unsupported", async () => {
  const env = veevaEnv();
  const a = withCallback(env, "createRecord", "Account", { Name: "x" });
  const b = withCallback(env, "updateRecord", "Call2_vod__c", "a01", { Status_vod__c: "Saved" });
  const c = withCallback(env, "createRecord", CS, null);
  await settle();
  assert.deepEqual(env.calls().map((m) => [m.method, m.params]), [
    ["vendor.unsupported", { vendor: "veeva", api: "createRecord", args: ["Account", { Name: "x" }, "[function]"] }],
    ["vendor.unsupported", { vendor: "veeva", api: "updateRecord", args: ["Call2_vod__c", "a01", { Status_vod__c: "Saved" }, "[function]"] }],
  ], "the 2002 failure (an empty argument) is not an unsupported call");
  for (const r of [a[0], b[0]]) {
    assert.equal(r.success, false);
    assert.equal(r.code, 1000);
    assert.match(r.message, /is not supported by edetail$/);
  }
  assert.match(a[0].message, /^createRecord: /);
  assert.match(b[0].message, /^updateRecord: /);
  assert.deepEqual(c, [{ success: false, code: 2002, message: "createRecord: values is empty" }]);
});

test("a bridge error (no call open) reaches the callback as code 2100", async () => {
  const env = veevaEnv({ overrides: { track: () => ({ error: { code: "no_call", message: "no call is open" } }) } });
  const res = withCallback(env, "createRecord", CS, { Answer_vod__c: "1" });
  await settle();
  assert.equal(res[0].success, false);
  assert.equal(res[0].code, 2100);
  assert.match(res[0].message, /^createRecord: .*no_call/);
});

test("getDataForCurrentObject sends veeva.get_data and answers {success, <Object>: {<field>: value}}", async () => {
  const env = veevaEnv();
  const cases = [
    ["Account", "ID", "hcp-7f3a"], ["Call", "ID", "call-0001"], ["User", "ID", "rep-42"],
    ["Presentation", "Name", "Cardiozen launch"], ["KeyMessage", "Name", "ZENITH-HF primary endpoint"],
    ["Account", "Specialty_vod__c", ""],
  ];
  for (const [object, field, value] of cases) {
    const res = withCallback(env, "getDataForCurrentObject", object, field);
    await settle();
    assert.deepEqual(env.last().params, { object, field });
    assert.equal(env.last().method, "veeva.get_data");
    assert.deepEqual(res, [{ success: true, [object]: { [field]: value } }], object + "." + field);
  }
});

test("concurrent getDataForCurrentObject calls each get their own answer (the Veeva defect)", async () => {
  const env = createEnv().loadEdetail().loadShim(); // answered by hand, out of order
  const got = {};
  env.clm.getDataForCurrentObject("Account", "ID", (r) => { got.account = plain(r); });
  env.clm.getDataForCurrentObject("User", "ID", (r) => { got.user = plain(r); });
  env.clm.getDataForCurrentObject("Account", "ID", (r) => { got.account2 = plain(r); });
  const [a, u, a2] = env.calls("veeva.get_data");
  env.reply(a2.id, { value: "hcp-2" });
  env.reply(u.id, { value: "rep-42" });
  env.reply(a.id, { value: "hcp-1" });
  await settle();
  assert.deepEqual(got, {
    account: { success: true, Account: { ID: "hcp-1" } },
    user: { success: true, User: { ID: "rep-42" } },
    account2: { success: true, Account: { ID: "hcp-2" } },
  });
});

test("unknown objects and unsupported functions fail with code 1000", async () => {
  const env = veevaEnv();
  const tsf = withCallback(env, "getDataForCurrentObject", "TSF", "ID");
  const empty = withCallback(env, "getDataForCurrentObject", "Account", "");
  const other = withCallback(env, "getDataForObject", "Account", "001", "Name");
  const addr = withCallback(env, "getAddresses_Account", "001");
  await settle();
  assert.deepEqual(env.calls().map((m) => [m.method, m.params.vendor, m.params.api]), [
    ["vendor.unsupported", "veeva", "getDataForCurrentObject"],
    ["vendor.unsupported", "veeva", "getDataForObject"],
    ["vendor.unsupported", "veeva", "getAddresses_Account"],
  ]);
  assert.deepEqual(env.calls()[2].params.args, ["001", "[function]"]);
  assert.deepEqual(tsf, [{ success: false, code: 1000, message: "getDataForCurrentObject: object TSF is not supported by edetail" }]);
  assert.deepEqual(empty, [{ success: false, code: 2002, message: "getDataForCurrentObject: field is empty" }]);
  assert.deepEqual(other, [{ success: false, code: 1000, message: "getDataForObject is not supported by edetail" }]);
  assert.deepEqual(addr, [{ success: false, code: 1000, message: "getAddresses_Account is not supported by edetail" }]);
});

test("queryRecord, getApprovedDocument and launchApprovedEmail go to the container as veeva: requests", async () => {
  const answers = {
    "veeva:queryObject(Key_Message_vod__c),fields(ID,Media_File_Name_vod__c),where(WHERE Media_File_Name_vod__c = \"B.zip\"),sort(Name,asc),limit(1),callback(cb)":
      { success: true, record_count: 1, Key_Message_vod__c: [{ ID: "b", Media_File_Name_vod__c: "B.zip" }] },
    "veeva:queryObject(Approved_Document_vod__c),fields(ID),where(WHERE Vault_Instance_ID_vod__c = \"12\" AND Vault_Document_ID_vod__c = \"345\"),callback(cb)":
      { success: true, record_count: 1, Approved_Document_vod__c: [{ ID: "12:345" }] },
    "veeva:launchApprovedEmail(TPL),fragments(F1,F2),callback(cb)": { success: true, objectId: "evt-9" },
    "veeva:getDataForObjectV2(Account),objId(hcp-1),fieldName(ID),callback(cb)": { success: true, Account: { ID: "hcp-1" } },
    "veeva:queryObject(Address_vod__c),fields(ID),callback(cb)": { success: false, code: 1000, message: "queryObject: queryObject(Address_vod__c) is not supported by edetail" },
  };
  const env = veevaEnv({ overrides: { "veeva.request": (m) => ({ result: { callback: "cb", result: answers[m.params.request] } }) } });
  const q = withCallback(env, "queryRecord", "Key_Message_vod__c", ["ID", "Media_File_Name_vod__c"], "Media_File_Name_vod__c = \"B.zip\"", ["Name", "asc"], 1);
  const doc = withCallback(env, "getApprovedDocument", "12", "345");
  const email = withCallback(env, "launchApprovedEmail", "TPL", ["F1", "F2"]);
  const data = withCallback(env, "getDataForObjectV2", "Account", "hcp-1", "ID");
  const bad = withCallback(env, "queryRecord", "Address_vod__c", [], "", [], "");
  const empty = withCallback(env, "launchApprovedEmail", "", []);
  await settle();
  assert.deepEqual(env.calls("veeva.request").map((m) => m.params.request), Object.keys(answers));
  assert.deepEqual(q, [answers[Object.keys(answers)[0]]]);
  assert.deepEqual(doc, [{ success: true, Approved_Document_vod__c: { ID: "12:345" } }]);
  assert.deepEqual(email, [{ success: true, objectId: "evt-9" }]);
  assert.deepEqual(data, [{ success: true, Account: { ID: "hcp-1" } }]);
  assert.deepEqual(bad, [{ success: false, code: 1000, message: "queryRecord: queryObject: queryObject(Address_vod__c) is not supported by edetail" }]);
  assert.deepEqual(empty, [{ success: false, code: 2002, message: "launchApprovedEmail: email_template is empty" }]);
});

test("callbacks run asynchronously, even for immediate failures", async () => {
  const env = veevaEnv();
  let called = false;
  env.clm.getDataForCurrentObject("TSF", "ID", () => { called = true; });
  assert.equal(called, false);
  await settle();
  assert.equal(called, true);
});

test("a throwing callback is logged and does not break later calls", async () => {
  const env = veevaEnv();
  env.clm.getDataForCurrentObject("Account", "ID", () => { throw new Error("content bug"); });
  env.clm.createRecord(CS, { Answer_vod__c: "x" }, () => { throw new Error("content bug 2"); });
  await settle();
  assert.ok(env.logs.some((l) => l.level === "error" && /callback threw/.test(l.text)));
  const res = withCallback(env, "getDataForCurrentObject", "User", "ID");
  await settle();
  assert.deepEqual(res, [{ success: true, User: { ID: "rep-42" } }]);
});

test("createRecordsOnExit queues records and sends them on pagehide, once", async () => {
  const env = veevaEnv();
  const r = withCallback(env, "createRecordsOnExit", [CS, CS], [{ Answer_vod__c: "a" }, { Answer_vod__c: "b" }]);
  await settle();
  assert.deepEqual(r, [{ success: true }]);
  assert.equal(env.calls("track").length, 0, "nothing is sent before the slide exits");
  assert.equal(env.window.edetailVeevaShim.queued(), 2);
  env.fireWindow("pagehide", { type: "pagehide", persisted: false });
  env.fireWindow("beforeunload");
  await settle();
  assert.deepEqual(env.calls("track").map((m) => m.params), [
    { event: "veeva_clickstream", data: { Answer_vod__c: "a" } },
    { event: "veeva_clickstream", data: { Answer_vod__c: "b" } },
  ]);
});

test("createRecordsOnExit is flushed by beforeunload too, and validates its arguments", async () => {
  const env = veevaEnv();
  const bad = withCallback(env, "createRecordsOnExit", [CS, CS], [{ a: 1 }]);
  const acct = withCallback(env, "createRecordsOnExit", ["Account"], [{ a: 1 }]);
  env.clm.createRecordsOnExit(CS, { Answer_vod__c: "single" });
  await settle();
  assert.deepEqual(bad, [{ success: false, code: 2003, message: "createRecordsOnExit: Parameter arrays must be of equal length" }]);
  assert.equal(acct[0].code, 1000);
  env.fireWindow("beforeunload");
  await settle();
  assert.deepEqual(env.calls("track").map((m) => m.params.data), [{ Answer_vod__c: "single" }]);
});

test("queued exit records are sent before a navigation the shim performs", async () => {
  const env = veevaEnv();
  env.clm.createRecordsOnExit([CS], [{ Track_Element_Id_vod__c: "video", Usage_Duration_vod__c: 31 }]);
  env.clm.gotoSlide("CZ_Home_01.zip", "");
  await settle();
  assert.deepEqual(env.calls().map((m) => m.method), ["track", "navigate"]);
  env.fireWindow("pagehide");
  await settle();
  assert.equal(env.calls("track").length, 1, "not sent twice");
});

test("a content-defined createRecordsOnExit (Veeva's convention) is honoured on exit", async () => {
  const env = veevaEnv();
  // Slide code, as written for Veeva CRM: it overrides the function and returns formatted records.
  env.run(`com.veeva.clm.createRecordsOnExit = function () {
    return com.veeva.clm.formatCreateRecords(["Call_Clickstream_vod__c", "Call_Clickstream_vod__c"],
      [{Track_Element_Id_vod__c: "exit", Answer_vod__c: "a),callback(x"}, {Question_vod__c: "q2"}]);
  };`);
  env.fireDom("DOMContentLoaded"); // the shim re-installs; the content's function is kept as a hook
  assert.equal(env.clm.createRecordsOnExit.length, 2, "the shim's function is installed again");
  env.fireWindow("pagehide");
  await settle();
  assert.deepEqual(env.calls("track").map((m) => m.params.data), [
    { Track_Element_Id_vod__c: "exit", Answer_vod__c: "a),callback(x" },
    { Question_vod__c: "q2" },
  ]);
});

test("formatCreateRecords builds Veeva's request string", () => {
  const env = veevaEnv();
  assert.equal(env.clm.formatCreateRecords(CS, { a: 1 }), 'veeva:saveObjectV2(Call_Clickstream_vod__c),value({"a":1}),callback();');
});

test("overrides a com.veeva.clm stub loaded before the shim, keeping the rest of com", async () => {
  const env = createEnv({ host: cardiozenHost() });
  env.loadVeevaStub();
  env.run("com.acme = { keep: true };");
  const stubGoto = env.clm.gotoSlide;
  env.loadEdetail().loadShim();
  assert.notEqual(env.clm.gotoSlide, stubGoto);
  assert.equal(env.run("com.acme.keep"), true);
  const res = [];
  env.run("com.veeva.clm.getDataForCurrentObject('Account', 'ID', function (r) { globalThis.__r = r; })");
  env.run("com.veeva.clm.gotoSlide('CZ_Efficacy_01.zip', '')");
  await settle();
  res.push(plain(env.run("__r")));
  assert.deepEqual(res, [{ success: true, Account: { ID: "hcp-7f3a" } }], "not the stub's 'not running inside CRM'");
  assert.deepEqual(env.calls().map((m) => m.method), ["veeva.get_data", "navigate"]);
  assert.ok(!env.logs.some((l) => /veeva stub/.test(l.text)), "the stub is not called");
});

test("a library loaded after the shim: re-asserting fills in what is missing, keeps the deck's functions", async () => {
  const env = createEnv({ host: cardiozenHost(), readyState: "loading" });
  env.loadEdetail().loadShim();
  const ours = env.clm.gotoSlide;
  const oursNext = env.clm.nextSlide;
  env.loadVeevaStub(); // `com.veeva.clm = com.veeva.clm || {...}`
  assert.equal(env.clm.gotoSlide, ours);
  env.run("com.veeva.clm = { gotoSlide: function () { console.log('[veeva deck] gotoSlide'); }, nextSlide: 5 };");
  const deckGoto = env.clm.gotoSlide;
  env.fireDom("DOMContentLoaded");
  assert.equal(env.clm.gotoSlide, deckGoto, "a function the deck defined is kept");
  assert.equal(env.clm.nextSlide, oursNext, "a non-function is replaced");
  assert.equal(typeof env.clm.createRecord, "function", "missing functions are put back");
  env.run("com.veeva.clm = {};");
  env.window.edetailVeevaShim.install();
  assert.equal(env.clm.gotoSlide, ours, "the runtime can re-install by hand");
  env.run("var com;"); // a deck re-declaring the global changes nothing
  assert.equal(env.clm.gotoSlide, ours);
});

test("a deck shipping Veeva's real library keeps it; its requests reach the core through containers.js", async () => {
  const env = createEnv({ host: (m) => (m.method === "veeva.request"
    ? { result: { callback: "com_veeva_clm_getData", result: { success: true, Account: { ID: "hcp-1" } } } } : { result: {} }),
  transport: "android", readyState: "loading" });
  env.loadEdetail().load("containers.js").loadShim();
  // A miniature real-like library: runAPIRequest posts to the container.
  env.run(`var com = com || {}; com.veeva = com.veeva || {};
    com.veeva.clm = {
      runAPIRequest: function (request, cb) { window.com_veeva_clm_getData = cb; window.webkit.messageHandlers.veeva.postMessage({ message: request }); },
      getDataForCurrentObject: function (o, f, cb) { this.runAPIRequest("veeva:getDataForObjectV2(" + o + "),fieldName(" + f + "),callback(com_veeva_clm_getData)", cb); }
    };`);
  const real = env.clm.getDataForCurrentObject;
  env.fireDom("DOMContentLoaded");
  env.fireWindow("load");
  assert.equal(env.clm.getDataForCurrentObject, real, "never replaced");
  assert.equal(env.clm.gotoSlide, undefined, "nothing of the shim mixed in");
  env.run("window.__r = null; com.veeva.clm.getDataForCurrentObject('Account', 'ID', function (r) { window.__r = r; })");
  await settle(10);
  assert.deepEqual(env.calls().map((m) => m.params.request), ["veeva:getDataForObjectV2(Account),fieldName(ID),callback(com_veeva_clm_getData)"]);
  assert.deepEqual(plain(env.run("__r")), { success: true, Account: { ID: "hcp-1" } });
});

test("including the shim twice keeps one set of exit listeners", async () => {
  const env = veevaEnv();
  env.loadShim();
  assert.equal(env.windowListeners.pagehide.length, 1);
  env.clm.createRecordsOnExit([CS], [{ a: 1 }]);
  env.fireWindow("pagehide");
  await settle();
  assert.equal(env.calls("track").length, 1);
});

test("without edetail.js the shim logs a clear error and installs nothing", () => {
  const env = createEnv();
  env.loadShim();
  assert.equal(env.window.com, undefined);
  assert.ok(env.logs.some((l) => l.level === "error" && /edetail\.js/.test(l.text)));
});

test("the imported Veeva sample slides' calls work through the shim", async () => {
  const env = veevaEnv({ stubFirst: true, meta: "CZ_Safety_01" });
  // CZ_Safety_01/js/safety.js: clickstream record with a callback checking result.success
  const res = [];
  env.clm.createRecord(CS, {
    Track_Element_Id_vod__c: "ask-question", Track_Element_Type_vod__c: "button",
    Track_Element_Description_vod__c: "Doctor asked a safety question", Answer_vod__c: "yes",
  }, (r) => res.push(r.success));
  env.clm.gotoSlide("CZ_Home_01.zip", "");
  await settle();
  assert.deepEqual(res, [true]);
  assert.deepEqual(env.calls().map((m) => [m.method, m.slide]), [["track", "CZ_Safety_01"], ["navigate", "CZ_Safety_01"]]);
});
