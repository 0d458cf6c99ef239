"""Durability: a transaction the server acknowledged survives `kill -9`; after a restart on the
same data directory the charger's replayed messages close it exactly once."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from chargepoints import charge_point
from harness import body_list, run, same_reason, uid


def iso(dt: datetime) -> str:
    return dt.isoformat(timespec="seconds").replace("+00:00", "Z")


def test_ocpp16_session_survives_kill_9_and_replayed_stop_closes_it_once(make_server):
    server = make_server(heartbeat_interval=30)
    station = uid("crash-st")
    server.ensure_station(station, name="Crash Test Service Area", lat=31.2, lon=121.4)
    cid = uid("crash16")
    server.register(cid, password="crash-password-16x", station=station)
    tag = uid("CT")[:20]
    server.add_tag(tag)
    t_start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=40)
    t_stop = t_start + timedelta(minutes=30)

    async def before_crash():
        async with charge_point(server, cid, "1.6", "crash-password-16x") as cp:
            assert (await cp.boot()).status == "Accepted"
            await cp.status_notification(1, "Preparing")
            start = await cp.start_transaction(1, tag, meter_start=42_000, timestamp=iso(t_start))
            assert start.id_tag_info["status"] == "Accepted"
            # The acknowledgement arrived: the server must have it on disk. Crash right now.
            server.kill9()
            return start.transaction_id

    tx = run(before_crash())
    server.restart()

    sessions = server.sessions(cid)
    assert len(sessions) == 1, sessions
    s = sessions[0]
    assert s["transaction_ref"] == str(tx)
    assert s["stopped_at"] is None
    assert s["meter_start_wh"] == 42_000 and s["id_tag"] == tag
    # Registration data survived too.
    assert server.charger(cid)["station_id"] == station
    assert server.ok("GET", f"/api/v1/stations/{station}")["name"] == "Crash Test Service Area"
    assert tag in {t["id_tag"] for t in body_list(server.ok("GET", "/api/v1/id-tags"))}

    async def after_restart():
        async with charge_point(server, cid, "1.6", "crash-password-16x") as cp:
            assert (await cp.boot()).status == "Accepted"
            await cp.stop_transaction(tx, 57_500, reason="PowerLoss", timestamp=iso(t_stop))
            first = await asyncio.to_thread(server.sessions, cid)
            # The charger did not see the answer and sends the same StopTransaction again.
            await cp.stop_transaction(tx, 57_500, reason="PowerLoss", timestamp=iso(t_stop))
            second = await asyncio.to_thread(server.sessions, cid)
            await cp.heartbeat()
            return first, second

    first, second = run(after_restart())
    assert len(first) == 1
    closed = first[0]
    assert closed["id"] == s["id"]
    assert closed["meter_stop_wh"] == 57_500
    assert closed["energy_wh"] == 15_500
    assert same_reason(closed["stop_reason"], "PowerLoss")
    assert abs(datetime.fromisoformat(closed["stopped_at"].replace("Z", "+00:00")) - t_stop) < timedelta(seconds=2)
    assert second == first, "a replayed StopTransaction changed the session"

    # And once more across another crash: still exactly one closed session.
    server.restart()
    assert server.sessions(cid) == first


def test_ocpp201_transaction_survives_kill_9_and_replays_create_no_duplicate(make_server):
    server = make_server()
    cid = uid("crash201")
    server.register(cid, password="crash-password-201x")
    tag = uid("CT")[:20]
    server.add_tag(tag)
    t0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=50)
    tx = f"{cid}-tx1"

    async def before_crash():
        async with charge_point(server, cid, "2.0.1", "crash-password-201x") as cp:
            assert (await cp.boot()).status == "Accepted"
            res = await cp.transaction_event("Started", tx, "Authorized", seq_no=0, id_token=tag, meter_wh=5_000,
                                             charging_state="Charging", timestamp=iso(t0))
            assert res.id_token_info["status"] == "Accepted"
            server.kill9()

    run(before_crash())
    server.restart()
    sessions = server.sessions(cid)
    assert [x["transaction_ref"] for x in sessions] == [tx]
    assert sessions[0]["stopped_at"] is None and sessions[0]["meter_start_wh"] == 5_000

    async def after_restart():
        async with charge_point(server, cid, "2.0.1", "crash-password-201x") as cp:
            assert (await cp.boot()).status == "Accepted"
            # The charger is unsure the Started arrived and sends it again after reconnecting.
            await cp.transaction_event("Started", tx, "Authorized", seq_no=0, id_token=tag, meter_wh=5_000,
                                       charging_state="Charging", timestamp=iso(t0))
            assert len(await asyncio.to_thread(server.sessions, cid)) == 1
            await cp.transaction_event("Updated", tx, "MeterValuePeriodic", seq_no=1, meter_wh=9_000, offline=True,
                                       timestamp=iso(t0 + timedelta(minutes=10)))
            await cp.transaction_event("Ended", tx, "EVCommunicationLost", seq_no=2, stopped_reason="PowerLoss",
                                       meter_wh=12_000, offline=True, timestamp=iso(t0 + timedelta(minutes=20)))
            first = await asyncio.to_thread(server.sessions, cid)
            await cp.transaction_event("Ended", tx, "EVCommunicationLost", seq_no=2, stopped_reason="PowerLoss",
                                       meter_wh=12_000, offline=True, timestamp=iso(t0 + timedelta(minutes=20)))
            second = await asyncio.to_thread(server.sessions, cid)
            return first, second

    first, second = run(after_restart())
    assert len(first) == 1
    assert first[0]["energy_wh"] == 7_000
    assert first[0]["meter_stop_wh"] == 12_000
    assert same_reason(first[0]["stop_reason"], "PowerLoss")
    assert second == first, "a replayed Ended changed the session"
    server.restart()
    assert server.sessions(cid) == first


def test_graceful_restart_keeps_everything(make_server):
    """SIGTERM then start again: nothing is lost either, and chargers come back online."""
    server = make_server()
    cid = uid("term")
    server.register(cid, password="sigterm-password-16")

    async def session():
        async with charge_point(server, cid, "1.6", "sigterm-password-16") as cp:
            await cp.boot()
            await cp.status_notification(1, "Available")
            start = await cp.start_transaction(1, "ANY-TAG", meter_start=0)
            return start.transaction_id

    tx = run(session())
    server.restart(kill=False)
    assert [s["transaction_ref"] for s in server.sessions(cid)] == [str(tx)]
    charger = server.charger(cid)
    assert charger["online"] is False
    assert [(c["connector_id"], c["status"]) for c in charger["connectors"]] == [(1, "offline")]

    async def back():
        async with charge_point(server, cid, "1.6", "sigterm-password-16") as cp:
            await cp.boot()
            await cp.status_notification(1, "Charging")
            assert (await asyncio.to_thread(server.charger, cid))["online"] is True

    run(back())
