"""Queue numbers end to end over the real OCPP path: drivers take numbers with a contact, a
charge point freeing a connector calls the next number (and the webhook hears of it), the car
plugging in marks it charging, a no-show passes the turn, a cancelled number is never called,
two connectors freeing at once call two numbers, a restart keeps the queue; staff call, skip and
re-queue; diversion ranks a quiet neighbour above a full service area; bad input changes nothing.

The plug-in window is set to 2 s through the `[queue]` section of a config file, and call
notifications go to a local HTTP server (loopback only)."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from chargepoints import charge_point
from harness import await_until, free_port, run, uid, wait_until

V = "1.6"
PW = "queue-test-password-16"
PLUG_IN_SECS = 2
MAX_WAITING = 4


class Hook:
    """A local webhook receiver: keeps every JSON body POSTed to it."""

    def __init__(self):
        self.received: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                hook.received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.httpd = HTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/queue-hook"

    def close(self):
        self.httpd.shutdown()


@pytest.fixture(scope="module")
def hook():
    h = Hook()
    yield h
    h.close()


@pytest.fixture(scope="module")
def q(make_module_server, tmp_path_factory, hook):
    path = tmp_path_factory.mktemp("queue-config") / "chargeops.toml"
    path.write_text(
        f"""
[queue]
plug_in_secs = {PLUG_IN_SECS}
max_waiting = {MAX_WAITING}
tick_ms = 100
webhook_url = "{hook.url}"
"""
    )
    return make_module_server(heartbeat_interval=77, command_timeout=5, extra_args=("--config", str(path)))


def station(q, **fields):
    sid = uid("q-st")
    q.ensure_station(sid, **fields)
    return sid


def charger(q, sid):
    cid = uid("q-cp")
    q.register(cid, PW, station=sid)
    return cid


def take(q, sid, contact, status=201, token=None):
    r = q.api("POST", f"/api/v1/stations/{sid}/queue", {"contact": contact} if contact is not None else {}, token=token)
    assert r.status_code == status, r.text
    return r.json()


def ticket(q, tid):
    return q.ok("GET", f"/api/v1/queue/{tid}")


def public_ticket(q, tid):
    r = q.api("GET", f"/api/v1/queue/{tid}", token=None)
    assert r.status_code == 200, r.text
    return r.json()


def state_of(q, tid, state):
    t = public_ticket(q, tid)
    return t if t["state"] == state else None


async def busy_charger(q, cid, cp, connectors=(1, 2)):
    await cp.boot()
    for c in connectors:
        await cp.status_notification(c, "Charging")


def test_a_freed_connector_calls_the_next_number_and_plugging_in_marks_it_charging(q, hook):
    sid = station(q)
    cid = charger(q, sid)

    async def scenario():
        async with charge_point(q, cid, V, PW) as cp:
            await busy_charger(q, cid, cp)
            a = await asyncio.to_thread(take, q, sid, "138 0013 8000")
            b = await asyncio.to_thread(take, q, sid, "湘A·12345")
            for field in ("id", "number", "station_id", "position", "state", "estimated_wait_s", "called_at", "connector_id"):
                assert field in a, field
            assert (a["number"], b["number"]) == (1, 2)
            assert (a["state"], a["position"], b["position"]) == ("waiting", 1, 2)
            assert a["station_id"] == sid and a["called_at"] is None and a["connector_id"] is None
            assert 0 < a["estimated_wait_s"] <= b["estimated_wait_s"], (a, b)
            assert len(a["id"]) >= 32, "ticket ids are unguessable"
            assert a["contact"] == "***8000", "the holder sees a masked contact"

            # The charger frees connector 2: number 1 is called to it, number 2 moves up.
            await cp.status_notification(2, "Available")
            called = await await_until(lambda: state_of(q, a["id"], "called"), what="ticket 1 called")
            assert called["connector_id"] == 2 and called["charger_id"] == cid and called["called_at"]
            assert called["estimated_wait_s"] == 0 and called["position"] is None
            bb = await asyncio.to_thread(public_ticket, q, b["id"])
            assert (bb["state"], bb["position"]) == ("waiting", 1)
            note = await await_until(
                lambda: [n for n in hook.received if n["ticket_id"] == a["id"] and n["kind"] == "called"],
                what="webhook notification",
            )
            assert note[0]["contact"] == "13800138000" and note[0]["connector_id"] == 2 and note[0]["number"] == 1

            # The car plugs in (Preparing is occupied): charging. Then it leaves: done, and the
            # connector goes to number 2.
            await cp.status_notification(2, "Preparing")
            await await_until(lambda: state_of(q, a["id"], "charging"), what="ticket 1 charging")
            await cp.status_notification(2, "Charging")
            await asyncio.sleep(0.3)
            assert (await asyncio.to_thread(public_ticket, q, b["id"]))["state"] == "waiting"
            await cp.status_notification(2, "Finishing")
            await cp.status_notification(2, "Available")
            await await_until(lambda: state_of(q, a["id"], "done"), what="ticket 1 done")
            called_b = await await_until(lambda: state_of(q, b["id"], "called"), what="ticket 2 called")
            assert called_b["connector_id"] == 2

    run(scenario())


def test_a_no_show_passes_the_turn(q, hook):
    sid = station(q)
    cid = charger(q, sid)

    async def scenario():
        async with charge_point(q, cid, V, PW) as cp:
            await busy_charger(q, cid, cp)
            a = await asyncio.to_thread(take, q, sid, "13900139000")
            b = await asyncio.to_thread(take, q, sid, "13900139001")
            await cp.status_notification(1, "Available")
            called = await await_until(lambda: state_of(q, a["id"], "called"), what="ticket 1 called")
            assert called["plug_by"]
            # Nobody plugs in within the window: expired, and number 2 gets the connector.
            expired = await await_until(lambda: state_of(q, a["id"], "expired"), timeout=PLUG_IN_SECS + 10, what="expired")
            assert expired["connector_id"] == 1
            called_b = await await_until(lambda: state_of(q, b["id"], "called"), what="ticket 2 called")
            assert called_b["connector_id"] == 1
            assert [n["kind"] for n in hook.received if n["ticket_id"] == a["id"]] == ["called", "expired"]

    run(scenario())


def test_a_cancelled_number_is_never_called(q):
    sid = station(q)
    cid = charger(q, sid)

    async def scenario():
        async with charge_point(q, cid, V, PW) as cp:
            await busy_charger(q, cid, cp)
            a = await asyncio.to_thread(take, q, sid, "13700137000")
            b = await asyncio.to_thread(take, q, sid, "13700137001")
            r = await asyncio.to_thread(q.api, "DELETE", f"/api/v1/queue/{a['id']}", None, token=None)
            assert r.status_code == 200 and r.json()["state"] == "cancelled", r.text
            again = await asyncio.to_thread(q.api, "DELETE", f"/api/v1/queue/{a['id']}", None, token=None)
            assert again.status_code == 409 and again.json()["code"] == "invalid_state"
            assert (await asyncio.to_thread(public_ticket, q, b["id"]))["position"] == 1
            await cp.status_notification(1, "Available")
            await await_until(lambda: state_of(q, b["id"], "called"), what="ticket 2 called")
            await asyncio.sleep(0.5)
            assert (await asyncio.to_thread(public_ticket, q, a["id"]))["state"] == "cancelled"
            # The same contact may take a new number once the old one is cancelled.
            c = await asyncio.to_thread(take, q, sid, "13700137000")
            assert c["number"] == 3

    run(scenario())


def test_two_connectors_freeing_at_once_call_two_numbers(q):
    sid = station(q)
    cids = [charger(q, sid), charger(q, sid)]

    async def scenario():
        async with charge_point(q, cids[0], V, PW) as cp1, charge_point(q, cids[1], V, PW) as cp2:
            await busy_charger(q, cids[0], cp1, (1,))
            await busy_charger(q, cids[1], cp2, (1,))
            tickets = [await asyncio.to_thread(take, q, sid, f"1360013600{i}") for i in range(3)]
            await asyncio.gather(cp1.status_notification(1, "Available"), cp2.status_notification(1, "Available"))
            await await_until(
                lambda: all(public_ticket(q, t["id"])["state"] == "called" for t in tickets[:2]),
                what="two numbers called",
            )
            await asyncio.sleep(0.5)
            views = [await asyncio.to_thread(public_ticket, q, t["id"]) for t in tickets]
            held = {(v["charger_id"], v["connector_id"]) for v in views[:2]}
            assert held == {(cids[0], 1), (cids[1], 1)}, views
            assert (views[2]["state"], views[2]["position"]) == ("waiting", 1)
            queue = await asyncio.to_thread(q.ok, "GET", f"/api/v1/stations/{sid}/queue")
            assert (queue["waiting"], queue["called"]) == (1, 2)

    run(scenario())


def test_a_restart_keeps_the_queue(q):
    sid = station(q)
    cid = charger(q, sid)

    async def before():
        async with charge_point(q, cid, V, PW) as cp:
            await busy_charger(q, cid, cp)
            a = await asyncio.to_thread(take, q, sid, "13500135000")
            b = await asyncio.to_thread(take, q, sid, "湘AD12345")
            return a, b

    a, b = run(before())
    q.restart()  # kill -9 and start on the same data directory
    ta, tb = ticket(q, a["id"]), ticket(q, b["id"])
    assert (ta["state"], ta["position"], ta["number"]) == ("waiting", 1, 1)
    assert (tb["state"], tb["position"], tb["number"]) == ("waiting", 2, 2)
    assert take(q, sid, "13500135000", status=409)["code"] == "already_queued"

    async def after():
        async with charge_point(q, cid, V, PW) as cp:
            await busy_charger(q, cid, cp)
            await cp.status_notification(1, "Available")
            called = await await_until(lambda: state_of(q, a["id"], "called"), what="called after restart")
            assert called["connector_id"] == 1
            n = await asyncio.to_thread(take, q, sid, "13500135009")
            assert n["number"] == 3, "numbers go on after a restart"

    run(after())


def test_staff_call_skip_requeue_and_numbers_without_a_phone(q):
    sid = station(q)
    cid = charger(q, sid)
    viewer = q.ok("POST", "/api/v1/tokens", {"name": "screen", "role": "viewer"}, status=201)["token"]
    operator = q.ok("POST", "/api/v1/tokens", {"name": "Zhou (service area)", "role": "operator"}, status=201)["token"]

    async def scenario():
        async with charge_point(q, cid, V, PW) as cp:
            await busy_charger(q, cid, cp)
            # Drivers need a contact; staff hand out a number without one.
            r = await asyncio.to_thread(q.api, "POST", f"/api/v1/stations/{sid}/queue", {}, token=None)
            assert r.status_code == 400
            paper = await asyncio.to_thread(take, q, sid, None, 201, operator)
            assert paper["contact"] is None and paper["source"] == "staff"
            a = await asyncio.to_thread(take, q, sid, "13300133000")
            b = await asyncio.to_thread(take, q, sid, "13300133001")

            # The public queue shows numbers and positions, never ids or contacts.
            pub = await asyncio.to_thread(q.api, "GET", f"/api/v1/stations/{sid}/queue", None, token=None)
            assert pub.status_code == 200
            assert all("id" not in t and "contact" not in t for t in pub.json()["tickets"])
            assert [t["number"] for t in pub.json()["tickets"]] == [1, 2, 3]
            staff_view = await asyncio.to_thread(q.api, "GET", f"/api/v1/stations/{sid}/queue", None, token=operator)
            assert [t["contact"] for t in staff_view.json()["tickets"]] == [None, "13300133000", "13300133001"]
            viewer_view = await asyncio.to_thread(q.api, "GET", f"/api/v1/stations/{sid}/queue", None, token=viewer)
            assert viewer_view.json()["tickets"][1]["contact"] == "***3000"

            # Only staff act on tickets.
            for token, code in ((None, 401), (viewer, 403), ("not-a-token", 401)):
                r = await asyncio.to_thread(q.api, "POST", f"/api/v1/queue/{a['id']}/skip", None, token=token)
                assert r.status_code == code, r.text
            # Skip the paper number: it goes behind the next one.
            r = await asyncio.to_thread(q.api, "POST", f"/api/v1/queue/{paper['id']}/skip", None, token=operator)
            assert r.status_code == 200 and r.json()["position"] == 2, r.text
            # Call b by hand (no free connector: called without one), then re-queue it.
            r = await asyncio.to_thread(q.api, "POST", f"/api/v1/queue/{b['id']}/call", None, token=operator)
            assert r.status_code == 200 and r.json()["state"] == "called" and r.json()["connector_id"] is None, r.text
            r = await asyncio.to_thread(q.api, "POST", f"/api/v1/queue/{b['id']}/requeue", None, token=operator)
            assert r.status_code == 200 and (r.json()["state"], r.json()["position"]) == ("waiting", 3), r.text
            order = [t["number"] for t in (await asyncio.to_thread(q.ok, "GET", f"/api/v1/stations/{sid}/queue"))["tickets"]]
            assert order == [2, 1, 3], order
            # A done or cancelled number cannot be called.
            await asyncio.to_thread(q.api, "DELETE", f"/api/v1/queue/{a['id']}", None, token=None)
            r = await asyncio.to_thread(q.api, "POST", f"/api/v1/queue/{a['id']}/call", None, token=operator)
            assert r.status_code == 409 and r.json()["code"] == "invalid_state"

    run(scenario())


def test_bad_input_is_refused_and_changes_nothing(q):
    sid = station(q)
    charger(q, sid)
    first = take(q, sid, "13200132000")

    def snapshot():
        return [(t["number"], t["state"]) for t in q.ok("GET", f"/api/v1/stations/{sid}/queue")["tickets"]]

    before = snapshot()
    for bad in ("12345", "abc", "湘A1", "+86 123", "", "x" * 100):
        r = q.api("POST", f"/api/v1/stations/{sid}/queue", {"contact": bad}, token=None)
        assert r.status_code == 400, (bad, r.text)
        body = r.json()
        assert set(body) == {"code", "message"} and body["message"], body
    r = q.api("POST", f"/api/v1/stations/{sid}/queue", {"contact": 13200132000}, token=None)
    assert r.status_code == 400
    r = q.api("POST", f"/api/v1/stations/{sid}/queue", {"contact": "13200132001", "surprise": 1}, token=None)
    assert r.status_code == 400
    dup = q.api("POST", f"/api/v1/stations/{sid}/queue", {"contact": "132 0013 2000"}, token=None)
    assert dup.status_code == 409 and dup.json()["code"] == "already_queued"
    missing = q.api("POST", "/api/v1/stations/no-such-station/queue", {"contact": "13200132000"}, token=None)
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    assert snapshot() == before

    # Fill the queue to its maximum: the next number is refused.
    for i in range(1, MAX_WAITING):
        take(q, sid, f"1320013201{i}")
    full = q.api("POST", f"/api/v1/stations/{sid}/queue", {"contact": "13200132099"}, token=None)
    assert full.status_code == 409 and full.json()["code"] == "queue_full", full.text
    assert len(snapshot()) == MAX_WAITING

    assert q.api("GET", "/api/v1/queue/t_doesnotexist", token=None).status_code == 404
    assert q.api("GET", "/api/v1/queue/../../etc", token=None).status_code == 404
    assert q.api("DELETE", "/api/v1/queue/nope", token=None).status_code == 404
    assert q.api("GET", "/api/v1/stations/no-such-station/wait", token=None).status_code == 404
    for query in ("range_km=-5", "range_km=abc", "range_km=5000", "", "range_km=100&direction=up"):
        r = q.api("GET", f"/api/v1/diversion?station={sid}&{query}", token=None)
        assert r.status_code == 400, (query, r.text)
    assert q.api("GET", "/api/v1/diversion?station=no-such&range_km=100", token=None).status_code == 404
    assert public_ticket(q, first["id"])["state"] == "waiting"


def test_wait_and_diversion_prefer_a_quiet_neighbour(q):
    # Real service areas of the network file: Changsha southbound, the next ones south, and
    # the northbound side opposite.
    origin, twin = "g4-changsha-s", "g4-changsha-n"
    downstream = ["g4-zhaoshan-s", "g4-jianning-s"]
    for s in [origin, twin, *downstream]:
        q.ensure_station(s, highway="G4", direction=s[-1].upper())
    cids = {s: charger(q, s) for s in [origin, *downstream]}

    async def scenario():
        async with charge_point(q, cids[origin], V, PW) as busy, charge_point(q, cids[downstream[0]], V, PW) as quiet:
            await busy_charger(q, cids[origin], busy)
            await quiet.boot()
            await quiet.status_notification(1, "Available")
            await quiet.status_notification(2, "Available")
            for i in range(3):
                await asyncio.to_thread(take, q, origin, f"1310013100{i}")
            wait = await asyncio.to_thread(q.ok, "GET", f"/api/v1/stations/{origin}/wait")
            assert wait["waiting"] == 3 and wait["connectors"]["busy"] == 2 and wait["estimated_wait_s"] > 600
            calm = await asyncio.to_thread(q.ok, "GET", f"/api/v1/stations/{downstream[0]}/wait")
            assert calm["estimated_wait_s"] == 0

            r = await asyncio.to_thread(q.api, "GET", f"/api/v1/diversion?station={origin}&direction=S&range_km=120", None, token=None)
            assert r.status_code == 200, r.text
            d = r.json()
            assert d["station_id"] == origin and d["options"][0]["station_id"] == downstream[0], d
            kinds = {o["station_id"]: o["kind"] for o in d["options"]}
            assert kinds[origin] == "here" and kinds[downstream[0]] == "downstream"
            assert d["suggestion"]["station_id"] == downstream[0] and d["suggestion"]["saves_s"] >= 600
            # Asked from the other side's direction: the twin is the origin.
            other = await asyncio.to_thread(q.ok, "GET", f"/api/v1/diversion?station={origin}&direction=N&range_km=120")
            assert other["station_id"] == twin
            # With 12 km left nothing downstream is in range.
            short = await asyncio.to_thread(q.ok, "GET", f"/api/v1/diversion?station={origin}&direction=S&range_km=12")
            assert [o["station_id"] for o in short["options"]] == [origin] and short["suggestion"] is None

            # The driver takes it: a number there, counted as a diversion taken.
            t = await asyncio.to_thread(
                q.api, "POST", f"/api/v1/stations/{downstream[0]}/queue", {"contact": "13100131009", "diverted_from": origin}, token=None
            )
            assert t.status_code == 201 and t.json()["state"] == "called", "a free connector calls at once"
            stats = await asyncio.to_thread(q.ok, "GET", "/api/v1/diversion/stats")
            assert stats["suggested"] >= 1 and stats["taken"] >= 1
            assert any(x["station_id"] == origin and x["waiting"] == 3 for x in stats["queues"])

            card = await asyncio.to_thread(q.api, "GET", f"/api/v1/public/stations/{origin}/card", None, token=None)
            assert card.status_code == 200
            c = card.json()
            assert c["station"]["id"] == origin and "toilets" in c["station"]["amenities"]
            rel = {n["id"]: n["relation"] for n in c["nearby"]}
            assert rel[twin] == "opposite_direction" and rel[downstream[0]] == "downstream"
            assert all(n["distance_km"] is not None for n in c["nearby"])

    run(scenario())
