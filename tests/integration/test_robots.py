"""Live robot lots end to end: robots are registered chargers that speak OCPP (Python `ocpp`
charge points, 1.6 and 2.0.1) and report position, battery and state over the robot interface
(HTTP Basic with their OCPP credentials); drivers add cars without a token; staff set lots up,
watch them and override the dispatcher.

Covered: a lot set up and read back; a car served by a robot over a real OCPP transaction; a
session that stops short puts the car back owing the rest; a robot that stops reporting goes
offline and its car goes to another robot; a report with too little battery frees the car and
docks the robot; staff override and release (and who may); a kill -9 keeps the lot and its cars;
bad input is refused and changes nothing.

The server runs with a 3 s robot timeout (`--robot-timeout-secs`), so robots that must stay
online report in the background every 0.3 s, as real robots do every few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re

import pytest
import requests

from chargepoints import charge_point
from harness import EventStream, await_until, basic_auth, run, uid, wait_until

PW = "robot-test-password-01"
TIMEOUT_S = 3
DOCK = (-15.0, 0.0)


@pytest.fixture(scope="module")
def s(make_module_server):
    return make_module_server(
        heartbeat_interval=77, command_timeout=5, extra_args=("--robot-timeout-secs", str(TIMEOUT_S))
    )


# --------------------------------------------------------------------------------------------
# Helpers


def bay_xy(bay: int) -> tuple[float, float]:
    """Where bay `bay` is in `Lot::service_area`: rows of 20, 2.7 m apart, rows 8 m apart."""
    return (round((bay % 20) * 2.7, 3), (bay // 20) * 8.0)


def new_lot(s, robots: int = 1, bays: int = 10, fleet: dict | None = None) -> tuple[str, list[str]]:
    sid = uid("lot-st")
    s.ensure_station(sid)
    ids = []
    for _ in range(robots):
        rid = uid("robot")
        s.register(rid, PW, station=sid)
        ids.append(rid)
    body = {"bays": bays, "robots": ids}
    if fleet is not None:
        body["fleet"] = fleet
    s.ok("PUT", f"/api/v1/stations/{sid}/lot", body)
    return sid, ids


def lot(s, sid: str) -> dict:
    return s.ok("GET", f"/api/v1/stations/{sid}/lot")


def robot_in(view: dict, rid: str) -> dict:
    return next(r for r in view["robots"] if r["id"] == rid)


def add_car(s, sid: str, bay: int, energy: float, status: int = 201, **extra) -> dict:
    r = s.api("POST", f"/api/v1/stations/{sid}/lot/cars", {"bay": bay, "energy_kwh": energy, **extra}, token=None)
    assert r.status_code == status, r.text
    return r.json()


def car(s, car_id: str) -> dict:
    r = s.api("GET", f"/api/v1/lot-cars/{car_id}", token=None)
    assert r.status_code == 200, r.text
    return r.json()


def car_in(s, car_id: str, state: str) -> dict | None:
    c = car(s, car_id)
    return c if c["state"] == state else None


def stable(view: dict) -> dict:
    """The lot view without what moves by itself (the clock, waits)."""
    v = json.loads(json.dumps(view))
    v.pop("now", None)
    for c in v["cars"]:
        c.pop("wait_s", None)
    v["stats"].pop("mean_wait_s", None)
    return v


class Robot:
    """A robot's reporting side: posts its position, battery and state to the robot interface
    and keeps the task it is answered."""

    def __init__(self, s, rid: str, password: str = PW, x: float = DOCK[0], y: float = DOCK[1],
                 battery: float = 150.0, state: str = "docked"):
        self.s, self.id, self.password = s, rid, password
        self.x, self.y, self.battery, self.state = x, y, battery, state
        self.car: str | None = None
        self.task: dict | None = None
        self.errors: list[BaseException] = []
        self._loop: asyncio.Task | None = None

    def post(self, body: dict | None = None, auth: dict | None = None, raw: str | None = None) -> requests.Response:
        if body is None and raw is None:
            body = {"x": self.x, "y": self.y, "battery_kwh": self.battery, "state": self.state}
            if self.car:
                body["car"] = self.car
        headers = basic_auth(self.id, self.password) if auth is None else auth
        url = f"{self.s.base_url}/api/v1/robots/{self.id}/report"
        if raw is not None:
            return requests.post(url, data=raw, headers={**headers, "Content-Type": "application/json"}, timeout=30)
        return requests.post(url, json=body, headers=headers, timeout=30)

    def report(self) -> dict:
        r = self.post()
        assert r.status_code == 200, r.text
        answer = r.json()
        self.task = answer["task"]
        return answer

    async def areport(self) -> dict:
        return await asyncio.to_thread(self.report)

    def start(self, every: float = 0.3) -> None:
        async def loop():
            while True:
                try:
                    await self.areport()
                except Exception as e:  # noqa: BLE001 - surfaced by stop()
                    self.errors.append(e)
                await asyncio.sleep(every)

        self._loop = asyncio.create_task(loop())

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(BaseException):
                await self._loop
            self._loop = None
        assert not self.errors, f"{self.id}: reports failed: {self.errors!r}"

    def car_task(self) -> dict | None:
        t = self.task
        return t if t and t["kind"] == "car" else None


@contextlib.asynccontextmanager
async def reporting(*robots: Robot):
    for r in robots:
        r.start()
    try:
        yield robots
    finally:
        for r in robots:
            await r.stop()


def lot_events(events: EventStream, sid: str) -> list[str]:
    return [e["reason"] for e in events.matching(lambda e: e.get("_event") == "lot_changed" and e.get("station_id") == sid)]


# --------------------------------------------------------------------------------------------
# Tests


def test_a_lot_is_set_up_and_read_back(s):
    sid = uid("lot-st")
    s.ensure_station(sid)
    robots = [uid("robot"), uid("robot")]
    for rid in robots:
        s.register(rid, PW, station=sid)
    view = s.ok("PUT", f"/api/v1/stations/{sid}/lot",
                {"bays": 30, "robots": robots, "fleet": {"robot_kwh": 100, "robot_kw": 60, "robots": 99}})
    assert view["station_id"] == sid
    assert len(view["bays"]) == 30 and view["bays"][21] == {"x": 2.7, "y": 8.0}
    assert view["dock"] == {"x": -15.0, "y": 0.0}
    assert view["fleet"]["robot_kwh"] == 100 and view["fleet"]["robot_kw"] == 60
    assert view["fleet"]["dock_kw"] == 150 and view["fleet"]["plug_s"] == 60, "missing fleet keys take the defaults"
    assert view["fleet"]["robots"] == 2, "the robot count is the robot list's"
    assert [r["id"] for r in view["robots"]] == robots
    for r in view["robots"]:
        # Nothing reported yet: at the dock, offline, no task.
        assert (r["state"], r["online"], r["last_report_at"], r["task"]) == ("offline", False, None, {"kind": "stay"})
        assert r["override"] is False and r["battery_pct"] == 100
    assert view["cars"] == []
    assert view["stats"] == {"waiting": 0, "assigned": 0, "charging": 0, "served": 0, "mean_wait_s": 0, "robots_online": 0}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", view["now"])
    assert stable(lot(s, sid)) == stable(view)

    # A layout of explicit points; a viewer reads it, but may not change it.
    pts = [{"x": 0, "y": 0}, {"x": 3, "y": 0}, {"x": 6, "y": 5}]
    view = s.ok("PUT", f"/api/v1/stations/{sid}/lot", {"bays": pts, "dock": {"x": -10, "y": 2}, "robots": robots[:1]})
    assert view["bays"] == [{"x": 0.0, "y": 0.0}, {"x": 3.0, "y": 0.0}, {"x": 6.0, "y": 5.0}]
    assert view["dock"] == {"x": -10.0, "y": 2.0}
    assert [r["id"] for r in view["robots"]] == robots[:1]
    viewer = s.ok("POST", "/api/v1/tokens", {"name": "viewer", "role": "viewer"}, status=201)["token"]
    r = s.api("GET", f"/api/v1/stations/{sid}/lot", token=viewer)
    assert r.status_code == 200 and stable(r.json()) == stable(view)
    assert s.api("PUT", f"/api/v1/stations/{sid}/lot", {"bays": 5, "robots": []}, token=viewer).status_code == 403
    assert s.api("GET", f"/api/v1/stations/{sid}/lot", token=None).status_code == 401

    # Robots must be chargers of this station; the layout must make sense.
    other = uid("lot-st")
    s.ensure_station(other)
    stranger = uid("robot")
    s.register(stranger, PW, station=other)
    for bad in (
        {"bays": 5, "robots": [stranger]},
        {"bays": 5, "robots": ["no-such-robot"]},
        {"bays": 5, "robots": ["../../etc"]},
        {"bays": 5, "robots": [robots[0], robots[0]]},
        {"bays": 0, "robots": robots},
        {"bays": 10001, "robots": robots},
        {"bays": pts, "robots": robots},  # a list of bays needs a dock
        {"bays": [{"x": 1e7, "y": 0}], "dock": {"x": 0, "y": 0}, "robots": robots},
        {"bays": 5, "robots": robots, "fleet": {"robot_kwh": -1}},
        {"bays": 5, "robots": robots, "fleet": {"warp_drive": 1}},
        {"bays": 5, "robots": robots, "colour": "red"},
        {"bays": "many", "robots": robots},
    ):
        r = s.api("PUT", f"/api/v1/stations/{sid}/lot", bad)
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["code"] == "bad_request" and r.json()["message"]
    assert s.api("PUT", "/api/v1/stations/no-such-station/lot", {"bays": 5, "robots": []}).status_code == 404
    assert stable(lot(s, sid)) == stable(view)

    # Only an admin removes a lot.
    operator = s.ok("POST", "/api/v1/tokens", {"name": "op", "role": "operator"}, status=201)["token"]
    assert s.api("DELETE", f"/api/v1/stations/{sid}/lot", token=operator).status_code == 403
    assert s.api("DELETE", f"/api/v1/stations/{sid}/lot").status_code == 204
    assert s.api("GET", f"/api/v1/stations/{sid}/lot").status_code == 404
    assert s.api("DELETE", f"/api/v1/stations/{sid}/lot").status_code == 404


def test_a_car_is_served_by_a_robot_over_ocpp(s):
    sid, (rid,) = new_lot(s, robots=1)
    robot = Robot(s, rid)

    async def scenario():
        with EventStream(s) as events:
            async with charge_point(s, rid, "1.6", PW) as cp, reporting(robot):
                await cp.boot()
                await cp.status_notification(1, "Available")
                await await_until(lambda: robot_in(lot(s, sid), rid)["online"], what="robot online")
                assert robot.task == {"kind": "stay"} or robot.task["kind"] == "dock"

                # A driver takes a place at bay 3 (no token): the robot is sent to it.
                c = await asyncio.to_thread(add_car, s, sid, 3, 20, max_power_kw=60, plate="湘A12345")
                assert re.fullmatch(r"[0-9a-f]{24}", c["id"]), "car ids are unguessable"
                assert c["bay"] == 3 and c["energy_kwh"] == 20 and c["remaining_kwh"] == 20 and c["plate"] == "湘A12345"
                assert c["state"] in ("waiting", "assigned") and c["served_at"] is None and c["arrived_at"]
                x, y = bay_xy(3)
                task = await await_until(robot.car_task, what="a car task in the report answer")
                assert task == {"kind": "car", "car": c["id"], "bay": 3, "x": x, "y": y, "energy_kwh": 20}
                view = await asyncio.to_thread(lot, s, sid)
                assert robot_in(view, rid)["state"] == "to_car"
                assert [(k["id"], k["state"], k["robot"]) for k in view["cars"]] == [(c["id"], "assigned", rid)]

                # It drives there, plugs in and starts a transaction on its own charge point.
                robot.x, robot.y, robot.state, robot.car = x, y, "driving", c["id"]
                await robot.areport()
                await cp.status_notification(1, "Preparing")
                # A tag that is no car of this robot's is refused; the car's own is accepted.
                assert (await cp.authorize("0123456789abcdef0123")).id_tag_info["status"] == "Invalid"
                assert (await cp.authorize(c["id"][:12])).id_tag_info["status"] == "Invalid", "a short prefix"
                fixed = uid("fixed-cp")
                s.register(fixed, PW, station=sid)
                async with charge_point(s, fixed, "1.6", PW) as other:
                    await other.boot()
                    got = await other.authorize(c["id"][:20])
                    assert got.id_tag_info["status"] == "Invalid", "the car's tag is good at its robot only"
                tx = await cp.start_transaction(1, c["id"][:20], meter_start=10_000)
                assert tx.id_tag_info["status"] == "Accepted", tx
                await cp.status_notification(1, "Charging")
                robot.state = "charging"
                charging = await await_until(lambda: car_in(s, c["id"], "charging"), what="car charging")
                assert charging["robot"] == rid
                assert robot_in(await asyncio.to_thread(lot, s, sid), rid)["state"] == "charging"

                # Done: 20 kWh given, the transaction stops, the car is served.
                robot.battery -= 20
                await cp.stop_transaction(tx.transaction_id, 30_000, reason="EVDisconnected")
                await cp.status_notification(1, "Finishing")
                robot.state, robot.car = "idle", None
                served = await await_until(lambda: car_in(s, c["id"], "served"), what="car served")
                assert served["remaining_kwh"] == 0 and served["served_at"] and served["robot"] is None
                assert served["wait_s"] >= 0
                # The robot is free where it is; with nothing waiting it is sent to the dock.
                await await_until(lambda: robot.task == {"kind": "dock", "x": DOCK[0], "y": DOCK[1]}, what="dock task")
                view = await asyncio.to_thread(lot, s, sid)
                assert robot_in(view, rid)["state"] == "to_dock"
                assert view["stats"]["served"] == 1 and view["stats"]["waiting"] == 0
                sessions = await asyncio.to_thread(s.sessions, rid)
                assert [x["id_tag"] for x in sessions] == [c["id"][:20]]
            await asyncio.to_thread(
                events.wait_for, lambda e: e.get("_event") == "lot_changed" and e.get("reason") == "car_served"
            )
            reasons = lot_events(events, sid)
            for want in ("car_added", "charging", "car_served"):
                assert want in reasons, (want, reasons)

    run(scenario())


def test_a_short_session_puts_the_car_back_owing_the_rest(s):
    """A 2.0.1 robot gives 12 of 30 kWh: the car waits again, keeps its arrival, and is given
    back with 18 kWh to go."""
    sid, (rid,) = new_lot(s, robots=1)
    robot = Robot(s, rid)

    async def scenario():
        async with charge_point(s, rid, "2.0.1", PW) as cp, reporting(robot):
            await cp.boot()
            c = await asyncio.to_thread(add_car, s, sid, 5, 30)
            task = await await_until(robot.car_task, what="car task")
            assert task["car"] == c["id"] and task["energy_kwh"] == 30
            robot.x, robot.y = bay_xy(5)
            tx = cp.new_transaction_id()
            await cp.transaction_event("Started", tx, "Authorized", charging_state="Charging",
                                       id_token=c["id"][:20], meter_wh=20_000)
            robot.state, robot.car = "charging", c["id"]
            await await_until(lambda: car_in(s, c["id"], "charging"), what="charging")
            await cp.transaction_event("Ended", tx, "EVDeparted", charging_state="Idle",
                                       stopped_reason="EVDisconnected", meter_wh=32_000)
            robot.state, robot.car = "idle", None
            back = await await_until(lambda: car(s, c["id"])["remaining_kwh"] == 18 and car(s, c["id"]), what="rest owed")
            assert back["state"] in ("waiting", "assigned") and back["arrived_at"] == c["arrived_at"]
            assert back["energy_kwh"] == 30 and back["served_at"] is None
            # The dispatcher sends a robot again, for what is still owed.
            again = await await_until(lambda: (t := robot.car_task()) and t["energy_kwh"] == 18 and t, what="new task")
            assert again["car"] == c["id"]

    run(scenario())


def test_a_silent_robot_goes_offline_and_its_car_goes_to_another(s):
    sid, (a_id, b_id) = new_lot(s, robots=2)
    a, b = Robot(s, a_id), Robot(s, b_id)

    async def scenario():
        with EventStream(s) as events:
            async with charge_point(s, a_id, "1.6", PW) as cp:
                await cp.boot()
                a.start()
                c = await asyncio.to_thread(add_car, s, sid, 2, 30)
                await await_until(a.car_task, what="robot A sent")
                tx = await cp.start_transaction(1, c["id"][:20], meter_start=0)
                a.state, a.car = "charging", c["id"]
                await await_until(lambda: car_in(s, c["id"], "charging"), what="charging by A")
                async with reporting(b):
                    # A goes silent mid-session; after the timeout its car waits again, is not
                    # forgotten, and B (reporting all along) is sent to it.
                    await a.stop()
                    moved = await await_until(
                        lambda: (k := car(s, c["id"]))["robot"] == b_id and k, timeout=TIMEOUT_S + 15, what="car to B"
                    )
                    assert moved["state"] == "assigned" and moved["remaining_kwh"] == 30
                    assert moved["arrived_at"] == c["arrived_at"]
                    task = await await_until(b.car_task, what="B's car task")
                    assert task["car"] == c["id"]
                    ra = robot_in(await asyncio.to_thread(lot, s, sid), a_id)
                    assert (ra["state"], ra["online"], ra["task"]) == ("offline", False, {"kind": "stay"})
                    reasons = lot_events(events, sid)
                    assert "robot_offline" in reasons
                    # A's late stop still counts: 5 kWh given, B brings the rest.
                    await cp.stop_transaction(tx.transaction_id, 5_000, reason="Local")
                    rest = await await_until(lambda: car(s, c["id"])["remaining_kwh"] == 25 and car(s, c["id"]), what="late energy")
                    assert rest["robot"] == b_id
                    await await_until(lambda: (t := b.car_task()) and t["energy_kwh"] == 25, what="B owes 25")
                    # A reports again: online, available, not given B's car.
                    a.state, a.car = "idle", None
                    await a.areport()
                    ra = robot_in(await asyncio.to_thread(lot, s, sid), a_id)
                    assert ra["online"] and ra["state"] in ("idle", "to_dock")
                    assert car(s, c["id"])["robot"] == b_id

    run(scenario())


def test_a_battery_too_low_for_its_car_frees_the_car_and_docks_the_robot(s):
    sid, (rid,) = new_lot(s, robots=1)
    robot = Robot(s, rid)

    async def scenario():
        with EventStream(s) as events:
            await robot.areport()
            c = await asyncio.to_thread(add_car, s, sid, 9, 50)
            task = (await robot.areport())["task"]
            assert task["kind"] == "car" and task["car"] == c["id"]
            # Halfway there the battery reads 20 kWh: not enough for 50 kWh and the way back.
            robot.x, robot.y, robot.state, robot.battery = 5.0, 0.0, "driving", 20.0
            answer = await robot.areport()
            assert answer["task"] == {"kind": "dock", "x": DOCK[0], "y": DOCK[1]}
            assert answer["state"] == "to_dock" and answer["station_id"] == sid and answer["report_every_s"] == 5
            freed = await asyncio.to_thread(car, s, c["id"])
            assert (freed["state"], freed["robot"], freed["remaining_kwh"]) == ("waiting", None, 50)
            await asyncio.to_thread(
                events.wait_for, lambda e: e.get("_event") == "lot_changed" and e.get("station_id") == sid
                and e.get("reason") == "battery_low"
            )
            # At the dock, recharged: it takes the car again.
            robot.x, robot.y, robot.state, robot.battery = DOCK[0], DOCK[1], "docked", 150.0
            assert (await robot.areport())["task"]["car"] == c["id"]

    run(scenario())


def test_staff_override_and_release(s):
    sid, (x_id, y_id, z_id) = new_lot(s, robots=3)
    x, y = Robot(s, x_id), Robot(s, y_id)
    # Z stands at the dock with 5 kWh: too little for any car.
    z = Robot(s, z_id, battery=5.0)
    viewer = s.ok("POST", "/api/v1/tokens", {"name": "v", "role": "viewer"}, status=201)["token"]
    agent = s.ok("POST", "/api/v1/tokens", {"name": "a", "role": "agent"}, status=201)["token"]
    dispatcher = s.ok("POST", "/api/v1/tokens", {"name": "d", "role": "dispatcher"}, status=201)["token"]

    async def scenario():
        async with reporting(x, y, z):
            await await_until(lambda: lot(s, sid)["stats"]["robots_online"] == 3, what="robots online")
            c = await asyncio.to_thread(add_car, s, sid, 4, 30)
            first = await await_until(lambda: car(s, c["id"])["robot"], what="automatic assignment")
            assert first in (x_id, y_id), "Z cannot cover the car"
            other = y_id if first == x_id else x_id

            def assign(robot, token=True):
                return s.api("POST", f"/api/v1/stations/{sid}/lot/assign", {"robot": robot, "car": c["id"]}, token=token)

            # Roles that may not, and the battery rule, change nothing.
            before = stable(lot(s, sid))
            for token, status in ((viewer, 403), (agent, 403), (None, 401)):
                r = await asyncio.to_thread(assign, other, token)
                assert r.status_code == status, r.text
            r = await asyncio.to_thread(assign, z_id)
            assert r.status_code == 409 and r.json()["code"] == "conflict", r.text
            assert "battery too low: holds 5.00 kWh, needs" in r.json()["message"], r.text
            after = stable(lot(s, sid))
            for v in (before, after):
                for rb in v["robots"]:
                    rb.pop("last_report_at")
            assert after == before

            # The dispatcher moves the car to the other robot: pinned, the first is freed.
            r = await asyncio.to_thread(assign, other, dispatcher)
            assert r.status_code == 200, r.text
            view = r.json()
            assert robot_in(view, other)["override"] is True
            assert robot_in(view, other)["task"]["car"] == c["id"]
            assert robot_in(view, first)["task"]["kind"] != "car"
            assert [k["robot"] for k in view["cars"] if k["id"] == c["id"]] == [other]
            await await_until(lambda: (x if other == x_id else y).car_task(), what="override in the answer")
            await asyncio.sleep(1.5)  # a dispatcher tick or more: the pin holds
            assert car(s, c["id"])["robot"] == other

            # Release: the car waits again and goes to a robot other than the released one.
            r = await asyncio.to_thread(
                lambda: s.api("POST", f"/api/v1/stations/{sid}/lot/release", {"robot": other}, token=dispatcher)
            )
            assert r.status_code == 200, r.text
            assert robot_in(r.json(), other)["override"] is False
            again = await await_until(lambda: car(s, c["id"])["robot"], what="reassigned")
            assert again == first
            assert car(s, c["id"])["arrived_at"] == c["arrived_at"]
            for token in (viewer, agent):
                r = s.api("POST", f"/api/v1/stations/{sid}/lot/release", {"robot": first}, token=token)
                assert r.status_code == 403
            # Unknown robot or car: 404.
            r = s.api("POST", f"/api/v1/stations/{sid}/lot/assign", {"robot": "nope", "car": c["id"]})
            assert r.status_code == 404
            r = s.api("POST", f"/api/v1/stations/{sid}/lot/assign", {"robot": x_id, "car": "abc123"})
            assert r.status_code == 404

    run(scenario())
    # Overrides are staff changes: audited with who asked.
    log = s.ok("GET", "/api/v1/audit?limit=1000")
    assert any(e["action"] == f"POST /api/v1/stations/{sid}/lot/assign" and e["role"] == "dispatcher"
               and e["status"] == 200 for e in log)
    assert any(e["action"] == f"POST /api/v1/stations/{sid}/lot/assign" and e["status"] == 409 for e in log)


def test_a_restart_keeps_the_lot_and_its_waiting_cars(make_server):
    srv = make_server(extra_args=("--robot-timeout-secs", str(TIMEOUT_S)))
    sid, robots = new_lot(srv, robots=2, bays=12, fleet={"robot_kwh": 120})
    cars = [add_car(srv, sid, bay, kwh) for bay, kwh in ((1, 10), (7, 25.5), (11, 40))]
    gone = add_car(srv, sid, 3, 5)
    assert srv.api("DELETE", f"/api/v1/lot-cars/{gone['id']}", token=None).json()["state"] == "cancelled"
    before = lot(srv, sid)
    # kill -9 right after the answers: nothing runs at shutdown.
    srv.restart(kill=True)
    after = lot(srv, sid)
    assert after["bays"] == before["bays"] and after["dock"] == before["dock"] and after["fleet"] == before["fleet"]
    assert [r["id"] for r in after["robots"]] == robots
    key = lambda v: [(k["id"], k["bay"], k["state"], k["energy_kwh"], k["remaining_kwh"], k["arrived_at"]) for k in v["cars"]]  # noqa: E731
    assert key(after) == key(before)
    assert [k["state"] for k in after["cars"]] == ["waiting", "waiting", "waiting", "cancelled"]
    for c in cars:
        assert car(srv, c["id"])["state"] == "waiting"
    # And the lot works on: a robot reports and is sent to the oldest car it can reach first.
    answer = Robot(srv, robots[0], battery=120.0).report()
    assert answer["task"]["kind"] == "car" and answer["task"]["car"] in {c["id"] for c in cars}


def test_bad_input_is_refused_and_changes_nothing(s):
    sid, (rid,) = new_lot(s, robots=1, bays=10)
    bare = uid("lot-st")  # a station without a lot, with a charger in no lot
    s.ensure_station(bare)
    loose = uid("robot")
    s.register(loose, PW, station=bare)
    first = add_car(s, sid, 0, 20)
    robot = Robot(s, rid)  # never reports successfully here: stays offline, the view stays still
    view = stable(lot(s, sid))
    url = f"{s.base_url}/api/v1/stations/{sid}/lot/cars"

    def unchanged(what):
        assert stable(lot(s, sid)) == view, f"{what} changed the lot"

    # Cars.
    for bad in (
        {"bay": 10, "energy_kwh": 20},
        {"bay": 999999, "energy_kwh": 20},
        {"bay": -1, "energy_kwh": 20},
        {"bay": 1.5, "energy_kwh": 20},
        {"bay": 1, "energy_kwh": 0},
        {"bay": 1, "energy_kwh": -5},
        {"bay": 1, "energy_kwh": 1e9},
        {"bay": 1, "energy_kwh": "abc"},
        {"bay": 1, "energy_kwh": "NaN"},
        {"bay": 1, "energy_kwh": "Infinity"},
        {"bay": 1, "energy_kwh": None},
        {"bay": 1, "energy_kwh": 151},
        {"bay": 1, "energy_kwh": 20, "max_power_kw": 0},
        {"bay": 1, "energy_kwh": 20, "max_power_kw": 5000},
        {"bay": 1, "energy_kwh": 20, "plate": "X" * 40},
        {"bay": 1, "energy_kwh": 20, "plate": "\u0007"},
        {"bay": 1, "energy_kwh": 20, "patience_s": -1},
        {"bay": 1, "energy_kwh": 20, "colour": "red"},
        {"bay": 1},
        {},
    ):
        r = s.api("POST", f"/api/v1/stations/{sid}/lot/cars", bad, token=None)
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["code"] == "bad_request" and r.json()["message"], r.text
        unchanged(bad)
    for raw in ('{"bay": 1, "energy_kwh": NaN}', '{"bay": 1, "energy_kwh": 1e999}', '{"bay": 1, "energy_kwh": Infinity}',
                "not json", '{"bay": 1, "energy_kwh": 20', "[1, 2]"):
        r = requests.post(url, data=raw, headers={"Content-Type": "application/json"}, timeout=30)
        assert r.status_code == 400, (raw, r.text)
        unchanged(raw)
    dup = s.api("POST", f"/api/v1/stations/{sid}/lot/cars", {"bay": 0, "energy_kwh": 5}, token=None)
    assert dup.status_code == 409 and dup.json()["code"] == "conflict" and "bay 0" in dup.json()["message"]
    unchanged("a second car on bay 0")
    assert s.api("POST", "/api/v1/stations/no-such-station/lot/cars", {"bay": 0, "energy_kwh": 5}, token=None).status_code == 404
    assert s.api("POST", f"/api/v1/stations/{bare}/lot/cars", {"bay": 0, "energy_kwh": 5}, token=None).status_code == 404
    for path in ("/api/v1/lot-cars/zzz", "/api/v1/lot-cars/" + "0" * 24, "/api/v1/lot-cars/..%2F..%2Fetc"):
        assert s.api("GET", path, token=None).status_code == 404, path
        assert s.api("DELETE", path, token=None).status_code == 404, path
    unchanged("unknown cars")

    # Robot reports: credentials first, then the lot, then the body.
    good = {"x": -15, "y": 0, "battery_kwh": 100, "state": "docked"}
    for auth in (basic_auth(rid, "wrong-password"), {}, basic_auth("someone-else", PW),
                 {"Authorization": "Basic !!!"}, {"Authorization": f"Bearer {s.token}"}):
        r = robot.post(good, auth=auth)
        assert r.status_code == 401, (auth, r.text)
        assert r.headers.get("www-authenticate", "").startswith("Basic")
        unchanged(f"report with {auth}")
    r = Robot(s, "no-such-robot").post(good)
    assert r.status_code == 401
    r = Robot(s, loose).post(good)
    assert r.status_code == 404 and "no robot lot" in r.json()["message"], r.text
    for bad in (
        {**good, "x": 10_000},  # 10 km away
        {**good, "x": 0, "y": -600},
        {**good, "battery_kwh": 158},  # above 150 kWh * 1.05
        {**good, "battery_kwh": -1},
        {**good, "battery_kwh": "NaN"},
        {**good, "battery_kwh": None},
        {**good, "state": "flying"},
        {**good, "state": ""},
        {**good, "car": ""},
        {**good, "altitude": 3},
        {"x": 0, "y": 0},
    ):
        r = robot.post(bad)
        assert r.status_code == 400, (bad, r.text)
        unchanged(bad)
    for raw in ('{"x": NaN, "y": 0, "battery_kwh": 1, "state": "idle"}', '{"x": 0, "y": 0, "battery_kwh": 1e999, "state": "idle"}'):
        r = robot.post(raw=raw)
        assert r.status_code == 400, (raw, r.text)
        unchanged(raw)
    assert robot_in(lot(s, sid), rid)["online"] is False, "refused reports do not bring a robot online"

    # Staff routes with bad bodies.
    for path, body in ((f"/api/v1/stations/{sid}/lot/assign", {"robot": rid}),
                       (f"/api/v1/stations/{sid}/lot/assign", {"robot": rid, "car": first["id"]}),
                       (f"/api/v1/stations/{sid}/lot/release", {"robot": "nope"}),
                       (f"/api/v1/stations/{sid}/lot/release", {})):
        r = s.api("POST", path, body)
        assert r.status_code in (400, 404, 409), (path, body, r.text)
        unchanged((path, body))
    assert s.healthy()
