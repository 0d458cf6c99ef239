"""Charger identity: registration policies for unknown chargers (open / pending / closed) and
security profile 1 (HTTP Basic on the upgrade, password stored hashed)."""

from __future__ import annotations

import asyncio

import pytest
from websockets.exceptions import InvalidStatus

from chargepoints import charge_point
from harness import basic_auth, body_list, open_ws, run, uid, ws_connect

VERSIONS = ["1.6", "2.0.1"]


async def upgrade_status(server, charger_id, version="1.6", password=None, **kw) -> int:
    """The HTTP status of a refused upgrade (fails if the upgrade succeeds)."""
    try:
        ws = await open_ws(server, charger_id, [f"ocpp{version}"], password, **kw)
    except InvalidStatus as e:
        return e.response.status_code
    await ws.close()
    raise AssertionError(f"upgrade for {charger_id!r} was accepted")


@pytest.mark.parametrize("version", VERSIONS)
def test_open_policy_registers_unknown_chargers_into_unassigned(make_server, version):
    server = make_server(registration="open", heartbeat_interval=60)
    cid = uid("auto")

    async def scenario():
        async with charge_point(server, cid, version) as cp:
            res = await cp.boot()
            assert res.status == "Accepted"
            assert res.interval == 60
            charger = await asyncio.to_thread(server.charger, cid)
            assert charger["station_id"] == "unassigned"
            assert charger["registration"] == "accepted"
            assert charger["online"] is True
        stations = body_list(server.ok("GET", "/api/v1/stations"))
        unassigned = [s for s in stations if s["id"] == "unassigned"]
        assert len(unassigned) == 1
        assert unassigned[0]["chargers"] == 1

    run(scenario())


@pytest.mark.parametrize("version", VERSIONS)
def test_pending_is_the_default_and_accept_makes_the_next_boot_accepted(make_server, version):
    server = make_server()  # no --registration flag: the default is pending
    cid = uid("pend")

    async def scenario():
        async with charge_point(server, cid, version) as cp:
            res = await cp.boot()
            assert res.status == "Pending"
            assert res.interval > 0
            charger = await asyncio.to_thread(server.charger, cid)
            assert charger["registration"] == "pending"

            await server.aok("POST", f"/api/v1/chargers/{cid}/accept", status=(200, 204))
            assert (await asyncio.to_thread(server.charger, cid))["registration"] == "accepted"
            res = await cp.boot()
            assert res.status == "Accepted"

    run(scenario())


@pytest.mark.parametrize("version", VERSIONS)
def test_rejected_charger_gets_rejected_boot(make_server, version):
    server = make_server(registration="pending")
    cid = uid("rej")

    async def scenario():
        async with charge_point(server, cid, version) as cp:
            assert (await cp.boot()).status == "Pending"
        await server.aok("POST", f"/api/v1/chargers/{cid}/reject", status=(200, 204))
        assert (await asyncio.to_thread(server.charger, cid))["registration"] == "rejected"
        try:
            async with charge_point(server, cid, version) as cp:
                assert (await cp.boot()).status == "Rejected"
        except InvalidStatus as e:  # refusing a rejected charger at the upgrade is as good
            assert e.response.status_code in (401, 403, 404)

    run(scenario())


def test_closed_policy_refuses_unknown_chargers_but_serves_registered_ones(make_server):
    server = make_server(registration="closed")
    known = uid("known")
    server.register(known, password="known-charger-pass16")

    async def scenario():
        assert await upgrade_status(server, uid("stranger")) == 404
        assert await upgrade_status(server, uid("stranger"), "2.0.1") == 404
        chargers = [c["id"] for c in body_list(await server.aok("GET", "/api/v1/chargers"))]
        assert all(not c.startswith("stranger") for c in chargers), "a refused charger must not be registered"
        async with charge_point(server, known, "1.6", "known-charger-pass16") as cp:
            assert (await cp.boot()).status == "Accepted"
            await cp.heartbeat()

    run(scenario())


@pytest.mark.parametrize("version", VERSIONS)
def test_password_is_required_and_checked(server, version):
    cid = uid("auth")
    server.register(cid, password="correct horse battery")
    other = uid("auth")
    server.register(other, password="other-password")

    async def scenario():
        assert await upgrade_status(server, cid, version, password="wrong") == 401
        assert await upgrade_status(server, cid, version, password=None) == 401
        assert await upgrade_status(server, cid, version, password="") == 401
        # Another charger's valid credentials do not open this charger's endpoint.
        try:
            ws = await ws_connect(
                server.ws_url(cid), subprotocols=[f"ocpp{version}"], additional_headers=basic_auth(other, "other-password"),
                compression=None, open_timeout=10,
            )
            await ws.close()
            raise AssertionError("credentials of another charger were accepted")
        except InvalidStatus as e:
            assert e.response.status_code == 401

        async with charge_point(server, cid, version, "correct horse battery") as cp:
            assert (await cp.boot()).status == "Accepted"
            await cp.heartbeat()

    run(scenario())


def test_charger_registered_without_password_connects_without_credentials(server):
    cid = uid("nopw")
    server.register(cid, password=None)

    async def scenario():
        async with charge_point(server, cid, "1.6") as cp:
            assert (await cp.boot()).status == "Accepted"

    run(scenario())


def test_password_is_stored_hashed(make_server):
    server = make_server()
    secret = "plaintext-must-not-be-stored-7f3a9"
    cid = uid("hash")
    server.register(cid, password=secret)

    async def scenario():
        async with charge_point(server, cid, "1.6", secret) as cp:
            assert (await cp.boot()).status == "Accepted"
        charger = await asyncio.to_thread(server.charger, cid)
        assert secret not in str(charger)

    run(scenario())
    server.stop()  # flush everything to the data files
    leaked = [p for p in server.data_dir.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert leaked == [], f"password stored in clear in {leaked}"
    assert secret not in server.log_text(), "password printed in the log"
    assert server.token not in server.log_text(), "admin token printed in the log"
