"""OCPI 2.2.1 with the platform as the CPO, against a partner (an eMSP, a navigation app) written
here on its own: its own envelope, its own base64 token header, its own versions endpoints on a
local HTTP server (loopback only).

- The handshake: an admin makes a registration (token A); the partner reads the versions and
  the 2.2.1 endpoints with A, posts its credentials (token B); the platform reads the
  partner's versions with B, answers token C; A is retired; PUT exchanges C for a new one;
  DELETE unregisters.
- Locations: paging through 160+ of them by the Link header, X-Total-Count and X-Limit; one
  location, EVSE and connector, their status following a Python `ocpp` charge point.
- Bad input: a wrong, missing or retired token (401, 2000), a registration token where a
  registered one is needed, unknown location / EVSE / connector (404, 2003), bad paging
  (2001), a body that is not JSON (400), a malformed credentials object (2001), registering
  twice (405), a partner whose versions cannot be read (3001); nothing changes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import requests

from chargepoints import charge_point
from harness import await_until, free_port, run, uid

PW = "ocpi-test-password-16"


def token_header(token: str) -> dict:
    return {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}


class Emsp:
    """The partner's side: serves its versions and 2.2.1 details, and remembers who asked."""

    def __init__(self, token_b: str):
        self.token_b = token_b
        self.seen: list[tuple[str, str | None]] = []
        self.patches: list[tuple[str, dict]] = []
        self.failing = False
        self.port = free_port()
        partner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                partner.seen.append((self.path, self.headers.get("Authorization")))
                if self.headers.get("Authorization") != token_header(partner.token_b)["Authorization"]:
                    return self.reply(401, {"status_code": 2000, "status_message": "who?", "timestamp": "2027-01-01T00:00:00Z"})
                base = f"http://127.0.0.1:{partner.port}"
                if self.path == "/ocpi/versions":
                    data = [{"version": "2.1.1", "url": f"{base}/ocpi/2.1.1"},
                            {"version": "2.2.1", "url": f"{base}/ocpi/2.2.1"}]
                elif self.path == "/ocpi/2.2.1":
                    data = {"version": "2.2.1", "endpoints": [
                        {"identifier": "locations", "role": "RECEIVER", "url": f"{base}/ocpi/2.2.1/locations"},
                        {"identifier": "credentials", "role": "RECEIVER", "url": f"{base}/ocpi/2.2.1/credentials"}]}
                else:
                    return self.reply(404, {"status_code": 2000, "timestamp": "2027-01-01T00:00:00Z"})
                self.reply(200, {"data": data, "status_code": 1000, "timestamp": "2027-01-01T00:00:00Z"})

            def do_PATCH(self):  # noqa: N802
                n = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(n) or b"{}")
                if self.headers.get("Authorization") != token_header(partner.token_b)["Authorization"]:
                    return self.reply(401, {"status_code": 2000, "timestamp": "2027-01-01T00:00:00Z"})
                if partner.failing:
                    return self.reply(503, {"status_code": 3000, "timestamp": "2027-01-01T00:00:00Z"})
                partner.patches.append((self.path, body))
                self.reply(200, {"status_code": 1000, "timestamp": "2027-01-01T00:00:00Z"})

            def reply(self, code, body):
                raw = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.httpd = HTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def versions_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ocpi/versions"

    def credentials(self) -> dict:
        return {"token": self.token_b, "url": self.versions_url, "roles": [
            {"role": "EMSP", "business_details": {"name": "Nav App"}, "party_id": "NAV", "country_code": "CN"}]}

    def close(self):
        self.httpd.shutdown()


@pytest.fixture
def emsp():
    e = Emsp(f"token-b-{uid('b')}")
    yield e
    e.close()


def ocpi(server, method, path, token=None, body=None, raw=None, url=None):
    headers = token_header(token) if token else {}
    if raw is not None:
        headers["Content-Type"] = "application/json"
    return requests.request(method, url or f"{server.base_url}{path}", headers=headers,
                            json=body, data=raw, timeout=30)


def envelope(r, http=200, code=1000):
    assert r.status_code == http, (r.status_code, r.text)
    e = r.json()
    assert e["status_code"] == code, e
    assert e["timestamp"].endswith("Z")
    return e.get("data")


def test_the_handshake_and_the_locations(make_server, emsp):
    s = make_server(command_timeout=10)
    made = s.ok("POST", "/api/v1/partners/ocpi", {"name": "Nav App"}, status=201)
    token_a = made["token"]
    assert made["versions_url"] == f"{s.base_url}/ocpi/versions"

    # With A: the versions and the details; not the locations.
    versions = envelope(ocpi(s, "GET", "/ocpi/versions", token_a))
    assert versions == [{"version": "2.2.1", "url": f"{s.base_url}/ocpi/2.2.1"}]
    details = envelope(ocpi(s, "GET", "/ocpi/2.2.1", token_a))
    modules = {(e["identifier"], e["role"]) for e in details["endpoints"]}
    assert {("credentials", "SENDER"), ("credentials", "RECEIVER"), ("locations", "SENDER")} <= modules
    envelope(ocpi(s, "GET", "/ocpi/2.2.1/locations", token_a), http=401, code=2000)

    # Malformed first: nothing registers.
    envelope(ocpi(s, "POST", "/ocpi/2.2.1/credentials", token_a, raw="{not json"), http=400, code=2001)
    envelope(ocpi(s, "POST", "/ocpi/2.2.1/credentials", token_a, body={"token": "x"}), code=2001)
    bad = {**emsp.credentials(), "roles": []}
    envelope(ocpi(s, "POST", "/ocpi/2.2.1/credentials", token_a, body=bad), code=2001)
    wrong_b = {**emsp.credentials(), "token": "not-what-the-partner-accepts"}
    envelope(ocpi(s, "POST", "/ocpi/2.2.1/credentials", token_a, body=wrong_b), code=3001)

    # The registration: the platform reads the partner's versions with B, answers C.
    ours = envelope(ocpi(s, "POST", "/ocpi/2.2.1/credentials", token_a, body=emsp.credentials()))
    token_c = ours["token"]
    assert token_c and token_c != token_a
    assert ours["url"] == f"{s.base_url}/ocpi/versions"
    assert ours["roles"][0]["role"] == "CPO" and len(ours["roles"][0]["country_code"]) == 2
    paths = [p for p, auth in emsp.seen if auth == token_header(emsp.token_b)["Authorization"]]
    assert "/ocpi/versions" in paths and "/ocpi/2.2.1" in paths, emsp.seen
    # A is retired; C works; registering again is refused.
    envelope(ocpi(s, "GET", "/ocpi/versions", token_a), http=401, code=2000)
    envelope(ocpi(s, "GET", "/ocpi/versions", "made-up-token"), http=401, code=2000)
    envelope(ocpi(s, "GET", "/ocpi/versions"), http=401, code=2000)
    assert envelope(ocpi(s, "GET", "/ocpi/2.2.1/credentials", token_c))["token"] == token_c
    envelope(ocpi(s, "POST", "/ocpi/2.2.1/credentials", token_c, body=emsp.credentials()), http=405, code=2000)

    # 160 service-area sides and one charger with a live connector.
    prefix = uid("oc")
    for i in range(160):
        s.ensure_station(f"{prefix}-{i:03d}", name=f"服务区 {i}", lat=28.0 + i / 1000, lon=112.9)
    watched = f"{prefix}-007"
    cid = uid("oc-cp")
    s.register(cid, PW, station=watched)

    # Paging by the Link header.
    seen_ids, url, pages = [], f"{s.base_url}/ocpi/2.2.1/locations?limit=50", 0
    total = None
    while url:
        r = ocpi(s, "GET", None, token_c, url=url)
        data = envelope(r)
        pages += 1
        assert int(r.headers["X-Limit"]) == 50
        total = int(r.headers["X-Total-Count"])
        assert len(data) <= 50
        seen_ids += [loc["id"] for loc in data]
        link = r.headers.get("Link")
        url = link.split(";")[0].strip("<> ") if link else None
    assert total >= 160 and len(seen_ids) == total == len(set(seen_ids)), (total, len(seen_ids))
    assert pages == -(-total // 50)
    assert {f"{prefix}-{i:03d}" for i in range(160)} <= set(seen_ids)
    r = ocpi(s, "GET", "/ocpi/2.2.1/locations?limit=500", token_c)
    assert int(r.headers["X-Limit"]) == 100 and len(envelope(r)) == 100, "the most a page holds"
    assert envelope(ocpi(s, "GET", "/ocpi/2.2.1/locations?offset=100000", token_c)) == []
    for bad_q in ("limit=ten", "offset=-1", "date_from=yesterday",
                  "date_from=2027-02-02T00:00:00Z&date_to=2027-02-01T00:00:00Z"):
        envelope(ocpi(s, "GET", f"/ocpi/2.2.1/locations?{bad_q}", token_c), code=2001)

    async def scenario():
        async with charge_point(s, cid, "1.6", PW) as cp:
            assert (await cp.boot()).status == "Accepted"
            await cp.status_notification(1, "Available")

            def evse_status():
                return envelope(ocpi(s, "GET", f"/ocpi/2.2.1/locations/{watched}/{cid}*1", token_c))["status"]

            await await_until(lambda: evse_status() == "AVAILABLE", what="EVSE available")
            loc = envelope(ocpi(s, "GET", f"/ocpi/2.2.1/locations/{watched}", token_c))
            for field in ("country_code", "party_id", "id", "publish", "address", "city", "country",
                          "coordinates", "time_zone", "last_updated"):
                assert field in loc, field
            assert loc["coordinates"] == {"latitude": "28.007000", "longitude": "112.900000"}
            evse = next(e for e in loc["evses"] if e["uid"] == f"{cid}*1")
            conn = evse["connectors"][0]
            assert (conn["id"], conn["standard"], conn["power_type"]) == ("1", "GBT_DC", "DC")
            c = envelope(ocpi(s, "GET", f"/ocpi/2.2.1/locations/{watched}/{cid}*1/1", token_c))
            assert c["id"] == "1" and c["max_electric_power"] > 0
            await cp.status_notification(1, "Faulted", error_code="GroundFailure")
            await await_until(lambda: evse_status() == "OUTOFORDER", what="EVSE out of order")

    run(scenario())
    for path in (f"/ocpi/2.2.1/locations/{prefix}-nope", f"/ocpi/2.2.1/locations/{watched}/nope*1",
                 f"/ocpi/2.2.1/locations/{watched}/{cid}*1/9"):
        envelope(ocpi(s, "GET", path, token_c), http=404, code=2003)

    # PUT exchanges C for a new token; DELETE unregisters.
    newer = envelope(ocpi(s, "PUT", "/ocpi/2.2.1/credentials", token_c, body=emsp.credentials()))["token"]
    assert newer != token_c
    envelope(ocpi(s, "GET", "/ocpi/2.2.1/locations?limit=1", token_c), http=401, code=2000)
    envelope(ocpi(s, "GET", "/ocpi/2.2.1/locations?limit=1", newer))
    envelope(ocpi(s, "DELETE", "/ocpi/2.2.1/credentials", newer))
    envelope(ocpi(s, "GET", "/ocpi/versions", newer), http=401, code=2000)


def test_only_an_admin_makes_registrations(make_server):
    s = make_server(command_timeout=10)
    operator = s.ok("POST", "/api/v1/tokens", {"name": "op", "role": "operator"}, status=201)["token"]
    assert s.api("POST", "/api/v1/partners/ocpi", {"name": "X"}, token=operator).status_code == 403
    assert s.api("POST", "/api/v1/partners/ocpi", {"name": "X"}, token=None).status_code == 401
    assert s.api("POST", "/api/v1/partners/ocpi", {"name": ""}).status_code == 400
    assert s.api("POST", "/api/v1/partners/ocpi", {"name": "X", "extra": 1}).status_code == 400
    made = s.ok("POST", "/api/v1/partners/ocpi", {"name": "Map Provider"}, status=201)
    assert made["token"] not in s.log_text(), "a token is never logged"


def test_status_changes_are_pushed_to_the_partner_and_wait_out_its_outage(make_server, emsp):
    s = make_server(command_timeout=10)
    token_a = s.ok("POST", "/api/v1/partners/ocpi", {"name": "Nav App"}, status=201)["token"]
    envelope(ocpi(s, "POST", "/ocpi/2.2.1/credentials", token_a, body=emsp.credentials()))
    station = uid("oc-push")
    s.ensure_station(station, lat=28.1, lon=112.9)
    cid = uid("oc-push-cp")
    s.register(cid, PW, station=station)
    path = f"/ocpi/2.2.1/locations/CN/CHO/{station}/{cid}*1"

    def statuses():
        return [b["status"] for p, b in emsp.patches if p == path]

    async def scenario():
        async with charge_point(s, cid, "1.6", PW) as cp:
            assert (await cp.boot()).status == "Accepted"
            await cp.status_notification(1, "Available")
            await await_until(lambda: statuses() and statuses()[-1] == "AVAILABLE", what="the push")
            body = [b for p, b in emsp.patches if p == path][-1]
            assert set(body) == {"status", "last_updated"} and body["last_updated"].endswith("Z")
            # The partner is down while the connector changes three times.
            emsp.failing = True
            before = len(statuses())
            for status in ("Preparing", "Charging", "Faulted"):
                await cp.status_notification(1, status)
                await asyncio.sleep(0.3)
            r = await s.aapi("GET", f"/api/v1/chargers/{cid}")
            assert r.status_code == 200, "the charger's path is not held up"
            await asyncio.sleep(1.5)
            assert len(statuses()) == before, "nothing lands while the partner is down"
            emsp.failing = False
            await await_until(lambda: statuses()[-1] == "OUTOFORDER", timeout=20, what="the latest status after the outage")
            await asyncio.sleep(2.5)
            after = statuses()[before:]
            assert after[-1] == "OUTOFORDER" and len(after) <= 2, after

    run(scenario())
    assert "OCPI push not delivered" in s.log_text()
    # The admin's view of the partner, and the metrics.
    (view,) = s.ok("GET", "/api/v1/partners")
    assert (view["name"], view["standard"], view["registered"], view["roles"]) == ("Nav App", "ocpi", True, ["EMSP"])
    assert "LOCATIONS:RECEIVER" in view["endpoints"]
    pushes = view["pushes"]
    assert pushes["delivered"] >= 2 and pushes["failed"] >= 1 and pushes["queued"] == 0, pushes
    assert "503" in pushes["last_error"] and pushes["last_delivered_at"]
    assert "token" not in json.dumps(view).lower().replace("tokens", "")
    viewer = s.ok("POST", "/api/v1/tokens", {"name": "v", "role": "viewer"}, status=201)["token"]
    assert s.api("GET", "/api/v1/partners", token=viewer).status_code == 403
    metrics = s.api("GET", "/metrics", token=None).text
    line = f'chargeops_partner_pushes_total{{partner="{view["id"]}",result="delivered"}} {pushes["delivered"]}'
    assert line in metrics, metrics[-1500:]
