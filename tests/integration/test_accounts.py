"""Staff accounts and sign-in: an administrator creates accounts with a role and a password,
people sign in for a session token that the pages and the API accept, wrong passwords lock a
login, and deleting an account or resetting its password ends its sessions."""

from __future__ import annotations

import pytest

from harness import uid

PASSWORD = "hotline-pass-2026"


@pytest.fixture(scope="module")
def s(make_module_server):
    return make_module_server()


def login(s, name, password):
    return s.api("POST", "/api/v1/login", {"login": name, "password": password}, token=None)


def as_(s, token, method, path, body=None):
    return s.api(method, path, body, token=token)


def new_login(prefix="agent"):
    return uid(prefix).lower().replace("_", "-")[:40]


def test_an_agent_signs_in_and_acts_with_the_role_of_the_account(s):
    name = new_login()
    made = s.ok("POST", "/api/v1/accounts", {"login": name, "name": "Li Na (hotline)", "role": "agent", "password": PASSWORD}, status=201)
    assert made == {"login": name, "name": "Li Na (hotline)", "role": "agent", "crew_id": None, "created_at": made["created_at"]}
    assert all("password" not in a for a in s.ok("GET", "/api/v1/accounts"))

    r = login(s, name.upper(), PASSWORD)  # logins are not case-sensitive
    assert r.status_code == 200, r.text
    session = r.json()
    assert session["token"].startswith("cs_") and session["role"] == "agent" and session["expires_at"]
    me = as_(s, session["token"], "GET", "/api/v1/me").json()
    assert me == {"name": "Li Na (hotline)", "role": "agent", "crew_id": None}
    # The role is the account's: an agent may not make accounts or reset chargers.
    assert as_(s, session["token"], "POST", "/api/v1/accounts", {"login": "x-y", "role": "admin", "password": PASSWORD}).status_code == 403
    # The live feed takes the session token too (EventSource sends it in the query).
    with s._http.get(f"{s.base_url}/api/v1/events", params={"access_token": session["token"]}, stream=True, timeout=5) as feed:
        assert feed.status_code == 200
    # Signing out ends that session only.
    other = login(s, name, PASSWORD).json()["token"]
    assert as_(s, session["token"], "POST", "/api/v1/logout").status_code == 204
    assert as_(s, session["token"], "GET", "/api/v1/me").status_code == 401
    assert as_(s, other, "GET", "/api/v1/me").status_code == 200
    log = s.ok("GET", "/api/v1/audit?limit=1000")
    assert any(e["action"] == "POST /api/v1/login" and e["actor"] == name and e["status"] == 200 for e in log)


def test_wrong_passwords_say_nothing_about_logins_and_lock_after_five(s):
    name = new_login()
    s.ok("POST", "/api/v1/accounts", {"login": name, "role": "dispatcher", "password": PASSWORD}, status=201)
    unknown = login(s, "no-such-person", PASSWORD)
    wrong = login(s, name, PASSWORD + "x")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json() == {"code": "unauthorized", "message": "wrong login or password"}
    for _ in range(4):
        assert login(s, name, "guess-guess-guess").status_code == 401
    locked = login(s, name, PASSWORD)
    assert locked.status_code == 429, locked.text
    assert locked.json()["code"] == "too_many_attempts"
    log = s.ok("GET", "/api/v1/audit?limit=1000")
    assert sum(1 for e in log if e["actor"] == name and e["status"] == 401) == 5
    # An administrator's reset lifts the lock.
    s.ok("POST", f"/api/v1/accounts/{name}/password", {"password": "a-new-pass-123"})
    assert login(s, name, PASSWORD).status_code == 401
    assert login(s, name, "a-new-pass-123").status_code == 200


def test_reset_and_delete_end_sessions(s):
    name = new_login("crew")
    s.ok("POST", "/api/v1/crews", {"id": f"crew-{name}", "name": "Crew", "skills": ["electrical"], "lat": 28.2, "lon": 112.9}, status=201)
    s.ok("POST", "/api/v1/accounts", {"login": name, "role": "crew", "crew_id": f"crew-{name}", "password": PASSWORD}, status=201)
    token = login(s, name, PASSWORD).json()["token"]
    assert as_(s, token, "GET", "/api/v1/me").json()["crew_id"] == f"crew-{name}"
    s.ok("POST", f"/api/v1/accounts/{name}/password", {"password": "another-pass-456"})
    assert as_(s, token, "GET", "/api/v1/me").status_code == 401
    token = login(s, name, "another-pass-456").json()["token"]
    assert s.api("DELETE", f"/api/v1/accounts/{name}").status_code == 204
    assert as_(s, token, "GET", "/api/v1/me").status_code == 401
    assert login(s, name, "another-pass-456").status_code == 401
    assert s.api("DELETE", f"/api/v1/accounts/{name}").status_code == 404


def test_bad_input_is_refused_and_changes_nothing(s):
    before = s.ok("GET", "/api/v1/accounts")
    taken = new_login()
    s.ok("POST", "/api/v1/accounts", {"login": taken, "role": "viewer", "password": PASSWORD}, status=201)
    before = s.ok("GET", "/api/v1/accounts")
    cases = [
        ({"login": "x", "role": "agent", "password": PASSWORD}, 400),
        ({"login": "Li Na", "role": "agent", "password": PASSWORD}, 400),
        ({"login": "../admin", "role": "agent", "password": PASSWORD}, 400),
        ({"login": "ok-login", "role": "agent", "password": "short"}, 400),
        ({"login": "ok-login", "role": "agent", "password": "x" * 201}, 400),
        ({"login": "ok-login", "role": "superuser", "password": PASSWORD}, 400),
        ({"login": "ok-login", "role": "crew", "password": PASSWORD}, 400),
        ({"login": "ok-login", "role": "crew", "crew_id": "no-such-crew", "password": PASSWORD}, 404),
        ({"login": "ok-login", "role": "agent", "crew_id": "x", "password": PASSWORD}, 400),
        ({"login": "ok-login", "role": "agent", "password": PASSWORD, "admin": True}, 400),
        ({"login": taken, "role": "agent", "password": PASSWORD}, 409),
    ]
    for body, status in cases:
        r = s.api("POST", "/api/v1/accounts", body)
        assert r.status_code == status, (body, r.text)
        assert set(r.json()) == {"code", "message"}
    for body in ["not json", {"login": taken}, {"password": PASSWORD}, {"login": 5, "password": PASSWORD}]:
        r = s.api("POST", "/api/v1/login", body, token=None)
        assert r.status_code == 400, (body, r.text)
    # A password of a megabyte is not hashed; it is just wrong.
    assert login(s, taken, "p" * 1_000_000).status_code in (401, 413)
    assert s.api("POST", "/api/v1/accounts/no-such/password", {"password": PASSWORD}).status_code == 404
    assert s.api("POST", f"/api/v1/accounts/{taken}/password", {"password": "short"}).status_code == 400
    assert s.ok("GET", "/api/v1/accounts") == before
    assert login(s, taken, PASSWORD).status_code == 200


def test_a_restart_keeps_accounts_and_sessions_and_a_sign_out_holds(s):
    name = new_login()
    s.ok("POST", "/api/v1/accounts", {"login": name, "role": "operator", "password": PASSWORD}, status=201)
    token = login(s, name, PASSWORD).json()["token"]
    s.restart()
    # Sessions are in the store (every node of a cluster knows them): the shift goes on.
    me = as_(s, token, "GET", "/api/v1/me")
    assert me.status_code == 200 and me.json()["role"] == "operator", me.text
    assert as_(s, token, "POST", "/api/v1/logout").status_code == 204
    assert as_(s, token, "GET", "/api/v1/me").status_code == 401
    s.restart()
    assert as_(s, token, "GET", "/api/v1/me").status_code == 401, "a sign-out survives the restart"
    assert login(s, name, PASSWORD).status_code == 200
