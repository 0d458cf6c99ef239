"""The platform on PostgreSQL: `chargeops serve --database-url URL --database-schema NAME` driven
by OCPP 1.6 and 2.0.1 charge points, kill -9 after an acknowledged start, and a database that
cannot be reached.

Each test gets a schema of its own in the test database (`it_<unix seconds>_<pid>_<random>`,
created by the server at start, dropped with psql at the end), so runs can overlap. The
database comes from CHARGEOPS_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test,
which .ci/run starts); a server that cannot be reached fails these tests, it does not skip them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from chargepoints import charge_point
from harness import BINARY, await_until, free_port, run, same_reason, uid

PG_URL = os.environ.get("CHARGEOPS_TEST_POSTGRES_URL") or "postgres://postgres@127.0.0.1:5432/test"


def psql(sql: str) -> list[list[str]]:
    """Runs `sql` on the test database; the rows, as lists of text."""
    if shutil.which("psql") is None:
        pytest.fail("psql is not installed (.ci/run installs PostgreSQL)", pytrace=False)
    done = subprocess.run(
        ["psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-d", PG_URL, "-c", sql],
        capture_output=True, text=True, timeout=60,
    )
    if done.returncode != 0:
        raise AssertionError(f"psql {sql!r} failed ({done.returncode}): {done.stderr.strip()}")
    return [line.split("\t") for line in done.stdout.splitlines() if line]


@pytest.fixture(scope="module")
def database() -> str:
    try:
        psql("SELECT 1")
    except AssertionError as e:
        pytest.fail(
            f"the PostgreSQL test server at {PG_URL} is not reachable ({e}); .ci/run starts it, "
            "or set CHARGEOPS_TEST_POSTGRES_URL", pytrace=False,
        )
    return PG_URL


@pytest.fixture
def schema(database):
    name = f"it_{int(time.time())}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    yield name
    psql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def pg_server(make_server, schema: str, **opts):
    return make_server(extra_args=("--database-url", PG_URL, "--database-schema", schema), **opts)


def iso(dt: datetime) -> str:
    return dt.isoformat(timespec="seconds").replace("+00:00", "Z")


def test_sessions_over_ocpp16_and_201_are_kept_in_postgres(make_server, schema):
    server = pg_server(make_server, schema)
    log = server.log_text()
    assert "postgresql" in log and schema in log, log[-3000:]
    assert not (server.data_dir / "chargeops.sqlite3").exists(), "serve opened SQLite too"
    tables = {r[0] for r in psql(
        f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{schema}'")}
    assert {"stations", "chargers", "sessions", "meter_samples", "schema_migrations"} <= tables, tables

    station = uid("pg-st")
    server.ensure_station(station, name="PostgreSQL Service Area", lat=28.2, lon=112.9)
    cp16, cp201 = uid("pg16"), uid("pg201")
    server.register(cp16, password="pg-password-16-xx", station=station)
    server.register(cp201, password="pg-password-201-x", station=station)
    tag = uid("PG")[:20]
    server.add_tag(tag)

    async def ocpp16():
        async with charge_point(server, cp16, "1.6", "pg-password-16-xx") as cp:
            assert (await cp.boot()).status == "Accepted"
            await cp.status_notification(1, "Available")
            await cp.status_notification(1, "Preparing")
            start = await cp.start_transaction(1, tag, meter_start=1_000)
            assert start.id_tag_info["status"] == "Accepted"
            await cp.status_notification(1, "Charging")
            await cp.meter_values(1, start.transaction_id, 1_500)
            await cp.meter_values(1, start.transaction_id, 2_500)
            await cp.stop_transaction(start.transaction_id, 3_000, reason="EVDisconnected", id_tag=tag)
            await cp.status_notification(1, "Available")
            await await_until(lambda: server.connector(cp16, 1)["status"] == "available")
            return start.transaction_id

    async def ocpp201():
        async with charge_point(server, cp201, "2.0.1", "pg-password-201-x") as cp:
            assert (await cp.boot()).status == "Accepted"
            await cp.status_notification(1, 1, "Available")
            await cp.status_notification(1, 1, "Occupied")
            tx = cp.new_transaction_id()
            res = await cp.transaction_event("Started", tx, "Authorized", charging_state="Charging",
                                             id_token=tag, meter_wh=20_000)
            assert res.id_token_info["status"] == "Accepted"
            await cp.transaction_event("Updated", tx, "MeterValuePeriodic", meter_wh=21_000)
            await cp.transaction_event("Ended", tx, "EVCommunicationLost", charging_state="EVConnected",
                                       stopped_reason="EVDisconnected", meter_wh=24_000)
            await cp.status_notification(1, 1, "Available")
            await await_until(lambda: server.connector(cp201, 1, 1)["status"] == "available")
            return tx

    tx16 = run(ocpp16())
    tx201 = run(ocpp201())

    # Boot and status reached the database (the API shows the connectors offline once the
    # chargers have gone; the database keeps what they last reported).
    charger = server.charger(cp16)
    assert charger["station_id"] == station
    vendor = psql(f"SELECT vendor, protocol FROM \"{schema}\".chargers WHERE id = '{cp16}'")
    assert vendor == [["TestVendor", "ocpp1.6"]], vendor
    statuses = psql(
        f"SELECT status FROM \"{schema}\".connector_status WHERE charger_id IN ('{cp16}', '{cp201}')")
    assert statuses == [["available"], ["available"]], statuses

    [s16] = server.sessions(cp16)
    assert s16["transaction_ref"] == str(tx16)
    assert (s16["meter_start_wh"], s16["meter_stop_wh"], s16["energy_wh"]) == (1_000, 3_000, 2_000)
    assert same_reason(s16["stop_reason"], "EVDisconnected") and s16["id_tag"] == tag
    [s201] = server.sessions(cp201)
    assert s201["transaction_ref"] == tx201
    assert (s201["meter_start_wh"], s201["meter_stop_wh"], s201["energy_wh"]) == (20_000, 24_000, 4_000)
    assert same_reason(s201["stop_reason"], "EVDisconnected")

    # The meter values are in the database, attached to their sessions.
    values16 = psql(f"SELECT value FROM \"{schema}\".meter_samples WHERE session_id = {s16['id']} ORDER BY at, id")
    assert [float(v[0]) for v in values16][:2] == [1_500.0, 2_500.0], values16
    values201 = psql(f"SELECT value FROM \"{schema}\".meter_samples WHERE session_id = {s201['id']}")
    assert {float(v[0]) for v in values201} >= {21_000.0}, values201
    history = psql(f"SELECT count(*) FROM \"{schema}\".status_history WHERE charger_id = '{cp16}'")
    assert int(history[0][0]) >= 3, history


def test_session_survives_kill_9_and_replayed_stop_closes_it_once(make_server, schema):
    server = pg_server(make_server, schema, heartbeat_interval=30)
    cid = uid("pgcrash")
    server.register(cid, password="pg-crash-password-16")
    tag = uid("PC")[:20]
    server.add_tag(tag)
    t_start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=40)
    t_stop = t_start + timedelta(minutes=30)

    async def before_crash():
        async with charge_point(server, cid, "1.6", "pg-crash-password-16") as cp:
            assert (await cp.boot()).status == "Accepted"
            await cp.status_notification(1, "Preparing")
            start = await cp.start_transaction(1, tag, meter_start=42_000, timestamp=iso(t_start))
            assert start.id_tag_info["status"] == "Accepted"
            # The acknowledgement arrived: it must be committed in PostgreSQL. Crash right now.
            server.kill9()
            return start.transaction_id

    tx = run(before_crash())
    rows = psql(f"SELECT id, stopped_at IS NULL FROM \"{schema}\".sessions WHERE charger_id = '{cid}'")
    assert rows == [[str(tx), "t"]], rows
    server.restart()

    [s] = server.sessions(cid)
    assert s["transaction_ref"] == str(tx) and s["stopped_at"] is None
    assert s["meter_start_wh"] == 42_000 and s["id_tag"] == tag

    async def after_restart():
        async with charge_point(server, cid, "1.6", "pg-crash-password-16") as cp:
            assert (await cp.boot()).status == "Accepted"
            # The charger is unsure its start arrived and sends it again: same transaction.
            again = await cp.start_transaction(1, tag, meter_start=42_000, timestamp=iso(t_start))
            assert again.transaction_id == tx
            await cp.stop_transaction(tx, 57_500, reason="PowerLoss", timestamp=iso(t_stop))
            first = await asyncio.to_thread(server.sessions, cid)
            # It did not see the answer either and sends the same StopTransaction again.
            await cp.stop_transaction(tx, 57_500, reason="PowerLoss", timestamp=iso(t_stop))
            second = await asyncio.to_thread(server.sessions, cid)
            return first, second

    first, second = run(after_restart())
    [closed] = first
    assert closed["id"] == s["id"]
    assert (closed["meter_stop_wh"], closed["energy_wh"]) == (57_500, 15_500)
    assert same_reason(closed["stop_reason"], "PowerLoss")
    assert abs(datetime.fromisoformat(closed["stopped_at"].replace("Z", "+00:00")) - t_stop) < timedelta(seconds=2)
    assert second == first, "a replayed StopTransaction changed the session"

    # And across another crash: still exactly one closed session.
    server.restart()
    assert server.sessions(cid) == first
    assert psql(f"SELECT count(*) FROM \"{schema}\".sessions") == [["1"]]


def test_an_unreachable_database_stops_the_start_with_a_clear_error(tmp_path):
    port = free_port()  # nothing listens there
    url = f"postgres://chargeops:hunter2-secret@127.0.0.1:{port}/chargeops"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARGEOPS_")}
    env["RUST_BACKTRACE"] = "0"
    done = subprocess.run(
        [str(BINARY), "serve", "--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "data"),
         "--database-url", url],
        capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL,
    )
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert f"postgres://chargeops@127.0.0.1:{port}/chargeops" in out, out
    assert "connect" in out.lower(), out
    assert "hunter2" not in out, out

    # A schema name that could not be written safely is refused before anything is created.
    done = subprocess.run(
        [str(BINARY), "serve", "--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "data"),
         "--database-url", PG_URL, "--database-schema", 'x"; DROP TABLE y; --'],
        capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL,
    )
    assert done.returncode != 0
    assert "invalid schema name" in done.stderr, done.stderr
