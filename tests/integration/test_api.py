"""The REST API: authentication, stations, chargers, id tags, sessions, OpenAPI document,
health, metrics and the event stream's HTTP surface."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
import requests

from chargepoints import charge_point
from harness import EventStream, body_list, run, uid

ERROR_KEYS = {"code", "message"}


def assert_error(r: requests.Response, status: int | tuple) -> dict:
    wanted = status if isinstance(status, tuple) else (status,)
    assert r.status_code in wanted, f"expected {status}, got {r.status_code}: {r.text[:500]}"
    body = r.json()
    assert isinstance(body, dict) and set(body) >= ERROR_KEYS, body
    assert isinstance(body["code"], str) and body["code"]
    assert isinstance(body["message"], str) and body["message"]
    return body


PROTECTED = [
    ("GET", "/api/v1/stations", None),
    ("POST", "/api/v1/stations", {"id": "nope", "name": "Nope"}),
    ("GET", "/api/v1/stations/nope", None),
    ("GET", "/api/v1/chargers", None),
    ("POST", "/api/v1/chargers", {"id": "nope", "station_id": "nope"}),
    ("GET", "/api/v1/chargers/nope", None),
    ("POST", "/api/v1/chargers/nope/accept", None),
    ("POST", "/api/v1/chargers/nope/commands/reset", {"hard": True}),
    ("GET", "/api/v1/id-tags", None),
    ("POST", "/api/v1/id-tags", {"id_tag": "X", "status": "accepted"}),
    ("DELETE", "/api/v1/id-tags/X", None),
    ("GET", "/api/v1/sessions", None),
    ("GET", "/api/v1/events", None),
]


@pytest.mark.parametrize("method,path,body", PROTECTED, ids=[f"{m} {p}" for m, p, _ in PROTECTED])
def test_api_requires_the_bearer_token(server, method, path, body):
    assert_error(server.api(method, path, body, token=None), 401)
    assert_error(server.api(method, path, body, token="wrong-token"), 401)
    basic = {"Authorization": "Basic " + "YWRtaW46" + "YWRtaW4="}  # admin:admin
    assert_error(server.api(method, path, body, token=None, headers=basic), 401)
    # Nothing was created by the refused requests.
    if method == "POST" and path == "/api/v1/stations":
        assert server.api("GET", "/api/v1/stations/nope").status_code == 404


def test_stations_create_list_get(server):
    sid = uid("st")
    body = {"id": sid, "name": "Xianning Service Area", "lat": 29.84, "lon": 114.32, "highway": "G4",
            "direction": "southbound"}
    server.ok("POST", "/api/v1/stations", body, status=201)
    minimal = uid("st")
    server.ok("POST", "/api/v1/stations", {"id": minimal, "name": "Minimal"}, status=201)

    listed = {s["id"]: s for s in body_list(server.ok("GET", "/api/v1/stations"))}
    assert sid in listed and minimal in listed
    st = listed[sid]
    for key in ("name", "highway", "direction"):
        assert st[key] == body[key]
    assert st["lat"] == pytest.approx(29.84) and st["lon"] == pytest.approx(114.32)
    assert st["chargers"] == 0
    assert st["connectors"] == {k: 0 for k in
                                ("available", "occupied", "charging", "reserved", "unavailable", "faulted", "offline")}
    assert listed[minimal]["lat"] is None and listed[minimal]["highway"] is None
    assert server.ok("GET", f"/api/v1/stations/{sid}") == st

    assert_error(server.api("GET", "/api/v1/stations/does-not-exist"), 404)
    assert_error(server.api("POST", "/api/v1/stations", {"id": uid("st")}), 400)  # name missing
    assert_error(server.api("POST", "/api/v1/stations", {"name": "no id"}), 400)
    assert_error(server.api("POST", "/api/v1/stations", {"id": uid("st"), "name": "x", "lat": "north"}), 400)
    r = server.api("POST", "/api/v1/stations", None, headers={"Content-Type": "application/json"})
    assert_error(r, 400)
    r = server._http.post(server.base_url + "/api/v1/stations", data="{not json",
                          headers={"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"})
    assert_error(r, 400)


def test_chargers_register_list_get(server):
    sid = uid("st")
    server.ensure_station(sid)
    cid = uid("reg")
    server.ok("POST", "/api/v1/chargers", {"id": cid, "station_id": sid, "password": "pw-1234567890abcdef"}, status=201)
    assert_error(server.api("POST", "/api/v1/chargers", {"id": cid, "station_id": sid}), 409)
    assert_error(server.api("POST", "/api/v1/chargers", {"id": uid("reg"), "station_id": "no-such-station"}), (400, 404))
    assert_error(server.api("POST", "/api/v1/chargers", {"station_id": sid}), 400)
    assert_error(server.api("POST", "/api/v1/chargers", {"id": "x" * 49, "station_id": sid}), 400)
    assert_error(server.api("POST", "/api/v1/chargers", {"id": "a/b", "station_id": sid}), 400)

    charger = server.charger(cid)
    assert charger["id"] == cid and charger["station_id"] == sid
    assert charger["protocol"] is None
    assert charger["online"] is False
    assert charger["registration"] == "accepted"
    assert charger["connectors"] == []
    assert "pw-1234567890abcdef" not in str(charger)
    listed = {c["id"]: c for c in body_list(server.ok("GET", "/api/v1/chargers"))}
    assert listed[cid]["station_id"] == sid
    assert server.ok("GET", f"/api/v1/stations/{sid}")["chargers"] == 1

    assert_error(server.api("GET", "/api/v1/chargers/no-such-charger"), 404)
    assert_error(server.api("POST", "/api/v1/chargers/no-such-charger/accept"), 404)
    assert_error(server.api("POST", "/api/v1/chargers/no-such-charger/reject"), 404)


def test_id_tags_create_list_delete(server):
    tag = uid("IDT")[:20]
    expiry = (datetime.now(timezone.utc) + timedelta(days=7)).replace(microsecond=0)
    server.ok("POST", "/api/v1/id-tags", {"id_tag": tag, "status": "accepted",
                                          "expiry": expiry.isoformat().replace("+00:00", "Z")}, status=(200, 201))
    blocked = uid("IDT")[:20]
    server.ok("POST", "/api/v1/id-tags", {"id_tag": blocked, "status": "blocked"}, status=(200, 201))
    tags = {t["id_tag"]: t for t in body_list(server.ok("GET", "/api/v1/id-tags"))}
    assert tags[tag]["status"] == "accepted"
    assert datetime.fromisoformat(tags[tag]["expiry"].replace("Z", "+00:00")) == expiry
    assert tags[blocked]["status"] == "blocked"
    assert tags[blocked].get("expiry") is None

    assert_error(server.api("POST", "/api/v1/id-tags", {"id_tag": uid("T"), "status": "maybe"}), 400)
    assert_error(server.api("POST", "/api/v1/id-tags", {"status": "accepted"}), 400)
    assert_error(server.api("POST", "/api/v1/id-tags", {"id_tag": uid("T"), "status": "accepted",
                                                         "expiry": "next tuesday"}), 400)

    server.ok("DELETE", f"/api/v1/id-tags/{tag}", status=(200, 204))
    assert tag not in {t["id_tag"] for t in body_list(server.ok("GET", "/api/v1/id-tags"))}
    assert_error(server.api("DELETE", f"/api/v1/id-tags/{tag}"), 404)


def test_sessions_filters_order_and_lookup(server):
    cid = uid("sess")
    server.register(cid, password="sessions-password-16")
    tag = uid("TG")[:20]
    server.add_tag(tag)
    base = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=5)

    def at(hours: float) -> str:
        return (base + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")

    async def scenario():
        async with charge_point(server, cid, "1.6", "sessions-password-16") as cp:
            await cp.boot()
            refs = []
            for i in range(3):
                start = await cp.start_transaction(1, tag, meter_start=i * 1000, timestamp=at(i))
                refs.append(str(start.transaction_id))
                if i < 2:
                    await cp.stop_transaction(start.transaction_id, i * 1000 + 100 * (i + 1), timestamp=at(i + 0.5))
            return refs

    refs = run(scenario())
    everything = server.sessions(cid)
    assert [s["transaction_ref"] for s in everything] == list(reversed(refs)), "sessions must be newest first"
    assert [s["transaction_ref"] for s in server.sessions(cid, limit=2)] == [refs[2], refs[1]]
    assert [s["transaction_ref"] for s in server.sessions(cid, open="true")] == [refs[2]]
    closed = server.sessions(cid, open="false")
    assert [s["transaction_ref"] for s in closed] == [refs[1], refs[0]]
    assert [s["energy_wh"] for s in closed] == [200, 100]
    assert all(s["charger_id"] == cid for s in everything)
    for s in everything:
        assert server.ok("GET", f"/api/v1/sessions/{s['id']}") == s
    assert server.sessions(uid("nobody")) == []
    assert_error(server.api("GET", "/api/v1/sessions/999999999"), (400, 404))
    assert_error(server.api("GET", f"/api/v1/sessions?charger={cid}&limit=lots"), 400)
    assert_error(server.api("GET", f"/api/v1/sessions?charger={cid}&open=perhaps"), 400)


def _normalise(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def test_openapi_document_lists_the_api(server):
    r = server.api("GET", "/api/v1/openapi.json")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert str(doc.get("openapi", "")).startswith("3."), doc.get("openapi")
    assert doc["info"]["title"]
    paths = {_normalise(p) for p in doc["paths"]}
    for expected in [
        "/api/v1/stations", "/api/v1/stations/{}", "/api/v1/chargers", "/api/v1/chargers/{}",
        "/api/v1/chargers/{}/accept", "/api/v1/chargers/{}/reject", "/api/v1/chargers/{}/commands/{}",
        "/api/v1/id-tags", "/api/v1/id-tags/{}", "/api/v1/sessions", "/api/v1/sessions/{}", "/api/v1/events",
    ]:
        assert expected in paths, f"{expected} missing from openapi.json paths {sorted(paths)}"
    stations = next(v for p, v in doc["paths"].items() if _normalise(p) == "/api/v1/stations")
    assert {"get", "post"} <= set(stations)


def test_healthz_needs_no_token(server):
    r = requests.get(server.base_url + "/healthz", timeout=5)
    assert r.status_code == 200


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)( -?[0-9]+)?$")


def test_metrics_are_prometheus_text(server):
    cid = uid("metr")
    server.register(cid, password="metrics-password-16")

    async def scenario():
        async with charge_point(server, cid, "1.6", "metrics-password-16") as cp:
            await cp.boot()
            await cp.heartbeat()
            return await server.aapi("GET", "/metrics")

    r = run(scenario())
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    names = set()
    for line in r.text.splitlines():
        if not line or line.startswith("#"):
            assert not line or line.startswith("# HELP ") or line.startswith("# TYPE "), line
            continue
        m = SAMPLE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        names.add(m.group(1))
    ours = {n for n in names if n.startswith("chargeops_")}
    assert ours, f"no chargeops_ metrics in {sorted(names)}"
    assert server.token not in r.text


def test_event_stream_is_server_sent_events(server):
    with EventStream(server) as events:
        assert events.status_code == 200
        assert events.content_type.startswith("text/event-stream")
        cid = uid("sse")
        server.register(cid, password="sse-password-16chars")

        async def scenario():
            async with charge_point(server, cid, "2.0.1", "sse-password-16chars") as cp:
                await cp.boot()
                await cp.status_notification(1, 1, "Available")
                await cp.status_notification(1, 1, "Faulted")
                ev = await events.await_for(
                    lambda e: e.get("charger_id") == cid and e.get("_event") == "status_changed"
                    and e.get("status") == "faulted"
                )
                assert ev["type"] == "status_changed"
                assert ev["previous"] == "available"
                assert ev["evse_id"] == 1 and ev["connector_id"] == 1
                assert ev["station_id"] == "test-station"

        run(scenario())
        names = {name for name, _ in events.raw}
        assert names <= {"status_changed", "session_started", "session_stopped", "charger_online",
                         "charger_offline", "charger_booted", "queue_changed", "case_changed"}, names


def test_cars_waiting_at_a_station_are_observed_and_published(server):
    sid = uid("st")
    server.ok("POST", "/api/v1/stations", {"id": sid, "name": "Queue Sensor Area"}, status=201)
    assert server.ok("GET", f"/api/v1/stations/{sid}")["waiting"] == 0
    with EventStream(server) as events:
        assert server.ok("PUT", f"/api/v1/stations/{sid}/waiting", {"waiting": 12})["waiting"] == 12

        async def scenario():
            ev = await events.await_for(lambda e: e.get("_event") == "queue_changed" and e.get("station_id") == sid)
            assert ev["waiting"] == 12

        run(scenario())
    assert server.ok("GET", f"/api/v1/stations/{sid}")["waiting"] == 12
    # Bad input changes nothing.
    assert_error(server.api("PUT", f"/api/v1/stations/{sid}/waiting", {"waiting": -1}), 400)
    assert_error(server.api("PUT", f"/api/v1/stations/{sid}/waiting", {"waiting": 10_001}), 400)
    assert_error(server.api("PUT", f"/api/v1/stations/{sid}/waiting", {"cars": 3}), 400)
    assert_error(server.api("PUT", "/api/v1/stations/nowhere/waiting", {"waiting": 3}), 404)
    assert server.ok("GET", f"/api/v1/stations/{sid}")["waiting"] == 12
