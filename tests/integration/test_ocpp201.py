"""OCPP 2.0.1 charge points (the `ocpp` package) against a live server: boot, heartbeat, status,
authorisation, TransactionEvent sessions (seqNo, retries, offline), and commands through the API."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

from chargepoints import charge_point
from harness import EventStream, await_until, event_is, now, run, same_reason, uid

V = "2.0.1"

STATUS_MAP_201 = {
    "Available": "available",
    "Occupied": "occupied",
    "Reserved": "reserved",
    "Unavailable": "unavailable",
    "Faulted": "faulted",
}


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def new_charger(server, password: str | None = "pw-201-secret-16ch") -> tuple[str, str | None]:
    cid = uid("cp201")
    server.register(cid, password=password)
    return cid, password


def new_tag(server, status: str = "accepted", expiry: str | None = None) -> str:
    tag = uid("TOK")[:20]
    server.add_tag(tag, status, expiry)
    return tag


def status_is(server, cid, evse, connector, status):
    def check():
        c = server.connector(cid, connector, evse)
        return c if c and c["status"] == status else None

    check.__name__ = f"{cid} evse {evse}/{connector} {status}"
    return check


def test_boot_is_accepted_with_interval_and_details_are_stored(server):
    cid, pw = new_charger(server)

    async def scenario():
        async with charge_point(server, cid, V, pw) as cp:
            res = await cp.boot(vendor="Kempower", model="S-Series", serial_number="KP-99", firmware_version="2.0.1-r5")
            assert res.status == "Accepted"
            assert res.interval == 77
            assert abs(parse_time(res.current_time) - datetime.now(timezone.utc)) < timedelta(minutes=10)
            charger = await asyncio.to_thread(server.charger, cid)
            assert charger["protocol"] == "ocpp2.0.1"
            assert charger["online"] is True
            assert charger["vendor"] == "Kempower"
            assert charger["model"] == "S-Series"
            assert charger["serial_number"] == "KP-99"
            assert charger["firmware_version"] == "2.0.1-r5"
            assert charger["registration"] == "accepted"
            assert pw not in json.dumps(charger)

    run(scenario())


def test_heartbeat_answers_current_time(server):
    cid, pw = new_charger(server)

    async def scenario():
        async with charge_point(server, cid, V, pw) as cp:
            await cp.boot()
            res = await cp.heartbeat()
            assert abs(parse_time(res.current_time) - datetime.now(timezone.utc)) < timedelta(minutes=10)

    run(scenario())


def test_every_status_maps_to_the_internal_model_and_is_streamed(server):
    cid, pw = new_charger(server)

    async def scenario():
        with EventStream(server) as events:
            async with charge_point(server, cid, V, pw) as cp:
                await cp.boot()
                await cp.status_notification(2, 1, "Available")
                previous = None
                for ocpp_status, internal in STATUS_MAP_201.items():
                    await cp.status_notification(1, 1, ocpp_status)
                    await await_until(status_is(server, cid, 1, 1, internal))
                    if previous is not None:
                        ev = await events.await_for(
                            event_is("status_changed", cid, evse_id=1, connector_id=1, status=internal, previous=previous)
                        )
                        assert ev["station_id"] == "test-station"
                    previous = internal
                charger = await asyncio.to_thread(server.charger, cid)
                assert sorted((c["evse_id"], c["connector_id"]) for c in charger["connectors"]) == [(1, 1), (2, 1)]
                assert server.connector(cid, 1, 2)["status"] == "available"

    run(scenario())


def test_authorize_accepted_blocked_unknown_expired(server):
    cid, pw = new_charger(server)
    ok = new_tag(server)
    blocked = new_tag(server, "blocked")
    expired = new_tag(server, "accepted", iso(datetime.now(timezone.utc) - timedelta(hours=1)))

    async def scenario():
        async with charge_point(server, cid, V, pw) as cp:
            await cp.boot()
            for tag, status in {ok: "Accepted", blocked: "Blocked", "UNKNOWN-TOKEN-1": "Invalid", expired: "Expired"}.items():
                res = await cp.authorize(tag)
                assert res.id_token_info["status"] == status, f"Authorize({tag})"

    run(scenario())


def test_session_started_updated_ended_with_meter_values(server):
    cid, pw = new_charger(server)
    tag = new_tag(server)

    async def scenario():
        with EventStream(server) as events:
            async with charge_point(server, cid, V, pw) as cp:
                await cp.boot()
                await cp.status_notification(1, 1, "Available")
                tx = cp.new_transaction_id()

                await cp.status_notification(1, 1, "Occupied")
                await await_until(status_is(server, cid, 1, 1, "occupied"))

                res = await cp.transaction_event(
                    "Started", tx, "Authorized", charging_state="Charging", id_token=tag, meter_wh=20_000
                )
                assert res.id_token_info["status"] == "Accepted"
                await await_until(status_is(server, cid, 1, 1, "charging"))
                sessions = await asyncio.to_thread(server.sessions, cid, open="true")
                assert [s["transaction_ref"] for s in sessions] == [tx]
                session_id = sessions[0]["id"]
                assert sessions[0]["evse_id"] == 1 and sessions[0]["connector_id"] == 1
                assert sessions[0]["meter_start_wh"] == 20_000
                await events.await_for(event_is("session_started", cid, session_id=session_id))

                await cp.transaction_event("Updated", tx, "MeterValuePeriodic", meter_wh=21_000)
                await cp.transaction_event("Updated", tx, "ChargingStateChanged", charging_state="SuspendedEV",
                                           meter_wh=22_500)
                await await_until(status_is(server, cid, 1, 1, "occupied"))
                await cp.transaction_event("Updated", tx, "ChargingStateChanged", charging_state="Charging")
                await await_until(status_is(server, cid, 1, 1, "charging"))

                await cp.transaction_event(
                    "Ended", tx, "EVCommunicationLost", charging_state="EVConnected", stopped_reason="EVDisconnected",
                    meter_wh=24_000,
                )
                await await_until(status_is(server, cid, 1, 1, "occupied"))
                await cp.status_notification(1, 1, "Available")
                await await_until(status_is(server, cid, 1, 1, "available"))

                sessions = await asyncio.to_thread(server.sessions, cid)
                assert len(sessions) == 1
                s = sessions[0]
                assert s["transaction_ref"] == tx
                assert s["id_tag"] == tag
                assert s["meter_start_wh"] == 20_000 and s["meter_stop_wh"] == 24_000
                assert s["energy_wh"] == 4_000
                assert same_reason(s["stop_reason"], "EVDisconnected")
                assert s["stopped_at"] is not None
                ev = await events.await_for(event_is("session_stopped", cid, session_id=session_id))
                assert ev["energy_wh"] == 4_000

    run(scenario())


def test_blocked_token_in_transaction_event_is_answered_blocked(server):
    cid, pw = new_charger(server)
    blocked = new_tag(server, "blocked")

    async def scenario():
        async with charge_point(server, cid, V, pw) as cp:
            await cp.boot()
            tx = cp.new_transaction_id()
            res = await cp.transaction_event("Started", tx, "Authorized", id_token=blocked, meter_wh=0)
            assert res.id_token_info["status"] == "Blocked"
            await cp.transaction_event("Ended", tx, "Deauthorized", stopped_reason="DeAuthorized", meter_wh=0)

    run(scenario())


def test_repeated_started_creates_no_duplicate(server):
    cid, pw = new_charger(server)
    tag = new_tag(server)

    async def scenario():
        async with charge_point(server, cid, V, pw) as cp:
            await cp.boot()
            tx = cp.new_transaction_id()
            ts = iso(datetime.now(timezone.utc) - timedelta(minutes=3))
            await cp.transaction_event("Started", tx, "Authorized", seq_no=0, id_token=tag, meter_wh=1_000,
                                       charging_state="Charging", timestamp=ts)
            # A retry of the same message (the charger did not get the answer).
            await cp.transaction_event("Started", tx, "Authorized", seq_no=0, id_token=tag, meter_wh=1_000,
                                       charging_state="Charging", timestamp=ts)
            assert len(await asyncio.to_thread(server.sessions, cid)) == 1
            await cp.transaction_event("Updated", tx, "MeterValuePeriodic", seq_no=1, meter_wh=1_500)
            await cp.transaction_event("Updated", tx, "MeterValuePeriodic", seq_no=1, meter_wh=1_500)
            await cp.transaction_event("Ended", tx, "StopAuthorized", seq_no=2, stopped_reason="Local", meter_wh=2_000)
            await cp.transaction_event("Ended", tx, "StopAuthorized", seq_no=2, stopped_reason="Local", meter_wh=2_000)
            sessions = await asyncio.to_thread(server.sessions, cid)
            assert len(sessions) == 1
            assert sessions[0]["energy_wh"] == 1_000
            assert sessions[0]["meter_stop_wh"] == 2_000

    run(scenario())


def test_transaction_finished_offline_is_replayed_with_offline_flag(server):
    cid, pw = new_charger(server)
    tag = new_tag(server)
    t0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=3)

    async def scenario():
        async with charge_point(server, cid, V, pw) as cp:
            await cp.boot()
            tx = cp.new_transaction_id()
            await cp.transaction_event("Started", tx, "Authorized", id_token=tag, meter_wh=50_000,
                                       charging_state="Charging", timestamp=iso(t0))
            seq_after = cp.seq[tx]
        await await_until(lambda: server.charger(cid)["online"] is False)

        async with charge_point(server, cid, V, pw) as cp:
            cp.seq[tx] = seq_after
            await cp.boot()
            # What happened while the connection was down, sent afterwards with offline=true.
            await cp.transaction_event("Updated", tx, "MeterValuePeriodic", meter_wh=60_000, offline=True,
                                       timestamp=iso(t0 + timedelta(minutes=30)))
            await cp.transaction_event("Ended", tx, "EVCommunicationLost", stopped_reason="EVDisconnected",
                                       meter_wh=70_000, offline=True, timestamp=iso(t0 + timedelta(hours=1)))
            await cp.status_notification(1, 1, "Available")
            sessions = await asyncio.to_thread(server.sessions, cid)
            assert len(sessions) == 1
            s = sessions[0]
            assert s["transaction_ref"] == tx
            assert s["energy_wh"] == 20_000
            assert abs(parse_time(s["started_at"]) - t0) < timedelta(seconds=2)
            assert abs(parse_time(s["stopped_at"]) - (t0 + timedelta(hours=1))) < timedelta(seconds=2)

    run(scenario())


def test_remote_start_and_stop_through_the_api(server):
    cid, pw = new_charger(server)
    tag = new_tag(server)

    async def scenario():
        with EventStream(server) as events:
            async with charge_point(server, cid, V, pw) as cp:
                await cp.boot()
                await cp.status_notification(1, 1, "Available")
                cp.meter_wh = 8_000
                body = await server.aok(
                    "POST", f"/api/v1/chargers/{cid}/commands/remote-start",
                    {"evse_id": 1, "connector_id": 1, "id_tag": tag},
                )
                assert body == {"status": "Accepted", "response": {"status": "Accepted"}}
                req = await cp.wait_call("RequestStartTransaction")
                assert req["idToken"]["idToken"] == tag
                assert req["evseId"] == 1
                assert isinstance(req["remoteStartId"], int)

                await asyncio.wait_for(cp.remote_tx_started.wait(), 15)
                tx = cp.transactions[1]
                sessions = await await_until(lambda: server.sessions(cid, open="true"))
                assert sessions[0]["transaction_ref"] == tx
                session_id = sessions[0]["id"]
                await events.await_for(event_is("session_started", cid, session_id=session_id))
                await await_until(status_is(server, cid, 1, 1, "charging"))

                body = await server.aok(
                    "POST", f"/api/v1/chargers/{cid}/commands/remote-stop", {"session_id": session_id}
                )
                assert body == {"status": "Accepted", "response": {"status": "Accepted"}}
                assert await cp.wait_call("RequestStopTransaction") == {"transactionId": tx}
                await asyncio.wait_for(cp.remote_tx_stopped.wait(), 15)
                s = await await_until(
                    lambda: (lambda s: s if s["stopped_at"] else None)(server.ok("GET", f"/api/v1/sessions/{session_id}"))
                )
                assert s["energy_wh"] == 3_000
                assert same_reason(s["stop_reason"], "Remote")
                ev = await events.await_for(event_is("session_stopped", cid, session_id=session_id))
                assert ev["energy_wh"] == 3_000

    run(scenario())


def test_change_availability(server):
    cid, pw = new_charger(server)

    async def scenario():
        async with charge_point(server, cid, V, pw) as cp:
            await cp.boot()
            await cp.status_notification(1, 1, "Available")
            await await_until(status_is(server, cid, 1, 1, "available"))
            body = await server.aok(
                "POST", f"/api/v1/chargers/{cid}/commands/change-availability",
                {"evse_id": 1, "connector_id": 1, "available": False},
            )
            assert body == {"status": "Accepted", "response": {"status": "Accepted"}}
            req = await cp.wait_call("ChangeAvailability")
            assert req["operationalStatus"] == "Inoperative"
            assert req["evse"]["id"] == 1
            await await_until(status_is(server, cid, 1, 1, "unavailable"))

            body = await server.aok(
                "POST", f"/api/v1/chargers/{cid}/commands/change-availability",
                {"evse_id": 1, "connector_id": 1, "available": True},
            )
            assert body["status"] == "Accepted"
            assert (await cp.wait_call("ChangeAvailability", 2))["operationalStatus"] == "Operative"
            await await_until(status_is(server, cid, 1, 1, "available"))

    run(scenario())


def test_reset_maps_hard_to_immediate_and_soft_to_on_idle(server):
    cid, pw = new_charger(server)

    async def scenario():
        async with charge_point(server, cid, V, pw) as cp:
            await cp.boot()
            body = await server.aok("POST", f"/api/v1/chargers/{cid}/commands/reset", {"hard": True})
            assert body == {"status": "Accepted", "response": {"status": "Accepted"}}
            assert await cp.wait_call("Reset") == {"type": "Immediate"}
            cp.answers["Reset"] = "Scheduled"
            body = await server.aok("POST", f"/api/v1/chargers/{cid}/commands/reset", {"hard": False})
            assert body == {"status": "Scheduled", "response": {"status": "Scheduled"}}
            assert await cp.wait_call("Reset", 2) == {"type": "OnIdle"}

    run(scenario())


def test_unlock_connector(server):
    cid, pw = new_charger(server)

    async def scenario():
        async with charge_point(server, cid, V, pw) as cp:
            await cp.boot()
            body = await server.aok(
                "POST", f"/api/v1/chargers/{cid}/commands/unlock-connector", {"evse_id": 2, "connector_id": 1}
            )
            assert body == {"status": "Unlocked", "response": {"status": "Unlocked"}}
            assert await cp.wait_call("UnlockConnector") == {"evseId": 2, "connectorId": 1}

    run(scenario())


def test_trigger_message(server):
    cid, pw = new_charger(server)

    async def scenario():
        async with charge_point(server, cid, V, pw) as cp:
            await cp.boot()
            body = await server.aok("POST", f"/api/v1/chargers/{cid}/commands/trigger", {"message": "Heartbeat"})
            assert body == {"status": "Accepted", "response": {"status": "Accepted"}}
            assert await cp.wait_call("TriggerMessage") == {"requestedMessage": "Heartbeat"}
            await cp.wait_completed("Heartbeat")

            body = await server.aok(
                "POST", f"/api/v1/chargers/{cid}/commands/trigger",
                {"message": "StatusNotification", "evse_id": 1, "connector_id": 1},
            )
            assert body["status"] == "Accepted"
            assert await cp.wait_call("TriggerMessage", 2) == {
                "requestedMessage": "StatusNotification", "evse": {"id": 1, "connectorId": 1}
            }
            await await_until(status_is(server, cid, 1, 1, "available"))

    run(scenario())


def test_get_and_set_configuration_map_to_get_and_set_variables(server):
    cid, pw = new_charger(server)

    async def scenario():
        async with charge_point(server, cid, V, pw) as cp:
            await cp.boot()
            base = f"/api/v1/chargers/{cid}/commands"
            body = await server.aok("POST", f"{base}/get-configuration",
                                    {"keys": ["OCPPCommCtrlr.HeartbeatInterval", "Nope.Nothing"]})
            assert await cp.wait_call("GetVariables") == {"getVariableData": [
                {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}},
                {"component": {"name": "Nope"}, "variable": {"name": "Nothing"}},
            ]}
            assert body["response"] == {"getVariableResult": [
                {"attributeStatus": "Accepted", "attributeValue": "300",
                 "component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}},
                {"attributeStatus": "UnknownVariable",
                 "component": {"name": "Nope"}, "variable": {"name": "Nothing"}},
            ]}

            body = await server.aok("POST", f"{base}/set-configuration",
                                    {"key": "OCPPCommCtrlr.HeartbeatInterval", "value": "120"})
            assert body["status"] == "Accepted"
            assert await cp.wait_call("SetVariables") == {"setVariableData": [
                {"attributeValue": "120", "component": {"name": "OCPPCommCtrlr"},
                 "variable": {"name": "HeartbeatInterval"}},
            ]}
            assert cp.variables[("OCPPCommCtrlr", "HeartbeatInterval")] == "120"
            body = await server.aok("POST", f"{base}/set-configuration", {"key": "Nope.Nothing", "value": "1"})
            assert body["status"] == "UnknownVariable"

            body = await server.aok("POST", f"{base}/get-base-report", {"report_base": "FullInventory"})
            assert body == {"status": "Accepted", "response": {"status": "Accepted"}}
            req = await cp.wait_call("GetBaseReport")
            assert req["reportBase"] == "FullInventory" and isinstance(req["requestId"], int)

    run(scenario())


def test_other_charger_initiated_messages_are_answered(server):
    cid, pw = new_charger(server)

    async def scenario():
        from ocpp.v201 import call as call201

        async with charge_point(server, cid, V, pw) as cp:
            await cp.boot()
            await cp.call(call201.MeterValues(evse_id=1, meter_value=cp.meter(1234.0)), suppress=False)
            await cp.call(
                call201.NotifyEvent(
                    generated_at=now(), seq_no=0,
                    event_data=[{
                        "event_id": 1, "timestamp": now(), "trigger": "Delta", "actual_value": "Faulted",
                        "event_notification_type": "HardWiredNotification",
                        "component": {"name": "Connector", "evse": {"id": 1, "connector_id": 1}},
                        "variable": {"name": "AvailabilityState"},
                    }],
                ),
                suppress=False,
            )
            await cp.call(call201.SecurityEventNotification(type="StartupOfTheDevice", timestamp=now()), suppress=False)
            await cp.call(call201.NotifyReport(request_id=1, generated_at=now(), seq_no=0), suppress=False)
            await cp.heartbeat()

    run(scenario())


def test_offline_when_disconnected(server):
    cid, pw = new_charger(server)

    async def scenario():
        with EventStream(server) as events:
            async with charge_point(server, cid, V, pw) as cp:
                await cp.boot()
                await cp.status_notification(1, 1, "Available")
                await await_until(status_is(server, cid, 1, 1, "available"))
            charger = await await_until(lambda: (lambda c: c if not c["online"] else None)(server.charger(cid)))
            assert [c["status"] for c in charger["connectors"]] == ["offline"]
            await events.await_for(event_is("charger_offline", cid))
            r = await server.aapi("POST", f"/api/v1/chargers/{cid}/commands/trigger", {"message": "Heartbeat"})
            assert r.status_code == 409, r.text

    run(scenario())
