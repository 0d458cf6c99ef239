"""Failover and catch-up of a chargeops cluster, measured: `bench/cluster.sh [--rounds N]`.

Each round starts fresh nodes (`chargeops serve`, the release binary) on one PostgreSQL schema
and NATS with JetStream, with Python `ocpp` charge points on them, and times from the moment of
the failure:

- kill -9 of the node running the duties (3 nodes), while a connector faults, a connector frees
  for a waiting queue number and a robot serves a car: the lease taken by a survivor, the case
  opened, the number called, the robot's report answered with its car again;
- a clean stop (SIGTERM) of that node (2 nodes): the lease taken by the other;
- that node cut off from NATS alone (a TCP relay, 2 nodes): it fences itself, the other takes
  the lease, the number is called; after the link is back, the status it missed reaches it;
- NATS itself killed and started again after 3 s (a nats-server of its own, 2 nodes): the
  outage's status reaches the other node, the held-back call is made.

Prints one table (min, median and max over the rounds, in seconds). Needs the test venv
(tests/requirements.txt), PostgreSQL (CHARGEOPS_TEST_POSTGRES_URL) and NATS
(CHARGEOPS_TEST_NATS_URL), as the integration tests do.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("CHARGEOPS_BIN", str(REPO / "target" / "release" / "chargeops"))
sys.path.insert(0, str(REPO / "tests" / "integration"))

import requests  # noqa: E402

from chargepoints import charge_point  # noqa: E402
from harness import Server, basic_auth, body_list  # noqa: E402
from natsd import PrivateNats, Proxy  # noqa: E402
from test_cluster import NATS_URL, RawNats, nats_addr  # noqa: E402
from test_postgres import PG_URL, psql  # noqa: E402

PW = "bench-cluster-password"
POLL = 0.05


class Round:
    """One round's nodes, schema and files."""

    def __init__(self, root: Path):
        self.root = root
        self.tag = uuid.uuid4().hex[:6]
        self.schema = f"bench_{int(time.time())}_{self.tag}"
        self.servers: list[Server] = []
        self.config = root / "cluster.toml"
        self.config.write_text("[queue]\nplug_in_secs = 600\ntick_ms = 100\n\n[ops]\ntick_ms = 100\n")

    def node(self, name: str, nats_url: str, token: str | None = None) -> Server:
        s = Server(self.root / name, command_timeout=10, token=token, extra_args=(
            "--database-url", PG_URL, "--database-schema", self.schema, "--nats-url", nats_url,
            "--cluster-name", f"bench-{self.tag}", "--node-id", f"{name}-{self.tag}",
            "--config", str(self.config)))
        self.servers.append(s)
        return s.start()

    def close(self) -> None:
        for s in self.servers:
            s.stop()
        psql(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        drop_streams(f"BENCH_{self.tag.upper()}_EVENTS", f"KV_bench_{self.tag}_leases")


def drop_streams(*names: str) -> None:
    """Removes a round's event stream and lease bucket from the shared NATS."""
    raw = RawNats()
    try:
        inbox = f"_INBOX.bench.{uuid.uuid4().hex}"
        raw.sub(inbox, 1)
        for name in names:
            raw.pub(f"$JS.API.STREAM.DELETE.{name}", b"", reply=inbox)
            raw.next_msg()
    finally:
        raw.close()


def view(s: Server) -> dict:
    return s.ok("GET", "/api/v1/cluster")


async def until(fn, timeout: float = 30.0, what: str = "") -> float:
    """Polls `fn` (in a thread) until truthy; returns when, on the monotonic clock."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await asyncio.to_thread(fn):
                return time.monotonic()
        except (AssertionError, KeyError, TypeError, requests.RequestException):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(POLL)


def holder_of(servers: list[Server]) -> Server | None:
    views = [view(s) for s in servers]
    held = [s for s, v in zip(servers, views) if v["holds_duties"]]
    agreed = {v["duties_holder"] for v in views}
    return held[0] if len(held) == 1 and len(agreed) == 1 else None


async def occupied(cp) -> None:
    """A charger boots with both its connectors charging: a full station."""
    await cp.boot()
    for c in (1, 2):
        await cp.status_notification(c, "Charging")


def ticket_state(s: Server, tid: str) -> str:
    return s.ok("GET", f"/api/v1/queue/{tid}")["state"]


async def kill_holder(root: Path) -> dict[str, float]:
    r = Round(root)
    try:
        a = r.node("n0", NATS_URL)
        nodes = [a, r.node("n1", NATS_URL, a.token), r.node("n2", NATS_URL, a.token)]
        await until(lambda: holder_of(nodes) and all(len(view(s)["nodes"]) == 2 for s in nodes), what="holder")
        holder = holder_of(nodes)
        x, y = [s for s in nodes if s is not holder]
        q, f, lot = f"bq-{r.tag}", f"bf-{r.tag}", f"bl-{r.tag}"
        for sid in (q, f, lot):
            x.ensure_station(sid)
        busy, faulty, robot = f"bb-{r.tag}", f"bfc-{r.tag}", f"br-{r.tag}"
        x.register(busy, PW, station=q)
        x.register(faulty, PW, station=f)
        x.register(robot, PW, station=lot)
        x.ok("PUT", f"/api/v1/stations/{lot}/lot", {"bays": 4, "robots": [robot]})

        def report(s: Server) -> dict:
            resp = requests.post(f"{s.base_url}/api/v1/robots/{robot}/report",
                                 json={"x": -15.0, "y": 0.0, "battery_kwh": 150.0, "state": "docked"},
                                 headers=basic_auth(robot, PW), timeout=10)
            return resp.json() if resp.status_code == 200 else {}

        async with charge_point(x, busy, "1.6", PW) as cb, charge_point(y, faulty, "1.6", PW) as cf:
            await occupied(cb)
            await cf.boot()
            await cf.status_notification(1, "Available")
            await until(lambda: all(s.charger(busy)["online"] and s.charger(faulty)["online"] for s in nodes),
                        what="chargers online")
            t1 = y.ok("POST", f"/api/v1/stations/{q}/queue", {"contact": "138 0013 8000"}, 201)["id"]
            car = x.ok("POST", f"/api/v1/stations/{lot}/lot/cars", {"bay": 1, "energy_kwh": 20}, 201)["id"]
            await until(lambda: report(y).get("task", {}).get("car") == car, what="robot sent")

            holder.kill9()
            t0 = time.monotonic()
            await cf.status_notification(1, "Faulted", error_code="GroundFailure")
            await cb.status_notification(2, "Available")
            lease = until(lambda: holder_of([x, y]), what="takeover")
            case = until(lambda: any(c["kind"] == "faulted" for c in body_list(
                x.ok("GET", f"/api/v1/cases?charger={faulty}"))), what="case")
            call = until(lambda: ticket_state(x, t1) == "called", what="call")
            robot_back = until(lambda: report(x).get("task", {}).get("car") == car, what="robot")
            done = await asyncio.gather(lease, case, call, robot_back)
        names = ("kill -9: lease taken (both survivors agree)", "kill -9: fault case opened", "kill -9: queue number called",
                 "kill -9: robot answered with its car")
        return {n: t - t0 for n, t in zip(names, done)}
    finally:
        r.close()


async def clean_stop(root: Path) -> dict[str, float]:
    r = Round(root)
    try:
        a = r.node("n0", NATS_URL)
        nodes = [a, r.node("n1", NATS_URL, a.token)]
        await until(lambda: holder_of(nodes), what="holder")
        holder = holder_of(nodes)
        other = next(s for s in nodes if s is not holder)
        t0 = time.monotonic()
        holder.stop()
        t = await until(lambda: view(other)["holds_duties"], what="handover")
        return {"SIGTERM: lease handed over": t - t0}
    finally:
        r.close()


async def partition(root: Path) -> dict[str, float]:
    r = Round(root)
    proxy = Proxy(nats_addr())
    try:
        h = r.node("n0", proxy.url)
        await until(lambda: view(h)["holds_duties"], what="holder")
        x = r.node("n1", NATS_URL, h.token)
        await until(lambda: view(x)["duties_holder"] == view(h)["node"], what="follower")
        q, busy = f"pq-{r.tag}", f"pb-{r.tag}"
        x.ensure_station(q)
        x.register(busy, PW, station=q)
        async with charge_point(x, busy, "1.6", PW) as cp:
            await occupied(cp)
            await until(lambda: h.charger(busy)["online"], what="seen on H")
            t1 = x.ok("POST", f"/api/v1/stations/{q}/queue", {"contact": "138 0013 8000"}, 201)["id"]
            proxy.cut()
            t0 = time.monotonic()
            await cp.status_notification(2, "Available")
            fenced = until(lambda: not view(h)["holds_duties"], what="fenced")
            taken = until(lambda: view(x)["holds_duties"], what="taken")
            called = until(lambda: ticket_state(x, t1) == "called", what="called")
            fenced, taken, called = await asyncio.gather(fenced, taken, called)
            await cp.status_notification(1, "Unavailable")
            await asyncio.sleep(0.5)
            proxy.restore()
            t_back = time.monotonic()
            caught = await until(lambda: (h.connector(busy, 1) or {}).get("status") == "unavailable",
                                 what="catch-up")
        return {
            "partition: holder fenced itself": fenced - t0,
            "partition: lease taken by the other": taken - t0,
            "partition: queue number called": called - t0,
            "partition: missed status reached the cut-off node": caught - t_back,
        }
    finally:
        proxy.close()
        r.close()


async def nats_restart(root: Path) -> dict[str, float]:
    r = Round(root)
    natsd = PrivateNats(root / "nats", "")
    url = f"nats://127.0.0.1:{natsd.port}"
    try:
        a = r.node("n0", url)
        nodes = [a, r.node("n1", url, a.token)]
        await until(lambda: holder_of(nodes), what="holder")
        b = nodes[1]
        q, cid = f"rq-{r.tag}", f"rc-{r.tag}"
        a.ensure_station(q)
        a.register(cid, PW, station=q)
        async with charge_point(a, cid, "1.6", PW) as cp:
            await occupied(cp)
            await until(lambda: (b.connector(cid, 2) or {}).get("status") == "charging", what="seen on B")
            t1 = b.ok("POST", f"/api/v1/stations/{q}/queue", {"contact": "138 0013 8000"}, 201)["id"]
            natsd.proc.kill()
            natsd.proc.wait()
            await cp.status_notification(2, "Available")
            await cp.status_notification(1, "Unavailable")
            await asyncio.sleep(3)
            natsd.restart()
            t0 = time.monotonic()
            caught = until(lambda: (b.connector(cid, 1) or {}).get("status") == "unavailable", what="catch-up")
            called = until(lambda: ticket_state(b, t1) == "called", what="called")
            caught, called = await asyncio.gather(caught, called)
        return {"NATS restart: outage's status reached the other node": caught - t0,
                "NATS restart: held-back queue call made": called - t0}
    finally:
        r.close()
        natsd.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    if not Path(os.environ["CHARGEOPS_BIN"]).exists():
        raise SystemExit(f"{os.environ['CHARGEOPS_BIN']} not found: cargo build --release --bin chargeops")
    results: dict[str, list[float]] = {}
    tmp = tempfile.mkdtemp(prefix="chargeops-bench-cluster-")
    for i in range(args.rounds):
        for scenario in (kill_holder, clean_stop, partition, nats_restart):
            root = Path(tmp) / f"{scenario.__name__}-{i}"
            root.mkdir()
            try:
                measured = asyncio.run(scenario(root))
            except BaseException:
                print(f"{scenario.__name__} failed in round {i + 1}; the nodes' logs are under {root}",
                      file=sys.stderr)
                raise
            for name, secs in measured.items():
                results.setdefault(name, []).append(secs)
        print(f"round {i + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    head = "seconds after the failure (catch-up: after the link is back)"
    width = max(len(head), *(len(n) for n in results))
    print(f"{head:<{width}}  rounds    min  median    max")
    for name, values in results.items():
        print(f"{name:<{width}}  {len(values):>6}  {min(values):5.2f}  {statistics.median(values):6.2f}  {max(values):5.2f}")


if __name__ == "__main__":
    main()
