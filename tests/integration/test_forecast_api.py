"""Forecasts in the running platform: `chargeops demo` seeds weeks of simulated history, then
the forecast, warning, best-time and plan endpoints and the `chargeops plan` command are checked
through their public interfaces, including bad input.
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
import requests

from harness import BINARY, demo_process

TOKEN = "forecast-test-token-0123456789"
STATION = "g4-changsha-s"
CST = timezone(timedelta(hours=8))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    data = tmp_path_factory.mktemp("forecast-demo")
    args = ["--speed", "120", "--scenario", "spring-festival", "--history-weeks", "4", "--sim-hours", "200",
            "--seed", "4"]
    with demo_process(data, TOKEN, args) as (_, base):
        yield base, data


def get(base, path, token=TOKEN, **params):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(base + path, params=params, headers=headers, timeout=60)


def ok(base, path, **params):
    r = get(base, path, **params)
    assert r.status_code == 200, r.text
    return r.json()


def t(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def check_band(b):
    assert 0 <= b["p50"] <= b["p90"], b


def test_history_was_seeded_before_the_start(demo):
    base, data = demo
    log = open(data / "demo.log").read()
    assert "history:" in log and "sessions over 4 weeks before 2027-02-03" in log, log[-2000:]


def test_station_forecast_next_hours(demo):
    base, _ = demo
    f = ok(base, f"/api/v1/stations/{STATION}/forecast", hours=24)
    assert f["station_id"] == STATION and f["connectors"] >= 1
    assert f["history_sessions"] > 1000, "weeks of history behind the fit"
    origin = t(f["origin"])
    assert origin.year == 2027, "the platform clock (simulated), not the wall clock"
    assert len(f["hours"]) == 24
    for i, h in enumerate(f["hours"]):
        assert t(h["at"]) == origin + timedelta(hours=i)
        for k in ("busy_connectors", "occupancy", "arrivals", "expected_queue", "probability_of_queue", "expected_wait_minutes"):
            check_band(h[k])
        assert h["busy_connectors"]["p90"] <= f["connectors"] + 1e-9
        assert h["probability_of_queue"]["p90"] <= 1
    assert any(h["arrivals"]["p50"] > 0.5 for h in f["hours"]), "a busy highway station has arrivals"


def test_wait_projects_the_queue_with_the_fitted_arrivals(demo):
    base, _ = demo
    f = ok(base, f"/api/v1/stations/{STATION}/forecast", hours=4)
    w = get(base, f"/api/v1/stations/{STATION}/wait", token=None, arrive_in_min=60).json()
    # No rate from the caller: the forecast's arrivals for the hour on the way fill the queue.
    assert w["arrivals_source"] == "forecast", w
    p50 = [h["arrivals"]["p50"] for h in f["hours"]]
    # Simulated time runs on (120x): the window may have moved an hour since the forecast.
    assert min(p50) - 0.01 <= w["arrivals_per_hour"] <= max(p50) + 0.01, (w, p50)
    assert w["arrivals_per_hour"] > 0.5, "a busy highway station in the Spring Festival has arrivals"
    mine = get(base, f"/api/v1/stations/{STATION}/wait", token=None, arrive_in_min=60, arrivals_per_hour=0).json()
    assert mine["arrivals_source"] == "caller" and mine["arrivals_per_hour"] == 0
    now = get(base, f"/api/v1/stations/{STATION}/wait", token=None).json()
    assert now["arrivals_source"] is None and now["arrivals_per_hour"] is None


def test_station_forecast_for_a_chosen_day(demo):
    base, _ = demo
    f = ok(base, f"/api/v1/stations/{STATION}/forecast", date="2027-02-08")
    assert len(f["hours"]) == 24
    assert [h["local"][:10] for h in f["hours"]] == ["2027-02-08"] * 24
    assert f["hours"][0]["local"].endswith("T00:00")


def test_warnings_are_sorted_by_severity_and_within_the_horizon(demo):
    base, _ = demo
    w = ok(base, "/api/v1/forecast/warnings", hours=12, min_probability=0.3)
    assert w["stations_forecast"] >= 200
    assert w["fit_ms"] is None or w["fit_ms"] >= 0
    origin = t(w["origin"])
    sev = [x["severity"] for x in w["warnings"]]
    assert sev == sorted(sev, reverse=True)
    assert w["warnings"], "the Spring Festival rush gives warnings"
    for x in w["warnings"]:
        assert 0 < x["peak_probability"] <= 1
        assert x["hours"]
        for h in x["hours"]:
            assert 0.3 <= h["probability_of_queue"] <= 1
            assert origin <= t(h["at"]) < origin + timedelta(hours=12)


def test_map_forecast_covers_every_station(demo):
    base, _ = demo
    m = ok(base, "/api/v1/forecast/map", hours=24)
    assert len(m["hours"]) == 24 and len(m["stations"]) >= 200
    for s in m["stations"]:
        assert len(s["p"]) == 24 and all(0 <= p <= 1 for p in s["p"])


def test_best_time_is_within_the_horizon_and_public_without_a_token(demo):
    base, _ = demo
    b = ok(base, f"/api/v1/stations/{STATION}/best-time", hours=24)
    origin = t(b["origin"])
    assert len(b["best"]) == 3 and len(b["avoid"]) == 3
    for s in b["best"] + b["avoid"] + [b["now"]]:
        assert origin <= t(s["at"]) < origin + timedelta(hours=24)
        assert 0 <= s["probability_of_queue"] <= 1
    assert max(s["expected_wait_minutes"] for s in b["best"]) <= min(s["expected_wait_minutes"] for s in b["avoid"])
    assert b["advice"]
    if b["alternative"]:
        assert b["alternative"]["relation"] in ("downstream", "opposite_direction", "nearby")
        assert b["alternative"]["station_id"] != STATION
    # The driver page's variant needs no token; the operator's does.
    assert get(base, f"/api/v1/stations/{STATION}/best-time", token=None).status_code == 401
    public = get(base, f"/api/v1/public/stations/{STATION}/best-time", token=None, hours=6)
    assert public.status_code == 200, public.text
    assert len(public.json()["best"]) == 3


def test_plan_endpoint_and_command(demo):
    base, data = demo
    p = ok(base, f"/api/v1/stations/{STATION}/plan", **{"from": "2027-02-04", "to": "2027-02-05"})
    assert len(p["hours"]) == 48
    for h in p["hours"]:
        assert h["capacity_gap_cars_per_hour"] >= 0 and h["extra_connectors"] >= 0
        assert h["arrivals_p90"] >= h["arrivals_p50"] >= 0
        assert h["mobile_units"] >= 0 and h["robot_hours"] >= 0
    assert {n["relation"] for n in p["neighbours"]} >= {"downstream", "opposite_direction"}
    assert p["advice"]
    r = subprocess.run(
        [str(BINARY), "plan", "--station", STATION, "--from", "2027-02-04", "--to", "2027-02-05",
         "--data-dir", str(data / "data"), "--format", "json"],
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stderr
    cli = json.loads(r.stdout)
    for k in ("station_id", "connectors", "hours", "short_hours", "mobile_units", "robot_hours", "neighbours", "advice", "history_sessions"):
        assert k in cli, k
    assert cli["station_id"] == STATION and len(cli["hours"]) == 48
    h = cli["hours"][0]
    for k in ("at", "arrivals_p50", "arrivals_p90", "busy_connectors_p50", "busy_connectors_p90",
              "capacity_gap_cars_per_hour", "extra_connectors", "mobile_units", "robot_hours"):
        assert k in h, k
    text = subprocess.run(
        [str(BINARY), "plan", "--station", STATION, "--from", "2027-02-04", "--to", "2027-02-04",
         "--data-dir", str(data / "data")],
        capture_output=True, text=True, timeout=120,
    )
    assert text.returncode == 0, text.stderr
    assert "divert to:" in text.stdout and "advice for drivers:" in text.stdout


@pytest.mark.parametrize("path,params,status", [
    (f"/api/v1/stations/{STATION}/forecast", {"hours": "0"}, 400),
    (f"/api/v1/stations/{STATION}/forecast", {"hours": "10000"}, 400),
    (f"/api/v1/stations/{STATION}/forecast", {"hours": "abc"}, 400),
    (f"/api/v1/stations/{STATION}/forecast", {"date": "2027-13-40"}, 400),
    (f"/api/v1/stations/{STATION}/forecast", {"date": "08/02/2027"}, 400),
    (f"/api/v1/stations/{STATION}/forecast", {"date": "2020-01-01"}, 400),
    (f"/api/v1/stations/{STATION}/forecast", {"date": "2027-02-08", "hours": "24"}, 400),
    ("/api/v1/stations/no-such-station/forecast", {"hours": "24"}, 404),
    ("/api/v1/forecast/warnings", {"hours": "0"}, 400),
    ("/api/v1/forecast/warnings", {"hours": "10000"}, 400),
    ("/api/v1/forecast/warnings", {"min_probability": "2"}, 400),
    ("/api/v1/forecast/map", {"hours": "-1"}, 400),
    (f"/api/v1/stations/{STATION}/best-time", {"hours": "10000"}, 400),
    ("/api/v1/public/stations/no-such-station/best-time", {}, 404),
    (f"/api/v1/stations/{STATION}/plan", {"from": "2027-02-06", "to": "2027-02-04"}, 400),
    (f"/api/v1/stations/{STATION}/plan", {"from": "2027-02-04"}, 400),
    (f"/api/v1/stations/{STATION}/plan", {"from": "tomorrow", "to": "2027-02-04"}, 400),
    (f"/api/v1/stations/{STATION}/plan", {"from": "2027-02-04", "to": "2029-02-04"}, 400),
    (f"/api/v1/stations/{STATION}/plan", {"from": "2027-02-04", "to": "2027-02-05", "load": "p99"}, 400),
    ("/api/v1/stations/no-such-station/plan", {"from": "2027-02-04", "to": "2027-02-05"}, 404),
])
def test_bad_input_gets_a_clear_error(demo, path, params, status):
    base, _ = demo
    r = get(base, path, **params)
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"code", "message"}, body
    assert body["message"] and "panicked" not in body["message"]


def test_plan_command_bad_input(demo):
    _, data = demo
    for args, says in [
        (["--from", "2027-02-06", "--to", "2027-02-04"], "after"),
        (["--from", "2027-02-30", "--to", "2027-03-01"], "2027-02-30"),
    ]:
        r = subprocess.run([str(BINARY), "plan", "--station", STATION, "--data-dir", str(data / "data"), *args],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and says in r.stderr, r.stderr
    r = subprocess.run([str(BINARY), "plan", "--station", "nowhere", "--from", "2027-02-04", "--to", "2027-02-04",
                        "--data-dir", str(data / "data")], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "nowhere" in r.stderr and "not found" in r.stderr, r.stderr
