"""Three identical `chargeops serve` nodes (same flags, no `--background-tasks false`) on one
PostgreSQL schema and one NATS, as one platform with no single point of failure.

- One node holds the duties lease and runs fault detection, queue calling and robot dispatch;
  every node serves every API (the queue, the lots and the cases through any node).
- kill -9 of the duties' node while a fault, a queue call and a robot assignment are under
  way: a surviving node takes the lease within seconds; the fault opens exactly one case, the
  next ticket is called exactly once (one webhook notification), the robot keeps its car, and
  every node's API answers the same.
- A node with a clashing `--node-id`, and wrong NATS credentials, fail at start with a clear
  error; forged duty requests on the cluster's subjects change nothing.

Each test runs its own cluster name (`--cluster-name`), so runs on one NATS do not meet.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import time
import uuid

import pytest
import requests

from chargepoints import charge_point
from harness import BINARY, EventStream, await_until, basic_auth, body_list, run, uid, wait_until
from natsd import PrivateNats, Proxy
from test_cluster import NATS_URL, RawNats, nats, nats_addr  # noqa: F401 (fixture)
from test_postgres import PG_URL, database, psql, schema  # noqa: F401 (fixtures)
from test_queue import Hook
from test_queue_reserve import Reserving16

PW = "failover-password-16"
# A dead holder's lease ages out after 5 s; the next holder takes it at its next try (1 s).
TAKEOVER_WITHIN = 15.0


@pytest.fixture(scope="module", autouse=True)
def drop_streams():
    """Removes this module's streams and lease buckets from the shared NATS afterwards."""
    yield
    try:
        raw = RawNats()
    except OSError:
        return
    try:
        inbox = f"_INBOX.cleanup.{uuid.uuid4().hex}"
        raw.sub(inbox, 1)
        raw.pub("$JS.API.STREAM.NAMES", b"{}", reply=inbox)
        _, body = raw.next_msg()
        names = json.loads(body).get("streams") or []
        for name in names:
            if name.startswith(("FO_", "KV_fo_")):
                raw.pub(f"$JS.API.STREAM.DELETE.{name}", b"", reply=inbox)
                raw.next_msg()
    finally:
        raw.close()


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


def config_file(tmp_path, hook) -> str:
    path = tmp_path / "cluster.toml"
    path.write_text(
        f"""
[queue]
plug_in_secs = 600
tick_ms = 100
webhook_url = "{hook.url}"

[ops]
tick_ms = 100
"""
    )
    return str(path)


async def occupied(cp) -> None:
    """A charger boots with both its connectors charging: a full station."""
    assert (await cp.boot()).status == "Accepted"
    for c in (1, 2):
        await cp.status_notification(c, "Charging")


def station_with_charger(owner, nodes, prefix: str, **fields) -> tuple[str, str]:
    """A station made through `owner` (known to every node's clean-up) with one charger."""
    station = uid(f"{prefix}-st")
    owner.ensure_station(station, **fields)
    for s in nodes:
        s._stations.add(station)
    cid = uid(f"{prefix}-cp")
    owner.register(cid, password=PW, station=station)
    return station, cid


def cluster_view(server) -> dict:
    return server.ok("GET", "/api/v1/cluster")


def start_nodes(make_server, schema, config, n=3):
    tag = uuid.uuid4().hex[:6]
    name = f"fo-{tag}"
    args = ("--database-url", PG_URL, "--database-schema", schema, "--nats-url", NATS_URL,
            "--cluster-name", name, "--config", config)
    first = make_server(extra_args=args + ("--node-id", f"fo-0-{tag}"), command_timeout=10)
    nodes = [first] + [
        make_server(extra_args=args + ("--node-id", f"fo-{i}-{tag}"), command_timeout=10, token=first.token)
        for i in range(1, n)
    ]
    ids = [f"fo-{i}-{tag}" for i in range(n)]

    def one_holder():
        views = [cluster_view(s) for s in nodes]
        holders = [v["node"] for v in views if v["holds_duties"]]
        agreed = {v["duties_holder"] for v in views}
        if len(holders) == 1 and agreed == {holders[0]} and all(len(v["nodes"]) == n - 1 for v in views):
            return holders[0]
        return None

    holder = wait_until(one_holder, timeout=20, what="one duties holder every node agrees on")
    return nodes, ids, holder, name


def test_killing_the_duties_node_loses_nothing_and_duplicates_nothing(make_server, schema, nats, hook, tmp_path):
    config = config_file(tmp_path, hook)
    nodes, ids, holder_id, _ = start_nodes(make_server, schema, config)
    holder = nodes[ids.index(holder_id)]
    x, y = [s for s in nodes if s is not holder]
    for s in nodes:
        v = cluster_view(s)
        assert v["clustered"] and v["connected"]
        if s is holder:
            assert set(v["duties_running"]) >= {"ops-detection", "queue caller", "lots"}, v
        else:
            assert v["duties_running"] == [], v

    station, fault_station, lot_station = uid("fo-st"), uid("fo-fs"), uid("fo-lot")
    x.ensure_station(station, name="Failover Service Area", lat=28.2, lon=112.9)
    x.ensure_station(fault_station, name="Failover Fault", lat=28.3, lon=112.9)
    x.ensure_station(lot_station, name="Failover Lot")
    for s in nodes:
        s._stations.update({station, fault_station, lot_station})
    busy, faulty, robot = uid("fo-busy"), uid("fo-fault"), uid("fo-robot")
    x.register(busy, password=PW, station=station)
    x.register(faulty, password=PW, station=fault_station)
    x.register(robot, password=PW, station=lot_station)

    # The robot lot, set up through one node and read through another.
    y.ok("PUT", f"/api/v1/stations/{lot_station}/lot", {"bays": 6, "robots": [robot]})
    assert [r["id"] for r in x.ok("GET", f"/api/v1/stations/{lot_station}/lot")["robots"]] == [robot]

    def report(server):
        r = requests.post(f"{server.base_url}/api/v1/robots/{robot}/report",
                          json={"x": -15.0, "y": 0.0, "battery_kwh": 150.0, "state": "docked"},
                          headers=basic_auth(robot, PW), timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    async def scenario():
        async with charge_point(x, busy, "1.6", PW) as cp_busy, \
                charge_point(y, faulty, "1.6", PW) as cp_faulty:
            for cp in (cp_busy, cp_faulty):
                assert (await cp.boot()).status == "Accepted"
            for c in (1, 2):
                await cp_busy.status_notification(c, "Charging")
            await cp_faulty.status_notification(1, "Available")
            await await_until(lambda: all(s.charger(busy)["online"] and s.charger(faulty)["online"] for s in nodes),
                              what="chargers online on every node")

            # Two numbers taken through a node that does not run the queue: carried to the holder.
            t1 = await asyncio.to_thread(y.ok, "POST", f"/api/v1/stations/{station}/queue",
                                         {"contact": "138 0013 8001"}, 201)
            t2 = await asyncio.to_thread(x.ok, "POST", f"/api/v1/stations/{station}/queue",
                                         {"contact": "138 0013 8002"}, 201)
            assert (t1["number"], t2["number"]) == (1, 2)
            for s in nodes:
                assert (await asyncio.to_thread(s.ok, "GET", f"/api/v1/queue/{t1['id']}"))["state"] == "waiting"

            # A car in the lot, and the robot (reporting to a node that does not run the lots)
            # sent to it.
            car = await asyncio.to_thread(x.ok, "POST", f"/api/v1/stations/{lot_station}/lot/cars",
                                          {"bay": 2, "energy_kwh": 30}, 201)
            answer = await asyncio.to_thread(report, y)
            assert answer["task"]["kind"] == "car" and answer["task"]["car"] == car["id"], answer
            assert (await asyncio.to_thread(x.ok, "GET", f"/api/v1/lot-cars/{car['id']}"))["robot"] == robot

            # The duties' node dies; at once a connector faults and another frees, while no
            # node runs the duties.
            holder.kill9()
            t_kill = time.monotonic()
            await cp_faulty.status_notification(1, "Faulted", error_code="GroundFailure")
            await cp_busy.status_notification(2, "Available")

            def new_holder():
                views = [cluster_view(s) for s in (x, y)]
                held = [v["node"] for v in views if v["holds_duties"]]
                return held[0] if len(held) == 1 and {v["duties_holder"] for v in views} == {held[0]} else None

            taken = await await_until(new_holder, timeout=TAKEOVER_WITHIN, what="a surviving node takes the duties")
            took = time.monotonic() - t_kill
            assert taken != holder_id and took < TAKEOVER_WITHIN, (taken, took)
            print(f"duties taken over by {taken} {took:.1f} s after kill -9")

            # The fault: one case, seen alike through both nodes.
            def fault_cases(s):
                return [c for c in body_list(s.ok("GET", f"/api/v1/cases?charger={faulty}"))
                        if c["kind"] == "faulted"]

            await await_until(lambda: fault_cases(x), timeout=15, what="a case for the fault")
            # The queue: number 1 called to the freed connector, once.
            called = await await_until(
                lambda: (lambda t: t if t["state"] == "called" else None)(x.ok("GET", f"/api/v1/queue/{t1['id']}")),
                timeout=15, what="number 1 called after the takeover")
            assert called["connector_id"] == 2 and called["charger_id"] == busy
            await asyncio.sleep(3)  # time for a duplicate to show, were there one
            cases_x, cases_y = fault_cases(x), fault_cases(y)
            assert len(cases_x) == 1, cases_x
            assert [c["id"] for c in cases_x] == [c["id"] for c in cases_y]
            calls = [n for n in hook.received if n.get("ticket_id") == t1["id"] and n.get("kind") == "called"]
            assert len(calls) == 1, calls
            for s in (x, y):
                t = await asyncio.to_thread(s.ok, "GET", f"/api/v1/queue/{t2['id']}")
                assert (t["state"], t["position"]) == ("waiting", 1), t
            # The robot still has its car, on the new holder's books.
            for s in (x, y):
                c = await asyncio.to_thread(s.ok, "GET", f"/api/v1/lot-cars/{car['id']}")
                assert c["robot"] == robot, c
            answer = await asyncio.to_thread(report, x)
            assert answer["task"]["kind"] == "car" and answer["task"]["car"] == car["id"], answer

    run(scenario())
    for s in (x, y):
        assert s.alive() and "panicked" not in s.log_text()
    assert "this node runs the platform's duties" in nodes[ids.index(taken_holder(x, y))].log_text()


def taken_holder(*servers) -> str:
    return next(cluster_view(s)["node"] for s in servers if cluster_view(s)["holds_duties"])


def failed_start(tmp_path, *args: str) -> str:
    """Runs `chargeops serve` with `args`, which must fail at start: returns what it said."""
    data = tmp_path / f"data-{uuid.uuid4().hex[:6]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARGEOPS_")}
    env["CHARGEOPS_ADMIN_TOKEN"] = "failover-admin-token-0123456789"
    p = subprocess.run([str(BINARY), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data), *args],
                       env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode != 0, p.stderr[-2000:]
    return p.stderr


def test_a_clashing_node_id_and_wrong_credentials_fail_at_start(make_server, schema, nats, tmp_path):
    tag = uuid.uuid4().hex[:6]
    args = ("--database-url", PG_URL, "--database-schema", schema, "--nats-url", NATS_URL,
            "--cluster-name", f"fo-id-{tag}")
    a = make_server(extra_args=args + ("--node-id", f"same-{tag}"), command_timeout=10)
    wait_until(lambda: cluster_view(a)["holds_duties"], what="A holds the duties")
    t0 = time.monotonic()
    said = failed_start(tmp_path, *args, "--node-id", f"same-{tag}")
    assert f'node id "same-{tag}" is in use by another running node' in said, said[-2000:]
    assert time.monotonic() - t0 < 30
    assert a.alive() and cluster_view(a)["holds_duties"], "the running node is not disturbed"

    junk = tmp_path / "junk.creds"
    junk.write_text("not a credential\n")
    said = failed_start(tmp_path, *args, "--node-id", f"creds-{tag}", "--nats-creds", str(junk))
    assert "cannot read the NATS credentials file" in said and "junk.creds" in said, said[-2000:]
    said = failed_start(tmp_path, *args, "--node-id", f"ca-{tag}", "--nats-tls-ca", str(tmp_path / "none.pem"))
    assert "cannot read the NATS CA file" in said, said[-2000:]
    said = failed_start(tmp_path, "--nats-url", "http://127.0.0.1:4222")
    assert "invalid NATS URL" in said, said[-2000:]


def test_forged_duty_requests_on_the_cluster_subjects_change_nothing(make_server, schema, nats, tmp_path):
    tag = uuid.uuid4().hex[:6]
    name = f"fo-bad-{tag}"
    args = ("--database-url", PG_URL, "--database-schema", schema, "--nats-url", NATS_URL, "--cluster-name", name)
    a = make_server(extra_args=args + ("--node-id", f"bad-a-{tag}"), command_timeout=10)
    holder = wait_until(lambda: cluster_view(a)["holds_duties"] and cluster_view(a)["node"], what="A holds the duties")
    station = uid("fo-bad-st")
    a.ensure_station(station)
    before = body_list(a.ok("GET", "/api/v1/cases"))
    raw = RawNats()
    try:
        inbox = f"_INBOX.forged.{uuid.uuid4().hex}"
        raw.sub(inbox, 1)
        # A forwarded request needs a reply subject and a readable body, and is still checked
        # like any request: opening a case without a token is 401.
        raw.pub(f"{name}.http.{holder}", b"\x00garbage", reply=inbox)
        subject, body = raw.next_msg()
        assert json.loads(body)["status"] == 400, body
        forged = {"from": "evil", "method": "POST", "uri": "/api/v1/cases",
                  "headers": [["content-type", "application/json"]],
                  "body": base64.b64encode(json.dumps({
                      "station_id": station, "category": "no_power", "caller_phone": "13800138000",
                      "description": "forged"}).encode()).decode()}
        raw.pub(f"{name}.http.{holder}", json.dumps(forged).encode(), reply=inbox)
        subject, body = raw.next_msg()
        assert json.loads(body)["status"] == 401, body
        # A tag check for a tag nobody issued: refused.
        raw.pub(f"{name}.tags.{holder}", json.dumps({"charger_id": "x", "id_tag": "Q123"}).encode(), reply=inbox)
        subject, body = raw.next_msg()
        assert json.loads(body) == {"accepted": False}, body
        raw.pub(f"{name}.tags.{holder}", b"[]", reply=inbox)
        subject, body = raw.next_msg()
        assert json.loads(body) == {"accepted": False}, body
        # Events with no id, from ourselves, or unreadable, on the stream's subjects.
        raw.pub(f"{name}.events.case_changed", json.dumps({"node": "evil", "event": {"type": "nope"}}).encode())
        raw.pub(f"{name}.events.queue_changed", json.dumps(
            {"node": "evil", "event": {"type": "queue_changed", "station_id": station, "waiting": 9,
                                       "at": "2026-01-01T00:00:00Z"}}).encode())
        raw.pub(f"{name}.events.status_changed", b"{{{{")
    finally:
        raw.close()
    wait_until(lambda: "ignoring a cluster event with no id" in a.log_text(), what="the id-less event refused")
    # The same event twice on the stream (a publisher's retry): applied once.
    with EventStream(a) as feed:
        raw = RawNats()
        try:
            event = {"id": f"other-{tag}.b1.7", "node": f"other-{tag}",
                     "event": {"type": "charger_booted", "charger_id": "fo-dup", "station_id": station,
                               "at": "2026-01-01T00:00:00Z"}}
            for _ in range(2):
                raw.pub(f"{name}.events.charger_booted", json.dumps(event).encode())
        finally:
            raw.close()
        feed.wait_for(lambda e: e.get("_event") == "charger_booted" and e.get("charger_id") == "fo-dup",
                      what="the event applied")
        time.sleep(1.5)
        seen = feed.matching(lambda e: e.get("_event") == "charger_booted" and e.get("charger_id") == "fo-dup")
        assert len(seen) == 1, seen
    assert a.ok("GET", f"/api/v1/stations/{station}").get("waiting", 0) == 0
    assert body_list(a.ok("GET", "/api/v1/cases")) == before
    assert a.alive() and a.healthy() and cluster_view(a)["holds_duties"]


def test_a_sign_in_on_one_node_holds_on_every_node(make_server, schema, nats, tmp_path):
    tag = uuid.uuid4().hex[:6]
    args = ("--database-url", PG_URL, "--database-schema", schema, "--nats-url", NATS_URL,
            "--cluster-name", f"fo-acc-{tag}")
    a = make_server(extra_args=args + ("--node-id", f"acc-a-{tag}"), command_timeout=10)
    b = make_server(extra_args=args + ("--node-id", f"acc-b-{tag}"), command_timeout=10, token=a.token)
    login = f"desk-{tag}"
    a.ok("POST", "/api/v1/accounts", {"login": login, "role": "dispatcher", "password": "desk-password-1"}, status=201)
    r = b.api("POST", "/api/v1/login", {"login": login, "password": "desk-password-1"}, token=None)
    assert r.status_code == 200, r.text
    session = r.json()["token"]
    for s in (a, b):
        me = s.api("GET", "/api/v1/me", token=session)
        assert me.status_code == 200 and me.json()["role"] == "dispatcher", me.text
    assert a.api("POST", "/api/v1/logout", token=session).status_code == 204
    assert a.api("GET", "/api/v1/me", token=session).status_code == 401
    c = make_server(extra_args=args + ("--node-id", f"acc-c-{tag}"), command_timeout=10, token=a.token)
    assert c.api("GET", "/api/v1/me", token=session).status_code == 401, "signed out on a node that never saw it"


def test_a_clean_stop_hands_the_duties_over_at_once(make_server, schema, nats, hook, tmp_path):
    nodes, ids, holder_id, _ = start_nodes(make_server, schema, config_file(tmp_path, hook), n=2)
    holder = nodes[ids.index(holder_id)]
    other = next(s for s in nodes if s is not holder)
    for s, held in ((holder, 1), (other, 0)):
        text = s.api("GET", "/metrics", token=None).text
        for line in (f"chargeops_cluster_duties_held {held}", "chargeops_cluster_connected 1",
                     "chargeops_cluster_nodes 1"):
            assert line in text, (line, text[-1500:])
    t0 = time.monotonic()
    holder.stop()
    wait_until(lambda: cluster_view(other)["holds_duties"], timeout=10, what="the other node takes the duties")
    took = time.monotonic() - t0
    # Let go, not aged out: well under the lease's 5 s.
    assert took < 4.0, took
    assert "the duties lease is let go" in holder.log_text()


def test_a_duties_node_cut_off_from_nats_fences_itself_and_catches_up(make_server, schema, nats, hook, tmp_path):
    """The partition: the duties' node alone loses NATS (its link runs through a relay that is
    cut). It stops its duties, another node takes them; the queue is served once; when the link
    is back, the old holder follows the new one and catches up on what it missed from its
    durable consumer."""
    config = config_file(tmp_path, hook)
    proxy = Proxy(nats_addr())
    tag = uuid.uuid4().hex[:6]
    name = f"fo-cut-{tag}"
    args = ("--database-url", PG_URL, "--database-schema", schema, "--cluster-name", name, "--config", config)
    try:
        h = make_server(extra_args=args + ("--nats-url", proxy.url, "--node-id", f"cut-h-{tag}"), command_timeout=10)
        wait_until(lambda: cluster_view(h)["holds_duties"], timeout=15, what="H holds the duties")
        x = make_server(extra_args=args + ("--nats-url", NATS_URL, "--node-id", f"cut-x-{tag}"),
                        command_timeout=10, token=h.token)
        wait_until(lambda: cluster_view(x)["duties_holder"] == f"cut-h-{tag}", what="X follows H")
        station, busy = station_with_charger(x, (h,), "fo-cut")

        async def scenario():
            async with charge_point(x, busy, "1.6", PW) as cp:
                await occupied(cp)
                await await_until(lambda: h.charger(busy)["online"], what="the charger on H's view")
                t1 = await asyncio.to_thread(x.ok, "POST", f"/api/v1/stations/{station}/queue",
                                             {"contact": "138 0013 8011"}, 201)

                proxy.cut()
                t_cut = time.monotonic()
                await await_until(lambda: not cluster_view(h)["holds_duties"], timeout=10,
                                  what="H fences itself")
                fenced = time.monotonic() - t_cut
                r = await asyncio.to_thread(h.api, "GET", f"/api/v1/queue/{t1['id']}")
                assert r.status_code == 503 and r.json()["code"] == "duties_moving", r.text
                assert r.headers.get("Retry-After") == "2"
                await await_until(lambda: cluster_view(x)["holds_duties"], timeout=TAKEOVER_WITHIN,
                                  what="X takes the duties")
                taken = time.monotonic() - t_cut
                assert taken > fenced, (fenced, taken)
                # While H is away: a connector frees (X calls the number) and one stops.
                await cp.status_notification(2, "Available")
                called = await await_until(
                    lambda: (lambda t: t if t["state"] == "called" else None)(
                        x.ok("GET", f"/api/v1/queue/{t1['id']}")),
                    timeout=10, what="the number called by the new holder")
                assert called["connector_id"] == 2
                await cp.status_notification(1, "Unavailable")

                proxy.restore()
                t_back = time.monotonic()
                await await_until(lambda: (h.connector(busy, 1) or {}).get("status") == "unavailable",
                                  timeout=20, what="H catches up on the status it missed")
                caught_up = time.monotonic() - t_back
                await await_until(lambda: cluster_view(h)["connected"] and
                                  cluster_view(h)["duties_holder"] == f"cut-x-{tag}",
                                  timeout=10, what="H follows X")
                assert not cluster_view(h)["holds_duties"]
                # Through H (carried to X now), the same ticket.
                t = await asyncio.to_thread(h.ok, "GET", f"/api/v1/queue/{t1['id']}")
                assert t["state"] == "called" and t["connector_id"] == 2, t
                await asyncio.sleep(2)
                calls = [n for n in hook.received if n.get("ticket_id") == t1["id"] and n.get("kind") == "called"]
                assert len(calls) == 1, calls
                print(f"partition: fenced {fenced:.1f} s, taken over {taken:.1f} s, caught up {caught_up:.1f} s")

        run(scenario())
        assert "lease lost" in h.log_text()
    finally:
        proxy.close()


def test_nats_restarted_mid_run_loses_nothing_and_calls_once(make_server, schema, hook, tmp_path):
    """NATS itself goes away (a server of this test's own, JetStream on disk) and comes back:
    no node runs the duties meanwhile (none can renew the lease), every node keeps serving its
    chargers, and afterwards the events of the outage reach the other node and the queue call
    the outage held back is made, once."""
    config = config_file(tmp_path, hook)
    natsd = PrivateNats(tmp_path / "nats", "")
    tag = uuid.uuid4().hex[:6]
    url = f"nats://127.0.0.1:{natsd.port}"
    args = ("--database-url", PG_URL, "--database-schema", schema, "--nats-url", url, "--config", config)
    try:
        a = make_server(extra_args=args + ("--node-id", f"rs-a-{tag}"), command_timeout=10)
        b = make_server(extra_args=args + ("--node-id", f"rs-b-{tag}"), command_timeout=10, token=a.token)
        wait_until(lambda: sum(cluster_view(s)["holds_duties"] for s in (a, b)) == 1, timeout=15,
                   what="one holder")
        station, cid = station_with_charger(a, (b,), "fo-rs")

        async def scenario():
            async with charge_point(a, cid, "1.6", PW) as cp:
                await occupied(cp)
                await await_until(lambda: (b.connector(cid, 2) or {}).get("status") == "charging",
                                  what="B sees the charger")
                t1 = await asyncio.to_thread(b.ok, "POST", f"/api/v1/stations/{station}/queue",
                                             {"contact": "138 0013 8021"}, 201)

                natsd.proc.kill()
                natsd.proc.wait()
                await await_until(lambda: not any(cluster_view(s)["holds_duties"] for s in (a, b)),
                                  timeout=10, what="no node runs the duties without NATS")
                # The charger goes on being served by its node meanwhile.
                await cp.status_notification(2, "Available")
                await cp.status_notification(1, "Unavailable")
                r = await asyncio.to_thread(a.api, "POST", f"/api/v1/chargers/{cid}/commands/reset", {"hard": False})
                assert r.status_code == 200 and r.json()["status"] == "Accepted", r.text
                assert (await asyncio.to_thread(a.connector, cid, 1))["status"] == "unavailable"
                await asyncio.sleep(2)
                assert not [n for n in hook.received if n.get("ticket_id") == t1["id"]], "no call without a holder"

                natsd.restart()
                t_back = time.monotonic()
                await await_until(lambda: (b.connector(cid, 1) or {}).get("status") == "unavailable",
                                  timeout=20, what="B catches up on the outage")
                caught_up = time.monotonic() - t_back
                called = await await_until(
                    lambda: (lambda t: t if t["state"] == "called" else None)(b.ok("GET", f"/api/v1/queue/{t1['id']}")),
                    timeout=20, what="the held-back call made")
                resumed = time.monotonic() - t_back
                assert called["connector_id"] == 2
                await asyncio.sleep(2)
                calls = [n for n in hook.received if n.get("ticket_id") == t1["id"] and n.get("kind") == "called"]
                assert len(calls) == 1, calls
                views = [cluster_view(s) for s in (a, b)]
                assert sum(v["holds_duties"] for v in views) == 1 and views[0]["duties_holder"] == views[1]["duties_holder"]
                print(f"NATS restart: caught up {caught_up:.1f} s, duties resumed {resumed:.1f} s")

        run(scenario())
    finally:
        natsd.close()


def test_a_queue_tag_is_accepted_at_a_charger_on_any_node(make_server, schema, nats, hook, tmp_path):
    """The tag authorities answer for chargers on every node: a called ticket's tag, presented
    at its charger held by a node that does not run the queue, is vouched for by the one that
    does; anywhere else, and any made-up tag, are refused."""
    nodes, ids, holder_id, _ = start_nodes(make_server, schema, config_file(tmp_path, hook), n=2)
    other = next(s for s, i in zip(nodes, ids) if i != holder_id)
    station, cid = station_with_charger(other, nodes, "fo-tag")
    cid2 = uid("fo-tag-cp2")
    other.register(cid2, password=PW, station=station)

    async def scenario():
        async with charge_point(other, cid, "1.6", PW, cls=Reserving16) as cp, \
                charge_point(other, cid2, "1.6", PW, cls=Reserving16) as cp2:
            await occupied(cp)
            await occupied(cp2)
            t = await asyncio.to_thread(other.ok, "POST", f"/api/v1/stations/{station}/queue",
                                        {"contact": "138 0013 8031"}, 201)
            await cp.status_notification(2, "Available")
            sent = await cp.wait_call("ReserveNow")
            staff = await await_until(
                lambda: (lambda v: v if (v["reservation"] or {}).get("holding") else None)(
                    other.ok("GET", f"/api/v1/queue/{t['id']}")),
                what="the call's reservation held")
            tag = staff["reservation"]["id_tag"]
            assert sent["idTag"] == tag
            assert (await cp.authorize(tag)).id_tag_info["status"] == "Accepted"
            assert (await cp2.authorize(tag)).id_tag_info["status"] == "Invalid", "not at another charger"
            assert (await cp.authorize("QMADEUP0001")).id_tag_info["status"] == "Invalid"

    run(scenario())


def test_partner_pushes_run_on_the_duties_node_and_show_through_any(make_server, schema, nats, hook, tmp_path):
    """OCPI status pushes are a duty: the duties' node pushes a status change made at a charger
    on another node, and the partners' view through that other node shows the holder's counts."""
    from test_ocpi import Emsp, envelope, ocpi

    nodes, ids, holder_id, _ = start_nodes(make_server, schema, config_file(tmp_path, hook), n=2)
    other = next(s for s, i in zip(nodes, ids) if i != holder_id)
    emsp = Emsp(f"token-b-{uuid.uuid4().hex[:8]}")
    try:
        token_a = other.ok("POST", "/api/v1/partners/ocpi", {"name": "Nav"}, status=201)["token"]
        envelope(ocpi(other, "POST", "/ocpi/2.2.1/credentials", token_a, body=emsp.credentials()))
        station, cid = station_with_charger(other, nodes, "fo-ocpi", lat=28.3, lon=112.9)
        path = f"/ocpi/2.2.1/locations/CN/CHO/{station}/{cid}*1"
        # A registration made on another node reaches the pushing node within 2 s.
        time.sleep(2.5)

        async def scenario():
            async with charge_point(other, cid, "1.6", PW) as cp:
                assert (await cp.boot()).status == "Accepted"
                await cp.status_notification(1, "Available")
                await await_until(lambda: [b for p, b in emsp.patches if p == path and b["status"] == "AVAILABLE"],
                                  timeout=15, what="the push from the duties' node")

        run(scenario())
        (view,) = other.ok("GET", "/api/v1/partners")
        assert view["pushes"]["delivered"] >= 1, view
    finally:
        emsp.close()
