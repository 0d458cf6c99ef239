"""Bad input from chargers: every case gets the protocol's proper answer, the connection survives
where it should (it still answers a Heartbeat), neighbours are not disturbed and the server stays
healthy. Raw `websockets` peers are used because the `ocpp` package refuses to send invalid frames.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chargepoints import charge_point
from harness import RawPeer, body_list, boot_payload, open_ws, run, uid, wait_closed

VERSIONS = ["1.6", "2.0.1"]

# Error codes per version. OCPP 1.6 spells "Occurence" with one r, 2.0.1 with two.
FORMAT = {"1.6": {"FormationViolation"}, "2.0.1": {"FormatViolation", "RpcFrameworkError"}}
# Both versions keep the 1.6 typo; OCPP 2.1 is the first to spell it right.
OCCURRENCE = {"1.6": "OccurenceConstraintViolation", "2.0.1": "OccurenceConstraintViolation"}
# An unknown message type: OCPP-J 1.6 section 4.1.3 has the receiver ignore it (None: no
# answer at all, the connection stays up); 2.0.1 answers MessageTypeNotSupported.
UNKNOWN_TYPE = {
    "1.6": None,
    "2.0.1": {"MessageTypeNotSupported"},
}
STRUCTURE = {"1.6": {"FormationViolation", "PropertyConstraintViolation"},
             "2.0.1": {"FormatViolation", "PropertyConstraintViolation"}}
LENGTH = {"TypeConstraintViolation", "PropertyConstraintViolation"}


@pytest.fixture(scope="module")
def srv(open_server):
    return open_server


async def booted_peer(server, version, cid=None) -> RawPeer:
    cid = cid or uid(f"raw{version.replace('.', '')}")
    peer = await RawPeer.connect(server, cid, version)
    peer.charger_id = cid
    res = await peer.call("BootNotification", boot_payload(version))
    assert res[0] == 3 and res[2]["status"] == "Accepted", res
    return peer


async def assert_alive(server, peer: RawPeer) -> None:
    """The connection still answers a Heartbeat and the server is healthy."""
    res = await peer.call("Heartbeat", {})
    assert res[0] == 3 and "currentTime" in res[2], f"Heartbeat after bad input answered {res}"
    assert await asyncio.to_thread(server.healthy)


def assert_call_error(frame, msg_id, codes) -> None:
    codes = {codes} if isinstance(codes, str) else set(codes)
    assert isinstance(frame, list) and len(frame) == 5, f"not a CALLERROR: {frame}"
    assert frame[0] == 4, f"not a CALLERROR: {frame}"
    assert frame[1] == msg_id, f"CALLERROR for id {frame[1]!r}, expected {msg_id!r}: {frame}"
    assert frame[2] in codes, f"error code {frame[2]!r}, expected one of {sorted(codes)}: {frame}"
    assert isinstance(frame[3], str) and isinstance(frame[4], dict), f"bad CALLERROR shape: {frame}"


def frame_cases(version):
    """(name, raw text sent, expected message id in the CALLERROR, accepted codes)."""
    fmt = FORMAT[version]
    return [
        ("not json", "this is not json", "-1", fmt),
        ("truncated json", '[2,"trunc-1","Heartbeat",{', "-1", fmt),
        ("json object, not array", '{"messageTypeId": 2}', "-1", fmt),
        ("empty array", "[]", "-1", fmt),
        ("bare string", '"hello"', "-1", fmt),
        ("call without payload", '[2,"shape-1","Heartbeat"]', "shape-1", fmt),
        ("call with extra element", '[2,"shape-2","Heartbeat",{},{}]', "shape-2", fmt),
        ("payload is not an object", '[2,"shape-3","Heartbeat","x"]', "shape-3", fmt | {"TypeConstraintViolation"}),
        ("action is not a string", '[2,"shape-4",17,{}]', "shape-4", fmt),
        ("unknown message type", '[9,"type-1","Heartbeat",{}]', "type-1", UNKNOWN_TYPE[version]),
        ("unknown action", '[2,"act-1","DanceParty",{}]', "act-1", "NotImplemented"),
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_malformed_frames_get_the_right_call_error(srv, version):
    async def scenario():
        peer = await booted_peer(srv, version)
        failures = []
        for name, text, msg_id, codes in frame_cases(version):
            await peer.send(text)
            if codes is None:
                # Must be ignored: the next frame is the Heartbeat's answer, and nothing
                # about this message id ever arrives.
                await assert_alive(srv, peer)
                stray = [f for f in peer.server_calls if isinstance(f, list) and msg_id in f]
                if stray:
                    failures.append(f"{name}: sent {text!r}, expected silence, got {stray}")
                continue
            frame = await peer.recv()
            try:
                assert_call_error(frame, msg_id, codes)
            except AssertionError as e:
                failures.append(f"{name}: sent {text!r}, got {json.dumps(frame)} ({e})")
            await assert_alive(srv, peer)
        await peer.close()
        assert not failures, "\n".join(failures)

    run(scenario())


@pytest.mark.parametrize("version", VERSIONS)
def test_known_action_the_server_does_not_take_is_not_supported(srv, version):
    payload = {"type": "Hard"} if version == "1.6" else {"type": "Immediate"}

    async def scenario():
        peer = await booted_peer(srv, version)
        # Reset exists in the spec but is sent by the central system, never to it.
        res = await peer.call("Reset", payload, msg_id="act-2")
        assert_call_error(res, "act-2", "NotSupported")
        await assert_alive(srv, peer)
        await peer.close()

    run(scenario())


def schema_cases(version):
    """(name, action, payload, accepted codes)."""
    if version == "1.6":
        return [
            ("wrong type", "BootNotification", {"chargePointVendor": 12, "chargePointModel": "M"},
             "TypeConstraintViolation"),
            ("integer field with a string", "StartTransaction",
             {"connectorId": 1, "idTag": "T", "meterStart": "lots", "timestamp": "2024-01-01T00:00:00Z"},
             "TypeConstraintViolation"),
            ("integer field with a fraction", "StartTransaction",
             {"connectorId": 1, "idTag": "T", "meterStart": 1.5, "timestamp": "2024-01-01T00:00:00Z"},
             "TypeConstraintViolation"),
            ("missing required field", "BootNotification", {"chargePointVendor": "V"}, OCCURRENCE[version]),
            ("missing required field (status)", "StatusNotification", {"connectorId": 1, "errorCode": "NoError"},
             OCCURRENCE[version]),
            ("value not in enum", "StatusNotification",
             {"connectorId": 1, "errorCode": "NoError", "status": "Dancing"}, "PropertyConstraintViolation"),
            ("string too long", "BootNotification", {"chargePointVendor": "V" * 21, "chargePointModel": "M"}, LENGTH),
            ("unknown property", "BootNotification",
             {"chargePointVendor": "V", "chargePointModel": "M", "colour": "red"}, STRUCTURE[version]),
        ]
    return [
        ("wrong type", "BootNotification", {"reason": "PowerUp", "chargingStation": {"vendorName": "V", "model": 12}},
         "TypeConstraintViolation"),
        ("integer field with a string", "StatusNotification",
         {"timestamp": "2024-01-01T00:00:00Z", "connectorStatus": "Available", "evseId": "one", "connectorId": 1},
         "TypeConstraintViolation"),
        ("missing required field", "BootNotification", {"reason": "PowerUp"}, OCCURRENCE[version]),
        ("missing nested required field", "BootNotification",
         {"reason": "PowerUp", "chargingStation": {"model": "M"}}, OCCURRENCE[version]),
        ("value not in enum", "BootNotification",
         {"reason": "Bored", "chargingStation": {"vendorName": "V", "model": "M"}}, "PropertyConstraintViolation"),
        ("string too long", "BootNotification",
         {"reason": "PowerUp", "chargingStation": {"vendorName": "V", "model": "M" * 21}}, LENGTH),
        ("unknown property", "BootNotification",
         {"reason": "PowerUp", "chargingStation": {"vendorName": "V", "model": "M"}, "colour": "red"},
         STRUCTURE[version]),
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_schema_violations_get_the_right_call_error(srv, version):
    async def scenario():
        peer = await booted_peer(srv, version)
        failures = []
        for i, (name, action, payload, codes) in enumerate(schema_cases(version)):
            msg_id = f"schema-{i}"
            frame = await peer.call(action, payload, msg_id=msg_id)
            try:
                assert_call_error(frame, msg_id, codes)
            except AssertionError as e:
                failures.append(f"{name}: sent {json.dumps([2, msg_id, action, payload])}, got {json.dumps(frame)} ({e})")
            await assert_alive(srv, peer)
        await peer.close()
        assert not failures, "\n".join(failures)

    run(scenario())


@pytest.mark.parametrize("version", VERSIONS)
def test_answers_to_calls_never_made_are_ignored(srv, version):
    async def scenario():
        peer = await booted_peer(srv, version)
        await peer.send([3, "never-asked", {"status": "Accepted"}])
        await peer.send([4, "never-asked-either", "GenericError", "", {}])
        res = await peer.call("Heartbeat", {}, msg_id="after-unknown-results")
        assert res[0] == 3 and "currentTime" in res[2]
        # Nothing else came back: the stray results are ignored (no CALLERROR, no close).
        assert peer.server_calls == [], f"server answered a stray result: {peer.server_calls}"
        await assert_alive(srv, peer)
        await peer.close()

    run(scenario())


@pytest.mark.parametrize("version", VERSIONS)
def test_oversized_frame_closes_only_that_connection_with_1009(srv, version):
    async def scenario():
        neighbour = await booted_peer(srv, version)
        peer = await booted_peer(srv, version)
        # Just under the 64 KiB limit is served normally.
        big_ok = "a" * 60_000
        res = await peer.call("DataTransfer", {"vendorId": "com.example", "data": big_ok})
        assert res[0] == 3, f"a 60 kB DataTransfer should be answered, got {str(res)[:200]}"

        huge = json.dumps([2, "huge-1", "DataTransfer", {"vendorId": "com.example", "data": "b" * (70 * 1024)}])
        await peer.send(huge)
        await wait_closed(peer.ws)
        assert peer.ws.close_code == 1009, f"closed with {peer.ws.close_code} {peer.ws.close_reason!r}"

        await assert_alive(srv, neighbour)
        # The charger can come back.
        again = await booted_peer(srv, version, peer.charger_id)
        await assert_alive(srv, again)
        await again.close()
        await neighbour.close()

    run(scenario())


def test_binary_frame_does_not_hurt_neighbours(srv):
    async def scenario():
        neighbour = await booted_peer(srv, "1.6")
        peer = await booted_peer(srv, "1.6")
        await peer.ws.send(b"\x00\x01\x02not text")
        try:
            frame = await peer.recv(timeout=5)
            assert frame[0] == 4, frame  # a CALLERROR is fine ...
            await assert_alive(srv, peer)
        except (ConnectionClosed, asyncio.TimeoutError):
            pass  # ... and so is closing the connection (OCPP-J is text only)
        await assert_alive(srv, neighbour)
        await neighbour.close()
        await peer.close()

    run(scenario())


# path -> accepted HTTP statuses. An id is one path segment; anything spanning segments under
# /ocpp/ is refused as an invalid id too.
BAD_IDS = {
    "dot dot": ("/ocpp/..", {400}),
    "encoded slash": ("/ocpp/a%2Fb", {400}),
    "encoded dot dot": ("/ocpp/%2E%2E", {400}),
    "encoded backslash": ("/ocpp/a%5Cb", {400}),
    "encoded NUL": ("/ocpp/a%00b", {400}),
    "slash": ("/ocpp/a/b", {400}),
    "dot dot inside": ("/ocpp/x/../y", {400}),
    "49 characters": ("/ocpp/" + "c" * 49, {400}),
    "1000 characters": ("/ocpp/" + "d" * 1000, {400}),
}


def test_charger_ids_with_path_tricks_or_too_long_are_refused(srv):
    async def scenario():
        failures = []
        for name, (path, statuses) in BAD_IDS.items():
            try:
                ws = await open_ws(srv, "ignored", ["ocpp1.6"], path=path)
            except InvalidStatus as e:
                if e.response.status_code not in statuses:
                    failures.append(f"{name} ({path[:60]}): HTTP {e.response.status_code}, expected {statuses}")
                continue
            await ws.close()
            failures.append(f"{name} ({path[:60]}): upgrade accepted")
        assert not failures, "\n".join(failures)

        # The longest allowed id (48 characters) is served (this server registers unknown chargers).
        longest = "e" * 48
        async with charge_point(srv, longest, "1.6") as cp:
            assert (await cp.boot()).status == "Accepted"
        ids = {c["id"] for c in body_list(await srv.aok("GET", "/api/v1/chargers"))}
        assert longest in ids
        assert not any(i.startswith("c" * 49) or i.startswith("d" * 49) or "/" in i or ".." in i or "\\" in i
                       or "\x00" in i for i in ids), ids
        assert await asyncio.to_thread(srv.healthy)

    run(scenario())


def test_wrong_password_does_not_disturb_the_real_charger(srv):
    cid = uid("victim")
    srv.register(cid, password="the-real-password-16")

    async def scenario():
        async with charge_point(srv, cid, "1.6", "the-real-password-16") as cp:
            await cp.boot()
            try:
                ws = await open_ws(srv, cid, ["ocpp1.6"], password="an-impostor-password")
                await ws.close()
                raise AssertionError("wrong password accepted")
            except InvalidStatus as e:
                assert e.response.status_code == 401
            await cp.heartbeat()
            assert not cp.ws.close_code, "the authenticated connection was closed by a failed login"
            assert (await asyncio.to_thread(srv.charger, cid))["online"] is True

    run(scenario())


@pytest.mark.parametrize("version", VERSIONS)
def test_second_connection_with_the_same_id_wins(srv, version):
    cid = uid("twin")

    async def scenario():
        async with charge_point(srv, cid, version) as older:
            await older.boot()
            async with charge_point(srv, cid, version) as newer:
                await newer.boot()
                await wait_closed(older.ws)  # the server closed the older connection
                await newer.heartbeat()
                charger = await asyncio.to_thread(srv.charger, cid)
                assert charger["online"] is True, "closing the older connection must not mark the charger offline"
                # Commands go to the newer connection.
                body = await srv.aok("POST", f"/api/v1/chargers/{cid}/commands/trigger", {"message": "Heartbeat"})
                assert body["status"] == "Accepted"
                await newer.wait_call("TriggerMessage")
                assert older.calls_of("TriggerMessage") == []

    run(scenario())


@pytest.mark.parametrize("offered", [["ocpp1.5"], None, ["ocpp3.0", "json"]], ids=["ocpp1.5", "none", "others"])
def test_connection_without_a_supported_subprotocol_is_closed(srv, offered):
    cid = uid("nosub")

    async def scenario():
        ws = await open_ws(srv, cid, offered)
        assert ws.subprotocol is None, f"server picked {ws.subprotocol!r}"
        with pytest.raises(ConnectionClosed):
            await ws.send(json.dumps([2, "b-1", "BootNotification", boot_payload("1.6")]))
            # Whatever the timing, no answer ever comes: only the close.
            reply = await asyncio.wait_for(ws.recv(), 15)
            raise AssertionError(f"server answered on a connection without subprotocol: {reply}")
        assert await asyncio.to_thread(srv.healthy)

    run(scenario())


def test_server_picks_one_of_the_offered_versions(srv):
    cid = uid("both")

    async def scenario():
        ws = await open_ws(srv, cid, ["ocpp2.0.1", "ocpp1.6"])
        assert ws.subprotocol in ("ocpp2.0.1", "ocpp1.6")
        version = ws.subprotocol.removeprefix("ocpp")
        peer = RawPeer(ws)
        res = await peer.call("BootNotification", boot_payload(version))
        assert res[0] == 3 and res[2]["status"] == "Accepted"
        charger = await asyncio.to_thread(srv.charger, cid)
        assert charger["protocol"] == ws.subprotocol
        await peer.close()

    run(scenario())


def test_flood_of_messages_is_all_answered_and_neighbours_are_served(srv):
    total = 2000

    async def scenario():
        flooder = await booted_peer(srv, "1.6")
        answered: dict[str, list] = {}
        sent = 0
        done = asyncio.Event()

        async def send_all():
            nonlocal sent
            for i in range(total):
                if i % 10 == 0:
                    frame = [2, f"f{i}", "StatusNotification",
                             {"connectorId": 1 + i % 3, "errorCode": "NoError",
                              "status": "Available" if i % 20 else "Charging"}]
                else:
                    frame = [2, f"f{i}", "Heartbeat", {}]
                await flooder.ws.send(json.dumps(frame))
                sent += 1
                if i % 100 == 0:
                    await asyncio.sleep(0)

        async def receive_all():
            while len(answered) < total:
                frame = json.loads(await asyncio.wait_for(flooder.ws.recv(), 60))
                answered[frame[1]] = frame
            done.set()

        async def neighbour():
            while sent < total // 4:
                await asyncio.sleep(0.001)
            async with charge_point(srv, uid("calm"), "1.6") as cp:
                await cp.boot()
                for _ in range(3):
                    await cp.heartbeat()

        receiver = asyncio.create_task(receive_all())
        await asyncio.gather(send_all(), neighbour(), receiver)
        assert set(answered) == {f"f{i}" for i in range(total)}
        errors = [f for f in answered.values() if f[0] != 3]
        assert errors == [], f"{len(errors)} flood messages got errors, e.g. {errors[:3]}"
        assert await asyncio.to_thread(srv.healthy)
        await assert_alive(srv, flooder)
        await flooder.close()

    run(scenario())
