#!/usr/bin/env python3
"""The generated Python bindings of edetail-ffi against the real library and a real hub.

Content (install, list, serve assets with ranges), a call driven by slide bridge messages,
errors as `ApiError` subclasses, and sync with a token provider and a listener written in
Python against `edetail hub serve` started on loopback (plus auth failures and cancelling a
sync stuck on a hub that never answers), and a remote session of a call over the same hub.

Run by scripts/bindings-test, which generates the bindings and the fixtures:
    EDETAIL_PY_BINDINGS=target/bindings/python   the generated edetail_ffi.py with the .so beside it
    EDETAIL_FIXTURES=target/bindings/fixtures    publisher.{key,pub}, cardiozen-v1/-v2/-unsigned.zip, glucora.zip
    EDETAIL_BIN=target/debug/edetail             the CLI (hub serve, provisioning, publish, stats)
Prints "N passed, M failed" last; exits 1 on any failure. Ids only, never personal data.
"""

import asyncio
import gc
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
import zipfile

sys.path.insert(0, os.environ["EDETAIL_PY_BINDINGS"])
import edetail_ffi as ef  # noqa: E402

FIXTURES = os.environ["EDETAIL_FIXTURES"]
EDETAIL = os.environ["EDETAIL_BIN"]
V1 = os.path.join(FIXTURES, "cardiozen-v1.zip")
V2 = os.path.join(FIXTURES, "cardiozen-v2.zip")
UNSIGNED = os.path.join(FIXTURES, "cardiozen-unsigned.zip")
GLUCORA = os.path.join(FIXTURES, "glucora.zip")
with open(os.path.join(FIXTURES, "publisher.pub")) as f:
    PUBLISHER_KEY = f.read()
CARDIOZEN = "com.example.cardiozen.launch"
GLUCORA_ID = "com.example.glucora.brief"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def manifest(zip_path):
    with zipfile.ZipFile(zip_path) as z:
        return json.loads(z.read("manifest.json"))


def zip_bytes(zip_path, name):
    with zipfile.ZipFile(zip_path) as z:
        return z.read(name)


def open_device(data_dir, keys=None, **kw):
    return ef.EdetailDevice.open(
        ef.DeviceOptions(data_dir=data_dir, rep_id="rep-test-1", publisher_keys=[PUBLISHER_KEY] if keys is None else keys, **kw)
    )


def header(resp, name):
    values = [h.value for h in resp.headers() if h.name.lower() == name.lower()]
    return values[0] if values else None


class Slide:
    """Sends bridge messages exactly as edetail.js does (v, increasing id, method, params, and
    where the page believes it is) and checks the reply carries the same id."""

    def __init__(self, device, slide="intro"):
        self.device, self.slide, self.next_id = device, slide, 1

    def send(self, method, params=None):
        msg = {"v": 1, "id": self.next_id, "method": method, "params": params or {}, "slide": self.slide, "bundle": CARDIOZEN}
        self.next_id += 1
        reply = json.loads(self.device.handle_bridge_message(json.dumps(msg)))
        assert reply["v"] == 1 and reply["id"] == msg["id"], f"reply to {method}: {reply}"
        return reply

    def ok(self, method, params=None):
        reply = self.send(method, params)
        assert reply["ok"] is True, f"{method} failed: {reply.get('error')}"
        return reply["result"]

    def error(self, method, params=None):
        reply = self.send(method, params)
        assert reply["ok"] is False, f"{method} unexpectedly succeeded"
        return reply["error"]["code"]


class TempDirTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="edetail-py-")
        self.tmp = self._tmp.name

    def tearDown(self):
        gc.collect()  # drop devices (and their directory locks) before the directory goes
        self._tmp.cleanup()

    def installed_device(self, name="device"):
        d = open_device(os.path.join(self.tmp, name))
        d.install_bundle_file(V1)
        return d


# ---- content -----------------------------------------------------------------------------


class AssetTest(unittest.TestCase):
    """Read-only asset tests on one device with the signed Cardiozen v1 installed."""

    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory(prefix="edetail-py-assets-")
        cls.device = open_device(os.path.join(cls._tmp.name, "device"))
        cls.device.install_bundle_file(V1)

    @classmethod
    def tearDownClass(cls):
        del cls.device
        gc.collect()
        cls._tmp.cleanup()

    def installed_device(self):
        return self.device

    def test_resolve_asset_exact_bytes_and_mime(self):
        d = self.installed_device()
        m = manifest(V1)
        for path in ["slides/intro/index.html", "shared/deck.css", "shared/logo.svg", "media/cardiozen-moa-poster.jpg"]:
            want = zip_bytes(V1, path)
            resp = d.resolve_asset(f"/{CARDIOZEN}/{path}", None)
            self.assertEqual(resp.status(), 200, path)
            self.assertEqual(resp.mime_type(), m["files"][path]["mime"])
            self.assertEqual(header(resp, "Content-Type"), m["files"][path]["mime"])
            self.assertEqual(header(resp, "Content-Length"), str(len(want)))
            self.assertEqual(header(resp, "Accept-Ranges"), "bytes")
            self.assertEqual(header(resp, "ETag"), f'"{m["files"][path]["sha256"]}"')
            self.assertEqual(resp.content_length(), len(want))
            self.assertEqual(resp.read_all(), want, path)
            self.assertEqual(resp.read_all(), b"", "the body is consumed once")

    def test_streamed_read_in_chunks(self):
        d = self.installed_device()
        want = zip_bytes(V1, "media/cardiozen-moa.mp4")
        self.assertGreater(len(want), 3 * 4096)
        resp = d.resolve_asset(f"/{CARDIOZEN}/media/cardiozen-moa.mp4", None)
        self.assertEqual((resp.status(), resp.mime_type()), (200, "video/mp4"))
        chunks = []
        while True:
            c = resp.read(4096)
            if not c:
                break
            self.assertLessEqual(len(c), 4096)
            chunks.append(c)
        self.assertEqual(b"".join(chunks), want)
        self.assertEqual(resp.read(4096), b"")
        # A request the WebView cancels half-way releases the file; later reads are empty.
        cancelled = d.resolve_asset(f"/{CARDIOZEN}/media/cardiozen-moa.mp4", None)
        self.assertEqual(cancelled.read(1000), want[:1000])
        cancelled.cancel()
        self.assertEqual(cancelled.read(1000), b"")

    def test_range_requests(self):
        d = self.installed_device()
        want = zip_bytes(V1, "media/cardiozen-moa.mp4")
        url = f"/{CARDIOZEN}/media/cardiozen-moa.mp4"
        resp = d.resolve_asset(url, "bytes=100-1123")
        self.assertEqual(resp.status(), 206)
        self.assertEqual(header(resp, "Content-Range"), f"bytes 100-1123/{len(want)}")
        self.assertEqual(header(resp, "Content-Length"), "1024")
        self.assertEqual(resp.content_length(), 1024)
        self.assertEqual(resp.read_all(), want[100:1124])
        tail = d.resolve_asset(url, "bytes=-16")
        self.assertEqual((tail.status(), tail.read_all()), (206, want[-16:]))
        self.assertEqual(header(tail, "Content-Range"), f"bytes {len(want) - 16}-{len(want) - 1}/{len(want)}")
        open_ended = d.resolve_asset(url, f"bytes={len(want) - 10}-")
        self.assertEqual((open_ended.status(), open_ended.read_all()), (206, want[-10:]))
        beyond = d.resolve_asset(url, f"bytes={len(want) + 10}-")
        self.assertEqual(beyond.status(), 416)

    def test_missing_assets_are_404_not_exceptions(self):
        d = self.installed_device()
        for url in [f"/{CARDIOZEN}/slides/nope/index.html", "/com.example.unknown/index.html", f"/{CARDIOZEN}/../manifest.json", "/"]:
            resp = d.resolve_asset(url, None)
            self.assertEqual(resp.status(), 404, url)
            self.assertEqual(resp.mime_type(), "text/plain")
            self.assertTrue(resp.read_all(), "a 404 explains itself in the body")

    def test_runtime_scripts_are_served(self):
        d = self.installed_device()
        for name in ["edetail.js", "veeva-clm.js"]:
            resp = d.resolve_asset(f"/_edetail/{name}", None)
            self.assertEqual((resp.status(), resp.mime_type()), (200, "text/javascript"), name)
            self.assertIn(b"edetail", resp.read_all())


class ContentTest(TempDirTest):
    def test_version(self):
        self.assertRegex(ef.edetail_version(), r"^\d+\.\d+\.\d+")

    def test_install_and_list_bundles(self):
        d = open_device(os.path.join(self.tmp, "d"))
        self.assertEqual(d.bundles(), [])
        r = d.install_bundle_file(V1)
        self.assertEqual((r.bundle_id, r.version, r.activated), (CARDIOZEN, 1, True))
        m = manifest(V1)
        self.assertEqual(r.files_written, len({f["sha256"] for f in m["files"].values()}))
        again = d.install_bundle_file(V1)
        self.assertEqual((again.activated, again.files_written), (False, 0))

        [b] = d.bundles()
        self.assertEqual((b.bundle_id, b.version, b.title, b.product), (CARDIOZEN, 1, m["title"], m["product"]))
        self.assertEqual(b.approval_code, m["approval_code"])
        self.assertEqual(b.status, ef.ContentStatus.READY)
        self.assertIsNone(b.status_reason)
        self.assertIsNone(b.update)
        self.assertEqual(b.total_bytes, sum(f["size"] for f in m["files"].values()))
        self.assertLess(b.valid_from_ms, int(time.time() * 1000))
        self.assertGreater(b.valid_until_ms, int(time.time() * 1000))
        self.assertEqual([s.id for s in b.slides], [s["id"] for s in m["slides"]])
        intro = b.slides[0]
        self.assertEqual(intro.url, f"/{CARDIOZEN}/slides/intro/index.html")
        self.assertEqual(intro.thumbnail_url, f"/{CARDIOZEN}/slides/intro/thumb.png")
        self.assertEqual((intro.key_message, intro.topics, intro.hidden), ("CZ_INTRO", ["awareness"], False))
        self.assertTrue(all(s.thumbnail_url for s in b.slides))
        self.assertEqual([s.id for s in b.slides if s.hidden], ["references"])
        self.assertEqual([(p.id, p.hidden) for p in b.presentations], [("main", False), ("isi", True), ("pi", True)])
        self.assertEqual(b.presentations[0].slide_ids, m["presentations"][0]["slides"])
        self.assertEqual(d.downloads(), [])

        # Every thumbnail URL the list gives resolves to a PNG.
        for s in b.slides:
            resp = d.resolve_asset(s.thumbnail_url, None)
            self.assertEqual((resp.status(), resp.mime_type()), (200, "image/png"), s.thumbnail_url)
            self.assertTrue(resp.read_all().startswith(b"\x89PNG"))

    def test_unsigned_bundle_is_rejected_unless_allowed(self):
        d = open_device(os.path.join(self.tmp, "strict"))
        with self.assertRaises(ef.ApiError.BundleRejected):
            d.install_bundle_file(UNSIGNED)
        self.assertEqual(d.bundles(), [])
        lax = open_device(os.path.join(self.tmp, "lax"), keys=[], allow_unsigned=True)
        self.assertTrue(lax.install_bundle_file(UNSIGNED).activated)


# ---- a call driven by the slide bridge -------------------------------------------------------


class CallTest(TempDirTest):
    def test_call_driven_by_bridge_messages(self):
        d = self.installed_device()
        pending = lambda: d.outbox_status().pending  # noqa: E731
        self.assertIsNone(d.open_call())
        slide = Slide(d)
        hello = slide.ok("hello")
        self.assertIsNone(hello["call"])
        self.assertEqual(hello["rep"], {"id": "rep-test-1"})
        self.assertEqual(slide.error("track", {"event": "x", "data": {}}), "no_call")
        self.assertEqual(pending(), 0)

        start = d.start_call("hcp-test-1", ef.CallChannel.FACE_TO_FACE, CARDIOZEN, None)
        self.assertEqual(start.first, ef.SlideTarget(slide_id="intro", presentation_id="main", url=f"/{CARDIOZEN}/slides/intro/index.html", moved=True))
        self.assertEqual(d.open_call(), start.call_id)
        after_start = pending()
        self.assertGreater(after_start, 0)

        ctx = slide.ok("hello")
        self.assertEqual(ctx["call"]["id"], start.call_id)
        self.assertEqual(ctx["hcp"], {"id": "hcp-test-1"})
        self.assertEqual(ctx["slide"], {"id": "intro", "presentation": "main"})
        self.assertEqual(ctx["bundle"], {"id": CARDIOZEN, "version": 1})

        # "prev" on the first slide goes nowhere: nothing recorded, the slide is not reloaded.
        before = pending()
        stay = slide.ok("navigate", {"action": "prev"})
        self.assertEqual(stay, {"slide": "intro", "presentation": "main", "url": f"/{CARDIOZEN}/slides/intro/index.html", "moved": False})
        self.assertEqual(pending(), before, "a navigation that goes nowhere records no slide_exit/slide_enter")

        nav = slide.ok("navigate", {"action": "next"})
        self.assertEqual(nav, {"slide": "burden", "presentation": "main", "url": f"/{CARDIOZEN}/slides/burden/index.html", "moved": True})
        slide.slide = "burden"
        self.assertEqual(slide.ok("context")["slide"]["id"], "burden")
        n = pending()
        tracked = slide.ok("track", {"event": "chart_toggle", "data": {"endpoint": "hf_hosp"}})
        self.assertRegex(tracked["event_id"], UUID)
        self.assertEqual(pending(), n + 1)
        self.assertEqual(slide.ok("react", {"value": "positive"}), {})
        self.assertEqual(slide.ok("answer", {"question": "q1", "answers": ["a", "b"]}), {})
        self.assertEqual(slide.ok("follow_up", {"topic": "efficacy"}), {})
        self.assertEqual(pending(), n + 4)
        self.assertEqual(slide.ok("state.save", {"key": "dose", "value": {"mg": 5}}), {})
        self.assertEqual(slide.ok("state.load", {"key": "dose"}), {"value": {"mg": 5}})
        self.assertEqual(slide.ok("state.load", {"key": "other"}), {"value": None})
        self.assertEqual(pending(), n + 4, "slide state is not an event")

        goto = slide.ok("navigate", {"action": "goto", "slide": "efficacy-primary"})
        self.assertEqual(goto["slide"], "efficacy-primary")
        slide.slide = "efficacy-primary"
        self.assertEqual(slide.ok("veeva.get_data", {"object": "KeyMessage", "field": "Media_File_Name_vod__c"}), {"value": "CZ_EFF_PRIMARY.zip"})
        self.assertEqual(slide.ok("veeva.get_data", {"object": "Account", "field": "ID"}), {"value": "hcp-test-1"})
        self.assertEqual(slide.ok("navigate", {"action": "goto", "key_message": "CZ_ISI", "presentation": "isi"})["slide"], "isi-1")

        # The bridge's own errors, each with the request id.
        self.assertEqual(slide.error("react", {"value": "ecstatic"}), "invalid_params")
        self.assertEqual(slide.error("track", {"event": "", "data": {}}), "invalid_params")
        self.assertEqual(slide.error("navigate", {"action": "goto", "slide": "no-such-slide"}), "not_found")
        self.assertEqual(slide.error("warp", {}), "unknown_method")
        self.assertEqual(slide.error("veeva.get_data", {"object": "Opportunity", "field": "ID"}), "invalid_params")
        bad = json.loads(d.handle_bridge_message("{not json"))
        self.assertEqual((bad["ok"], bad["id"], bad["error"]["code"]), (False, None, "malformed"))
        v2 = json.loads(d.handle_bridge_message(json.dumps({"v": 2, "id": 99, "method": "hello"})))
        self.assertEqual((v2["id"], v2["error"]["code"]), (99, "unsupported_version"))

        # The shell's own calls on the same call.
        back = d.navigate(start.call_id, ef.Navigation.TO_SLIDE(slide_id="summary"), True)
        self.assertEqual(back.slide_id, "summary")
        self.assertEqual(d.navigate(start.call_id, ef.Navigation.PREVIOUS(), False).slide_id, "survey")
        self.assertEqual(d.navigate(start.call_id, ef.Navigation.NEXT(), False).slide_id, "summary")
        self.assertEqual(d.navigate(start.call_id, ef.Navigation.TO_PRESENTATION(presentation_id="pi"), False).slide_id, "pi-1")
        n = pending()
        recs = [
            d.react(start.call_id, ef.ReactionKind.NEUTRAL),
            d.note(start.call_id, "test note"),
            d.follow_up(start.call_id, "dosing", None),
            d.record(start.call_id, "app.sample_request", json.dumps({"units": 2})),
            d.record(None, "app.opened", "{}"),
        ]
        self.assertEqual(pending(), n + len(recs))
        self.assertEqual([r.seq for r in recs], list(range(recs[0].seq, recs[0].seq + len(recs))))
        self.assertTrue(all(UUID.match(r.uuid) for r in recs))
        self.assertEqual(len({r.uuid for r in recs}), len(recs))
        d.heartbeat()

        [c] = d.calls()
        self.assertEqual((c.call_id, c.hcp_id, c.status, c.bundle_id, c.current_slide_id), (start.call_id, "hcp-test-1", "open", CARDIOZEN, "pi-1"))
        self.assertIsNone(c.ended_at_ms)
        d.end_call(start.call_id)
        [c] = d.calls()
        self.assertEqual(c.status, "completed")
        self.assertGreaterEqual(c.ended_at_ms, c.started_at_ms)
        self.assertIsNone(d.open_call())
        self.assertEqual(slide.error("react", {"value": "positive"}), "no_call")
        self.assertEqual(d.outbox_status(), ef.OutboxStatus(pending=pending(), parked=0, acknowledged=0))

        # This HCP's interest now orders the deck for the next call.
        suggested = d.suggested_slides("hcp-test-1", CARDIOZEN)
        self.assertTrue(suggested and set(suggested) <= {s.id for s in d.bundles()[0].slides}, suggested)
        self.assertEqual(d.start_call("hcp-test-1", ef.CallChannel.REMOTE, CARDIOZEN, None).suggested_slides, suggested)

    def test_consent_is_full_without_a_record(self):
        d = self.installed_device()
        # No consent record from the hub: full tracking (Tracking::DEFAULT), the call names the HCP.
        self.assertEqual(d.consent_for("hcp-consent-1"), ef.ConsentLevel.FULL)
        start = d.start_call("hcp-consent-1", ef.CallChannel.FACE_TO_FACE, CARDIOZEN, None)
        self.assertIsNotNone(start.plan)
        d.end_call(start.call_id)
        self.assertIn("hcp-consent-1", [c.hcp_id for c in d.calls()])

    def test_call_plan_is_local_with_reasons_for_an_hcp_with_history(self):
        d = self.installed_device()
        # No HCP: no plan. An HCP without history: local, authored order, said so.
        anonymous = d.start_call(None, ef.CallChannel.FACE_TO_FACE, CARDIOZEN, None)
        self.assertIsNone(anonymous.plan)
        d.end_call(anonymous.call_id)
        first = d.start_call("hcp-plan-1", ef.CallChannel.FACE_TO_FACE, CARDIOZEN, None)
        self.assertEqual(first.plan.source, ef.PlanSource.LOCAL)
        self.assertIsNone(first.plan.plan_id)
        self.assertIn("no earlier calls", first.plan.reasons[0])
        d.follow_up(first.call_id, "efficacy", None)
        d.end_call(first.call_id)

        # With history: still local (no hub plan synced), with reasons naming the interest.
        shown = d.plan_for("hcp-plan-1", CARDIOZEN)
        self.assertEqual(shown.source, ef.PlanSource.LOCAL)
        self.assertIsNone(shown.stage)
        self.assertTrue(any("efficacy" in r for r in shown.reasons), shown.reasons)
        self.assertTrue(all(isinstance(s, ef.PlanSlide) and s.reason for s in shown.slides))
        second = d.start_call("hcp-plan-1", ef.CallChannel.REMOTE, CARDIOZEN, None)
        self.assertEqual(second.plan, shown)
        self.assertEqual(second.suggested_slides, [s.slide_id for s in second.plan.slides])
        self.assertEqual(second.suggested_slides, d.suggested_slides("hcp-plan-1", CARDIOZEN))
        d.end_call(second.call_id)
        self.assertIsNone(d.plan_for("hcp-plan-1", "com.example.unknown"))

    def test_lifecycle_and_second_call(self):
        d = self.installed_device()
        first = d.start_call(None, ef.CallChannel.REMOTE, CARDIOZEN, "isi")
        self.assertEqual(first.first.slide_id, "isi-1")
        self.assertEqual(first.suggested_slides, [])
        self.assertIsNone(first.plan)
        d.set_lifecycle(ef.AppLifecycle.BACKGROUND)
        d.set_lifecycle(ef.AppLifecycle.FOREGROUND)
        d.end_call(first.call_id)
        second = d.start_call("hcp-test-2", ef.CallChannel.FACE_TO_FACE, CARDIOZEN, None)
        self.assertNotEqual(second.call_id, first.call_id)
        self.assertEqual([c.status for c in d.calls()], ["completed", "open"])
        self.assertEqual([c.channel for c in d.calls()][0], "remote")


class SequenceTest(TempDirTest):
    def test_rep_builds_the_call_from_a_sequence_saved_on_the_device(self):
        data_dir = os.path.join(self.tmp, "device")
        d = self.installed_device()
        s = d.start_sequence("hcp-seq-1", CARDIOZEN)
        sid = s.sequence_id
        ids = [x.slide_id for x in s.slides]
        # No hub plan: the local order (the deck's visible slides), with the mandatory ISI.
        self.assertIsNone(s.plan_id)
        self.assertEqual(s.planned, [])
        self.assertEqual(ids[:2], ["intro", "burden"])
        self.assertNotIn("references", ids, "hidden slides are not in a sequence")
        self.assertEqual(s.slides[-1], ef.SequenceSlide(slide_id="isi-1", presentation_id="isi", mandatory=True, origin=ef.SequenceOrigin.START))

        with self.assertRaises(ef.ApiError.InvalidInput) as e:
            d.remove_from_sequence(sid, "isi-1")
        self.assertIn("mandatory", e.exception.reason)
        for hidden in ["references", "pi-1"]:
            with self.assertRaises(ef.ApiError.InvalidInput, msg=hidden) as e:
                d.add_to_sequence(sid, hidden)
            self.assertIn(hidden, e.exception.reason)
        with self.assertRaises(ef.ApiError.NotFound):
            d.add_to_sequence(sid, "no-such-slide")
        with self.assertRaises(ef.ApiError.InvalidInput):
            d.add_to_sequence(sid, "intro")  # already in it
        with self.assertRaises(ef.ApiError.NotFound):
            d.sequence("no-such-sequence")

        d.remove_from_sequence(sid, "burden")
        added = d.add_to_sequence(sid, "burden")
        s = d.move_sequence_slide(sid, len(added.slides) - 1, 0)
        self.assertEqual(s.slides[0], ef.SequenceSlide(slide_id="burden", presentation_id="main", mandatory=False, origin=ef.SequenceOrigin.ADDED))
        self.assertEqual(d.sequence(sid), s)

        # Saved in the rep's database: still there after the app restarts.
        del d, added, e
        gc.collect()
        d = open_device(data_dir)
        self.assertEqual(d.saved_sequence("hcp-seq-1", CARDIOZEN), s)
        self.assertIsNone(d.saved_sequence("hcp-seq-2", CARDIOZEN))

        before = d.outbox_status().pending
        start = d.start_call_from_sequence(sid, ef.CallChannel.FACE_TO_FACE)
        self.assertEqual(start.first.slide_id, "burden")
        self.assertEqual(start.suggested_slides, [x.slide_id for x in s.slides])
        self.assertIsNone(start.plan)
        self.assertEqual(d.outbox_status().pending, before + 3, "call_started, call_plan, slide_enter")

        rec = d.advocacy(start.call_id, ef.AdvocacyAction.AGREED_TO_SPEAK)
        self.assertRegex(rec.uuid, UUID)
        slide = Slide(d, "burden")
        self.assertRegex(slide.ok("advocacy", {"action": "referred_colleague"})["event_id"], UUID)
        n = d.outbox_status().pending
        self.assertEqual(slide.error("advocacy", {"action": "told_a_friend"}), "invalid_params")
        self.assertEqual(d.outbox_status().pending, n, "an unknown advocacy action records nothing")
        d.end_call(start.call_id)
        with self.assertRaises(ef.ApiError.NotFound):
            d.advocacy(start.call_id, ef.AdvocacyAction.SHARED_MICROSITE)


# ---- errors ------------------------------------------------------------------------------


class ErrorTest(TempDirTest):
    def test_same_directory_twice_is_in_use_until_released(self):
        path = os.path.join(self.tmp, "shared")
        first = open_device(path)
        with self.assertRaises(ef.ApiError.InUse) as e:
            open_device(path)
        self.assertIsInstance(e.exception, ef.ApiError)
        self.assertTrue(e.exception.reason)
        del first
        gc.collect()
        self.assertEqual(open_device(path).bundles(), [])

    def test_database_key(self):
        path = os.path.join(self.tmp, "encrypted")
        key = bytes(range(32))
        d = open_device(path, db_key=key)
        d.record(None, "custom", '{"k": 1}')
        del d
        gc.collect()
        with self.assertRaises(ef.ApiError.DatabaseKey) as e:
            open_device(path, db_key=bytes(32))
        self.assertIn("wrong key", e.exception.reason)
        self.assertNotIn(key.hex(), str(e.exception))
        with self.assertRaises(ef.ApiError.DatabaseKey):
            open_device(path)
        self.assertEqual(open_device(path, db_key=key).outbox_status().pending, 1, "intact after the failed opens")
        with self.assertRaises(ef.ApiError.InvalidInput):
            open_device(os.path.join(self.tmp, "shortkey"), db_key=b"short")

    def test_not_found(self):
        d = self.installed_device()
        with self.assertRaises(ef.ApiError.NotFound):
            d.start_call(None, ef.CallChannel.FACE_TO_FACE, "com.example.unknown", None)
        with self.assertRaises(ef.ApiError.NotFound):
            d.navigate("no-such-call", ef.Navigation.NEXT(), False)
        call = d.start_call(None, ef.CallChannel.FACE_TO_FACE, CARDIOZEN, None).call_id
        with self.assertRaises(ef.ApiError.NotFound):
            d.navigate(call, ef.Navigation.TO_SLIDE(slide_id="no-such-slide"), False)
        d.end_call(call)
        with self.assertRaises(ef.ApiError.NotFound):
            d.end_call(call)
        with self.assertRaises(ef.ApiError.NotFound):
            d.react(call, ef.ReactionKind.POSITIVE)

    def test_invalid_input(self):
        d = self.installed_device()
        n = d.outbox_status().pending
        with self.assertRaises(ef.ApiError.InvalidInput) as e:
            d.record(None, "custom", "{not json")
        self.assertIn("JSON", e.exception.reason)
        with self.assertRaises(ef.ApiError.InvalidInput):
            d.record(None, "  ", "{}")
        for not_an_object in ["42", "[1, 2]", '"text"', "null"]:
            with self.assertRaises(ef.ApiError.InvalidInput, msg=not_an_object):
                d.record(None, "custom", not_an_object)  # the hub would refuse it for good
        self.assertEqual(d.outbox_status().pending, n, "nothing recorded by a refused call")
        with self.assertRaises(ef.ApiError.InvalidInput):
            open_device(os.path.join(self.tmp, "badkey"), keys=["not a key"])
        with self.assertRaises(ef.ApiError.InvalidInput):
            open_device("")
        with self.assertRaises(ef.ApiError.InvalidInput):
            d.configure_sync("", "dev-1", StaticTokens("t"))

    def test_sync_errors_without_a_hub(self):
        d = self.installed_device()
        with self.assertRaises(ef.ApiError.SyncNotConfigured):
            asyncio.run(d.sync_now())
        with self.assertRaises(ef.ApiError.SyncNotConfigured):
            d.sync_blocking()
        self.assertEqual(d.sync_status(), ef.SyncStatus.IDLE())
        self.assertIsNone(d.next_sync_in_ms())
        d.configure_sync("http://127.0.0.1:9", "dev-1", StaticTokens("t"))
        d.set_online(False)
        with self.assertRaises(ef.ApiError.Offline):
            run_sync(d)
        d.cancel_sync()  # nothing running: a no-op


# ---- sync against a real hub ----------------------------------------------------------------


class StaticTokens(ef.TokenProvider):
    """A token provider in Python: counts calls; `fail` raises; `bad` returns a wrong token."""

    def __init__(self, token, fail=None):
        self._token, self.fail = token, fail
        self.tokens = self.refreshes = 0

    async def token(self):
        self.tokens += 1
        await asyncio.sleep(0)  # a real provider awaits its SSO client
        if self.fail is not None:
            raise self.fail
        return self._token

    async def refresh(self):
        self.refreshes += 1


class Listener(ef.SyncListener):
    """Collects what the engine reports (called on the engine's threads)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.statuses, self.events = [], []

    def on_status(self, status):
        with self.lock:
            self.statuses.append(status)

    def on_event(self, event):
        with self.lock:
            self.events.append(event)


def run_sync(device):
    """`await device.sync_now()` on a fresh event loop. The loop is registered with
    `uniffi_set_event_loop` because Rust awaits the Python token provider from its own threads."""

    async def go():
        ef.uniffi_set_event_loop(asyncio.get_running_loop())
        try:
            return await device.sync_now()
        finally:
            ef.uniffi_set_event_loop(None)

    return asyncio.run(go())


def cli(*args):
    r = subprocess.run([EDETAIL, *args], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError(f"edetail {args[0]} {args[1] if len(args) > 1 else ''} failed: {r.stderr.strip()[:500]}")
    return r.stdout


class Hub:
    """`edetail hub serve` on 127.0.0.1 with its own data directory."""

    def __init__(self, root):
        self.data = os.path.join(root, "hub")
        self.proc = subprocess.Popen(
            [EDETAIL, "hub", "serve", "--data", self.data, "--listen", "127.0.0.1:0", "--publisher-key", os.path.join(FIXTURES, "publisher.pub")],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        first = self.proc.stdout.readline().strip()
        if not first.startswith("hub: http://127.0.0.1:"):
            self.stop()
            raise AssertionError(f"hub did not start: {first!r}")
        self.url = first.removeprefix("hub: ").rstrip("/")
        self.publisher_token = json.loads(cli("hub", "publisher", "add", "--data", self.data, "--name", "content-team", "--json"))["token"]

    def add_device(self):
        d = json.loads(cli("hub", "device", "add", "--data", self.data, "--rep", "rep-test-1", "--territory", "north", "--json"))
        return d["device_id"], d["token"]

    def publish(self, zip_path):
        return json.loads(cli("publish", zip_path, "--hub", self.url, "--token", self.publisher_token, "--json"))

    def stats(self):
        return json.loads(cli("hub", "stats", "--data", self.data, "--json"))

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class SyncTest(TempDirTest):
    @classmethod
    def setUpClass(cls):
        cls._hub_tmp = tempfile.TemporaryDirectory(prefix="edetail-py-hub-")
        cls.addClassCleanup(cls._hub_tmp.cleanup)
        cls.hub = Hub(cls._hub_tmp.name)
        cls.addClassCleanup(cls.hub.stop)  # also when what follows fails
        # The hub offers Cardiozen v2 (the device has v1 from a file) and another deck.
        assert cls.hub.publish(V2)["version"] == 2
        assert cls.hub.publish(GLUCORA)["bundle_id"] == GLUCORA_ID

    def present_a_call(self, d):
        slide = Slide(d)
        call = d.start_call("hcp-test-1", ef.CallChannel.FACE_TO_FACE, CARDIOZEN, None).call_id
        slide.ok("navigate", {"action": "next"})
        slide.ok("track", {"event": "chart_toggle", "data": {"endpoint": "hf_hosp"}})
        slide.ok("react", {"value": "positive"})
        d.end_call(call)
        return call

    def hub_device(self, device_id):
        """What `edetail hub stats --json` says about one device."""
        stats = self.hub.stats()
        assert stats["store"] == "sqlite", stats["store"]
        [dev] = [x for x in stats["devices"] if x["device_id"] == device_id]
        return dev

    def test_sync_uploads_events_and_installs_new_content(self):
        d = self.installed_device()
        self.present_a_call(d)
        recorded = d.outbox_status().pending
        self.assertGreater(recorded, 3)
        device_id, token = self.hub.add_device()
        tokens, listener = StaticTokens(token), Listener()
        d.set_sync_listener(listener)  # before configure_sync: kept for the engine it creates
        d.configure_sync(self.hub.url, device_id, tokens)

        summary = run_sync(d)
        self.assertEqual(summary.events_uploaded, recorded)
        self.assertEqual((summary.events_already_uploaded, summary.events_parked, summary.revocations), (0, 0, 0))
        # "<bundle id>@<version>" strings (not records): the app parses them.
        self.assertEqual(sorted(summary.bundles_activated), sorted([f"{CARDIOZEN}@2", f"{GLUCORA_ID}@1"]))
        self.assertEqual(summary.bundles_refused, [])
        self.assertGreater(summary.files_downloaded, 0)
        self.assertGreater(summary.bytes_downloaded, 0)
        self.assertGreaterEqual(tokens.tokens, 1)
        self.assertEqual(tokens.refreshes, 0)

        self.assertEqual(d.outbox_status(), ef.OutboxStatus(pending=0, parked=0, acknowledged=recorded))
        bundles = {b.bundle_id: b for b in d.bundles()}
        self.assertEqual((bundles[CARDIOZEN].version, bundles[CARDIOZEN].status), (2, ef.ContentStatus.READY))
        self.assertEqual((bundles[GLUCORA_ID].version, bundles[GLUCORA_ID].status), (1, ef.ContentStatus.READY))
        intro = d.resolve_asset(f"/{CARDIOZEN}/slides/intro/index.html", None).read_all()
        self.assertEqual(intro, zip_bytes(V2, "slides/intro/index.html"))
        self.assertIn(b"cardiozen v2", intro)
        self.assertEqual(d.downloads(), [])

        with listener.lock:
            statuses, events = list(listener.statuses), list(listener.events)
        self.assertIn(ef.SyncStatus.UPLOADING(), statuses)
        self.assertIn(ef.SyncStatus.DOWNLOADING(), statuses)
        self.assertEqual(statuses[-1], ef.SyncStatus.DONE())
        uploaded = [e for e in events if isinstance(e, ef.SyncEvent.EVENTS_UPLOADED)]
        self.assertEqual(sum(e.accepted for e in uploaded), recorded)
        self.assertIn(ef.SyncEvent.BUNDLE_ACTIVATED(bundle_id=CARDIOZEN, version=2), events)
        self.assertIn(ef.SyncEvent.BUNDLE_ACTIVATED(bundle_id=GLUCORA_ID, version=1), events)
        self.assertEqual(
            sum(e.size for e in events if isinstance(e, ef.SyncEvent.FILE_STORED)) > 0
            or any(isinstance(e, ef.SyncEvent.BYTES_DOWNLOADED) for e in events),
            True,
        )
        self.assertEqual(d.sync_status(), ef.SyncStatus.DONE())
        self.assertIsNone(d.next_sync_in_ms())

        on_hub = self.hub_device(device_id)
        self.assertEqual((on_hub["events_received"], on_hub["duplicates_absorbed"], on_hub["rejected"]), (recorded, 0, 0))

        # Again: nothing new either way. Then one more event, synced with sync_blocking from a
        # worker thread (as a WorkManager Worker would) while the loop serves the token provider.
        again = run_sync(d)
        self.assertEqual((again.events_uploaded, again.bundles_activated, again.files_downloaded), (0, [], 0))
        last = d.record(None, "app.opened", "{}")

        async def blocking_on_a_worker():
            ef.uniffi_set_event_loop(asyncio.get_running_loop())
            try:
                return await asyncio.get_running_loop().run_in_executor(None, d.sync_blocking)
            finally:
                ef.uniffi_set_event_loop(None)

        self.assertEqual(asyncio.run(blocking_on_a_worker()).events_uploaded, 1)
        self.assertEqual(d.outbox_status().pending, 0)
        on_hub = self.hub_device(device_id)
        self.assertEqual((on_hub["events_received"], on_hub["watermark"]), (recorded + 1, last.seq))

    def test_token_provider_that_raises_is_auth_required(self):
        d = self.installed_device()
        device_id, _ = self.hub.add_device()
        d.record(None, "app.opened", "{}")
        for fail in [ef.TokenProviderError.Unavailable("signed out"), RuntimeError("SSO crashed")]:
            with self.subTest(fail=type(fail).__name__):
                tokens = StaticTokens("unused", fail=fail)
                d.configure_sync(self.hub.url, device_id, tokens)
                stderr = sys.stderr
                sys.stderr = open(os.devnull, "w")  # uniffi prints the unexpected exception's traceback
                try:
                    with self.assertRaises(ef.ApiError.AuthRequired):
                        run_sync(d)
                finally:
                    sys.stderr.close()
                    sys.stderr = stderr
                self.assertGreaterEqual(tokens.tokens, 1)
        self.assertEqual(d.outbox_status().pending, 1, "nothing lost")

    def test_wrong_token_refreshes_once_then_auth_required(self):
        d = self.installed_device()
        device_id, _ = self.hub.add_device()
        d.record(None, "app.opened", "{}")
        tokens = StaticTokens("0" * 64)
        d.configure_sync(self.hub.url, device_id, tokens)
        with self.assertRaises(ef.ApiError.AuthRequired):
            run_sync(d)
        self.assertEqual(tokens.refreshes, 1)
        self.assertEqual(tokens.tokens, 2)
        self.assertEqual(d.outbox_status().pending, 1)

    def test_cancel_sync_from_another_thread_against_a_silent_hub(self):
        d = self.installed_device()
        self.present_a_call(d)
        recorded = d.outbox_status().pending
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        silent.settimeout(0.2)
        accepted, stop, conns = threading.Event(), threading.Event(), []

        def accept_and_never_answer():
            while not stop.is_set():
                try:
                    conns.append(silent.accept()[0])
                    accepted.set()
                except socket.timeout:
                    pass

        acceptor = threading.Thread(target=accept_and_never_answer, daemon=True)
        acceptor.start()
        listener = Listener()
        d.set_sync_listener(listener)
        d.configure_sync(f"http://127.0.0.1:{silent.getsockname()[1]}", "dev-silent", StaticTokens("t"))

        async def go():
            loop = asyncio.get_running_loop()
            ef.uniffi_set_event_loop(loop)
            try:
                sync = asyncio.ensure_future(d.sync_now())
                self.assertTrue(await loop.run_in_executor(None, accepted.wait, 10), "the sync never reached the hub")
                with self.assertRaises(ef.ApiError.AlreadySyncing):
                    await d.sync_now()
                self.assertFalse(sync.done())
                self.assertEqual(d.sync_status(), ef.SyncStatus.UPLOADING())
                t0 = time.monotonic()
                threading.Thread(target=d.cancel_sync).start()
                with self.assertRaises(ef.ApiError.SyncCancelled):
                    await asyncio.wait_for(sync, 10)
                return time.monotonic() - t0
            finally:
                ef.uniffi_set_event_loop(None)

        try:
            elapsed = asyncio.run(go())
        finally:
            stop.set()
            acceptor.join()
            for c in conns:
                c.close()
            silent.close()
        self.assertLess(elapsed, 2.0, f"cancel took {elapsed:.2f} s")
        self.assertEqual(d.outbox_status().pending, recorded, "nothing lost")
        self.assertEqual(d.sync_status(), ef.SyncStatus.IDLE())
        self.assertEqual(listener.statuses[-1], ef.SyncStatus.IDLE())

        # The same device then syncs with the real hub: everything recorded arrives once.
        device_id, token = self.hub.add_device()
        d.configure_sync(self.hub.url, device_id, StaticTokens(token))
        self.assertEqual(run_sync(d).events_uploaded, recorded)
        self.assertEqual(self.hub_device(device_id)["events_received"], recorded)

    def test_remote_session_join_url_control_and_end(self):
        """A remote session over the configured hub: its join link, the presenter connected,
        opened again for the call (the same session), control handed over and back, end (the
        link then answers 410, the session refuses more). No doctor joins here: Python has no WebSocket client without new installs (the
        Rust tests in crates/edetail-sync/tests/remote.rs follow doctors over real sockets)."""
        d = self.installed_device()
        device_id, token = self.hub.add_device()
        tokens = StaticTokens(token)
        d.configure_sync(self.hub.url, device_id, tokens)
        run_sync(d)  # Cardiozen v2 from the hub: a session presents a version the hub offers
        call = d.start_call("hcp-test-1", ef.CallChannel.REMOTE, CARDIOZEN, None).call_id

        # The presenter awaits the Python token provider from its own threads: a loop runs for it.
        loop = asyncio.new_event_loop()
        loop_thread = threading.Thread(target=loop.run_forever, daemon=True)
        loop_thread.start()
        ef.uniffi_set_event_loop(loop)
        try:
            with self.assertRaises(ef.ApiError.InvalidInput):
                d.open_remote_session(call, 0, False)
            with self.assertRaises(ef.ApiError.NotFound):
                d.open_remote_session("no-such-call", 30, False)
            s = d.open_remote_session(call, 30, False)
            self.assertRegex(s.join_url(), "^" + re.escape(self.hub.url) + "/r/[0-9a-f]{64}$")
            self.assertTrue(s.recorded(), "full consent: the doctor's navigation is recorded")
            self.assertRegex(s.session_id(), r"^[0-9a-f-]{36}$")
            self.assertGreater(s.expires_at_ms(), (time.time() + 29 * 60) * 1000)

            def next_event(cls):
                deadline = time.monotonic() + 10
                seen = []
                while time.monotonic() < deadline:
                    e = s.next_event(1000)
                    if isinstance(e, cls):
                        return e
                    if e is not None:
                        seen.append(e)
                raise AssertionError(f"no {cls.__name__} within 10 s; saw {seen}")

            next_event(ef.RemoteEvent.CONNECTED)
            # Opened again for the call (the app restarted or released it, say): the same
            # session, same id and link, not a new one; the first handle is replaced.
            again = d.open_remote_session(call, 30, False)
            self.assertEqual((again.session_id(), again.join_url()), (s.session_id(), s.join_url()))
            next_event(ef.RemoteEvent.REPLACED)
            s = again
            next_event(ef.RemoteEvent.CONNECTED)
            status = s.status()
            self.assertEqual((status.connection, status.control, status.attendees), (ef.RemoteConnection.CONNECTED(), ef.RemoteControl.REP, []))
            with urllib.request.urlopen(s.join_url(), timeout=10) as page:
                self.assertEqual(page.status, 200)
                self.assertNotIn("hcp-test-1", page.read().decode())
            s.set_control(ef.RemoteControl.HCP)
            self.assertEqual(s.status().control, ef.RemoteControl.HCP)
            s.pointer(ef.RemotePoint(x=0.5, y=0.5))
            with self.assertRaises(ef.ApiError.InvalidInput):
                s.pointer(ef.RemotePoint(x=2.0, y=0.5))
            s.set_control(ef.RemoteControl.REP)
            # The rep's own moves go on as usual while the session presents them.
            self.assertTrue(d.navigate(call, ef.Navigation.NEXT(), False).moved)

            s.end()
            next_event(ef.RemoteEvent.ENDED)
            self.assertEqual(s.status().connection, ef.RemoteConnection.ENDED())
            with self.assertRaises(urllib.error.HTTPError) as gone:
                urllib.request.urlopen(s.join_url(), timeout=10)
            self.assertEqual(gone.exception.code, 410)
            s.end()  # idempotent
            with self.assertRaises(ef.ApiError.NotFound):
                s.set_control(ef.RemoteControl.HCP)
            self.assertIsNone(s.next_event(100), "Ended is told once")
            del s
            gc.collect()
        finally:
            ef.uniffi_set_event_loop(None)
            loop.call_soon_threadsafe(loop.stop)
            loop_thread.join(10)
            loop.close()
        d.end_call(call)


# ---- runner ------------------------------------------------------------------------------


def main():
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    passed = result.testsRun - failed - len(result.skipped)
    line = f"{passed} passed, {failed} failed"
    if result.skipped:
        line += f", {len(result.skipped)} skipped"
    print(line)
    return 0 if failed == 0 and result.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
