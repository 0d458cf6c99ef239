"""OCPP 1.6J charge points (the `ocpp` package) against a live server: boot, heartbeat, status,
authorisation, sessions with meter values, and every command through the REST API."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import pytest

from chargepoints import charge_point
from harness import EventStream, await_until, event_is, run, same_reason, uid

V = "1.6"

STATUS_MAP_16 = {
    "Available": "available",
    "Preparing": "occupied",
    "Charging": "charging",
    "SuspendedEVSE": "occupied",
    "SuspendedEV": "occupied",
    "Finishing": "occupied",
    "Reserved": "reserved",
    "Unavailable": "unavailable",
    "Faulted": "faulted",
}


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def new_charger(server, password: str | None = "s3cret-pass-16chars") -> tuple[str, str | None]:
    cid = uid("cp16")
    server.register(cid, password=password)
    return cid, password


def new_tag(server, status: str = "accepted", expiry: str | None = None) -> str:
    tag = uid("TAG")[:20]
    server.add_tag(tag, status, expiry)
    return tag


def test_boot_is_accepted_with_interval_and_details_are_stored(server):
    cid, pw = new_charger(server)

    async def scenario():
        async with charge_point(server, cid, V, pw) as cp:
            res = await cp.boot(
                vendor="ABB", model="Terra 54", charge_point_serial_number="SN-4711", firmware_version="1.2.3"
            )
            assert res.status == "Accepted"
            assert res.interval == 77
            server_time = parse_time(res.current_time)
            assert abs(server_time - datetime.now(timezone.utc)) < timedelta(minutes=10)

            charger = await asyncio.to_thread(server.charger, cid)
            assert charger["id"] == cid
            assert charger["station_id"] == "test-station"
            assert charger["protocol"] == "ocpp1.6"
            assert charger["online"] is True
            assert charger["vendor"] == "ABB"
            assert charger["model"] == "Terra 54"
            assert charger["serial_number"] == "SN-4711"
            assert charger["firmware_version"] == "1.2.3"
            assert charger["registration"] == "accepted"
            assert "s3cret-pass-16chars" not in json.dumps(charger)

    run(scenario())


def test_heartbeat_answers_current_time(server):
    cid, pw = new_charger(server)

    async def scenario():
        async with charge_point(server, cid, V, pw) as cp:
            await cp.boot()
            for _ in range(3):
                res = await cp.heartbeat()
                assert abs(parse_time(res.current_time) - datetime.now(timezone.utc)) < timedelta(minutes=10)

    run(scenario())


def test_every_status_maps_to_the_internal_model_and_is_streamed(server):
    cid, pw = new_charger(server)

    async def scenario():
        with EventStream(server) as events:
            async with charge_point(server, cid, V, pw) as cp:
                await cp.boot()
                await cp.status_notification(0, "Available")  # the whole charger: not a connector
                await cp.status_notification(2, "Available")
                previous = None
                for ocpp_status, internal in STATUS_MAP_16.items():
                    await cp.status_notification(1, ocpp_status)
                    c = await await_until(
                        lambda: (lambda c: c if c and c["status"] == internal else None)(server.connector(cid, 1)),
                        what=f"connector 1 {internal} after {ocpp_status}",
                    )
                    assert c["evse_id"] == 1 and c["connector_id"] == 1
                    assert c["error_code"] in (None, "NoError")
                    assert c["updated_at"]
                    if previous is not None and previous != internal:
                        ev = await events.await_for(
                            event_is("status_changed", cid, connector_id=1, status=internal, previous=previous),
                            what=f"status_changed {previous}->{internal}",
                        )
                        assert ev["evse_id"] == 1
                        assert ev["station_id"] == "test-station"
                    previous = internal

                await cp.status_notification(1, "Faulted", error_code="GroundFailure")
                c = await await_until(
                    lambda: (lambda c: c if c and c["error_code"] == "GroundFailure" else None)(server.connector(cid, 1))
                )
                assert c["status"] == "faulted"

                charger = await asyncio.to_thread(server.charger, cid)
                ids = sorted((c["evse_id"], c["connector_id"]) for c in charger["connectors"])
                assert ids == [(1, 1), (2, 2)], "connectorId 0 must not be listed as a connector"

    run(scenario())


def test_authorised_session_with_meter_values(server):
    cid, pw = new_charger(server)
    tag = new_tag(server)

    async def scenario():
        with EventStream(server) as events:
            async with charge_point(server, cid, V, pw) as cp:
                await cp.boot()
                await cp.status_notification(1, "Available")
                auth = await cp.authorize(tag)
                assert auth.id_tag_info["status"] == "Accepted"

                await cp.status_notification(1, "Preparing")
                await await_until(lambda: server.connector(cid, 1)["status"] == "occupied")

                start = await cp.start_transaction(1, tag, meter_start=1000)
                assert start.id_tag_info["status"] == "Accepted"
                tx = start.transaction_id
                assert isinstance(tx, int)
                await cp.status_notification(1, "Charging")
                await await_until(lambda: server.connector(cid, 1)["status"] == "charging")

                open_sessions = await asyncio.to_thread(server.sessions, cid, open="true")
                assert [s["transaction_ref"] for s in open_sessions] == [str(tx)]
                s = open_sessions[0]
                assert s["stopped_at"] is None and s["meter_stop_wh"] is None
                assert s["meter_start_wh"] == 1000
                started = await events.await_for(event_is("session_started", cid, session_id=s["id"]))
                assert started["station_id"] == "test-station"

                await cp.meter_values(1, tx, 1500)
                await cp.meter_values(1, tx, 2500)
                await cp.status_notification(1, "SuspendedEV")
                await await_until(lambda: server.connector(cid, 1)["status"] == "occupied")
                await cp.status_notification(1, "Charging")

                stop = await cp.stop_transaction(
                    tx,
                    3500,
                    reason="EVDisconnected",
                    id_tag=tag,
                    transaction_data=[
                        {"timestamp": iso(datetime.now(timezone.utc)),
                         "sampled_value": [{"value": "3500", "measurand": "Energy.Active.Import.Register",
                                            "unit": "Wh", "context": "Transaction.End"}]}
                    ],
                )
                if stop.id_tag_info is not None:
                    assert stop.id_tag_info["status"] == "Accepted"
                await cp.status_notification(1, "Finishing")
                await await_until(lambda: server.connector(cid, 1)["status"] == "occupied")
                await cp.status_notification(1, "Available")
                await await_until(lambda: server.connector(cid, 1)["status"] == "available")

                sessions = await asyncio.to_thread(server.sessions, cid)
                assert len(sessions) == 1
                s = sessions[0]
                assert s["charger_id"] == cid
                assert s["connector_id"] == 1 and s["evse_id"] == 1
                assert s["transaction_ref"] == str(tx)
                assert s["id_tag"] == tag
                assert s["meter_start_wh"] == 1000
                assert s["meter_stop_wh"] == 3500
                assert s["energy_wh"] == 2500
                assert same_reason(s["stop_reason"], "EVDisconnected")
                assert parse_time(s["stopped_at"]) >= parse_time(s["started_at"])
                assert await asyncio.to_thread(server.sessions, cid, open="true") == []
                assert await server.aok("GET", f"/api/v1/sessions/{s['id']}") == s

                stopped = await events.await_for(event_is("session_stopped", cid, session_id=s["id"]))
                assert stopped["energy_wh"] == 2500
                assert same_reason(stopped["reason"], "EVDisconnected")

    run(scenario())


def test_rejected_and_unknown_id_tags(server):
    cid, pw = new_charger(server)
    blocked = new_tag(server, "blocked")
    expired_flag = new_tag(server, "expired")
    invalid_flag = new_tag(server, "invalid")
    past = iso(datetime.now(timezone.utc) - timedelta(days=1))
    future = iso(datetime.now(timezone.utc) + timedelta(days=30))
    past_expiry = new_tag(server, "accepted", past)
    future_expiry = new_tag(server, "accepted", future)
    deleted = new_tag(server)
    server.ok("DELETE", f"/api/v1/id-tags/{deleted}", status=(200, 204))

    async def scenario():
        async with charge_point(server, cid, V, pw) as cp:
            await cp.boot()
            expectations = {
                blocked: "Blocked",
                "NEVER-SEEN-TAG": "Invalid",
                expired_flag: "Expired",
                invalid_flag: "Invalid",
                past_expiry: "Expired",
                future_expiry: "Accepted",
                deleted: "Invalid",
            }
            for tag, status in expectations.items():
                res = await cp.authorize(tag)
                assert res.id_tag_info["status"] == status, f"Authorize({tag})"

            # A StartTransaction with a blocked tag is still answered (the charger must stop it).
            start = await cp.start_transaction(1, blocked, meter_start=0)
            assert start.id_tag_info["status"] == "Blocked"
            await cp.stop_transaction(start.transaction_id, 0, reason="DeAuthorized")

    run(scenario())


def test_remote_start_and_remote_stop_through_the_api(server):
    cid, pw = new_charger(server)
    tag = new_tag(server)

    async def scenario():
        with EventStream(server) as events:
            async with charge_point(server, cid, V, pw) as cp:
                await cp.boot()
                await cp.status_notification(1, "Available")
                cp.meter_wh = 5000

                body = await server.aok(
                    "POST", f"/api/v1/chargers/{cid}/commands/remote-start", {"connector_id": 1, "id_tag": tag}
                )
                assert body["status"] == "Accepted"
                assert body["response"] == {"status": "Accepted"}
                assert await cp.wait_call("RemoteStartTransaction") == {"idTag": tag, "connectorId": 1}

                await asyncio.wait_for(cp.remote_tx_started.wait(), 15)
                tx = cp.transactions[1]
                sessions = await await_until(lambda: server.sessions(cid, open="true"))
                assert sessions[0]["transaction_ref"] == str(tx)
                assert sessions[0]["id_tag"] == tag
                session_id = sessions[0]["id"]
                await events.await_for(event_is("session_started", cid, session_id=session_id))
                await await_until(lambda: server.connector(cid, 1)["status"] == "charging")

                body = await server.aok(
                    "POST", f"/api/v1/chargers/{cid}/commands/remote-stop", {"session_id": session_id}
                )
                assert body["status"] == "Accepted"
                assert body["response"] == {"status": "Accepted"}
                assert await cp.wait_call("RemoteStopTransaction") == {"transactionId": tx}

                await asyncio.wait_for(cp.remote_tx_stopped.wait(), 15)
                s = await await_until(
                    lambda: (lambda s: s if s["stopped_at"] else None)(server.ok("GET", f"/api/v1/sessions/{session_id}"))
                )
                assert s["meter_start_wh"] == 5000 and s["meter_stop_wh"] == 7000 and s["energy_wh"] == 2000
                assert same_reason(s["stop_reason"], "Remote")
                ev = await events.await_for(event_is("session_stopped", cid, session_id=session_id))
                assert ev["energy_wh"] == 2000

    run(scenario())


def test_api_relays_the_chargers_own_refusal(server):
    cid, pw = new_charger(server)
    tag = new_tag(server)

    async def scenario():
        async with charge_point(server, cid, V, pw) as cp:
            await cp.boot()
            cp.answers["RemoteStartTransaction"] = "Rejected"
            body = await server.aok(
                "POST", f"/api/v1/chargers/{cid}/commands/remote-start", {"connector_id": 2, "id_tag": tag}
            )
            assert body == {"status": "Rejected", "response": {"status": "Rejected"}}
            assert await cp.wait_call("RemoteStartTransaction") == {"idTag": tag, "connectorId": 2}
            assert await asyncio.to_thread(server.sessions, cid) == []

    run(scenario())


def test_change_availability(server):
    cid, pw = new_charger(server)

    async def scenario():
        async with charge_point(server, cid, V, pw) as cp:
            await cp.boot()
            await cp.status_notification(1, "Available")
            await await_until(lambda: server.connector(cid, 1)["status"] == "available")

            body = await server.aok(
                "POST", f"/api/v1/chargers/{cid}/commands/change-availability", {"connector_id": 1, "available": False}
            )
            assert body == {"status": "Accepted", "response": {"status": "Accepted"}}
            assert await cp.wait_call("ChangeAvailability") == {"connectorId": 1, "type": "Inoperative"}
            await await_until(lambda: server.connector(cid, 1)["status"] == "unavailable")

            body = await server.aok(
                "POST", f"/api/v1/chargers/{cid}/commands/change-availability", {"connector_id": 1, "available": True}
            )
            assert body["status"] == "Accepted"
            assert await cp.wait_call("ChangeAvailability", 2) == {"connectorId": 1, "type": "Operative"}
            await await_until(lambda: server.connector(cid, 1)["status"] == "available")

            cp.answers["ChangeAvailability"] = "Scheduled"
            body = await server.aok(
                "POST", f"/api/v1/chargers/{cid}/commands/change-availability", {"connector_id": 0, "available": False}
            )
            assert body == {"status": "Scheduled", "response": {"status": "Scheduled"}}
            assert await cp.wait_call("ChangeAvailability", 3) == {"connectorId": 0, "type": "Inoperative"}

    run(scenario())


def test_reset_hard_and_soft(server):
    cid, pw = new_charger(server)

    async def scenario():
        async with charge_point(server, cid, V, pw) as cp:
            await cp.boot()
            body = await server.aok("POST", f"/api/v1/chargers/{cid}/commands/reset", {"hard": True})
            assert body == {"status": "Accepted", "response": {"status": "Accepted"}}
            assert await cp.wait_call("Reset") == {"type": "Hard"}

            cp.answers["Reset"] = "Rejected"
            body = await server.aok("POST", f"/api/v1/chargers/{cid}/commands/reset", {"hard": False})
            assert body == {"status": "Rejected", "response": {"status": "Rejected"}}
            assert await cp.wait_call("Reset", 2) == {"type": "Soft"}

    run(scenario())


def test_unlock_connector(server):
    cid, pw = new_charger(server)

    async def scenario():
        async with charge_point(server, cid, V, pw) as cp:
            await cp.boot()
            body = await server.aok("POST", f"/api/v1/chargers/{cid}/commands/unlock-connector", {"connector_id": 2})
            assert body == {"status": "Unlocked", "response": {"status": "Unlocked"}}
            assert await cp.wait_call("UnlockConnector") == {"connectorId": 2}

    run(scenario())


def test_trigger_message(server):
    cid, pw = new_charger(server)

    async def scenario():
        async with charge_point(server, cid, V, pw) as cp:
            await cp.boot()
            await cp.status_notification(1, "Available")
            body = await server.aok("POST", f"/api/v1/chargers/{cid}/commands/trigger", {"message": "Heartbeat"})
            assert body == {"status": "Accepted", "response": {"status": "Accepted"}}
            assert await cp.wait_call("TriggerMessage") == {"requestedMessage": "Heartbeat"}
            await cp.wait_completed("Heartbeat")  # the triggered Heartbeat was answered

            cp.status[1] = "Reserved"  # the charger's real state, reported when triggered
            body = await server.aok(
                "POST", f"/api/v1/chargers/{cid}/commands/trigger", {"message": "StatusNotification", "connector_id": 1}
            )
            assert body["status"] == "Accepted"
            assert await cp.wait_call("TriggerMessage", 2) == {"requestedMessage": "StatusNotification", "connectorId": 1}
            await await_until(lambda: server.connector(cid, 1)["status"] == "reserved")

            body = await server.aok(
                "POST", f"/api/v1/chargers/{cid}/commands/trigger", {"message": "DiagnosticsStatusNotification"}
            )
            assert body == {"status": "NotImplemented", "response": {"status": "NotImplemented"}}

    run(scenario())


def test_get_and_set_configuration(server):
    cid, pw = new_charger(server)

    async def scenario():
        async with charge_point(server, cid, V, pw) as cp:
            await cp.boot()
            body = await server.aok(
                "POST", f"/api/v1/chargers/{cid}/commands/get-configuration", {"keys": ["HeartbeatInterval", "Nope"]}
            )
            assert body["response"] == {
                "configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}],
                "unknownKey": ["Nope"],
            }
            assert await cp.wait_call("GetConfiguration") == {"key": ["HeartbeatInterval", "Nope"]}

            body = await server.aok(
                "POST", f"/api/v1/chargers/{cid}/commands/set-configuration", {"key": "HeartbeatInterval", "value": "120"}
            )
            assert body == {"status": "Accepted", "response": {"status": "Accepted"}}
            assert await cp.wait_call("ChangeConfiguration") == {"key": "HeartbeatInterval", "value": "120"}

            body = await server.aok("POST", f"/api/v1/chargers/{cid}/commands/get-configuration", {})
            assert (await cp.wait_call("GetConfiguration", 2)).get("key") in (None, [])
            by_key = {k["key"]: k for k in body["response"]["configurationKey"]}
            assert set(by_key) == {"HeartbeatInterval", "MeterValueSampleInterval", "NumberOfConnectors"}
            assert by_key["HeartbeatInterval"]["value"] == "120"
            assert by_key["NumberOfConnectors"]["readonly"] is True

            body = await server.aok(
                "POST", f"/api/v1/chargers/{cid}/commands/set-configuration", {"key": "NumberOfConnectors", "value": "9"}
            )
            assert body == {"status": "Rejected", "response": {"status": "Rejected"}}
            body = await server.aok(
                "POST", f"/api/v1/chargers/{cid}/commands/set-configuration", {"key": "NoSuchKey", "value": "1"}
            )
            assert body == {"status": "NotSupported", "response": {"status": "NotSupported"}}

    run(scenario())


def test_clear_cache(server):
    cid, pw = new_charger(server)

    async def scenario():
        async with charge_point(server, cid, V, pw) as cp:
            await cp.boot()
            body = await server.aok("POST", f"/api/v1/chargers/{cid}/commands/clear-cache", {})
            assert body == {"status": "Accepted", "response": {"status": "Accepted"}}
            assert await cp.wait_call("ClearCache") == {}

    run(scenario())


def test_other_charger_initiated_messages_are_answered(server):
    cid, pw = new_charger(server)

    async def scenario():
        from ocpp.v16 import call as call16

        async with charge_point(server, cid, V, pw) as cp:
            await cp.boot()
            res = await cp.call(call16.DataTransfer(vendor_id="com.example", message_id="hello", data="x"), suppress=False)
            assert res.status in ("Accepted", "Rejected", "UnknownVendorId", "UnknownMessageId")
            await cp.call(call16.DiagnosticsStatusNotification(status="Uploaded"), suppress=False)
            await cp.call(call16.FirmwareStatusNotification(status="Installed"), suppress=False)
            await cp.meter_values(1, None, 1234)  # outside a transaction
            await cp.heartbeat()

    run(scenario())


def test_repeated_start_transaction_creates_no_duplicate(server):
    cid, pw = new_charger(server)
    tag = new_tag(server)

    async def scenario():
        async with charge_point(server, cid, V, pw) as cp:
            await cp.boot()
            ts = iso(datetime.now(timezone.utc) - timedelta(minutes=5))
            first = await cp.start_transaction(1, tag, meter_start=400, timestamp=ts)
            # The charger did not see the answer (say the connection dropped) and sends it again.
            again = await cp.start_transaction(1, tag, meter_start=400, timestamp=ts)
            assert again.transaction_id == first.transaction_id
            sessions = await asyncio.to_thread(server.sessions, cid)
            assert len(sessions) == 1
            await cp.stop_transaction(first.transaction_id, 900)
            s = (await asyncio.to_thread(server.sessions, cid))[0]
            assert s["energy_wh"] == 500

    run(scenario())


def test_offline_charger_and_reconnect(server):
    cid, pw = new_charger(server)

    async def scenario():
        with EventStream(server) as events:
            async with charge_point(server, cid, V, pw) as cp:
                await cp.boot()
                await cp.status_notification(1, "Available")
                await cp.status_notification(2, "Charging")
                await events.await_for(event_is("charger_online", cid))
                await await_until(lambda: server.connector(cid, 2)["status"] == "charging")

            charger = await await_until(lambda: (lambda c: c if c["online"] is False else None)(server.charger(cid)))
            assert {c["status"] for c in charger["connectors"]} == {"offline"}
            await events.await_for(event_is("charger_offline", cid))

            r = await server.aapi("POST", f"/api/v1/chargers/{cid}/commands/reset", {"hard": True})
            assert r.status_code == 409, r.text
            assert set(r.json()) >= {"code", "message"}

            async with charge_point(server, cid, V, pw) as cp:
                await cp.boot()
                await cp.status_notification(1, "Available")
                await await_until(lambda: server.charger(cid)["online"] is True)
                await await_until(lambda: server.connector(cid, 1)["status"] == "available")
                assert len(events.matching(event_is("charger_online", cid))) >= 2

    run(scenario())


def test_reconnect_replays_a_stop_transaction_the_charger_could_not_deliver(server):
    cid, pw = new_charger(server)
    tag = new_tag(server)
    started_at = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2)
    stopped_at = started_at + timedelta(hours=1)

    async def scenario():
        async with charge_point(server, cid, V, pw) as cp:
            await cp.boot()
            start = await cp.start_transaction(1, tag, meter_start=100_000, timestamp=iso(started_at))
            tx = start.transaction_id
            await cp.meter_values(1, tx, 110_000)
        # The connection is gone; the charger stopped the transaction while offline.
        await await_until(lambda: server.charger(cid)["online"] is False)
        s = (await asyncio.to_thread(server.sessions, cid))[0]
        assert s["stopped_at"] is None

        async with charge_point(server, cid, V, pw) as cp:
            assert (await cp.boot()).status == "Accepted"
            await cp.status_notification(1, "Available")
            await cp.stop_transaction(
                tx, 125_000, reason="EVDisconnected", timestamp=iso(stopped_at),
                transaction_data=[
                    {"timestamp": iso(stopped_at),
                     "sampled_value": [{"value": "125000", "measurand": "Energy.Active.Import.Register",
                                        "unit": "Wh", "context": "Transaction.End"}]}
                ],
            )
            sessions = await asyncio.to_thread(server.sessions, cid)
            assert len(sessions) == 1
            s = sessions[0]
            assert s["transaction_ref"] == str(tx)
            assert s["energy_wh"] == 25_000
            assert s["meter_stop_wh"] == 125_000
            # Times are the charger's, not the time the messages arrived.
            assert abs(parse_time(s["started_at"]) - started_at) < timedelta(seconds=2)
            assert abs(parse_time(s["stopped_at"]) - stopped_at) < timedelta(seconds=2)

    run(scenario())


def test_station_counts_connectors_by_status(server):
    station = uid("st-counts")
    server.ensure_station(station, name="G4 Test Service Area", lat=30.5, lon=114.3, highway="G4", direction="north")
    cid = uid("cp16")
    server.register(cid, password="station-counts-pass16", station=station)

    async def scenario():
        async with charge_point(server, cid, V, "station-counts-pass16") as cp:
            await cp.boot()
            await cp.status_notification(1, "Available")
            await cp.status_notification(2, "Charging")
            await cp.status_notification(3, "Preparing")

            def counts():
                st = server.ok("GET", f"/api/v1/stations/{station}")
                c = st["connectors"]
                return st if (c["available"], c["charging"], c["occupied"]) == (1, 1, 1) else None

            st = await await_until(counts, what="station counts 1 available / 1 charging / 1 occupied")
            assert st["chargers"] == 1
            assert st["name"] == "G4 Test Service Area"
            assert st["lat"] == pytest.approx(30.5) and st["lon"] == pytest.approx(114.3)
            assert st["highway"] == "G4" and st["direction"] == "north"
            assert st["connectors"]["offline"] == 0
        st = await await_until(
            lambda: (lambda s: s if s["connectors"]["offline"] == 3 else None)(server.ok("GET", f"/api/v1/stations/{station}"))
        )
        assert st["connectors"]["available"] == 0

    run(scenario())
