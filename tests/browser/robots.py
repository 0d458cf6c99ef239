"""The charging side of robot chargers for the lot page's browser test: each robot is a real OCPP
1.6 charge point (the integration suite's, on the independent `ocpp` package, as in fleet.py)
that the node test drives one command at a time over stdin/stdout. The robot's other side, its
reports to the robot interface, the test sends itself over HTTP.

    .venv/bin/python tests/browser/robots.py --port PORT --plan plan.json

The plan lists the robots (`{"robots": [{"id": ..., "password": ...}]}`). Once every robot is
connected, booted and Available the helper prints `READY <n>`; then it takes one JSON command a
line and answers `OK <seq> <json>` or `ERR <seq> ...`:

    {"seq": 1, "op": "start", "robot": "R-1", "id_tag": "3fa9...", "meter_wh": 1000000}
    {"seq": 2, "op": "meter", "robot": "R-1", "meter_wh": 1012000, "power_w": 118000}
    {"seq": 3, "op": "stop", "robot": "R-1", "meter_wh": 1030000, "reason": "EVDisconnected"}
    {"seq": 4, "op": "quit"}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleet import ENERGY, Fleet, serve  # noqa: E402
from ocpp.v16 import call as call16  # noqa: E402


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Robots:
    def __init__(self, fleet: Fleet):
        self.fleet = fleet
        self.tx: dict[str, tuple[int, str]] = {}  # robot -> (transaction id, id tag)

    async def status(self, robot: str, status: str):
        await self.fleet.cps[robot].call(call16.StatusNotification(
            connector_id=1, error_code="NoError", status=status, timestamp=now()), suppress=False)

    async def start(self, robot: str, id_tag: str, meter_wh: int) -> dict:
        cp = self.fleet.cps[robot]
        await self.status(robot, "Preparing")
        res = await cp.call(call16.StartTransaction(
            connector_id=1, id_tag=id_tag, meter_start=meter_wh, timestamp=now()), suppress=False)
        self.tx[robot] = (res.transaction_id, id_tag)
        await self.status(robot, "Charging")
        return {"transaction_id": res.transaction_id}

    async def meter(self, robot: str, meter_wh: int, power_w: int) -> dict:
        tx, _ = self.tx[robot]
        await self.fleet.cps[robot].call(call16.MeterValues(
            connector_id=1, transaction_id=tx, meter_value=[{"timestamp": now(), "sampled_value": [
                {"value": str(meter_wh), "measurand": ENERGY, "unit": "Wh", "context": "Sample.Periodic"},
                {"value": str(power_w), "measurand": "Power.Active.Import", "unit": "W",
                 "context": "Sample.Periodic"}]}]), suppress=False)
        return {}

    async def stop(self, robot: str, meter_wh: int, reason: str) -> dict:
        tx, tag = self.tx.pop(robot)
        await self.fleet.cps[robot].call(call16.StopTransaction(
            meter_stop=meter_wh, timestamp=now(), transaction_id=tx, reason=reason, id_tag=tag),
            suppress=False)
        await self.status(robot, "Finishing")
        await self.status(robot, "Available")
        return {}


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--plan", required=True)
    args = ap.parse_args()
    plan = json.loads(Path(args.plan).read_text())
    fleet = Fleet(args.port)
    robots = Robots(fleet)

    async def setup():
        for spec in plan["robots"]:
            await fleet.connect({"id": spec["id"], "password": spec["password"], "version": "1.6",
                                 "vendor": "chargeops-test", "model": "Robot120"})
            await robots.status(spec["id"], "Available")

    async def handle(op: str, cmd: dict) -> str:
        if op == "start":
            out = await robots.start(cmd["robot"], cmd["id_tag"], int(cmd["meter_wh"]))
        elif op == "meter":
            out = await robots.meter(cmd["robot"], int(cmd["meter_wh"]), int(cmd.get("power_w", 0)))
        elif op == "stop":
            out = await robots.stop(cmd["robot"], int(cmd["meter_wh"]), cmd.get("reason", "EVDisconnected"))
        else:
            raise ValueError(f"unknown op {op!r}")
        return f" {json.dumps(out)}"

    return await serve(fleet, setup, handle, quit_reply=" {}")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
