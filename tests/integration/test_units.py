"""Mobile units across the province, end to end against the real binary.

`chargeops serve` with a slice of the G4: real OCPP charge points (the independent `ocpp`
package) give one service area, Zhuting southbound, eight days of history at four chargers, then
report three of its four chargers faulted, so the platform's fitted forecasts make it short. Two
units wait at depots up and down the road; the plan sends them there along the highway. A unit
reported broken mid-route is planned around; a change of live capacity re-plans; a restart
keeps the units; bad input changes nothing.

`chargeops demo` on a small network (the G4 from Yueyang to Hengyang) at 600x speed checks the
demo's eighteen units at three depots, the simulated crews that drive the plan, and re-plans as
the forecasts are refitted every simulated hour.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
import threading
from datetime import datetime, timedelta, timezone

import pytest
import requests

from chargepoints import charge_point
from harness import REPO, EventStream, demo_process, wait_until

PW = "units-test-password-16"
TAG = "UNITS-TAG-1"
HISTORY_DAYS = 8

# The stations of the G4 southbound the tests use, from data/network/hunan.csv.
SHORT = "g4-zhuting-s"  # km 350.3, the service area that will be short
DEPOT_NORTH = "g4-changsha-s"  # km 220.4
DEPOT_SOUTH = "g4-yancheng-s"  # km 423.8
BETWEEN = ["g4-zhaoshan-s", "g4-jianning-s"]  # km 269.0 and 308.4, on the road north of SHORT
QUIET = "g4-hengshan-s"  # km 384.5
STATIONS = [DEPOT_NORTH, *BETWEEN, SHORT, QUIET, DEPOT_SOUTH]
SHORT_CHARGERS = [f"units-zt-{i}" for i in range(1, 5)]


def network_rows() -> dict[str, dict]:
    with open(REPO / "data" / "network" / "hunan.csv", newline="", encoding="utf-8") as f:
        return {r["id"]: r for r in csv.DictReader(f)}


def iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def t(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def close(a: list[float] | tuple, b: list[float] | tuple, eps: float = 1e-3) -> bool:
    return abs(a[0] - b[0]) < eps and abs(a[1] - b[1]) < eps


class Chargers:
    """The short station's charge points, kept connected in a thread of their own for the whole
    module (a charger that disconnects counts as serving, so the faulted ones must stay)."""

    def __init__(self, server):
        self.server = server
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.cps: dict = {}
        self.sessions = 0

    def start(self) -> "Chargers":
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(240), "charge points did not tell their history in time"
        if self.error:
            raise self.error
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # noqa: BLE001 - reported to the test thread
            self.error = e
            self.ready.set()

    async def _history(self, k: int, cp) -> None:
        # One 55-minute session an hour at each charger for eight days, staggered by charger.
        now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
        meter = 100_000
        for h in range(HISTORY_DAYS * 24, 2, -1):
            start = now - timedelta(hours=h) + timedelta(minutes=3 * k)
            res = await cp.start_transaction(1, TAG, meter_start=meter, timestamp=iso(start))
            meter += 20_000
            await cp.stop_transaction(res.transaction_id, meter, timestamp=iso(start + timedelta(minutes=55)))
            self.sessions += 1

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stop_event = asyncio.Event()
        async with contextlib.AsyncExitStack() as stack:
            for cid in SHORT_CHARGERS:
                self.cps[cid] = await stack.enter_async_context(charge_point(self.server, cid, "1.6", PW))
            for cp in self.cps.values():
                await cp.boot()
            await asyncio.gather(*(self._history(k, cp) for k, cp in enumerate(self.cps.values())))
            # One charger in service, three faulted: a quarter of the station's usual capacity.
            for k, cp in enumerate(self.cps.values()):
                if k == 0:
                    await cp.status_notification(1, "Available")
                else:
                    await cp.status_notification(1, "Faulted", error_code="GroundFailure")
            self.ready.set()
            await self.stop_event.wait()

    def status(self, cid: str, status: str) -> None:
        async def go():
            code = "GroundFailure" if status == "Faulted" else "NoError"
            await self.cps[cid].status_notification(1, status, error_code=code)

        asyncio.run_coroutine_threadsafe(go(), self.loop).result(30)

    def stop(self) -> None:
        if self.loop and not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(20)


@pytest.fixture(scope="module")
def g4(make_module_server):
    server = make_module_server(heartbeat_interval=77, command_timeout=10)
    rows = network_rows()
    for sid in STATIONS:
        r = rows[sid]
        server.ok("POST", "/api/v1/stations", {
            "id": sid, "name": f"{r['name_zh']} ({r['name_pinyin']})", "lat": float(r["lat"]),
            "lon": float(r["lon"]), "highway": r["highway"], "direction": r["direction"],
        }, status=201)
    for cid in SHORT_CHARGERS:
        server.ok("POST", "/api/v1/chargers", {"id": cid, "station_id": SHORT, "password": PW}, status=201)
    server.ok("POST", "/api/v1/id-tags", {"id_tag": TAG, "status": "accepted"}, status=(200, 201))
    chargers = Chargers(server).start()
    assert chargers.sessions == 4 * (HISTORY_DAYS * 24 - 2)
    yield server, chargers, rows
    chargers.stop()


def token(server, role: str) -> str:
    return server.ok("POST", "/api/v1/tokens", {"name": f"units {role}", "role": role}, status=201)["token"]


def plan(server, **params) -> dict:
    q = "&".join(f"{k}={v}" for k, v in params.items())
    return server.ok("GET", f"/api/v1/mobile-units/plan{'?' + q if q else ''}")


def units(server) -> dict[str, dict]:
    return {u["id"]: u for u in server.ok("GET", "/api/v1/mobile-units")}


def unit_plan(p: dict, uid: str) -> dict:
    return next(u for u in p["units"] if u["unit"] == uid)


def newer_plan(server, version: int, pred=lambda p: True, what: str = "a new plan", timeout: float = 60) -> dict:
    def check():
        p = plan(server)
        return p if p["version"] > version and pred(p) else None

    return wait_until(check, timeout=timeout, interval=0.2, what=what)


def position(rows, sid) -> list[float]:
    return [float(rows[sid]["lat"]), float(rows[sid]["lon"])]


def test_the_plan_sends_units_along_the_highway_to_the_short_station(g4):
    server, _, rows = g4
    # The platform's own forecast says Zhuting southbound will see about four cars an hour.
    f = server.ok("GET", f"/api/v1/stations/{SHORT}/forecast?hours=24")
    arrivals = [h["arrivals"]["p50"] for h in f["hours"]]
    assert sum(arrivals) / len(arrivals) > 2.5, arrivals
    assert plan(server)["units"] == [], "no units, an empty plan"

    with EventStream(server) as events:
        a = server.ok("POST", "/api/v1/mobile-units", {
            "id": "unit-north", "name": "北 vehicle", "kind": "vehicle", "guns": 2, "gun_kw": 60,
            "cars_per_hour": 2.0, "station_id": DEPOT_NORTH}, status=201)
        assert a["status"] == "ready" and a["station_id"] == DEPOT_NORTH
        assert close([a["position"]["lat"], a["position"]["lon"]], position(rows, DEPOT_NORTH))
        b = server.ok("POST", "/api/v1/mobile-units", {
            "id": "unit-south", "kind": "container", "guns": 3, "gun_kw": 120, "station_id": DEPOT_SOUTH},
            status=201)
        assert b["name"] == "unit-south" and b["cars_per_hour"] > 5, "capacity from guns and power"
        events.wait_for(lambda e: e.get("_event") == "units_planned" and e["reason"] == "unit_added",
                        timeout=60, what="units_planned after units were added")

    p = wait_until(lambda: (lambda p: p if len(p["units"]) == 2 else None)(plan(server)), timeout=60,
                   what="a plan with both units")
    assert p["reason"] in ("unit_added", "start", "forecast", "capacity", "hourly"), p["reason"]
    assert p["horizon_h"] == 24 and t(p["start"]) <= t(p["planned_at"])
    assert p["sites_short"] >= 1 and p["short_stations"][0]["station_id"] == SHORT
    assert p["unmet_car_h"] < p["no_units_car_h"], "the plan cuts the queue"
    assert p["unmet_car_h"] <= p["static_car_h"] + 1e-6, "never worse than the static placement"
    assert p["relocation_km"] > 0 and p["served_cars"] > 0

    north = unit_plan(p, "unit-north")
    m = north["moves"][0]
    assert (m["from"], m["to"], m["in_progress"]) == (DEPOT_NORTH, SHORT, False)
    assert abs(m["km"] - (350.3 - 220.4)) < 0.2, "road km along the G4"
    assert t(m["depart_at"]) >= t(p["planned_at"]) - timedelta(seconds=1)
    travel = (t(m["arrive_at"]) - t(m["depart_at"])).total_seconds() / 3600
    assert abs(travel - m["km"] / 70) < 0.01, "70 km/h"
    # The route follows the highway through the service areas between, in order.
    route = m["route"]
    assert close(route[0], position(rows, DEPOT_NORTH)) and close(route[-1], position(rows, SHORT))
    assert [close(pt, position(rows, s)) for pt, s in zip(route[1:3], BETWEEN)] == [True, True], route
    stay = next(s for s in north["stays"] if s["station_id"] == SHORT)
    assert stay["expected_cars"] > 0 and t(stay["from"]) >= t(m["arrive_at"]) - timedelta(hours=1)
    assert any(s["station_id"] == SHORT for s in unit_plan(p, "unit-south")["stays"])

    listed = units(server)
    assert listed["unit-north"]["next_move"]["to"] == SHORT
    assert listed["unit-north"]["station_name"].startswith("长沙服务区")


def test_a_unit_broken_mid_route_is_planned_around(g4):
    server, _, rows = g4
    before = plan(server)
    m = unit_plan(before, "unit-north")["moves"][0]
    # On the road, between Zhaoshan and Jianning.
    mid = [(m["route"][1][0] + m["route"][2][0]) / 2, (m["route"][1][1] + m["route"][2][1]) / 2]
    r = server.ok("POST", "/api/v1/mobile-units/unit-north/report",
                  {"lat": mid[0], "lon": mid[1], "status": "driving"})
    assert r["status"] == "driving" and r["station_id"] == SHORT, "driving to its planned station"

    with EventStream(server) as events:
        r = server.ok("POST", "/api/v1/mobile-units/unit-north/report",
                      {"lat": mid[0], "lon": mid[1], "status": "broken"})
        assert r["status"] == "broken" and r["next_move"] is None
        ev = events.wait_for(lambda e: e.get("_event") == "units_planned" and e["reason"] == "unit_report",
                             timeout=60, what="a re-plan after the breakdown")
    after = newer_plan(server, before["version"], lambda p: p["reason"] == "unit_report")
    assert after["version"] >= ev["version"] > before["version"]
    assert "unit-north reported broken mid-route" in after["reason_detail"], after["reason_detail"]
    broken = unit_plan(after, "unit-north")
    assert broken["status"] == "broken" and broken["stays"] == [] and broken["moves"] == []
    assert close([broken["position"]["lat"], broken["position"]["lon"]], mid)
    # The other unit still covers the short station; one unit fewer cannot cut the queue.
    assert any(s["station_id"] == SHORT and s["expected_cars"] > 0 for s in unit_plan(after, "unit-south")["stays"])
    assert after["unmet_car_h"] >= before["unmet_car_h"] - 1e-6

    # A broken unit may not drive on until it is repaired; nothing changes.
    r = server.api("POST", "/api/v1/mobile-units/unit-north/report", {"lat": 28.0, "lon": 113.0, "status": "driving"})
    assert r.status_code == 409 and "repaired" in r.json()["message"], r.text
    assert units(server)["unit-north"]["status"] == "broken"

    # Repaired where it stands: back in the plan, driving on to a short station.
    server.ok("POST", "/api/v1/mobile-units/unit-north/report", {"lat": mid[0], "lon": mid[1], "status": "ready"})
    back = newer_plan(server, after["version"],
                      lambda p: p["reason"] == "unit_report" and unit_plan(p, "unit-north")["stays"],
                      what="a plan with the repaired unit")
    assert "repaired" in back["reason_detail"]
    first = unit_plan(back, "unit-north")["moves"][0]
    assert first["to"] == SHORT and close(first["route"][0], mid, 1e-4), first


def test_a_change_of_live_capacity_replans(g4):
    server, chargers, _ = g4
    before = plan(server)
    # Two of the faulted chargers repaired: Zhuting needs less help.
    for cid in SHORT_CHARGERS[1:3]:
        chargers.status(cid, "Available")
    after = newer_plan(server, before["version"], lambda p: p["reason"] in ("capacity", "forecast"),
                       what="a re-plan for the new capacity")
    assert SHORT in after["reason_detail"], after["reason_detail"]
    short = lambda p: next((s for s in p["short_stations"] if s["station_id"] == SHORT), None)  # noqa: E731
    assert short(before) and (short(after) is None or short(after)["no_units_car_h"] < short(before)["no_units_car_h"])
    assert after["no_units_car_h"] < before["no_units_car_h"]
    for cid in SHORT_CHARGERS[1:3]:
        chargers.status(cid, "Faulted")
    newer_plan(server, after["version"], lambda p: p["no_units_car_h"] > after["no_units_car_h"],
               what="a re-plan once they fault again")


def test_who_may_do_what(g4):
    server, _, _ = g4
    viewer, dispatcher, operator = token(server, "viewer"), token(server, "dispatcher"), token(server, "operator")
    new = {"id": "unit-x", "kind": "vehicle", "guns": 2, "gun_kw": 60, "station_id": QUIET}
    assert server.api("GET", "/api/v1/mobile-units", token=viewer).status_code == 200
    assert server.api("GET", "/api/v1/mobile-units/plan", token=viewer).status_code == 200
    assert server.api("GET", "/api/v1/mobile-units", token=None).status_code == 401
    for tok in (viewer, dispatcher):
        assert server.api("POST", "/api/v1/mobile-units", new, token=tok).status_code == 403
    report = {"lat": 27.18, "lon": 112.92, "status": "ready", "station_id": QUIET}
    assert server.api("POST", "/api/v1/mobile-units/unit-south/report", report, token=viewer).status_code == 403
    assert server.api("POST", "/api/v1/mobile-units/plan", {}, token=viewer).status_code == 403
    assert server.api("DELETE", "/api/v1/mobile-units/unit-south", token=operator).status_code == 403
    before = plan(server)["version"]
    p = server.api("POST", "/api/v1/mobile-units/plan", {"hours": 12}, token=dispatcher)
    assert p.status_code == 200, p.text
    assert p.json()["reason"] == "request" and p.json()["version"] > before and p.json()["horizon_h"] == 12
    assert "units dispatcher" in p.json()["reason_detail"]
    assert plan(server, hours=6)["horizon_h"] == 6
    back = server.ok("POST", "/api/v1/mobile-units/plan", {"hours": 24})
    assert back["horizon_h"] == 24
    # The audit log has who asked.
    audit = server.ok("GET", "/api/v1/audit?limit=50")
    assert any(e["action"] == "POST /api/v1/mobile-units/plan" and e["role"] == "dispatcher" for e in audit)


TRACKER_PW = "south-tracker-pass-1"


def track(server, uid: str, body: dict, auth=None, headers=None) -> requests.Response:
    return requests.post(f"{server.base_url}/api/v1/mobile-units/{uid}/track", json=body, auth=auth,
                         headers=headers, timeout=30)


def test_a_units_own_tracker_reports_with_credentials_of_its_own(g4):
    server, _, _ = g4
    dispatcher, operator = token(server, "dispatcher"), token(server, "operator")
    path = "/api/v1/mobile-units/unit-south/tracker"
    assert server.api("PUT", path, {"password": TRACKER_PW}, token=dispatcher).status_code == 403
    for body, text in (({"password": "short"}, "12 to 128"), ({"password": "x" * 129}, "12 to 128"),
                       ({"password": "tab\there-and-long"}, "control"), ({}, "password"),
                       ({"password": TRACKER_PW, "extra": 1}, "unknown field")):
        r = server.api("PUT", path, body, token=operator)
        assert r.status_code == 400 and text in r.json()["message"], (body, r.text)
    assert server.api("PUT", "/api/v1/mobile-units/nobody/tracker", {"password": TRACKER_PW}).status_code == 404
    # No password yet: the tracker route knows no credentials for the unit.
    u = units(server)["unit-south"]
    here = {"lat": u["position"]["lat"], "lon": u["position"]["lon"], "status": u["status"], "station_id": u["station_id"]}
    assert track(server, "unit-south", here, auth=("unit-south", TRACKER_PW)).status_code == 401
    r = server.api("PUT", path, {"password": TRACKER_PW}, token=operator)
    assert r.status_code == 204, r.text

    # Refused: no credentials, a wrong password, another unit's id, a bearer token, a bad id.
    for auth, headers, uid in ((None, None, "unit-south"), (("unit-south", "wrong-password-1"), None, "unit-south"),
                               (("unit-north", TRACKER_PW), None, "unit-north"),
                               (("unit-north", TRACKER_PW), None, "unit-south"),
                               (None, {"Authorization": f"Bearer {server.token}"}, "unit-south"),
                               (None, {"Authorization": "Basic !!!not-base64"}, "unit-south"),
                               (("x" * 60, TRACKER_PW), None, "x" * 60)):
        r = track(server, uid, here, auth=auth, headers=headers)
        assert r.status_code == 401, (auth, headers, uid, r.text)
        assert r.headers["WWW-Authenticate"].startswith("Basic"), r.headers
    assert units(server)["unit-south"] == u

    # The tracker's report moves the unit, and every map hears of it at once.
    with EventStream(server) as events:
        r = track(server, "unit-south", here, auth=("unit-south", TRACKER_PW))
        assert r.status_code == 200, r.text
        assert r.json()["id"] == "unit-south" and r.json()["status"] == u["status"]
        ev = events.wait_for(lambda e: e.get("_event") == "unit_moved" and e["unit_id"] == "unit-south",
                             timeout=30, what="unit_moved")
    assert close([ev["lat"], ev["lon"]], [here["lat"], here["lon"]]) and ev["status"] == u["status"]
    assert ev["station_id"] == u["station_id"]
    # A tracker cannot declare a breakdown (staff do), nor send nonsense.
    r = track(server, "unit-south", {**here, "status": "broken"}, auth=("unit-south", TRACKER_PW))
    assert r.status_code == 400 and "breakdowns" in r.json()["message"], r.text
    r = track(server, "unit-south", {**here, "lat": 51.5, "lon": -0.12}, auth=("unit-south", TRACKER_PW))
    assert r.status_code == 400 and "outside China" in r.json()["message"], r.text
    assert units(server)["unit-south"]["status"] == u["status"]

    # A new password ends the old one.
    server.ok("PUT", path, {"password": TRACKER_PW + "-2"}, status=204)
    assert track(server, "unit-south", here, auth=("unit-south", TRACKER_PW)).status_code == 401
    assert track(server, "unit-south", here, auth=("unit-south", TRACKER_PW + "-2")).status_code == 200
    server.ok("PUT", path, {"password": TRACKER_PW}, status=204)


BAD = [
    ("POST", "/api/v1/mobile-units", {"id": "u-bad", "kind": "vehicle", "guns": 2, "gun_kw": 60, "station_id": "nowhere"}, 404, "station nowhere not found"),
    ("POST", "/api/v1/mobile-units", {"id": "u-bad", "kind": "boat", "guns": 2, "gun_kw": 60, "station_id": QUIET}, 400, "kind must be vehicle or container"),
    ("POST", "/api/v1/mobile-units", {"id": "u-bad", "kind": "vehicle", "guns": 0, "gun_kw": 60, "station_id": QUIET}, 400, "guns must be 1 to 16"),
    ("POST", "/api/v1/mobile-units", {"id": "u-bad", "kind": "vehicle", "guns": 1000, "gun_kw": 60, "station_id": QUIET}, 400, "guns must be 1 to 16"),
    ("POST", "/api/v1/mobile-units", {"id": "u-bad", "kind": "vehicle", "guns": 2, "gun_kw": 0, "station_id": QUIET}, 400, "gun_kw"),
    ("POST", "/api/v1/mobile-units", {"id": "u-bad", "kind": "vehicle", "guns": 2, "gun_kw": 60, "cars_per_hour": -1, "station_id": QUIET}, 400, "cars_per_hour"),
    ("POST", "/api/v1/mobile-units", {"id": "u bad", "kind": "vehicle", "guns": 2, "gun_kw": 60, "station_id": QUIET}, 400, "unit id"),
    ("POST", "/api/v1/mobile-units", {"id": "plan", "kind": "vehicle", "guns": 2, "gun_kw": 60, "station_id": QUIET}, 400, "unit id"),
    ("POST", "/api/v1/mobile-units", {"id": "unit-south", "kind": "vehicle", "guns": 2, "gun_kw": 60, "station_id": QUIET}, 409, "exists"),
    ("POST", "/api/v1/mobile-units", {"id": "u-bad", "kind": "vehicle", "guns": 2, "gun_kw": 60, "station_id": QUIET, "wings": 2}, 400, "unknown field"),
    ("POST", "/api/v1/mobile-units/nobody/report", {"lat": 27.2, "lon": 112.9, "status": "ready"}, 404, "mobile unit nobody not found"),
    ("POST", "/api/v1/mobile-units/unit-south/report", {"lat": 27.2, "lon": 112.9, "status": "exploded"}, 400, "status must be ready, driving, serving or broken"),
    ("POST", "/api/v1/mobile-units/unit-south/report", {"lat": 51.5, "lon": -0.12, "status": "ready"}, 400, "outside China"),
    ("POST", "/api/v1/mobile-units/unit-south/report", {"lat": 95, "lon": 113, "status": "ready"}, 400, "outside China"),
    ("POST", "/api/v1/mobile-units/unit-south/report", {"lat": "north", "lon": 113, "status": "ready"}, 400, "invalid JSON"),
    ("POST", "/api/v1/mobile-units/unit-south/report", {"lon": 113, "status": "ready"}, 400, "lat"),
    ("POST", "/api/v1/mobile-units/unit-south/report", {"lat": 27.2, "lon": 112.9, "status": "ready", "station_id": "nowhere"}, 404, "station nowhere not found"),
    ("GET", "/api/v1/mobile-units/plan?hours=0", None, 400, "hours must be 1 to 48"),
    ("GET", "/api/v1/mobile-units/plan?hours=49", None, 400, "hours must be 1 to 48"),
    ("GET", "/api/v1/mobile-units/plan?hours=soon", None, 400, "hours"),
    ("POST", "/api/v1/mobile-units/plan", {"hours": 1000}, 400, "hours must be 1 to 48"),
    ("DELETE", "/api/v1/mobile-units/nobody", None, 404, "mobile unit nobody not found"),
]


def test_bad_input_is_refused_and_changes_nothing(g4):
    server, _, _ = g4
    units_before = units(server)
    version = plan(server)["version"]
    with EventStream(server) as events:
        for method, path, body, status, text in BAD:
            r = server.api(method, path, body)
            assert r.status_code == status, (method, path, body, r.status_code, r.text)
            msg = r.json()["message"]
            assert text in msg, (path, body, msg)
        # NaN is not JSON: a unit reporting it is refused as such.
        for raw in ('{"lat": NaN, "lon": 113, "status": "ready"}', '{"lat": 27.2, "lon": Infinity, "status": "ready"}'):
            r = requests.post(server.base_url + "/api/v1/mobile-units/unit-south/report", data=raw, timeout=30,
                              headers={"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"})
            assert r.status_code == 400 and "invalid JSON" in r.json()["message"], r.text
        assert units(server) == units_before
        # Only the platform's own re-plans (forecasts, hours) may have happened meanwhile.
        assert not events.matching(lambda e: e.get("_event") == "units_planned"
                                   and e["reason"] in ("unit_added", "unit_removed", "unit_report", "request"))
    assert plan(server)["version"] >= version


def test_a_restart_keeps_the_units_and_removal_replans(g4):
    server, _, _ = g4
    before = units(server)
    assert set(before) == {"unit-north", "unit-south"}
    server.restart()
    after = units(server)
    keep = ("name", "kind", "guns", "gun_kw", "cars_per_hour", "position", "status", "station_id", "reported_at", "created_at")
    for uid in before:
        assert {k: after[uid][k] for k in keep} == {k: before[uid][k] for k in keep}, uid
    # The tracker's credentials are kept too.
    u = after["unit-south"]
    here = {"lat": u["position"]["lat"], "lon": u["position"]["lon"], "status": u["status"], "station_id": u["station_id"]}
    assert track(server, "unit-south", here, auth=("unit-south", TRACKER_PW)).status_code == 200
    p = wait_until(lambda: (lambda p: p if len(p["units"]) == 2 else None)(plan(server)), timeout=60,
                   what="a plan after the restart")
    assert p["version"] >= 1
    server.ok("DELETE", "/api/v1/mobile-units/unit-north", status=204)
    gone = newer_plan(server, p["version"], lambda q: q["reason"] == "unit_removed")
    assert [u["unit"] for u in gone["units"]] == ["unit-south"]
    assert "unit-north" not in units(server)
    server.restart()
    assert set(units(server)) == {"unit-south"}


# --------------------------------------------------------------------------------------------
# The demo on a small network.

DEMO_TOKEN = "units-demo-token-0123456789"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    data = tmp_path_factory.mktemp("units-demo")
    rows = list(network_rows().values())
    net = data / "g4.csv"
    with open(net, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(r for r in rows if r["highway"] == "G4" and 50 <= float(r["km"]) <= 470)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARGEOPS_")}
    env.update(CHARGEOPS_LOG="info,chargeops_gateway=warn")
    args = ["--network", str(net), "--scenario", "spring-festival", "--history-weeks", "1", "--speed", "600",
            "--seed", "3"]
    with demo_process(data, DEMO_TOKEN, args, env=env) as (_, base):
        yield base, data


def dget(base, path):
    r = requests.get(base + path, headers={"Authorization": f"Bearer {DEMO_TOKEN}"}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_the_demo_seeds_eighteen_units_at_three_depots(demo):
    base, data = demo
    listed = dget(base, "/api/v1/mobile-units")
    kinds = [u["kind"] for u in listed]
    assert (kinds.count("vehicle"), kinds.count("container")) == (10, 8)
    line = next(li for li in open(data / "demo.log") if li.startswith("mobile units: 18 at "))
    depots = line.strip().removeprefix("mobile units: 18 at ").split(", ")
    # The stations nearest Changsha, Hengyang and Yueyang on this stretch of the G4.
    assert depots == ["g4-changsha-s", "g4-yancheng-s", "g4-baling-s"], depots


def test_demo_units_follow_the_plan_and_it_is_remade_as_forecasts_are_refitted(demo):
    base, _ = demo
    first = dget(base, "/api/v1/mobile-units/plan")
    reasons: set[str] = set()
    seen_status: set[str] = set()
    moved: set[str] = set()
    start = {u["id"]: u["position"] for u in dget(base, "/api/v1/mobile-units")}

    def progress():
        p = dget(base, "/api/v1/mobile-units/plan")
        reasons.add(p["reason"])
        for u in dget(base, "/api/v1/mobile-units"):
            seen_status.add(u["status"])
            if not close([u["position"]["lat"], u["position"]["lon"]], [start[u["id"]]["lat"], start[u["id"]]["lon"]]):
                moved.add(u["id"])
        done = p["version"] >= first["version"] + 3 and "forecast" in reasons and "driving" in seen_status
        return p if done and "serving" in seen_status and moved else None

    p = wait_until(progress, timeout=120, interval=0.5, what="re-plans and moving units")
    # Every simulated hour refits the forecasts; the plan follows.
    assert p["horizon_h"] == 24 and t(p["start"]) > t(first["start"]) - timedelta(hours=1)
    assert p["unmet_car_h"] < p["no_units_car_h"]


def test_a_demo_unit_broken_while_driving_stays_where_it_broke(demo):
    base, _ = demo
    headers = {"Authorization": f"Bearer {DEMO_TOKEN}"}

    def driving():
        return next((u for u in dget(base, "/api/v1/mobile-units") if u["status"] == "driving"), None)

    u = wait_until(driving, timeout=120, interval=0.2, what="a unit on the road")
    version = dget(base, "/api/v1/mobile-units/plan")["version"]
    pos = u["position"]
    r = requests.post(f"{base}/api/v1/mobile-units/{u['id']}/report", headers=headers, timeout=30,
                      json={"lat": pos["lat"], "lon": pos["lon"], "status": "broken"})
    assert r.status_code == 200, r.text

    def replanned():
        p = dget(base, "/api/v1/mobile-units/plan")
        if p["version"] > version and p["reason"] == "unit_report" and u["id"] in p["reason_detail"]:
            return p
        return None

    p = wait_until(replanned, timeout=60, interval=0.2, what="a re-plan without the broken unit")
    mine = unit_plan(p, u["id"])
    assert mine["stays"] == [] and mine["moves"] == [] and "mid-route" in p["reason_detail"]
    # The simulated crew does not drive a broken unit on, however many simulated hours pass.
    later = dget(base, "/api/v1/mobile-units/plan")["version"]
    wait_until(lambda: dget(base, "/api/v1/mobile-units/plan")["version"] >= later + 2, timeout=60, interval=0.5,
               what="two more plans")
    now = next(x for x in dget(base, "/api/v1/mobile-units") if x["id"] == u["id"])
    assert now["status"] == "broken" and close([now["position"]["lat"], now["position"]["lon"]], [pos["lat"], pos["lon"]], 1e-9)
