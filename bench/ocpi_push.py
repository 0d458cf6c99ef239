"""Latency of an OCPI status push: from a charger's StatusNotification to the partner receiving
the EVSE PATCH. `bench/ocpi_push.sh [--chargers N] [--changes M]`.

Starts `chargeops serve` (the release binary, SQLite in a fresh directory), registers a
partner written here (an HTTP server on loopback with its own OCPI envelope and token code),
connects N Python `ocpp` 1.6 charge points and sends M status changes on each, one charger at a
time in turn; each change is timed from just before the StatusNotification is sent to the
partner's handler receiving the PATCH for that EVSE with that status. Prints p50, p90, p99 and
max in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("CHARGEOPS_BIN", str(REPO / "target" / "release" / "chargeops"))
sys.path.insert(0, str(REPO / "tests" / "integration"))

from chargepoints import charge_point  # noqa: E402
from harness import Server  # noqa: E402
from test_ocpi import Emsp, envelope, ocpi  # noqa: E402

PW = "bench-ocpi-password-1"
STATUSES = ("Charging", "Available")
OCPI = {"Charging": "CHARGING", "Available": "AVAILABLE"}


class TimedEmsp(Emsp):
    """The test's partner, noting when each PATCH arrived."""

    def __init__(self, token_b: str):
        self.arrivals: list[tuple[float, str, str]] = []
        self.cond = threading.Condition()
        super().__init__(token_b)
        original = self.httpd.RequestHandlerClass.do_PATCH
        partner = self

        def do_patch(handler):
            t = time.monotonic()
            before = len(partner.patches)
            original(handler)
            with partner.cond:
                for path, body in partner.patches[before:]:
                    partner.arrivals.append((t, path, body["status"]))
                partner.cond.notify_all()

        self.httpd.RequestHandlerClass.do_PATCH = do_patch

    def wait_for(self, path: str, status: str, after: float, timeout: float = 10.0) -> float:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for t, p, s in self.arrivals:
                    if p == path and s == status and t >= after:
                        return t
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SystemExit(f"no PATCH {status} for {path} within {timeout} s")
                self.cond.wait(left)


async def measure(server: Server, partner: TimedEmsp, station: str, chargers: list[str], changes: int) -> list[float]:
    took: list[float] = []
    cps = []
    for cid in chargers:
        cm = charge_point(server, cid, "1.6", PW)
        cp = await cm.__aenter__()
        cps.append((cm, cp))
        await cp.boot()
        await cp.status_notification(1, "Available")
    await asyncio.sleep(1.0)
    try:
        for i in range(changes):
            status = STATUSES[i % len(STATUSES)]
            for cid, (_, cp) in zip(chargers, cps):
                path = f"/ocpi/2.2.1/locations/CN/CHO/{station}/{cid}*1"
                t0 = time.monotonic()
                await cp.status_notification(1, status)
                t = await asyncio.to_thread(partner.wait_for, path, OCPI[status], t0)
                took.append((t - t0) * 1000)
    finally:
        for cm, _ in cps:
            await cm.__aexit__(None, None, None)
    return took


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--chargers", type=int, default=20)
    p.add_argument("--changes", type=int, default=40)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="chargeops-bench-ocpi-") as tmp:
        server = Server(Path(tmp) / "srv", command_timeout=10).start()
        partner = TimedEmsp("bench-token-b")
        try:
            token_a = server.ok("POST", "/api/v1/partners/ocpi", {"name": "bench"}, status=201)["token"]
            envelope(ocpi(server, "POST", "/ocpi/2.2.1/credentials", token_a, body=partner.credentials()))
            station = "bench-ocpi-st"
            server.ensure_station(station, lat=28.1, lon=112.9)
            chargers = [f"bench-ocpi-{i:03d}" for i in range(args.chargers)]
            for cid in chargers:
                server.register(cid, PW, station=station)
            took = asyncio.run(measure(server, partner, station, chargers, args.changes))
        finally:
            partner.close()
            server.stop()
    took.sort()

    def q(f: float) -> float:
        return took[min(len(took) - 1, int(f * len(took)))]

    print(f"status changes pushed: {len(took)} ({args.chargers} chargers x {args.changes} changes)")
    print("ms from StatusNotification sent to PATCH received   p50     p90     p99     max")
    print(f"{'':<50}{statistics.median(took):7.2f} {q(0.9):7.2f} {q(0.99):7.2f} {took[-1]:7.2f}")


if __name__ == "__main__":
    main()
