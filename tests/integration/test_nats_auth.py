"""A node's login to NATS, against nats-server processes of this module's own (JetStream on),
each configured one way: a token, a user and password (percent-encoded in the URL), an NKey
user (`--nats-creds` holding the seed, made here independently of the platform: pycryptodome's
Ed25519 and the NKey encoding), and TLS (`--nats-tls-ca`, certificates from the openssl command
line). Each right login joins and takes the duties; each wrong one fails at start with a clear
error and the process exits.
"""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import pytest
from Crypto.PublicKey import ECC

from harness import free_port, wait_until
from natsd import PrivateNats
from test_failover import cluster_view, failed_start
from test_postgres import PG_URL, database, psql, schema  # noqa: F401 (fixtures)
from test_tls import Pki


def crc16(data: bytes) -> int:
    """CRC-16/XMODEM, as NKeys checksum their keys."""
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def nkey_b32(raw: bytes) -> str:
    raw += crc16(raw).to_bytes(2, "little")
    return base64.b32encode(raw).decode().rstrip("=")


def nkey_user() -> tuple[str, str]:
    """A new NKey user: (public key "U...", seed "SU...")."""
    seed = uuid.uuid4().bytes + uuid.uuid4().bytes
    key = ECC.construct(curve="Ed25519", seed=seed)
    public = key.public_key().export_key(format="raw")
    user, seed_prefix = 20 << 3, 18 << 3
    public_key = nkey_b32(bytes([user]) + public)
    seed_key = nkey_b32(bytes([seed_prefix | (user >> 5), (user & 31) << 3]) + seed)
    assert public_key.startswith("U") and seed_key.startswith("SU")
    return public_key, seed_key


@pytest.fixture
def private_nats(tmp_path):
    servers: list[PrivateNats] = []

    def start(config: str) -> PrivateNats:
        n = PrivateNats(tmp_path / f"nats-{len(servers)}", config)
        servers.append(n)
        return n

    yield start
    for n in servers:
        n.close()


def joins(make_server, schema, url: str, *extra: str):
    tag = uuid.uuid4().hex[:6]
    node = make_server(extra_args=("--database-url", PG_URL, "--database-schema", schema, "--nats-url", url,
                                   "--node-id", f"auth-{tag}", "--cluster-name", f"auth-{tag}", *extra),
                       command_timeout=10)
    view = wait_until(lambda: (lambda v: v if v["holds_duties"] else None)(cluster_view(node)),
                      timeout=20, what="the node joined and holds the duties")
    assert view["connected"] is True
    node.stop()
    return view


def test_token_and_user_password_logins(make_server, schema, private_nats, tmp_path):
    n = private_nats('authorization { token: "tok-3f9a1c" }')
    joins(make_server, schema, f"nats://tok-3f9a1c@127.0.0.1:{n.port}")
    said = failed_start(tmp_path, "--nats-url", f"nats://wrong-token@127.0.0.1:{n.port}")
    assert "refused this node's login" in said and "wrong-token" not in said, said[-2000:]

    n = private_nats('authorization { users = [ { user: "node", password: "p@ss:word" } ] }')
    joins(make_server, schema, f"nats://node:p%40ss%3Aword@127.0.0.1:{n.port}")
    said = failed_start(tmp_path, "--nats-url", f"nats://node:nope@127.0.0.1:{n.port}")
    assert "refused this node's login" in said and "nope" not in said, said[-2000:]
    assert "nats://***@127.0.0.1" in said, "the URL is shown without its secret"


def test_an_nkey_user_logs_in_with_its_seed_file(make_server, schema, private_nats, tmp_path):
    public, seed = nkey_user()
    n = private_nats(f'authorization {{ users = [ {{ nkey: "{public}" }} ] }}')
    seed_file = tmp_path / "node.nk"
    seed_file.write_text(seed + "\n")
    joins(make_server, schema, f"nats://127.0.0.1:{n.port}", "--nats-creds", str(seed_file))
    _, other_seed = nkey_user()
    other = tmp_path / "other.nk"
    other.write_text(other_seed + "\n")
    said = failed_start(tmp_path, "--nats-url", f"nats://127.0.0.1:{n.port}", "--nats-creds", str(other))
    assert "refused this node's login" in said, said[-2000:]
    said = failed_start(tmp_path, "--nats-url", f"nats://127.0.0.1:{n.port}")
    assert "refused this node's login" in said, said[-2000:]


def test_tls_to_nats_checks_the_servers_certificate(make_server, schema, private_nats, tmp_path):
    (tmp_path / "pki").mkdir()
    pki = Pki(tmp_path / "pki")
    n = private_nats(f'tls {{ cert_file: "{pki.server_cert}"\n key_file: "{pki.server_key}" }}')
    joins(make_server, schema, f"tls://127.0.0.1:{n.port}", "--nats-tls-ca", str(pki.ca))
    joins(make_server, schema, f"nats://127.0.0.1:{n.port}", "--nats-tls-ca", str(pki.ca))
    said = failed_start(tmp_path, "--nats-url", f"tls://127.0.0.1:{n.port}", "--nats-tls-ca", str(pki.rogue_ca))
    assert "TLS to NATS" in said, said[-2000:]
