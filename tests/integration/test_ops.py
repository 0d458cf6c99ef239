"""The operations loop end to end over the real OCPP path: a charger's fault opens a case, the
dispatcher confirms the proposed crew, the crew works the order on its own token, the charger
works again and the case verifies and closes. Offline chargers open one case, a hotline call
merges with the charger's own report, the other detection rules fire, and wrong roles and bad
input are refused, audited, and change nothing.

Detection thresholds are set low through the `[ops]` section of a config file."""

from __future__ import annotations

import asyncio
import csv
import io
import time

import pytest

from chargepoints import charge_point
from harness import await_until, run, uid, wait_until

V = "1.6"
PW = "ops-test-password-16"

OPS_TOML = """
[ops]
offline_after_secs = 2
stuck_after_secs = 3
max_power_kw = 350.0
command_failures = 2
command_failure_window_secs = 600
reboots = 3
reboot_window_secs = 600
reopen_window_secs = 600
tick_ms = 100
"""


@pytest.fixture(scope="module")
def ops(make_module_server, tmp_path_factory):
    path = tmp_path_factory.mktemp("ops-config") / "chargeops.toml"
    path.write_text(OPS_TOML)
    server = make_module_server(heartbeat_interval=77, command_timeout=5, extra_args=("--config", str(path)))
    return Ops(server)


class Ops:
    """The server plus tokens for each role, and crews around one station."""

    def __init__(self, server):
        self.s = server
        # Changsha: crew-a is in town, crew-b is in Chenzhou, 300 km south.
        self.station = uid("ops-st")
        server.ensure_station(self.station, lat=28.2, lon=112.95, highway="G4", direction="S")
        for crew in (
            {"id": "crew-a", "name": "Crew A", "skills": ["electrical", "network"], "lat": 28.21, "lon": 112.96},
            {"id": "crew-b", "name": "Crew B", "skills": ["electrical", "network"], "lat": 25.77, "lon": 113.01},
        ):
            server.ok("POST", "/api/v1/crews", crew, status=201)
        self.agent = self.token("Li Na (hotline)", "agent")
        self.dispatcher = self.token("Zhang Wei (dispatch)", "dispatcher")
        self.crew_a = self.token("Wang (crew A)", "crew", "crew-a")
        self.crew_b = self.token("Chen (crew B)", "crew", "crew-b")

    def token(self, name, role, crew_id=None):
        body = {"name": name, "role": role}
        if crew_id:
            body["crew_id"] = crew_id
        return self.s.ok("POST", "/api/v1/tokens", body, status=201)["token"]

    def as_(self, token, method, path, body=None):
        return self.s.api(method, path, body, token=token)

    def ok_as(self, token, method, path, body=None, status=200):
        r = self.as_(token, method, path, body)
        assert r.status_code == status, f"{method} {path}: expected {status}, got {r.status_code}: {r.text[:1000]}"
        return r.json()

    def charger(self):
        cid = uid("ops-cp")
        self.s.register(cid, PW, station=self.station)
        return cid

    def cases(self, charger, state="all"):
        return self.s.ok("GET", f"/api/v1/cases?charger={charger}&state={state}")

    def case(self, case_id):
        return self.s.ok("GET", f"/api/v1/cases/{case_id}")

    def audit(self):
        return self.s.ok("GET", "/api/v1/audit?limit=1000")


def actions(case):
    return [e["action"] for e in case["timeline"]]


async def one_open_case(ops, cid, kind):
    cases = await await_until(
        lambda: [c for c in ops.cases(cid, "open") if c["kind"] == kind], what=f"an open {kind} case on {cid}"
    )
    assert len(cases) == 1, cases
    return cases[0]


def test_fault_to_crew_to_verified_and_closed(ops):
    cid = ops.charger()

    async def scenario():
        async with charge_point(ops.s, cid, V, PW) as cp:
            await cp.boot()
            await cp.status_notification(1, "Available")
            await cp.status_notification(1, "Faulted", error_code="GroundFailure")
            case = await one_open_case(ops, cid, "faulted")
            for field in ("id", "charger_id", "station_id", "kind", "state", "opened_at", "closed_at"):
                assert field in case, field
            assert (case["charger_id"], case["station_id"], case["state"]) == (cid, ops.station, "new")
            assert case["error_code"] == "GroundFailure" and case["connector_id"] == 1
            assert case["closed_at"] is None and case["sla_breached"] is False and case["sla_left_min"] > 0
            cid_case = case["id"]

            # The dispatcher confirms the proposal: the nearest crew with the skill.
            prop = await asyncio.to_thread(ops.ok_as, ops.dispatcher, "GET", f"/api/v1/cases/{cid_case}/proposals")
            assert prop["proposed"] == "crew-a", prop
            assert [c["crew_id"] for c in prop["crews"]] == ["crew-a", "crew-b"]
            assert prop["crews"][0]["travel_minutes"] < prop["crews"][1]["travel_minutes"]
            assigned = await asyncio.to_thread(
                ops.ok_as, ops.dispatcher, "POST", f"/api/v1/cases/{cid_case}/actions/assign", {"crew_id": prop["proposed"]}
            )
            assert (assigned["state"], assigned["crew_id"]) == ("assigned", "crew-a")

            # The crew sees its order (and only its own), works it, and resets the charger remotely.
            mine = await asyncio.to_thread(ops.ok_as, ops.crew_a, "GET", "/api/v1/cases?state=open")
            assert [c["id"] for c in mine] == [cid_case]
            others = await asyncio.to_thread(ops.ok_as, ops.crew_b, "GET", "/api/v1/cases?state=open")
            assert cid_case not in [c["id"] for c in others]
            for action in ("accept", "en_route", "on_site"):
                await asyncio.to_thread(ops.ok_as, ops.crew_a, "POST", f"/api/v1/cases/{cid_case}/actions/{action}")
            reset = await asyncio.to_thread(ops.ok_as, ops.crew_a, "POST", f"/api/v1/cases/{cid_case}/remote/reset")
            assert reset["status"] == "Accepted"
            await cp.wait_call("Reset")
            resolved = await asyncio.to_thread(
                ops.ok_as, ops.crew_a, "POST", f"/api/v1/cases/{cid_case}/actions/resolve",
                {"note": "replaced the RCD", "parts": ["RCD 40A"]},
            )
            assert resolved["state"] == "resolved" and resolved["parts_used"] == ["RCD 40A"]

            # The charger works again: available, and a session that delivers energy.
            await cp.status_notification(1, "Available")
            await asyncio.sleep(0.3)
            assert ops.case(cid_case)["state"] == "resolved", "no session yet: not verified"
            ops.s.add_tag("OPSTAG1")
            await cp.status_notification(1, "Preparing")
            tx = (await cp.start_transaction(1, "OPSTAG1", meter_start=1000)).transaction_id
            await cp.status_notification(1, "Charging")
            await cp.meter_values(1, tx, 4000)
            await cp.stop_transaction(tx, 9000)
            await cp.status_notification(1, "Available")
            closed = await await_until(
                lambda: (lambda c: c if c["state"] == "closed" else None)(ops.case(cid_case)), what="case closed"
            )
            assert closed["closed_at"] is not None
            assert actions(closed) == [
                "opened", "assign", "accept", "en_route", "on_site", "remote_command", "resolve", "cleared",
                "verify", "close",
            ], actions(closed)
            actors = {e["action"]: e["actor"] for e in closed["timeline"]}
            assert actors["assign"] == "Zhang Wei (dispatch)" and actors["resolve"] == "Wang (crew A)"
            assert actors["verify"] == "platform"
            assert ops.cases(cid, "open") == []
            assert [c["id"] for c in ops.cases(cid, "closed")] == [cid_case]

            # The fault comes back within the window: the same case reopens.
            await cp.status_notification(1, "Faulted", error_code="HighTemperature")
            again = await one_open_case(ops, cid, "faulted")
            assert again["id"] == cid_case and again["reopened"] == 1 and again["state"] == "new"

    run(scenario())

    stats = ops.s.api("GET", "/api/v1/cases/stats.csv")
    assert stats.status_code == 200 and stats.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(stats.text)))
    row = next(r for r in rows if r["dimension"] == "station" and r["key"] == ops.station)
    # Reopened, so not counted as repaired.
    assert (int(row["cases"]), int(row["open"]), int(row["reopened"])) == (1, 1, 1), row


def test_a_silent_charger_opens_one_offline_case(ops):
    cid = ops.charger()

    async def scenario():
        async with charge_point(ops.s, cid, V, PW) as cp:
            await cp.boot()
            await cp.status_notification(1, "Available")
        # Gone: well past the 2 s threshold, with ticks every 100 ms.
        case = await one_open_case(ops, cid, "offline")
        await asyncio.sleep(3)
        assert [c["id"] for c in ops.cases(cid, "all")] == [case["id"]], "one case, not one per tick"
        # Back, and a session: verified without a visit.
        async with charge_point(ops.s, cid, V, PW) as cp:
            await cp.boot()
            await cp.status_notification(1, "Available")
            ops.s.add_tag("OPSTAG2")
            tx = (await cp.start_transaction(1, "OPSTAG2", meter_start=0)).transaction_id
            await cp.stop_transaction(tx, 2500)
            await await_until(lambda: ops.case(case["id"])["state"] == "closed", what="offline case closed")

    run(scenario())
    rows = ops.s.ok("GET", "/api/v1/cases/stats")
    offline = next(r for r in rows if r["dimension"] == "kind" and r["key"] == "offline")
    assert offline["closed"] >= 1 and offline["mean_time_to_repair_min"] is not None, offline


def test_a_hotline_call_and_the_chargers_own_report_are_one_case(ops):
    cid = ops.charger()
    call = ops.ok_as(ops.agent, "POST", "/api/v1/cases", {
        "station_id": ops.station, "category": "fault", "caller_phone": "+86 138-0000-1234",
        "description": "The second charger on the left shows a red light and will not start.",
    }, status=201)
    assert (call["kind"], call["state"], call["source"], call["merged"]) == ("hotline", "new", "hotline", False)

    async def scenario():
        async with charge_point(ops.s, cid, V, PW) as cp:
            await cp.boot()
            await cp.status_notification(1, "Faulted", error_code="OverCurrentFailure")
            case = await one_open_case(ops, cid, "faulted")
            assert case["id"] == call["id"], "the detection joined the call"
            assert case["source"] == "hotline" and case["caller_phone"] == "+86 138-0000-1234"
            assert "merged" in actions(ops.case(case["id"]))
            # A second caller about the same charger joins the same case too.
            again = await asyncio.to_thread(ops.ok_as, ops.agent, "POST", "/api/v1/cases", {
                "station_id": ops.station, "charger_id": cid, "connector_id": 1, "category": "fault",
                "caller_phone": "13900001111", "description": "red light on charger",
            })
            assert again["id"] == call["id"] and again["merged"] is True
            assert len(ops.cases(cid, "open")) == 1

    run(scenario())


def test_other_detection_rules(ops):
    async def scenario():
        # Reboot loop: three boots in the window.
        cid = await asyncio.to_thread(ops.charger)
        for _ in range(3):
            async with charge_point(ops.s, cid, V, PW) as cp:
                await cp.boot()
        await one_open_case(ops, cid, "reboot_loop")

        async with charge_point(ops.s, cid, V, PW) as cp:
            await cp.boot()
            await cp.status_notification(1, "Available")
            ops.s.add_tag("OPSTAG3")
            # Energy going backwards.
            tx = (await cp.start_transaction(1, "OPSTAG3", meter_start=5000)).transaction_id
            await cp.meter_values(1, tx, 6000)
            await cp.meter_values(1, tx, 5500)
            anomaly = await one_open_case(ops, cid, "meter_anomaly")
            assert "backwards" in anomaly["title"]
            # Stuck: charging, and the register does not move.
            await cp.status_notification(1, "Charging")
            await one_open_case(ops, cid, "stuck_session")
            await cp.stop_transaction(tx, 6000)

            # Repeated command rejections.
            cp.answers["Reset"] = "Rejected"
            for _ in range(2):
                r = await ops.s.aok("POST", f"/api/v1/chargers/{cid}/commands/reset", {})
                assert r["status"] == "Rejected"
            await one_open_case(ops, cid, "command_failures")

    run(scenario())


def test_wrong_roles_and_bad_input_are_refused_audited_and_change_nothing(ops):
    cid = ops.charger()
    # An order of crew A's.
    call = ops.ok_as(ops.agent, "POST", "/api/v1/cases", {
        "station_id": ops.station, "charger_id": cid, "category": "fault",
        "caller_phone": "13800009999", "description": "screen dark",
    }, status=201)
    ops.ok_as(ops.dispatcher, "POST", f"/api/v1/cases/{call['id']}/actions/assign", {"crew_id": "crew-a"})
    before = ops.case(call["id"])
    all_before = len(ops.s.ok("GET", "/api/v1/cases"))

    def refused(token, method, path, body, status, code=None):
        r = ops.as_(token, method, path, body)
        assert r.status_code == status, f"{method} {path}: expected {status}, got {r.status_code}: {r.text[:300]}"
        err = r.json()
        assert set(err) == {"code", "message"} and err["message"], err
        if code:
            assert err["code"] == code, err
        return err

    # A crew member closing, resolving or working someone else's order.
    refused(ops.crew_b, "POST", f"/api/v1/cases/{call['id']}/actions/resolve", {"note": "done"}, 403, "not_your_order")
    refused(ops.crew_b, "POST", f"/api/v1/cases/{call['id']}/actions/accept", None, 403, "not_your_order")
    refused(ops.crew_b, "POST", f"/api/v1/cases/{call['id']}/actions/close", None, 403)
    refused(ops.crew_b, "GET", f"/api/v1/cases/{call['id']}", None, 403)
    refused(ops.crew_b, "POST", f"/api/v1/cases/{call['id']}/remote/reset", None, 403)
    # An agent resetting a charger, through either door, or closing a fault, or assigning.
    refused(ops.agent, "POST", f"/api/v1/chargers/{cid}/commands/reset", {"hard": True}, 403, "forbidden")
    refused(ops.agent, "POST", f"/api/v1/cases/{call['id']}/remote/reset", None, 403, "forbidden")
    refused(ops.agent, "POST", f"/api/v1/cases/{call['id']}/actions/close", None, 403)
    refused(ops.agent, "POST", f"/api/v1/cases/{call['id']}/actions/assign", {"crew_id": "crew-b"}, 403)
    # Only admins make tokens and read the audit log.
    refused(ops.dispatcher, "POST", "/api/v1/tokens", {"name": "x", "role": "admin"}, 403)
    refused(ops.agent, "GET", "/api/v1/audit", None, 403)
    # Bad cases.
    good = {"station_id": ops.station, "category": "fault", "caller_phone": "13800001234", "description": "x"}
    refused(ops.agent, "POST", "/api/v1/cases", {**good, "station_id": "no-such-station"}, 404, "not_found")
    refused(ops.agent, "POST", "/api/v1/cases", {**good, "charger_id": "no-such-charger"}, 404)
    refused(ops.agent, "POST", "/api/v1/cases", {**good, "description": "x" * 100_000}, 400, "too_long")
    refused(ops.agent, "POST", "/api/v1/cases", {**good, "description": "  "}, 400)
    refused(ops.agent, "POST", "/api/v1/cases", {**good, "caller_phone": "call me maybe"}, 400)
    refused(ops.agent, "POST", "/api/v1/cases", {**good, "caller_phone": "1" * 40}, 400)
    refused(ops.agent, "POST", "/api/v1/cases", {**good, "category": "complaint"}, 400)
    refused(ops.agent, "POST", "/api/v1/cases", {**good, "connector_id": 1}, 400)
    refused(ops.agent, "POST", "/api/v1/cases", {**good, "extra": 1}, 400)
    refused(ops.agent, "POST", "/api/v1/cases", [1, 2], 400)
    # Bad actions.
    refused(ops.dispatcher, "POST", f"/api/v1/cases/{call['id']}/actions/assign", {"crew_id": "nobody"}, 404)
    refused(ops.dispatcher, "POST", f"/api/v1/cases/{call['id']}/actions/fly", None, 404)
    refused(ops.crew_a, "POST", f"/api/v1/cases/{call['id']}/actions/resolve", {"note": ""}, 400)
    refused(ops.crew_a, "POST", f"/api/v1/cases/{call['id']}/actions/reopen", None, 403)
    refused(ops.dispatcher, "POST", f"/api/v1/cases/{call['id']}/actions/reopen", None, 409, "invalid_transition")
    refused(ops.dispatcher, "POST", "/api/v1/cases/999999/actions/close", None, 404)
    refused(ops.dispatcher, "GET", "/api/v1/cases?state=sideways", None, 400)
    refused(ops.s.token, "POST", "/api/v1/tokens", {"name": "c", "role": "crew"}, 400)
    refused(ops.s.token, "POST", "/api/v1/tokens", {"name": "c", "role": "wizard"}, 400)

    # Nothing changed.
    after = ops.case(call["id"])
    assert after == before, "a refused request changed the case"
    assert len(ops.s.ok("GET", "/api/v1/cases")) == all_before

    # Every refusal is in the audit log with who and why.
    log = ops.audit()
    refusals = [e for e in log if e["status"] >= 400]
    assert any(e["actor"] == "Chen (crew B)" and e["status"] == 403 and "not_your_order" in e["detail"]
               and e["action"] == f"POST /api/v1/cases/{call['id']}/actions/resolve" for e in refusals), refusals[:5]
    assert any(e["actor"] == "Li Na (hotline)" and e["role"] == "agent" and e["status"] == 403
               and e["action"] == f"POST /api/v1/chargers/{cid}/commands/reset" for e in refusals)
    assert any(e["status"] == 400 and "too_long" in e["detail"] for e in refusals)
    assert any(e["status"] == 404 and e["action"] == "POST /api/v1/cases" for e in refusals)
    # And the changes that were allowed, too.
    assert any(e["status"] == 201 and e["action"] == "POST /api/v1/cases" and e["role"] == "agent" for e in log)
    assert all("x" * 100 not in e["detail"] for e in log), "bodies are not copied into the log"


def test_agent_answers_a_question_and_closes_it(ops):
    q = ops.ok_as(ops.agent, "POST", "/api/v1/cases", {
        "station_id": ops.station, "category": "business_question", "caller_phone": "073188880000",
        "description": "How do I get a VAT invoice for my fleet?",
    }, status=201)
    assert q["priority"] == "low"
    faq = ops.ok_as(ops.agent, "GET", "/api/v1/faq?q=invoice")
    assert faq and faq[0]["id"] == "payment"
    closed = ops.ok_as(ops.agent, "POST", f"/api/v1/cases/{q['id']}/actions/close", {"note": "read the FAQ answer"})
    assert closed["state"] == "closed"
    me = ops.ok_as(ops.crew_a, "GET", "/api/v1/me")
    assert me == {"name": "Wang (crew A)", "role": "crew", "crew_id": "crew-a"}


# Restarts the module's server: keep it the last test of the module.
def test_a_charger_that_does_not_return_after_a_restart_gets_an_offline_case(ops):
    gone = ops.charger()

    async def connected_at_the_crash():
        async with charge_point(ops.s, gone, V, PW) as cp:
            await cp.boot()
            await cp.status_notification(1, "Available")
            # The platform dies (kill -9) while the charger is connected; it never comes back.
            ops.s.restart()

    run(connected_at_the_crash())
    # The detector of the new process has seen nothing from this charger: it is watched as
    # offline from the start and gets its case past the 2 s threshold.
    case = wait_until(lambda: [c for c in ops.cases(gone, "open") if c["kind"] == "offline"],
                      what="an offline case for a charger absent since the restart")
    assert len(case) == 1, case
    time.sleep(1)
    assert len([c for c in ops.cases(gone, "all") if c["kind"] == "offline"]) == 1
