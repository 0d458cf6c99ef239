"""Command delivery edge cases through `POST /api/v1/chargers/{id}/commands/{command}`: a charger
that never answers (504), one that answers with a CALLERROR (502), one outstanding CALL per
charger, offline (409), unknown charger (404) and bad bodies (400). The charger is a raw WebSocket
peer so that the test decides exactly when and how it answers."""

from __future__ import annotations

import asyncio

import pytest

from harness import RawPeer, boot_payload, run, uid

PW = "raw-peer-password"


@pytest.fixture(scope="module")
def slow(make_module_server):
    return make_module_server(command_timeout=2)


async def booted_peer(server, version="1.6") -> tuple[str, RawPeer]:
    cid = uid("cmd")
    await asyncio.to_thread(server.register, cid, PW)
    peer = await RawPeer.connect(server, cid, version, PW)
    res = await peer.call("BootNotification", boot_payload(version))
    assert res[0] == 3 and res[2]["status"] == "Accepted", res
    return cid, peer


def assert_error_body(r, status):
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text[:500]}"
    body = r.json()
    assert isinstance(body.get("code"), str) and body["code"], body
    assert isinstance(body.get("message"), str) and body["message"], body


async def heartbeat_ok(peer):
    res = await peer.call("Heartbeat", {})
    assert res[0] == 3 and "currentTime" in res[2], res


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_unanswered_command_times_out_then_the_next_one_works(slow, version):
    async def scenario():
        cid, peer = await booted_peer(slow, version)
        path = f"/api/v1/chargers/{cid}/commands/reset"

        pending = asyncio.create_task(slow.aapi("POST", path, {"hard": True}))
        first = await peer.recv()
        assert first[0] == 2 and first[2] == "Reset", first
        # ... and the charger never answers.
        assert_error_body(await pending, 504)
        await heartbeat_ok(peer)  # the connection is still up

        # A late answer to the timed-out CALL is ignored.
        await peer.send([3, first[1], {"status": "Accepted"}])
        await heartbeat_ok(peer)
        assert peer.server_calls == [], peer.server_calls

        # The next command is delivered and the charger's answer comes back.
        pending = asyncio.create_task(slow.aapi("POST", path, {"hard": False}))
        second = await peer.recv()
        assert second[0] == 2 and second[2] == "Reset" and second[1] != first[1], second
        assert second[3] == ({"type": "Soft"} if version == "1.6" else {"type": "OnIdle"})
        await peer.send([3, second[1], {"status": "Rejected"}])
        r = await pending
        assert r.status_code == 200, r.text
        assert r.json() == {"status": "Rejected", "response": {"status": "Rejected"}}
        await peer.close()

    run(scenario())


def test_call_error_from_the_charger_is_502(slow):
    async def scenario():
        cid, peer = await booted_peer(slow)
        pending = asyncio.create_task(slow.aapi("POST", f"/api/v1/chargers/{cid}/commands/clear-cache", {}))
        call = await peer.recv()
        assert call[2] == "ClearCache" and call[3] == {}
        await peer.send([4, call[1], "InternalError", "cache on fire", {}])
        r = await pending
        assert_error_body(r, 502)
        await heartbeat_ok(peer)
        await peer.close()

    run(scenario())


def test_only_one_server_call_is_outstanding_per_charger(slow):
    async def scenario():
        cid, peer = await booted_peer(slow)
        base = f"/api/v1/chargers/{cid}/commands"
        t1 = asyncio.create_task(slow.aapi("POST", f"{base}/trigger", {"message": "Heartbeat"}))
        c1 = await peer.recv()
        assert c1[2] == "TriggerMessage", c1
        t2 = asyncio.create_task(slow.aapi("POST", f"{base}/unlock-connector", {"connector_id": 1}))
        try:
            extra = await peer.recv(timeout=0.8)
        except asyncio.TimeoutError:
            extra = None
        assert extra is None, f"second CALL sent while {c1} was unanswered: {extra}"

        await peer.send([3, c1[1], {"status": "Accepted"}])
        r1 = await t1
        assert r1.status_code == 200 and r1.json()["status"] == "Accepted", r1.text

        receiving = asyncio.create_task(peer.recv())
        done, _ = await asyncio.wait({t2, receiving}, return_when=asyncio.FIRST_COMPLETED)
        if receiving in done:  # the server queued the second command
            c2 = receiving.result()
            assert c2[2] == "UnlockConnector" and c2[3] == {"connectorId": 1}, c2
            await peer.send([3, c2[1], {"status": "Unlocked"}])
            r2 = await t2
            assert r2.status_code == 200 and r2.json()["status"] == "Unlocked", r2.text
        else:  # or refused it while busy
            receiving.cancel()
            assert t2.result().status_code in (409, 429, 503), t2.result().text
        await heartbeat_ok(peer)
        await peer.close()

    run(scenario())


def test_command_errors_offline_unknown_and_bad_bodies(slow):
    never = uid("never")
    slow.register(never, password="never-connected-pass")

    assert_error_body(slow.api("POST", f"/api/v1/chargers/{never}/commands/reset", {"hard": True}), 409)
    assert_error_body(slow.api("POST", f"/api/v1/chargers/{never}/commands/remote-start",
                               {"connector_id": 1, "id_tag": "T"}), 409)
    assert_error_body(slow.api("POST", "/api/v1/chargers/no-such-charger/commands/reset", {"hard": True}), 404)

    async def scenario():
        cid, peer = await booted_peer(slow)
        base = f"/api/v1/chargers/{cid}/commands"
        bad = [
            ("remote-start", {"connector_id": 1}),  # no id_tag
            ("remote-start", {"connector_id": "one", "id_tag": "T"}),
            ("change-availability", {"connector_id": 1, "available": "maybe"}),
            ("reset", {"hard": "very"}),
            ("remote-stop", {}),
            ("set-configuration", {"key": "HeartbeatInterval"}),  # no value
            ("trigger", {}),
        ]
        for command, body in bad:
            r = await slow.aapi("POST", f"{base}/{command}", body)
            assert_error_body(r, 400)
        r = await asyncio.to_thread(
            slow._http.post, slow.base_url + f"{base}/reset", data="{not json",
            headers={"Authorization": f"Bearer {slow.token}", "Content-Type": "application/json"}, timeout=30,
        )
        assert_error_body(r, 400)
        r = await slow.aapi("POST", f"{base}/self-destruct", {})
        assert r.status_code in (400, 404), r.text
        assert set(r.json()) >= {"code", "message"}
        # remote-stop of a session that does not exist
        r = await slow.aapi("POST", f"{base}/remote-stop", {"session_id": 987654321})
        assert r.status_code in (400, 404), r.text
        # None of these reached the charger.
        await heartbeat_ok(peer)
        assert [f for f in peer.server_calls if f[0] == 2] == []
        await peer.close()

    run(scenario())
