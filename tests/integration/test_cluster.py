"""Several `chargeops serve` nodes as one platform: two nodes on one PostgreSQL schema and one
NATS server (`--nats-url`, `--node-id`). Charge points on node A show on node B (REST and SSE),
commands sent through B reach chargers on A and come back with the charger's answer, a charger
that moves to B is reached through A, a node killed with -9 has its chargers shown offline on the
other within NODE_EXPIRY (6 s) plus a heartbeat (2 s), and garbage on the cluster's subjects is
logged and ignored, and a node keeps serving its own chargers while NATS is down and catches up
when it is back (a NATS server of that test's own).

NATS comes from CHARGEOPS_TEST_NATS_URL (default nats://127.0.0.1:4222, which .ci/run starts);
PostgreSQL as in test_postgres.py. A server that cannot be reached fails these tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import time
import uuid

import pytest

from chargepoints import charge_point
from harness import EventStream, await_until, event_is, free_port, run, uid, wait_until
from test_postgres import PG_URL, database, psql, schema  # noqa: F401 (fixtures)

NATS_URL = os.environ.get("CHARGEOPS_TEST_NATS_URL") or "nats://127.0.0.1:4222"
# A dead node's chargers are offline elsewhere within NODE_EXPIRY + one heartbeat (8 s).
OFFLINE_WITHIN = 12.0


def nats_addr() -> tuple[str, int]:
    rest = NATS_URL.removeprefix("nats://")
    host, _, port = rest.partition(":")
    return host, int(port or 4222)


@pytest.fixture(scope="module")
def nats() -> str:
    try:
        with socket.create_connection(nats_addr(), timeout=5) as s:
            assert s.recv(4096).startswith(b"INFO ")
    except (OSError, AssertionError) as e:
        pytest.fail(f"NATS at {NATS_URL} is not reachable ({e}); .ci/run starts it, "
                    "or set CHARGEOPS_TEST_NATS_URL", pytrace=False)
    return NATS_URL


class RawNats:
    """Just enough of the NATS text protocol to publish anything at all on any subject."""

    def __init__(self):
        self.sock = socket.create_connection(nats_addr(), timeout=10)
        self.buf = b""
        assert self._line().startswith(b"INFO ")
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"name":"garbage"}\r\n')

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError("NATS closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def pub(self, subject: str, payload: bytes, reply: str | None = None) -> None:
        head = f"PUB {subject} {reply + ' ' if reply else ''}{len(payload)}\r\n".encode()
        self.sock.sendall(head + payload + b"\r\n")

    def sub(self, subject: str, sid: int) -> None:
        self.sock.sendall(f"SUB {subject} {sid}\r\n".encode())

    def next_msg(self, timeout: float = 15.0) -> tuple[str, bytes]:
        self.sock.settimeout(timeout)
        while True:
            line = self._line()
            if line == b"PING":
                self.sock.sendall(b"PONG\r\n")
            elif line.startswith(b"-ERR"):
                raise AssertionError(line)
            elif line.startswith(b"MSG "):
                parts = line.split()
                n = int(parts[-1])
                while len(self.buf) < n + 2:
                    self.buf += self.sock.recv(65536)
                body, self.buf = self.buf[:n], self.buf[n + 2:]
                return parts[1].decode(), body

    def close(self) -> None:
        self.sock.close()


def node(make_server, schema: str, name: str, *extra: str, **opts):
    return make_server(
        extra_args=("--database-url", PG_URL, "--database-schema", schema,
                    "--nats-url", NATS_URL, "--node-id", name, *extra),
        command_timeout=10, **opts)


def two_nodes(make_server, schema: str):
    tag = uuid.uuid4().hex[:6]
    a = node(make_server, schema, f"it-a-{tag}")
    # B shares A's admin token: one platform, one store. A runs the background tasks (fault
    # detection, queue calling, ...); B only connects chargers.
    b = node(make_server, schema, f"it-b-{tag}", "--background-tasks", "false", token=a.token)
    for n in (a, b):
        wait_until(lambda: "connected to NATS" in n.log_text(), what="node connected to NATS")
    return a, b, f"it-a-{tag}", f"it-b-{tag}"


def connector_status(server, cid: str, connector: int, evse: int | None = None) -> str | None:
    c = server.connector(cid, connector, evse)
    return c and c["status"]


def command(server, cid: str, name: str, body: dict):
    return server.api("POST", f"/api/v1/chargers/{cid}/commands/{name}", body)


def test_two_nodes_are_one_platform(make_server, schema, nats):
    a, b, _, _ = two_nodes(make_server, schema)
    station = uid("cl-st")
    a.ensure_station(station, name="Cluster Service Area", lat=28.2, lon=112.9)
    b._stations.add(station)
    cp16, cp201 = uid("cl16"), uid("cl201")
    a.register(cp16, password="cluster-password-16", station=station)
    a.register(cp201, password="cluster-password-201", station=station)
    tag = uid("CL")[:20]
    a.add_tag(tag)
    never = uid("cl-never")
    a.register(never, password="cluster-password-nv", station=station)

    async def scenario():
        with EventStream(b) as feed_b:
            async with charge_point(a, cp16, "1.6", "cluster-password-16") as c16, \
                    charge_point(a, cp201, "2.0.1", "cluster-password-201") as c201:
                assert (await c16.boot()).status == "Accepted"
                assert (await c201.boot()).status == "Accepted"
                await c16.status_notification(1, "Available")
                await c16.status_notification(2, "Available")
                await c201.status_notification(1, 1, "Available")

                # B shows both chargers online with their connectors.
                await await_until(lambda: b.charger(cp16)["online"] and b.charger(cp201)["online"],
                                  what="chargers on A online on B")
                await await_until(lambda: connector_status(b, cp16, 1) == "available"
                                  and connector_status(b, cp16, 2) == "available"
                                  and connector_status(b, cp201, 1, 1) == "available",
                                  what="connector statuses on B")
                counts = b.ok("GET", f"/api/v1/stations/{station}")["connectors"]
                assert counts["available"] == 3 and counts["offline"] == 0, counts
                await feed_b.await_for(event_is("charger_online", cp16), what="online on B's feed")

                # A status change at the charger shows on B: REST and SSE.
                await c16.status_notification(2, "Faulted", error_code="GroundFailure")
                await await_until(lambda: connector_status(b, cp16, 2) == "faulted", what="faulted on B")
                await feed_b.await_for(event_is("status_changed", cp16, status="faulted"),
                                       what="status_changed on B's feed")
                # One case for the fault in the shared store: only A detects.
                faulted = lambda: [c for c in a.ok("GET", f"/api/v1/cases?charger={cp16}")  # noqa: E731
                                   if c["kind"] == "faulted"]
                await await_until(lambda: len(faulted()) == 1, what="one faulted case")
                await asyncio.sleep(1.5)
                assert len(faulted()) == 1, faulted()
                await c201.status_notification(1, 1, "Occupied")
                await await_until(lambda: connector_status(b, cp201, 1, 1) == "occupied")

                # Commands through B reach the chargers on A; B returns their answers.
                r = await b.aapi("POST", f"/api/v1/chargers/{cp16}/commands/reset", {"hard": False})
                assert r.status_code == 200 and r.json()["status"] == "Accepted", r.text
                assert any(action == "Reset" for _, action, _ in c16.calls), c16.calls
                c16.answers["Reset"] = "Rejected"
                r = await b.aapi("POST", f"/api/v1/chargers/{cp16}/commands/reset", {"hard": True})
                assert r.status_code == 200 and r.json()["status"] == "Rejected", r.text
                r = await b.aapi("POST", f"/api/v1/chargers/{cp16}/commands/remote-start",
                                 {"connector_id": 1, "id_tag": tag})
                assert r.status_code == 200 and r.json()["status"] == "Accepted", r.text
                await asyncio.wait_for(c16.remote_tx_started.wait(), 15)
                await await_until(lambda: connector_status(b, cp16, 1) == "charging", what="charging on B")
                await feed_b.await_for(event_is("session_started", cp16), what="session on B's feed")
                r = await b.aapi("POST", f"/api/v1/chargers/{cp201}/commands/reset", {"hard": False})
                assert r.status_code == 200 and r.json()["status"] == "Accepted", r.text
                assert any(action == "Reset" for _, action, _ in c201.calls), c201.calls

                # No node holds `never`: offline (409) through either node.
                for n in (a, b):
                    r = await n.aapi("POST", f"/api/v1/chargers/{never}/commands/reset", {"hard": True})
                    assert r.status_code == 409, r.text

            # Both disconnected from A: offline on B.
            await await_until(lambda: not b.charger(cp16)["online"] and not b.charger(cp201)["online"],
                              what="offline on B after the disconnect")
            await feed_b.await_for(event_is("charger_offline", cp16), what="offline on B's feed")

            # The 1.6 charger moves to B: commands through A reach it there.
            async with charge_point(b, cp16, "1.6", "cluster-password-16") as moved:
                assert (await moved.boot()).status == "Accepted"
                await moved.status_notification(1, "Available")
                await await_until(lambda: a.charger(cp16)["online"], what="moved charger online on A")
                r = await a.aapi("POST", f"/api/v1/chargers/{cp16}/commands/clear-cache", {})
                assert r.status_code == 200 and r.json()["status"] == "Accepted", r.text
                assert any(action == "ClearCache" for _, action, _ in moved.calls), moved.calls
                r = await a.aapi("POST", f"/api/v1/chargers/{cp201}/commands/reset", {"hard": True})
                assert r.status_code == 409, r.text
            await await_until(lambda: not a.charger(cp16)["online"], what="offline on A after leaving B")

    run(scenario())
    for n in (a, b):
        assert "panicked" not in n.log_text()


def test_a_node_killed_has_its_chargers_offline_on_the_others(make_server, schema, nats):
    a, b, _, _ = two_nodes(make_server, schema)
    station = uid("cl-kill")
    a.ensure_station(station)
    b._stations.add(station)
    cid = uid("clk")
    a.register(cid, password="cluster-password-kl", station=station)

    async def scenario():
        async with charge_point(a, cid, "1.6", "cluster-password-kl") as cp:
            assert (await cp.boot()).status == "Accepted"
            await cp.status_notification(1, "Available")
            await await_until(lambda: b.charger(cid)["online"], what="online on B")
            a.kill9()
            t0 = time.monotonic()
            await await_until(lambda: not b.charger(cid)["online"], timeout=OFFLINE_WITHIN,
                              what=f"offline on B within {OFFLINE_WITHIN}s of A's kill -9")
            took = time.monotonic() - t0
            assert took < OFFLINE_WITHIN, took
        # B keeps working: the charger is not reachable, and it can come to B.
        r = b.api("POST", f"/api/v1/chargers/{cid}/commands/reset", {"hard": True})
        assert r.status_code == 409, r.text
        async with charge_point(b, cid, "1.6", "cluster-password-kl") as cp:
            assert (await cp.boot()).status == "Accepted"
            r = await b.aapi("POST", f"/api/v1/chargers/{cid}/commands/reset", {"hard": False})
            assert r.status_code == 200 and r.json()["status"] == "Accepted", r.text

    run(scenario())
    assert "not heard from" in b.log_text(), b.log_tail()


def test_garbage_on_the_cluster_subjects_is_logged_and_ignored(make_server, schema, nats):
    a, b, _, name_b = two_nodes(make_server, schema)
    station = uid("cl-bad")
    a.ensure_station(station)
    b._stations.add(station)
    cid = uid("clb")
    a.register(cid, password="cluster-password-bd", station=station)

    raw = RawNats()
    try:
        inbox = f"_INBOX.garbage.{uuid.uuid4().hex}"
        raw.sub(inbox, 1)
        raw.pub("chargeops.events.status_changed", b"\x00\xffnot json at all")
        raw.pub("chargeops.events.charger_online", json.dumps({"node": "x", "event": {"type": "nope"}}).encode())
        raw.pub("chargeops.events.charger_offline",
                json.dumps({"node": "no.dots", "event": {"type": "charger_offline", "charger_id": cid,
                                                        "station_id": station, "at": "2026-01-01T00:00:00Z"}}).encode())
        raw.pub("chargeops.nodes.heartbeat", b"[1,2,3]")
        raw.pub("chargeops.nodes.hello", b"{")
        raw.pub(f"chargeops.cmd.{name_b}", b"{\"charger_id\": 5}", reply=inbox)
        raw.pub(f"chargeops.cmd.{name_b}", b"no reply subject")
        raw.pub(f"chargeops.cmd.{name_b}", b"x" * 200_000, reply=inbox)
        # The malformed request is answered (so a caller does not hang), as invalid.
        subject, body = raw.next_msg()
        assert subject == inbox and json.loads(body)["result"] == "invalid", body
    finally:
        raw.close()

    wait_until(lambda: "ignoring a malformed cluster message" in b.log_text(), what="garbage logged")

    # Both nodes keep working together.
    async def scenario():
        async with charge_point(a, cid, "1.6", "cluster-password-bd") as cp:
            assert (await cp.boot()).status == "Accepted"
            await cp.status_notification(1, "Available")
            await await_until(lambda: b.charger(cid)["online"], what="online on B after the garbage")
            r = await b.aapi("POST", f"/api/v1/chargers/{cid}/commands/reset", {"hard": False})
            assert r.status_code == 200 and r.json()["status"] == "Accepted", r.text

    run(scenario())
    for n in (a, b):
        assert n.alive() and n.healthy()
        assert "panicked" not in n.log_text()


def test_nodes_keep_serving_without_nats_and_catch_up_after(make_server, schema, tmp_path):
    """A NATS server of this test's own, stopped and started again under the nodes."""
    binary = shutil.which("nats-server")
    if binary is None:
        pytest.fail("nats-server is not installed (.ci/run installs it)", pytrace=False)
    port = free_port()
    log = open(tmp_path / "nats.log", "ab")

    def start_nats():
        proc = subprocess.Popen([binary, "-js", "-sd", str(tmp_path / "js"), "-a", "127.0.0.1",
                                 "-p", str(port)], stdout=log, stderr=log)
        def up() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"nats-server exited ({proc.returncode})")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False

        wait_until(up, what="private NATS up")
        return proc

    proc = start_nats()
    try:
        tag = uuid.uuid4().hex[:6]
        args = ("--database-url", PG_URL, "--database-schema", schema,
                "--nats-url", f"nats://127.0.0.1:{port}")
        a = make_server(extra_args=args + ("--node-id", f"own-a-{tag}"), command_timeout=10)
        b = make_server(extra_args=args + ("--node-id", f"own-b-{tag}"), command_timeout=10, token=a.token)
        station = uid("cl-out")
        a.ensure_station(station)
        b._stations.add(station)
        cid = uid("clo")
        a.register(cid, password="cluster-password-ou", station=station)

        async def scenario():
            nonlocal proc
            async with charge_point(a, cid, "1.6", "cluster-password-ou") as cp:
                assert (await cp.boot()).status == "Accepted"
                await cp.status_notification(1, "Available")
                await await_until(lambda: b.charger(cid)["online"], what="online on B")

                proc.kill()
                proc.wait()
                await await_until(lambda: "lost the NATS connection" in a.log_text(), what="A logs the loss")
                # A serves its own charger alone: commands, statuses.
                r = await a.aapi("POST", f"/api/v1/chargers/{cid}/commands/reset", {"hard": False})
                assert r.status_code == 200 and r.json()["status"] == "Accepted", r.text
                await cp.status_notification(1, "Unavailable")
                await await_until(lambda: connector_status(a, cid, 1) == "unavailable")
                # B cannot reach it: offline, soon shown offline.
                r = await b.aapi("POST", f"/api/v1/chargers/{cid}/commands/reset", {"hard": False})
                assert r.status_code == 409, r.text
                await await_until(lambda: not b.charger(cid)["online"], timeout=OFFLINE_WITHIN,
                                  what="offline on B while NATS is down")

                proc = start_nats()
                # Both reconnect; B catches up with what happened meanwhile.
                await await_until(lambda: b.charger(cid)["online"], timeout=20, what="online on B again")
                await await_until(lambda: connector_status(b, cid, 1) == "unavailable",
                                  what="the status made during the outage on B")
                r = await b.aapi("POST", f"/api/v1/chargers/{cid}/commands/reset", {"hard": False})
                assert r.status_code == 200 and r.json()["status"] == "Accepted", r.text

        run(scenario())
        assert a.log_text().count("connected to NATS") >= 2, a.log_tail()
    finally:
        proc.kill()
        proc.wait()
        log.close()
