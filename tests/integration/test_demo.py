"""`chargeops demo` and `chargeops sim`: the province network over real OCPP, end to end.

The demo runs its simulated chargers (a mix of OCPP 1.6J and 2.0.1, each with its own
password) against its own platform; everything here is checked through the public API.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time

import pytest
import requests

from harness import BINARY, REPO, demo_process, free_port, wait_until

TOKEN = "demo-test-token-0123456789"
# Hunan's bounding box, generously rounded.
LAT = (24.5, 30.2)
LON = (108.7, 114.4)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    data = tmp_path_factory.mktemp("demo")
    args = ["--speed", "600", "--scenario", "spring-festival", "--sim-hours", "48", "--seed", "3"]
    # Eight weeks of history (1.5 million sessions) are simulated and imported first: most of a
    # minute on two busy cores.
    with demo_process(data, TOKEN, args, timeout=150) as (proc, base):

        def api(path, **params):
            r = requests.get(base + path, params=params, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
            r.raise_for_status()
            return r.json()

        yield proc, api, data / "demo.log"


def test_the_province_network_is_there_with_positions_in_hunan(demo):
    _, api, _ = demo
    stations = api("/api/v1/stations")
    highway = [s for s in stations if s.get("highway")]
    assert len(highway) >= 150, f"only {len(highway)} highway service-area sides"
    for s in stations:
        assert LAT[0] < s["lat"] < LAT[1] and LON[0] < s["lon"] < LON[1], s
    assert {"G4", "G60", "G55", "G56", "G65", "G72", "G5513"} <= {s["highway"] for s in highway}
    # Names carry Chinese and pinyin: "长沙服务区 (Changsha Fuwuqu)".
    assert any("服务区" in s["name"] and "(" in s["name"] for s in stations)


def test_chargers_connect_over_every_protocol(demo):
    _, api, _ = demo

    def connected():
        chargers = api("/api/v1/chargers")
        online = [c for c in chargers if c["online"]]
        protocols = {c["protocol"] for c in online}
        return len(online) > 0.9 * len(chargers) and protocols == {"ocpp1.6", "ocpp2.0.1", "ykc"} and chargers

    chargers = wait_until(connected, timeout=90, interval=1, what="90% of chargers online over 1.6, 2.0.1 and YKC")
    assert len(chargers) > 1500
    assert all(c["registration"] == "accepted" for c in chargers)
    # About 15 % of the chargers speak YKC, under their 14-digit ids.
    ykc = [c for c in chargers if c["protocol"] == "ykc"]
    assert 0.08 * len(chargers) < len(ykc) < 0.25 * len(chargers), len(ykc)
    assert all(len(c["id"]) == 14 and c["id"].isdigit() for c in ykc)
    assert sum(c["online"] for c in ykc) > 0.9 * len(ykc)


def test_ykc_sessions_complete_with_energy(demo):
    _, api, _ = demo
    ykc = {c["id"] for c in api("/api/v1/chargers") if c["protocol"] == "ykc"}

    def done():
        sessions = api("/api/v1/sessions", open="false", limit=1000)
        # Live ones, not the generated history (transaction refs "sim-...").
        mine = [s for s in sessions if s["charger_id"] in ykc and s["stopped_at"]
                and (s["energy_wh"] or 0) > 0 and not s["transaction_ref"].startswith("sim-")]
        return len(mine) >= 10 and mine

    sessions = wait_until(done, timeout=120, interval=1, what="10 completed YKC sessions with energy")
    for s in sessions:
        # Keyed by the charger's 32-digit transaction serial, which starts with its id.
        assert len(s["transaction_ref"]) == 32 and s["transaction_ref"].startswith(s["charger_id"]), s
        assert s["started_at"] < s["stopped_at"]
        assert s["started_at"].startswith("2027-0")
        assert 500 <= s["energy_wh"] <= 120_000, s
    # The generated history names the same YKC chargers, so their past is there too.
    past = [s for cid in sorted(ykc)[:5] for s in api("/api/v1/sessions", charger=cid, open="false", limit=2000)]
    assert any(s["transaction_ref"].startswith("sim-") for s in past), sorted(ykc)[:5]


def test_sessions_complete_with_energy_and_statuses_change(demo):
    _, api, _ = demo

    # A session a simulated fault cut short (OCPP reason "Other", YKC stop code 0x6A) delivered
    # whatever it had by then, a few Wh if the fault came right after the plug-in.
    cut_by_fault = {"Other", "ykc_0x6a"}

    def done():
        sessions = api("/api/v1/sessions", open="false", limit=200)
        with_energy = [s for s in sessions if s["stopped_at"] and (s["energy_wh"] or 0) > 0
                       and s.get("stop_reason") not in cut_by_fault]
        return len(with_energy) >= 50 and with_energy

    sessions = wait_until(done, timeout=120, interval=1, what="50 completed sessions with energy")
    for s in sessions:
        assert s["started_at"] < s["stopped_at"]
        # Simulated time: the Spring Festival rush of 2027.
        assert s["started_at"].startswith("2027-0")
        assert 500 <= s["energy_wh"] <= 120_000, s

    first = {s["id"]: s["connectors"] for s in api("/api/v1/stations")}
    time.sleep(3)
    later = {s["id"]: s["connectors"] for s in api("/api/v1/stations")}
    changed = [k for k in first if first[k] != later[k]]
    assert len(changed) > 10, "connector statuses should change as cars come and go"
    busy = sum(c["charging"] + c["occupied"] for c in later.values())
    assert busy > 100


def test_holiday_queues_show_on_the_main_corridor(demo):
    _, api, _ = demo

    def queues():
        stations = api("/api/v1/stations")
        waiting = {s["id"]: s["waiting"] for s in stations if s["waiting"] > 0}
        return waiting if sum(waiting.values()) > 20 else None

    waiting = wait_until(queues, timeout=120, interval=1, what="cars queueing during the rush")
    g4 = sum(n for sid, n in waiting.items() if sid.startswith("g4-"))
    assert g4 > 0, waiting


def test_robots_serve_cars_in_the_demo_lots(demo):
    """Three service areas have a robot lot whose robots (OCPP charge points that report to the
    robot interface and do the tasks it gives) serve the cars that come: each robot charge is a
    real transaction on the robot's charger, started with the car's id, and the lot counts the
    car served."""
    _, api, log = demo
    lots = re.findall(r"Robot lot:\s+http://\S+/lot\?station=([\w-]+)#token=\S+", open(log).read())
    assert len(lots) == 3, lots

    def lot_views():
        # The demo sets its lots up through the API once the platform listens.
        try:
            return {s: api(f"/api/v1/stations/{s}/lot") for s in lots}
        except requests.HTTPError as e:
            if e.response is not None and e.response.status_code == 404:
                return None
            raise

    views = wait_until(lot_views, timeout=60, interval=1, what="the demo's robot lots set up")
    robots = {s: {r["id"] for r in v["robots"]} for s, v in views.items()}

    def charged():
        out = {}
        for s in lots:
            mine = [x for r in sorted(robots[s]) for x in api("/api/v1/sessions", charger=r, open="false", limit=50)
                    if (x["energy_wh"] or 0) >= 1000]
            if len(mine) < 2:
                return None
            out[s] = mine
        return out

    sessions = wait_until(charged, timeout=150, interval=2, what="two robot charges in every demo lot")

    def served():
        views = lot_views()
        return views and all(v["stats"]["served"] >= 1 for v in views.values()) and views

    views = wait_until(served, timeout=60, interval=2, what="a car served in every demo lot")
    for s, v in views.items():
        assert s.startswith("g4-")
        assert len(v["bays"]) == 40 and len(v["robots"]) == 6
        done = [c for c in v["cars"] if c["state"] == "served"]
        for c in done:
            assert c["remaining_kwh"] <= 0.5 and 1 <= c["energy_kwh"] <= 200, c
            assert c["robot"] is None or c["robot"] in robots[s], c
        assert all(0 <= r["battery_pct"] <= 105 for r in v["robots"]), v["robots"]
        # A robot starts a car's transaction with the car's id (its first 20 characters).
        tags = {x["id_tag"] for x in sessions[s]}
        assert any(c["id"][:20] in tags for c in done), (tags, [c["id"] for c in done])
        for x in sessions[s]:
            assert x["started_at"] < x["stopped_at"] and x["energy_wh"] <= 200_000, x


def test_demo_stops_cleanly_on_ctrl_c(demo):
    proc, api, log = demo
    assert api("/healthz")["status"] == "ok"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    text = open(log).read()
    assert "sessions completed" in text, text[-2000:]


def test_malformed_network_file_names_the_line(tmp_path):
    bad = tmp_path / "bad.csv"
    good = open(REPO / "data" / "network" / "hunan.csv", encoding="utf-8").read().splitlines()
    lines = good[:6]
    cells = lines[4].split(",")
    # Break one latitude on the fifth line.
    header = lines[0].split(",")
    cells[header.index("lat")] = "95.2"
    lines[4] = ",".join(cells)
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = subprocess.run(
        [str(BINARY), "demo", "--headless", "--network", str(bad), "--listen", f"127.0.0.1:{free_port()}",
         "--data-dir", str(tmp_path / "d")],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode != 0
    assert "line 5" in r.stderr and "95.2" in r.stderr, r.stderr


def test_sim_retries_with_backoff_when_the_server_is_not_there(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [str(BINARY), "sim", "--server", f"ws://127.0.0.1:{port}/ocpp", "--sim-hours", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        lines = []
        deadline = time.time() + 20
        while time.time() < deadline and sum("retrying" in l for l in lines) < 3:
            lines.append(proc.stdout.readline())
        retries = [l for l in lines if "not reachable" in l and "retrying in" in l]
        assert len(retries) >= 3, lines
        delays = [float(l.split("retrying in ")[1].split(" s")[0]) for l in retries]
        assert delays == sorted(delays) and delays[-1] > delays[0], f"no backoff: {delays}"
    finally:
        proc.kill()
        proc.wait()


def test_drivers_take_diversions_in_the_live_demo(tmp_path):
    # A short Spring Festival morning, fast, with drivers offered the platform's diversion
    # ranking when they meet a queue: some drive on, and the summary counts them.
    r = subprocess.run(
        [str(BINARY), "demo", "--headless", "--divert", "--listen", f"127.0.0.1:{free_port()}",
         "--data-dir", str(tmp_path / "d"), "--speed", "1200", "--scenario", "spring-festival",
         "--sim-hours", "6", "--history-weeks", "0", "--seed", "5"],
        capture_output=True, text=True, timeout=240,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    summary = [l for l in r.stderr.splitlines() if l.startswith("simulated until")]
    assert summary, r.stderr[-3000:]
    diverted = int(summary[-1].split(", ")[-1].split(" cars diverted")[0])
    completed = int(summary[-1].split(": ")[1].split(" sessions completed")[0])
    assert diverted > 0 and completed > 1000, summary[-1]
