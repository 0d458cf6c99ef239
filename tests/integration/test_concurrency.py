"""Many chargers at once on one server: a connect storm where every charger boots and reports
status concurrently, and WebSocket keep-alive (ping/pong)."""

from __future__ import annotations

import asyncio

from chargepoints import charge_point
from harness import await_until, body_list, open_ws, run, uid


def test_connect_storm_every_charger_is_served(open_server):
    n = 150
    ids = [uid("storm") for _ in range(n)]

    served: list[str] = []

    async def one(cid: str, version: str, go: asyncio.Event, release: asyncio.Event):
        async with charge_point(open_server, cid, version) as cp:
            await go.wait()
            assert (await cp.boot()).status == "Accepted"
            if version == "1.6":
                await cp.status_notification(1, "Available")
            else:
                await cp.status_notification(1, 1, "Available")
            await cp.heartbeat()
            served.append(cid)
            await release.wait()

    async def scenario():
        loop = asyncio.get_running_loop()
        go, release = asyncio.Event(), asyncio.Event()
        tasks = [asyncio.create_task(one(cid, "1.6" if i % 2 else "2.0.1", go, release)) for i, cid in enumerate(ids)]
        await asyncio.sleep(0)
        go.set()  # every charger sends its BootNotification at the same moment

        t0 = loop.time()
        while len(served) < n:
            failed = [t for t in tasks if t.done() and t.exception()]
            assert not failed, f"{len(failed)} chargers failed, e.g. {failed[0].exception()!r}"
            assert loop.time() - t0 < 60, f"only {len(served)} of {n} chargers served"
            await asyncio.sleep(0.05)
        chargers = {c["id"]: c for c in body_list(await open_server.aok("GET", "/api/v1/chargers"))}
        assert all(chargers[cid]["online"] for cid in ids)
        for cid in ids[::15]:
            await await_until(lambda: [x["status"] for x in open_server.charger(cid)["connectors"]] == ["available"])
        release.set()
        await asyncio.gather(*tasks)

    run(scenario())
    assert open_server.healthy()


def test_websocket_ping_is_answered(open_server):
    async def scenario():
        for version in ("1.6", "2.0.1"):
            ws = await open_ws(open_server, uid("ping"), [f"ocpp{version}"])
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, 10)
            await ws.close()

    run(scenario())
