"""A fleet of real OCPP charge points for the browser tests, driven by the node test over
stdin/stdout. It reuses the integration suite's charge points (tests/integration), built on the
independent `ocpp` package, so the pages are tested against what real chargers send.

    .venv/bin/python tests/browser/fleet.py --port PORT --plan plan.json

The plan (written by the test) lists chargers with, per connector, a status history over the
last hours (sent as StatusNotifications with their original timestamps, oldest first, so the
server keeps them as history), finished sessions earlier today, a running session, and the
status now. Once every charger is connected and has told its story the fleet prints
`READY <n>`; then it takes one JSON command a line and answers `OK <seq>` or `ERR <seq> ...`:

    {"seq": 1, "op": "status", "charger": "CP-1", "connector": 1, "status": "Faulted",
     "error_code": "GroundFailure"}
    {"seq": 2, "op": "disconnect", "charger": "CP-1"}
    {"seq": 3, "op": "quit"}
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Awaitable, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from ocpp.v16 import call as call16  # noqa: E402
from ocpp.v201 import call as call201  # noqa: E402

from chargepoints import CLASSES  # noqa: E402
from harness import open_ws  # noqa: E402

ENERGY = "Energy.Active.Import.Register"


class Target:
    """What `harness.open_ws` needs of a server: where to connect."""

    def __init__(self, port: int):
        self.port = port

    def ws_url(self, charger_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp/{charger_id}"


def ts(minutes_ago: float) -> str:
    t = datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Fleet:
    def __init__(self, port: int):
        self.target = Target(port)
        self.cps: dict[str, object] = {}
        self.tasks: dict[str, asyncio.Task] = {}
        self.meters: dict[str, int] = {}

    async def connect(self, spec: dict):
        cid, version = spec["id"], spec.get("version", "1.6")
        ws = await open_ws(self.target, cid, [f"ocpp{version}"], spec.get("password"))
        cp = CLASSES[version](cid, ws, response_timeout=30)
        cp.ws = ws
        self.tasks[cid] = asyncio.create_task(cp.start())
        self.cps[cid] = cp
        self.meters[cid] = spec.get("meter_wh", 1_000_000)
        if version == "1.6":
            await cp.boot(vendor=spec.get("vendor", "TELD"), model=spec.get("model", "DC-120"))
        else:
            await cp.boot(vendor=spec.get("vendor", "XJ Electric"), model=spec.get("model", "DC-240"))
        return cp

    async def status(self, cid: str, connector: int, status: str, error_code: str = "NoError",
                     minutes_ago: float = 0):
        cp = self.cps[cid]
        if cp.__class__ is CLASSES["1.6"]:
            await cp.call(call16.StatusNotification(
                connector_id=connector, error_code=error_code, status=status, timestamp=ts(minutes_ago)),
                suppress=False)
        else:
            await cp.call(call201.StatusNotification(
                timestamp=ts(minutes_ago), connector_status=status, evse_id=connector, connector_id=1),
                suppress=False)

    async def session16(self, cid: str, connector: int, s: dict):
        """A session with its original times: started `start` minutes ago, `minutes` long
        (still running when `minutes` is null), `energy_wh` so far."""
        cp = self.cps[cid]
        start = self.meters[cid]
        res = await cp.call(call16.StartTransaction(
            connector_id=connector, id_tag=s["id_tag"], meter_start=start, timestamp=ts(s["start"])),
            suppress=False)
        tx = res.transaction_id
        self.meters[cid] = start + int(s["energy_wh"])
        if s.get("minutes") is None:
            await cp.call(call16.MeterValues(
                connector_id=connector, transaction_id=tx,
                meter_value=[{"timestamp": ts(0.2), "sampled_value": [
                    {"value": str(self.meters[cid]), "measurand": ENERGY, "unit": "Wh", "context": "Sample.Periodic"}]}]),
                suppress=False)
        else:
            await cp.call(call16.StopTransaction(
                meter_stop=self.meters[cid], timestamp=ts(s["start"] - s["minutes"]), transaction_id=tx,
                reason="EVDisconnected"), suppress=False)

    async def play(self, spec: dict):
        """Connects one charger and sends its history, sessions and current status."""
        cid = spec["id"]
        await self.connect(spec)
        v16 = spec.get("version", "1.6") == "1.6"
        for conn in spec["connectors"]:
            n = conn["id"]
            for minutes_ago, status in conn.get("history", []):
                await self.status(cid, n, status, minutes_ago=minutes_ago)
            if v16:
                for s in conn.get("sessions", []):
                    await self.session16(cid, n, s)
            await self.status(cid, n, conn["status"], conn.get("error_code", "NoError"))
        if spec.get("disconnect"):
            await self.disconnect(cid)

    async def disconnect(self, cid: str):
        cp = self.cps.pop(cid, None)
        task = self.tasks.pop(cid, None)
        if cp is not None:
            with contextlib.suppress(BaseException):
                await cp.ws.close()
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def close(self):
        await asyncio.gather(*(self.disconnect(c) for c in list(self.cps)), return_exceptions=True)


async def serve(fleet: Fleet, setup: Callable[[], Awaitable[None]],
                handle: Callable[[str, dict], Awaitable[str]], quit_reply: str = "") -> int:
    """Runs `setup`, then answers the test's commands on stdin until `quit` or the end of
    input: `READY <n>` once set up (`FAILED ...` and exit 1 if that failed), then per command
    `OK <seq>` followed by what `handle` returns (`quit_reply` for `quit`) or `ERR <seq> ...`."""
    try:
        await setup()
    except BaseException as e:  # noqa: BLE001 - reported to the test, which fails
        print(f"FAILED {e!r}", flush=True)
        await fleet.close()
        return 1
    print(f"READY {len(fleet.cps)}", flush=True)

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            break
        try:
            cmd = json.loads(line)
        except json.JSONDecodeError:
            continue
        seq = cmd.get("seq", 0)
        try:
            op = cmd["op"]
            if op == "quit":
                print(f"OK {seq}{quit_reply}", flush=True)
                break
            print(f"OK {seq}{await handle(op, cmd)}", flush=True)
        except Exception as e:  # noqa: BLE001 - reported to the test
            print(f"ERR {seq} {e!r}", flush=True)
    await fleet.close()
    return 0


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--plan", required=True)
    ap.add_argument("--parallel", type=int, default=48)
    args = ap.parse_args()
    plan = json.loads(Path(args.plan).read_text())
    fleet = Fleet(args.port)
    gate = asyncio.Semaphore(args.parallel)

    async def one(spec):
        async with gate:
            await fleet.play(spec)

    async def setup():
        await asyncio.gather(*(one(s) for s in plan["chargers"]))

    async def handle(op: str, cmd: dict) -> str:
        if op == "status":
            await fleet.status(cmd["charger"], int(cmd["connector"]), cmd["status"],
                               cmd.get("error_code", "NoError"))
        elif op == "disconnect":
            await fleet.disconnect(cmd["charger"])
        else:
            raise ValueError(f"unknown op {op!r}")
        return ""

    return await serve(fleet, setup, handle)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
