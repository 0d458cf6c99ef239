"""OCPP security profiles 2 and 3: chargers over TLS (`--tls-listen`), with a server certificate
and HTTP Basic credentials (profile 2) or a client certificate whose CommonName is the charger
id (profile 3), `--ocpp-require-tls` refusing plain WebSocket, the REST API over https, bad
certificate files stopping the start, and a TLS port that survives garbage.

The certificates are made here with the `openssl` command line: a CA, a server certificate for
127.0.0.1, client certificates signed by the CA, and a second CA the server does not trust.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
import requests
from websockets.exceptions import InvalidStatus

from chargepoints import CLASSES
from harness import BINARY, WAIT, Server, basic_auth, free_port, run, uid, ws_connect

VERSIONS = ["1.6", "2.0.1"]


# --------------------------------------------------------------------------------------------
# Certificates


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


class Pki:
    """Certificates in a directory, made on demand with the openssl command line (P-256 keys)."""

    def __init__(self, root: Path):
        self.root = root
        self._issued: dict[tuple[str, str], tuple[Path, Path]] = {}
        self.ca = self._make_ca("ca", "chargeops test CA")
        self.rogue_ca = self._make_ca("rogue-ca", "someone else's CA")
        self.server_cert, self.server_key = self._issue(
            "ca",
            "server",
            "/CN=127.0.0.1",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
            "keyUsage=digitalSignature\nbasicConstraints=CA:FALSE\n",
        )
        # The server's chain as a deployment would ship it: the leaf, then its CA.
        self.server_chain = root / "server-chain.pem"
        self.server_chain.write_text(self.server_cert.read_text() + self.ca.read_text())

    def _make_ca(self, name: str, cn: str) -> Path:
        openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "30", "-subj", f"/O=chargeops test/CN={cn}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=self.root,
        )
        return self.root / f"{name}.pem"

    def _issue(self, ca: str, name: str, subject: str, extensions: str) -> tuple[Path, Path]:
        (self.root / f"{name}.ext").write_text(extensions)
        openssl(
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject,
            cwd=self.root,
        )
        openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", "30", "-extfile", f"{name}.ext", "-out", f"{name}.pem",
            cwd=self.root,
        )
        return self.root / f"{name}.pem", self.root / f"{name}.key"

    def client(self, charger_id: str, ca: str = "ca") -> tuple[Path, Path]:
        """A client certificate with CommonName `charger_id`, signed by `ca` ("ca" or "rogue-ca")."""
        key = (charger_id, ca)
        if key not in self._issued:
            self._issued[key] = self._issue(
                ca,
                f"client-{ca}-{charger_id}",
                f"/O=chargeops test/CN={charger_id}",
                "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\nbasicConstraints=CA:FALSE\n",
            )
        return self._issued[key]

    def context(self, client: tuple[Path, Path] | None = None) -> ssl.SSLContext:
        """What a charger holds: the CA to check the server with, and maybe its own certificate."""
        ctx = ssl.create_default_context(cafile=str(self.ca))
        if client is not None:
            ctx.load_cert_chain(str(client[0]), str(client[1]))
        return ctx


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


# --------------------------------------------------------------------------------------------
# A server with a TLS listener


class TlsServer(Server):
    """`chargeops serve` with `--tls-listen` on a port of its own, picked afresh at each start."""

    def __init__(self, workdir: Path, pki: Pki, *, client_ca: bool = True, require_tls: bool = False, **kw):
        super().__init__(workdir, **kw)
        self.pki = pki
        self.client_ca = client_ca
        self.require_tls = require_tls
        self.tls_port: int | None = None

    def command_line(self) -> list[str]:
        self.tls_port = free_port()
        args = super().command_line() + [
            "--tls-listen", f"127.0.0.1:{self.tls_port}",
            "--tls-cert", str(self.pki.server_chain),
            "--tls-key", str(self.pki.server_key),
        ]
        if self.client_ca:
            args += ["--tls-client-ca", str(self.pki.ca)]
        if self.require_tls:
            args += ["--ocpp-require-tls"]
        return args

    def _wait_ready(self, timeout: float = 30.0) -> bool:
        # Ready when both listeners answer: the plain one (the harness's check), then TLS.
        if not super()._wait_ready(timeout):
            return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.tls_port), timeout=1).close()
                return True
            time.sleep(0.02)
        return False

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.tls_port}"

    def wss_url(self, charger_id: str) -> str:
        return f"wss://127.0.0.1:{self.tls_port}/ocpp/{charger_id}"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory, pki):
    server = TlsServer(tmp_path_factory.mktemp("tls-srv"), pki, registration="closed", heartbeat_interval=77)
    server.start()
    yield server
    server.stop()


async def open_wss(server: TlsServer, charger_id: str, version: str, ctx: ssl.SSLContext,
                   password: str | None = None):
    return await ws_connect(
        server.wss_url(charger_id),
        ssl=ctx,
        subprotocols=[f"ocpp{version}"],
        additional_headers=basic_auth(charger_id, password) if password is not None else None,
        compression=None,
        open_timeout=WAIT,
        ping_interval=None,
        close_timeout=2,
    )


@contextlib.asynccontextmanager
async def tls_charge_point(server: TlsServer, charger_id: str, version: str, ctx: ssl.SSLContext,
                           password: str | None = None):
    """An `ocpp` charge point of `version` over wss://, its receive loop running as a task."""
    ws = await open_wss(server, charger_id, version, ctx, password)
    assert ws.subprotocol == f"ocpp{version}"
    cp = CLASSES[version](charger_id, ws)
    task = asyncio.create_task(cp.start())
    try:
        yield cp
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        with contextlib.suppress(BaseException):
            await ws.close()


async def refused_status(server: TlsServer, charger_id: str, ctx: ssl.SSLContext, password: str | None = None,
                         version: str = "1.6") -> int:
    """The HTTP status of a refused upgrade over TLS (fails if it is accepted)."""
    try:
        ws = await open_wss(server, charger_id, version, ctx, password)
    except InvalidStatus as e:
        return e.response.status_code
    await ws.close()
    raise AssertionError(f"upgrade for {charger_id!r} over TLS was accepted")


# --------------------------------------------------------------------------------------------
# Profile 2: server certificate and Basic credentials


@pytest.mark.parametrize("version", VERSIONS)
def test_profile_2_basic_credentials_over_tls(tls_server, pki, version):
    cid = uid("p2")
    tls_server.register(cid, password="profile-two-secret")

    async def scenario():
        async with tls_charge_point(tls_server, cid, version, pki.context(), "profile-two-secret") as cp:
            res = await cp.boot()
            assert res.status == "Accepted"
            assert res.interval == 77
            await cp.heartbeat()
            charger = await asyncio.to_thread(tls_server.charger, cid)
            assert charger["online"] is True
        assert await refused_status(tls_server, cid, pki.context(), "wrong", version) == 401
        assert await refused_status(tls_server, cid, pki.context(), None, version) == 401

    run(scenario())


# --------------------------------------------------------------------------------------------
# Profile 3: client certificates


@pytest.mark.parametrize("version", VERSIONS)
def test_profile_3_client_certificate_needs_no_password(tls_server, pki, version):
    cid = uid("p3")
    # The charger has a password on file; its certificate stands in for it.
    tls_server.register(cid, password="never-sent-over-profile-3")
    ctx = pki.context(pki.client(cid))

    async def scenario():
        async with tls_charge_point(tls_server, cid, version, ctx) as cp:
            res = await cp.boot()
            assert res.status == "Accepted"
            await cp.heartbeat()
            charger = await asyncio.to_thread(tls_server.charger, cid)
            assert charger["online"] is True
        # The same charger without its certificate and without a password is refused.
        assert await refused_status(tls_server, cid, pki.context(), None, version) == 401

    run(scenario())


def test_certificate_of_another_charger_is_refused(tls_server, pki):
    victim, holder = uid("victim"), uid("holder")
    tls_server.register(victim, password="victim-secret")
    tls_server.register(holder, password="holder-secret")
    stolen = pki.context(pki.client(holder))
    # A charger with no password at all is no easier to impersonate with a certificate.
    open_door = uid("nopw")
    tls_server.register(open_door, password=None)

    async def scenario():
        assert await refused_status(tls_server, victim, stolen) in (401, 403)
        # Not even with the right password: the certificate says it is someone else.
        assert await refused_status(tls_server, victim, stolen, "victim-secret", "2.0.1") in (401, 403)
        assert await refused_status(tls_server, open_door, stolen) in (401, 403)
        # The holder itself is fine.
        async with tls_charge_point(tls_server, holder, "1.6", stolen) as cp:
            assert (await cp.boot()).status == "Accepted"

    run(scenario())
    log = tls_server.log_text()
    assert "client certificate is not for this charger" in log
    assert victim in log and holder in log


def test_certificate_from_an_untrusted_ca_fails_the_handshake(tls_server, pki):
    cid = uid("rogue")
    tls_server.register(cid, password="rogue-test-secret")
    ctx = pki.context(pki.client(cid, ca="rogue-ca"))

    async def scenario():
        # No HTTP answer at all: the TLS handshake is refused (with TLS 1.3 the client learns
        # it at its first read).
        with pytest.raises(Exception) as failure:
            ws = await open_wss(tls_server, cid, "1.6", ctx, "rogue-test-secret")
            await ws.close()
        assert not isinstance(failure.value, InvalidStatus), failure.value
        # The server is fine and the same charger with a good certificate gets in.
        async with tls_charge_point(tls_server, cid, "1.6", pki.context(pki.client(cid))) as cp:
            assert (await cp.boot()).status == "Accepted"

    run(scenario())
    assert "bad client certificate" in tls_server.log_text()


def test_no_certificate_and_no_password_is_refused(tls_server, pki):
    cid = uid("bare")
    tls_server.register(cid, password="bare-secret")

    async def scenario():
        assert await refused_status(tls_server, cid, pki.context()) == 401
        assert await refused_status(tls_server, cid, pki.context(), None, "2.0.1") == 401

    run(scenario())


# --------------------------------------------------------------------------------------------
# The HTTP API over TLS, requiring TLS for OCPP


def test_rest_api_over_https(tls_server, pki):
    r = requests.get(f"{tls_server.https_url}/healthz", verify=str(pki.ca), timeout=10)
    assert r.status_code == 200
    r = requests.get(
        f"{tls_server.https_url}/api/v1/stations",
        headers={"Authorization": f"Bearer {tls_server.token}"},
        verify=str(pki.ca),
        timeout=10,
    )
    assert r.status_code == 200, r.text
    # The server certificate is checked like any other: a client trusting another CA refuses it.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{tls_server.https_url}/healthz", verify=str(pki.rogue_ca), timeout=10)


def test_require_tls_refuses_plain_websocket(tmp_path, pki):
    server = TlsServer(tmp_path / "srv", pki, client_ca=False, require_tls=True, registration="closed")
    server.start()
    try:
        cid = uid("strict")
        server.register(cid, password="strict-secret")

        async def scenario():
            try:
                ws = await ws_connect(
                    server.ws_url(cid), subprotocols=["ocpp1.6"], open_timeout=WAIT,
                    additional_headers=basic_auth(cid, "strict-secret"),
                )
            except InvalidStatus as e:
                assert e.response.status_code == 403
                assert b"TLS" in e.response.body
            else:
                await ws.close()
                raise AssertionError("plain OCPP was accepted with --ocpp-require-tls")
            # Profile 2 on the TLS listener works; without a client CA no certificate is asked.
            async with tls_charge_point(server, cid, "2.0.1", pki.context(), "strict-secret") as cp:
                assert (await cp.boot()).status == "Accepted"

        run(scenario())
        # The HTTP API on the plain listener is not OCPP and stays open.
        assert server.healthy()
        assert server.ok("GET", "/api/v1/stations") is not None
        assert "refused (ocpp_require_tls)" in server.log_text()
    finally:
        server.stop()


def test_start_log_names_the_listeners_and_profiles(tls_server):
    log = tls_server.log_text()
    assert "chargeops listeners" in log
    assert "security profiles 2 and 3" in log
    assert f"127.0.0.1:{tls_server.tls_port}" in log


# --------------------------------------------------------------------------------------------
# Bad files stop the start


def start_fails(tmp_path: Path, extra: list[str]) -> str:
    """Runs `chargeops serve` with `extra`; it must exit with an error. Returns its output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARGEOPS_")}
    proc = subprocess.run(
        [str(BINARY), "serve", "--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "data"),
         "--tls-listen", f"127.0.0.1:{free_port()}", *extra],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0, f"serve started with {extra}:\n{proc.stderr[-2000:]}"
    return proc.stdout + proc.stderr


def test_bad_certificate_files_stop_the_start_and_are_named(tmp_path, pki):
    missing = tmp_path / "missing.pem"
    not_pem = tmp_path / "not-pem.pem"
    not_pem.write_text("this is not a certificate\n")
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n")
    other_key = pki.client(uid("keyless"))[1]
    cert, key = str(pki.server_chain), str(pki.server_key)

    cases = [
        (["--tls-cert", str(missing), "--tls-key", key], [str(missing)]),
        (["--tls-cert", str(not_pem), "--tls-key", key], [str(not_pem)]),
        (["--tls-cert", str(broken), "--tls-key", key], [str(broken)]),
        (["--tls-cert", cert, "--tls-key", str(missing)], [str(missing)]),
        (["--tls-cert", cert, "--tls-key", str(not_pem)], [str(not_pem)]),
        # A key that does not belong to the certificate: both files named.
        (["--tls-cert", cert, "--tls-key", str(other_key)], [str(other_key), cert]),
        (["--tls-cert", cert, "--tls-key", key, "--tls-client-ca", str(missing)], [str(missing)]),
        (["--tls-cert", cert, "--tls-key", key, "--tls-client-ca", str(not_pem)], [str(not_pem)]),
    ]
    for args, named in cases:
        out = start_fails(tmp_path, args)
        for path in named:
            assert path in out, f"{args}: {path} not named in:\n{out[-2000:]}"
    # A TLS listener without its key is a configuration error before any file is read.
    out = start_fails(tmp_path, ["--tls-cert", cert])
    assert "tls_key" in out


# --------------------------------------------------------------------------------------------
# Garbage on the TLS port


def test_tls_port_survives_garbage_and_silence(tls_server, pki):
    cid = uid("after")
    tls_server.register(cid, password="after-garbage")
    addr = ("127.0.0.1", tls_server.tls_port)

    # Plain HTTP to the TLS port.
    with socket.create_connection(addr, timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        with contextlib.suppress(OSError):
            s.recv(1024)
    # Random bytes, then a close.
    with socket.create_connection(addr, timeout=10) as s:
        s.sendall(os.urandom(4096))
    # Random bytes after a valid-looking TLS record header.
    with socket.create_connection(addr, timeout=10) as s:
        s.sendall(b"\x16\x03\x01\x40\x00" + os.urandom(2048))
    # Clients that connect and say nothing, kept open while a real charger connects.
    silent = [socket.create_connection(addr, timeout=10) for _ in range(20)]
    try:
        async def scenario():
            async with tls_charge_point(tls_server, cid, "1.6", pki.context(pki.client(cid))) as cp:
                assert (await cp.boot()).status == "Accepted"
            async with tls_charge_point(tls_server, cid, "2.0.1", pki.context(), "after-garbage") as cp:
                assert (await cp.boot()).status == "Accepted"

        run(scenario())
    finally:
        for s in silent:
            s.close()
    assert tls_server.alive()
    r = requests.get(f"{tls_server.https_url}/healthz", verify=str(pki.ca), timeout=10)
    assert r.status_code == 200


# --------------------------------------------------------------------------------------------
# Outbound: the queue webhook to an https:// receiver


class HttpsHook:
    """A loopback https:// receiver with the given certificate: keeps every JSON body POSTed."""

    def __init__(self, cert: Path, key: Path):
        from http.server import BaseHTTPRequestHandler, HTTPServer
        import json
        import threading

        self.received: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                hook.received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        class Quiet(HTTPServer):
            def handle_error(self, request, client_address):
                # A client that refuses the certificate ends the handshake: expected here.
                pass

        self.port = free_port()
        self.httpd = Quiet(("127.0.0.1", self.port), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/queue-hook"

    def close(self):
        self.httpd.shutdown()


def test_queue_webhook_over_https_checks_the_receiver_certificate(tmp_path, pki, monkeypatch):
    # The platform trusts the system's roots; SSL_CERT_FILE points them at the test CA.
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
    rogue_cert, rogue_key = pki._issue(
        "rogue-ca",
        "rogue-server",
        "/CN=127.0.0.1",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
        "keyUsage=digitalSignature\nbasicConstraints=CA:FALSE\n",
    )
    trusted = HttpsHook(pki.server_chain, pki.server_key)
    rogue = HttpsHook(rogue_cert, rogue_key)
    config = tmp_path / "chargeops.toml"
    server = Server(tmp_path / "srv", extra_args=("--config", str(config)))
    try:
        operator = None
        for hook in (trusted, rogue):
            config.write_text(f'[queue]\ntick_ms = 100\nwebhook_url = "{hook.url}"\n')
            server.start()
            operator = server.ok("POST", "/api/v1/tokens", {"name": "desk", "role": "operator"}, status=201)["token"]
            sid = uid("hook-st")
            server.ensure_station(sid)
            r = server.api("POST", f"/api/v1/stations/{sid}/queue", {"contact": "13300133000"}, token=None)
            assert r.status_code == 201, r.text
            tid = r.json()["id"]
            r = server.api("POST", f"/api/v1/queue/{tid}/call", None, token=operator)
            assert r.status_code == 200 and r.json()["state"] == "called", r.text
            if hook is trusted:
                deadline = time.monotonic() + WAIT
                while time.monotonic() < deadline and not any(n["ticket_id"] == tid for n in hook.received):
                    time.sleep(0.05)
                called = [n for n in hook.received if n["ticket_id"] == tid]
                assert [n["kind"] for n in called] == ["called"], hook.received
            else:
                # A receiver whose certificate the platform does not trust hears nothing; the
                # log says why and the ticket is called all the same.
                deadline = time.monotonic() + WAIT
                while time.monotonic() < deadline and "queue webhook failed" not in server.log_tail():
                    time.sleep(0.05)
                failed = [line for line in server.log_tail().splitlines() if "queue webhook failed" in line]
                assert failed and "certificate" in failed[-1].lower(), failed
                assert rogue.received == []
                assert server.api("GET", f"/api/v1/queue/{tid}", None, token=operator).json()["state"] == "called"
            server.stop()
    finally:
        if server.alive():
            server.stop()
        trusted.close()
        rogue.close()
