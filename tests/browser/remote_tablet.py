#!/usr/bin/env python3
"""The tablet of the remote detailing browser test (tests/browser/remote.test.mjs): the real
edetail-ffi library through its generated Python bindings, driven over stdin / stdout.

    EDETAIL_PY_BINDINGS=DIR   the generated edetail_ffi.py with libedetail_ffi.so beside it
    remote_tablet.py --data DIR --hub URL --device-id ID --token TOKEN --publisher-key FILE

Commands, one JSON object a line on stdin: {"id": N, "cmd": NAME, ...arguments}. Each gets one
answer line {"id": N, "ok": true, ...} or {"id": N, "ok": false, "error": "..."}:

    sync                        sync with the hub (content, consent, the outbox up)
    consent HCP                 the device's consent level for an HCP
    start HCP                   starts a remote call on the Cardiozen deck (ends none)
    end_call                    ends the current call
    open [minutes] [via]        opens a remote session for the call (presenter through `via`,
                                e.g. a TCP proxy, instead of the hub: the sync configuration is
                                pointed at it for the opening only); answers join_url,
                                join_path, session_id, recorded
    next / prev / goto SLIDE    the rep moves the call (as the shell's swipe and overview do)
    state KEY VALUE             the slide saves state through the bridge (`state.save`), as
                                deck.js does: the call's observer relays it to the doctors
    control hcp|rep             hands navigation over / takes it back
    pointer X Y | pointer none  shows / hides the rep's pointer
    admit ATTENDEE, relink, end the session's own calls
    status                      the session's status and the call's current slide
    events [CALL]               the device's outbox events of the call (default: the current)
    quit

Every RemoteEvent the session tells is printed as it comes: {"event": "navigated", ...}
(connected, disconnected, attendee_joined, attendee_left, navigated, navigation_refused,
tapped, replaced, ended), with "session" naming the session it came from. Ids only, never
personal data. Exits when stdin closes.
"""

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import threading
import traceback

sys.path.insert(0, os.environ["EDETAIL_PY_BINDINGS"])
import edetail_ffi as ef  # noqa: E402

CARDIOZEN = "com.example.cardiozen.launch"
out_lock = threading.Lock()


def emit(obj):
    with out_lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


class Tokens(ef.TokenProvider):
    def __init__(self, token):
        self._token = token

    async def token(self):
        return self._token

    async def refresh(self):
        pass


def event_json(e):
    """A RemoteEvent as a JSON object."""
    E = ef.RemoteEvent
    if isinstance(e, E.CONNECTED):
        return {"event": "connected"}
    if isinstance(e, E.DISCONNECTED):
        return {"event": "disconnected", "retry_in_ms": e.retry_in_ms}
    if isinstance(e, E.ATTENDEE_JOINED):
        return {"event": "attendee_joined", "attendee": e.attendee, "waiting": e.waiting}
    if isinstance(e, E.ATTENDEE_LEFT):
        return {"event": "attendee_left", "attendee": e.attendee}
    if isinstance(e, E.NAVIGATED):
        return {"event": "navigated", "slide": e.slide, "presentation": e.presentation, "url": e.url}
    if isinstance(e, E.NAVIGATION_REFUSED):
        return {"event": "navigation_refused", "reason": e.reason.name.lower()}
    if isinstance(e, E.TAPPED):
        return {"event": "tapped", "x": e.x, "y": e.y}
    if isinstance(e, E.REPLACED):
        return {"event": "replaced"}
    if isinstance(e, E.ENDED):
        return {"event": "ended"}
    return {"event": "unknown", "repr": repr(e)}


class Tablet:
    def __init__(self, args):
        self.args = args
        with open(args.publisher_key) as f:
            key = f.read()
        self.device = ef.EdetailDevice.open(ef.DeviceOptions(data_dir=args.data, rep_id="rep-remote-1", publisher_keys=[key]))
        self.tokens = Tokens(args.token)
        # The presenter and the sync engine await the Python token provider from their own
        # threads: one loop, running for the tablet's whole life, serves them.
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        ef.uniffi_set_event_loop(self.loop)
        self.configure(args.hub)
        self.call = None
        self.session = None
        self.next_id = 1

    def configure(self, url):
        self.device.configure_sync(url, self.args.device_id, self.tokens)

    def bridge(self, method, params):
        msg = {"v": 1, "id": self.next_id, "method": method, "params": params, "bundle": CARDIOZEN}
        self.next_id += 1
        reply = json.loads(self.device.handle_bridge_message(json.dumps(msg)))
        if not reply.get("ok"):
            raise RuntimeError(f"bridge {method}: {reply.get('error')}")
        return reply["result"]

    def watch(self, session):
        """Prints the session's events until it ends (or another session replaces it here)."""
        sid = session.session_id()

        def run():
            while True:
                e = session.next_event(500)
                if e is None:
                    if self.session is not session and session.status().connection in (ef.RemoteConnection.ENDED(), ef.RemoteConnection.REPLACED()):
                        return
                    continue
                out = event_json(e)
                out["session"] = sid
                emit(out)
                if out["event"] in ("ended", "replaced") and self.session is not session:
                    return

        threading.Thread(target=run, daemon=True).start()

    def current_slide(self):
        if self.call is None:
            return None
        [c] = [c for c in self.device.calls() if c.call_id == self.call]
        return c.current_slide_id

    def outbox(self, call_id):
        """The device's recorded events of a call, read from its database (plain SQLite here:
        the test device has no database key)."""
        db = sqlite3.connect(f"file:{os.path.join(self.args.data, 'edetail.sqlite3')}?mode=ro", uri=True, timeout=10)
        try:
            rows = db.execute(
                "SELECT seq, uuid, type, payload, acked_at IS NOT NULL FROM events WHERE call_id = ?1 ORDER BY seq", (call_id,)
            ).fetchall()
        finally:
            db.close()
        return [{"seq": s, "uuid": u, "type": t, "payload": json.loads(p), "acked": bool(a)} for s, u, t, p, a in rows]

    def handle(self, cmd, m):
        d = self.device
        if cmd == "sync":
            s = d.sync_blocking()
            return {"events_uploaded": s.events_uploaded, "bundles_activated": s.bundles_activated}
        if cmd == "consent":
            return {"level": d.consent_for(m["hcp"]).name.lower()}
        if cmd == "start":
            started = d.start_call(m["hcp"], ef.CallChannel.REMOTE, CARDIOZEN, None)
            self.call = started.call_id
            return {"call_id": self.call, "slide": self.current_slide()}
        if cmd == "end_call":
            d.end_call(self.call)
            return {"call_id": self.call}
        if cmd == "open":
            via = m.get("via")
            if via:
                self.configure(via)
            try:
                s = d.open_remote_session(self.call, int(m.get("minutes", 30)), bool(m.get("waiting_room", False)))
            finally:
                if via:
                    self.configure(self.args.hub)
            self.session = s
            self.watch(s)
            url = s.join_url()
            return {"join_url": url, "join_path": url[url.index("/r/"):], "session_id": s.session_id(), "recorded": s.recorded()}
        if cmd in ("next", "prev", "goto"):
            to = {"next": ef.Navigation.NEXT(), "prev": ef.Navigation.PREVIOUS()}.get(cmd) or ef.Navigation.TO_SLIDE(slide_id=m["slide"])
            t = d.navigate(self.call, to, False)
            return {"slide": t.slide_id, "moved": t.moved}
        if cmd == "state":
            self.bridge("state.save", {"key": m["key"], "value": m["value"]})
            return {}
        if cmd == "control":
            self.session.set_control(ef.RemoteControl.HCP if m["to"] == "hcp" else ef.RemoteControl.REP)
            return {}
        if cmd == "pointer":
            self.session.pointer(None if m.get("x") is None else ef.RemotePoint(x=float(m["x"]), y=float(m["y"])))
            return {}
        if cmd == "admit":
            self.session.admit(m["attendee"])
            return {}
        if cmd == "relink":
            url = self.session.relink()
            return {"join_url": url, "join_path": url[url.index("/r/"):]}
        if cmd == "end":
            self.session.end()
            return {}
        if cmd == "status":
            st = self.session.status() if self.session else None
            return {
                "slide": self.current_slide(),
                "connection": type(st.connection).__name__.lower() if st else None,
                "control": st.control.name.lower() if st else None,
                "attendees": [{"attendee": a.attendee, "waiting": a.waiting} for a in st.attendees] if st else [],
            }
        if cmd == "events":
            return {"events": self.outbox(m.get("call") or self.call)}
        raise ValueError(f"unknown command {cmd!r}")


def main():
    p = argparse.ArgumentParser()
    for a in ("--data", "--hub", "--device-id", "--token", "--publisher-key"):
        p.add_argument(a, required=True)
    tablet = Tablet(p.parse_args())
    emit({"event": "ready"})
    for line in sys.stdin:
        if not line.strip():
            continue
        m = json.loads(line)
        if m.get("cmd") == "quit":
            emit({"id": m.get("id"), "ok": True})
            break
        try:
            answer = tablet.handle(m["cmd"], m)
            emit({"id": m.get("id"), "ok": True, **answer})
        except Exception as e:  # noqa: BLE001 - every failure goes back to the test
            emit({"id": m.get("id"), "ok": False, "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()[-1500:]})
    ef.uniffi_set_event_loop(None)


if __name__ == "__main__":
    main()
