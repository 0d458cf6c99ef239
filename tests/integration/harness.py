"""Test harness: the chargeops server as a real process, OCPP charge points from the independent
`ocpp` package over real WebSocket connections, raw WebSocket peers for bad input, and a
Server-Sent Events reader.

Nothing here is mocked: every test talks to the `chargeops serve` binary over sockets.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import requests
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConcurrencyError, ConnectionClosed
from websockets.protocol import State

import openapi_check

openapi_check.install()

REPO = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("CHARGEOPS_BIN", REPO / "target" / "debug" / "chargeops"))

# Generous waits for events to arrive; no test asserts on how fast something happens.
WAIT = float(os.environ.get("CHARGEOPS_TEST_WAIT", "15"))
# A whole asyncio scenario is cut off after this long so that a hung server fails a test
# instead of hanging the suite.
SCENARIO_TIMEOUT = float(os.environ.get("CHARGEOPS_TEST_SCENARIO_TIMEOUT", "120"))

# Servers currently running, so that a failing test can show their logs.
LIVE_SERVERS: list["Server"] = []

_counter = itertools.count(1)


def uid(prefix: str) -> str:
    """A charger/station/tag id unique within the test run (well under 48 characters)."""
    return f"{prefix}-{next(_counter)}-{uuid.uuid4().hex[:6]}"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def same_reason(got: str | None, ocpp_reason: str) -> bool:
    """A stop reason as the API shows it matches the charger's OCPP reason ("EVDisconnected",
    "ev_disconnected" and "evdisconnected" are the same)."""
    norm = lambda v: (v or "").replace("_", "").replace("-", "").lower()  # noqa: E731
    return norm(got) == norm(ocpp_reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def basic_auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def run(coro, timeout: float = SCENARIO_TIMEOUT):
    """Run one asyncio scenario from a synchronous pytest test."""

    async def guarded():
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(guarded())


# --------------------------------------------------------------------------------------------
# The server process


class ServerError(RuntimeError):
    pass


class Server:
    """One `chargeops serve` process on a free port with its own data directory."""

    def __init__(
        self,
        workdir: Path,
        *,
        registration: str | None = None,
        command_timeout: int | None = None,
        heartbeat_interval: int | None = None,
        extra_args: tuple[str, ...] = (),
        token: str | None = None,
    ):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "server.log"
        self.registration = registration
        self.command_timeout = command_timeout
        self.heartbeat_interval = heartbeat_interval
        self.extra_args = tuple(extra_args)
        self.token = token or f"admin-{uuid.uuid4().hex}"
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self._stations: set[str] = set()
        self._http = requests.Session()

    # -- addresses

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    def ws_url(self, charger_id: str) -> str:
        return f"{self.ws_base}/{charger_id}"

    # -- lifecycle

    def command_line(self) -> list[str]:
        args = [
            str(BINARY),
            "serve",
            "--listen",
            f"127.0.0.1:{self.port}",
            "--data-dir",
            str(self.data_dir),
        ]
        if self.registration is not None:
            args += ["--registration", self.registration]
        if self.command_timeout is not None:
            args += ["--command-timeout-secs", str(self.command_timeout)]
        if self.heartbeat_interval is not None:
            args += ["--heartbeat-interval-secs", str(self.heartbeat_interval)]
        return args + list(self.extra_args)

    def _spawn(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHARGEOPS_")}
        env["CHARGEOPS_ADMIN_TOKEN"] = self.token
        env.setdefault("RUST_LOG", os.environ.get("CHARGEOPS_TEST_RUST_LOG", "info"))
        env.setdefault("RUST_BACKTRACE", "1")
        log = open(self.log_path, "ab")
        cmd = self.command_line()
        log.write(f"\n===== start #{self.starts + 1}: {' '.join(cmd)}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.starts += 1

    def _wait_ready(self, timeout: float = 30.0) -> bool:
        """True when /healthz answers 200; False when the process exited first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                r = requests.get(f"{self.base_url}/healthz", timeout=1)
                if r.status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.02)
        raise ServerError(
            f"server did not become ready within {timeout}s\n{self.log_tail()}"
        )

    def start(self, *, same_port: bool = False) -> "Server":
        if not BINARY.exists():
            raise ServerError(f"server binary {BINARY} not found (build it: cargo build --bin chargeops)")
        attempts = 0
        while True:
            attempts += 1
            if self.port is None or (not same_port) or attempts > 4:
                self.port = free_port()
            self._spawn()
            if self._wait_ready():
                if self not in LIVE_SERVERS:
                    LIVE_SERVERS.append(self)
                return self
            # The process exited before it was ready: most likely the port was taken between
            # free_port() and bind (or is still held after a kill -9). Retry a few times.
            if attempts >= 6:
                raise ServerError(
                    f"server exited with {self.proc.returncode} before it was ready\n{self.log_tail()}"
                )
            time.sleep(0.25)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL: no shutdown code runs, exactly like a crash."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self in LIVE_SERVERS:
            LIVE_SERVERS.remove(self)
        self._http.close()

    def restart(self, *, kill: bool = True) -> "Server":
        """Stop (kill -9 by default) and start again on the same data dir (and port if free)."""
        if kill:
            self.kill9()
        else:
            if self.alive():
                self.proc.terminate()
                self.proc.wait(timeout=10)
        return self.start(same_port=True)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_text().splitlines()
        return "\n".join(text[-lines:])

    # -- HTTP

    def api(self, method: str, path: str, json: Any = None, *, token: str | None | bool = True,
            headers: dict | None = None, timeout: float = 60) -> requests.Response:
        """Raw HTTP call; `path` is relative to the server root (e.g. "/api/v1/stations").

        token=True sends the admin token, a string sends that token, None/False sends none.
        """
        h = dict(headers or {})
        if token is True:
            h["Authorization"] = f"Bearer {self.token}"
        elif token:
            h["Authorization"] = f"Bearer {token}"
        return self._http.request(method, self.base_url + path, json=json, headers=h, timeout=timeout)

    def ok(self, method: str, path: str, json: Any = None, status: int | tuple = 200) -> Any:
        """HTTP call that must answer `status`; returns the parsed JSON body (or None)."""
        r = self.api(method, path, json)
        wanted = status if isinstance(status, tuple) else (status,)
        assert r.status_code in wanted, (
            f"{method} {path} {json!r}: expected {status}, got {r.status_code}: {r.text[:2000]}"
        )
        if not r.content:
            return None
        return r.json()

    async def aapi(self, method: str, path: str, json: Any = None, **kw) -> requests.Response:
        """`api` from asyncio code, in a thread, so that charge points keep answering meanwhile."""
        return await asyncio.to_thread(self.api, method, path, json, **kw)

    async def aok(self, method: str, path: str, json: Any = None, status: int | tuple = 200) -> Any:
        return await asyncio.to_thread(self.ok, method, path, json, status)

    def healthy(self) -> bool:
        try:
            return requests.get(f"{self.base_url}/healthz", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    # -- domain helpers

    def ensure_station(self, station_id: str, **fields) -> None:
        if station_id in self._stations:
            return
        body = {"id": station_id, "name": fields.pop("name", f"Station {station_id}"), **fields}
        self.ok("POST", "/api/v1/stations", body, status=201)
        self._stations.add(station_id)

    def register(self, charger_id: str, password: str | None = None, station: str = "test-station") -> None:
        self.ensure_station(station)
        body = {"id": charger_id, "station_id": station}
        if password is not None:
            body["password"] = password
        self.ok("POST", "/api/v1/chargers", body, status=201)

    def add_tag(self, tag: str, status: str = "accepted", expiry: str | None = None) -> None:
        body = {"id_tag": tag, "status": status}
        if expiry is not None:
            body["expiry"] = expiry
        self.ok("POST", "/api/v1/id-tags", body, status=(200, 201))

    def charger(self, charger_id: str) -> dict:
        return self.ok("GET", f"/api/v1/chargers/{charger_id}")

    def connector(self, charger_id: str, connector_id: int, evse_id: int | None = None) -> dict | None:
        for c in self.charger(charger_id)["connectors"]:
            if c["connector_id"] == connector_id and (evse_id is None or c["evse_id"] == evse_id):
                return c
        return None

    def sessions(self, charger_id: str, **params) -> list[dict]:
        q = f"charger={charger_id}" + "".join(f"&{k}={v}" for k, v in params.items())
        body = self.ok("GET", f"/api/v1/sessions?{q}")
        return body_list(body)


def body_list(body: Any) -> list:
    """A list endpoint's items, whether the body is a bare list or wrapped ({"items": [...]})."""
    if isinstance(body, list):
        return body
    for key in ("items", "data", "results", "sessions", "chargers", "stations", "id_tags"):
        if isinstance(body, dict) and isinstance(body.get(key), list):
            return body[key]
    raise AssertionError(f"expected a list body, got {body!r}")


def wait_until(fn: Callable[[], Any], timeout: float = WAIT, interval: float = 0.05, what: str = "") -> Any:
    """Poll `fn` until it returns a truthy value; return that value."""
    deadline = time.monotonic() + timeout
    last_exc = None
    last = None
    while True:
        try:
            last = fn()
            if last:
                return last
        except (AssertionError, KeyError, TypeError, IndexError) as e:  # not there yet
            last_exc = e
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what or fn}; last value {last!r}; last error {last_exc}"
            )
        time.sleep(interval)


async def await_until(fn: Callable[[], Any], timeout: float = WAIT, what: str = "") -> Any:
    return await asyncio.to_thread(wait_until, fn, timeout, 0.05, what)


@contextlib.contextmanager
def demo_process(data: Path, token: str, args: list[str], *, env: dict[str, str] | None = None,
                 timeout: float = 180) -> Iterator[tuple[subprocess.Popen, str]]:
    """`chargeops demo --headless` with `args` on a free port, its data in `data`/data and its
    output in `data`/demo.log, with `token` as its admin token and otherwise the environment
    `env` (this process's by default). Yields the process and its base URL once /healthz
    answers; interrupts it afterwards as an operator would."""
    port = free_port()
    log = open(data / "demo.log", "w")
    proc = subprocess.Popen(
        [str(BINARY), "demo", "--headless", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data / "data"),
         *args],
        stdout=log, stderr=subprocess.STDOUT,
        env=dict(os.environ if env is None else env, CHARGEOPS_ADMIN_TOKEN=token),
    )
    base = f"http://127.0.0.1:{port}"

    def up():
        if proc.poll() is not None:
            raise ServerError(f"demo exited before it was up\n{(data / 'demo.log').read_text()[-3000:]}")
        try:
            return requests.get(base + "/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(up, timeout=timeout, interval=0.5, what="demo platform up")
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


# --------------------------------------------------------------------------------------------
# Server-Sent Events


class EventStream:
    """Reads `GET /api/v1/events` in a thread and keeps every event it saw."""

    def __init__(self, server: Server):
        self.server = server
        self.events: list[dict] = []
        self.raw: list[tuple[str, str]] = []
        self._cond = threading.Condition()
        self._connected = threading.Event()
        self._error: BaseException | None = None
        self._resp: requests.Response | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "EventStream":
        self._thread.start()
        if not self._connected.wait(WAIT):
            raise AssertionError(f"SSE stream did not connect: {self._error}")
        if self._error:
            raise AssertionError(f"SSE stream failed: {self._error}")
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True
        if self._resp is not None:
            with contextlib.suppress(Exception):
                self._resp.raw._fp.fp.raw._sock.shutdown(socket.SHUT_RDWR)  # unblock the reader
            with contextlib.suppress(Exception):
                self._resp.close()

    def _run(self) -> None:
        try:
            r = requests.get(
                f"{self.server.base_url}/api/v1/events",
                headers={"Authorization": f"Bearer {self.server.token}", "Accept": "text/event-stream"},
                stream=True,
                timeout=(10, None),
            )
            self._resp = r
            self.status_code = r.status_code
            self.content_type = r.headers.get("content-type", "")
            if r.status_code != 200:
                self._error = AssertionError(f"GET /api/v1/events answered {r.status_code}: {r.text[:500]}")
                self._connected.set()
                return
            self._connected.set()
            event_name, data_lines = None, []
            for line in r.iter_lines(chunk_size=1, decode_unicode=True):
                if line is None:
                    continue
                if line == "":
                    if data_lines:
                        self._dispatch(event_name or "message", "\n".join(data_lines))
                    event_name, data_lines = None, []
                    continue
                if line.startswith(":"):
                    continue
                field, _, value = line.partition(":")
                if value.startswith(" "):
                    value = value[1:]
                if field == "event":
                    event_name = value
                elif field == "data":
                    data_lines.append(value)
        except BaseException as e:  # noqa: BLE001 - reported by wait_for
            if not self._closed:
                self._error = e
            self._connected.set()

    def _dispatch(self, name: str, data: str) -> None:
        with self._cond:
            self.raw.append((name, data))
            try:
                payload = json.loads(data)
            except json.JSONDecodeError:
                payload = {"_unparsed": data}
            if isinstance(payload, dict):
                payload.setdefault("_event", name)
                payload["_event"] = name
            self.events.append(payload)
            self._cond.notify_all()

    def wait_for(self, pred: Callable[[dict], bool], timeout: float = WAIT, what: str = "") -> dict:
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = 0
            while True:
                for ev in self.events[seen:]:
                    if isinstance(ev, dict) and pred(ev):
                        return ev
                seen = len(self.events)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no SSE event matching {what or pred} within {timeout}s; "
                        f"error={self._error!r}; got {len(self.events)} events: {self.events[-20:]}"
                    )
                self._cond.wait(min(left, 0.5))

    async def await_for(self, pred: Callable[[dict], bool], timeout: float = WAIT, what: str = "") -> dict:
        return await asyncio.to_thread(self.wait_for, pred, timeout, what)

    def matching(self, pred: Callable[[dict], bool]) -> list[dict]:
        with self._cond:
            return [e for e in self.events if isinstance(e, dict) and pred(e)]


def event_is(name: str, charger_id: str, **fields) -> Callable[[dict], bool]:
    def pred(ev: dict) -> bool:
        if ev.get("_event") != name and ev.get("type") != name:
            return False
        if ev.get("charger_id") != charger_id:
            return False
        return all(ev.get(k) == v for k, v in fields.items())

    pred.__name__ = f"{name}({charger_id}, {fields})"
    return pred


# --------------------------------------------------------------------------------------------
# WebSocket connections


async def open_ws(
    server: Server,
    charger_id: str,
    subprotocols: list[str] | None = ("ocpp1.6",),
    password: str | None = None,
    path: str | None = None,
    **kw,
):
    """A raw websockets client connection (the caller closes it)."""
    headers = basic_auth(charger_id, password) if password is not None else None
    url = f"ws://127.0.0.1:{server.port}{path}" if path is not None else server.ws_url(charger_id)
    return await ws_connect(
        url,
        subprotocols=list(subprotocols) if subprotocols else None,
        additional_headers=headers,
        compression=None,
        open_timeout=WAIT,
        ping_interval=None,
        close_timeout=2,
        max_size=None,
        **kw,
    )


class RawPeer:
    """A raw OCPP-J peer that sends exactly the bytes a test wants and reads frames back."""

    def __init__(self, ws):
        self.ws = ws
        self._ids = itertools.count(1)
        # Server-initiated CALLs (and anything else) that arrived while waiting for an answer.
        self.server_calls: list = []

    @classmethod
    async def connect(cls, server: Server, charger_id: str, version: str = "1.6", password: str | None = None):
        return cls(await open_ws(server, charger_id, [f"ocpp{version}"], password))

    async def send(self, frame: Any) -> None:
        await self.ws.send(frame if isinstance(frame, (str, bytes)) else json.dumps(frame))

    async def recv(self, timeout: float = WAIT) -> Any:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        return json.loads(raw)

    async def call(self, action: str, payload: dict, msg_id: str | None = None, timeout: float = WAIT) -> list:
        """Send a CALL and return the CALLRESULT/CALLERROR with the same id.

        Server-initiated CALLs arriving meanwhile are kept in `self.server_calls`."""
        msg_id = msg_id or f"raw-{next(self._ids)}"
        await self.send([2, msg_id, action, payload])
        return await self.reply_to(msg_id, timeout)

    async def reply_to(self, msg_id: str, timeout: float = WAIT) -> list:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            frame = await self.recv(max(left, 0.01))
            if isinstance(frame, list) and len(frame) >= 2 and frame[0] in (3, 4) and frame[1] == msg_id:
                return frame
            self.server_calls.append(frame)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()


def boot_payload(version: str) -> dict:
    if version == "1.6":
        return {"chargePointVendor": "TestVendor", "chargePointModel": "RawModel"}
    return {"reason": "PowerUp", "chargingStation": {"vendorName": "TestVendor", "model": "RawModel"}}


async def wait_closed(ws, timeout: float = WAIT) -> None:
    """Wait until the server closed `ws` (fails if it is still open after `timeout`).

    Reads and discards anything still sent, unless another task (a charge point's receive
    loop) is already reading the connection."""
    async def drain():
        with contextlib.suppress(ConnectionClosed, ConcurrencyError):
            while True:
                await ws.recv()

    await asyncio.wait_for(drain(), timeout)
    await asyncio.wait_for(ws.wait_closed(), timeout)
    assert ws.state is State.CLOSED, f"connection still {ws.state!r}"
