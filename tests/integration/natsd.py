"""NATS for the cluster tests: a nats-server of a test's own (JetStream on, any configuration),
and a TCP relay that cuts one node off from NATS and lets it back (a partition of that node)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from harness import free_port, wait_until


class PrivateNats:
    """A nats-server of a test's own, with `config` (nats-server's configuration syntax)."""

    def __init__(self, root: Path, config: str):
        binary = shutil.which("nats-server")
        if binary is None:
            pytest.fail("nats-server is not installed (.ci/run installs it)", pytrace=False)
        self.binary, self.root = binary, root
        self.port = free_port()
        root.mkdir(parents=True, exist_ok=True)
        conf = root / "nats.conf"
        conf.write_text(f'listen: "127.0.0.1:{self.port}"\njetstream {{ store_dir: "{root / "js"}" }}\n{config}\n')
        self.conf = conf
        self.log = open(root / "nats.log", "ab")
        self._spawn()

    def _spawn(self) -> None:
        binary, root = self.binary, self.root
        self.proc = subprocess.Popen([binary, "-c", str(self.conf)], stdout=self.log, stderr=self.log)

        def up() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"nats-server exited ({self.proc.returncode}): {(root / 'nats.log').read_text()[-1500:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False

        wait_until(up, what="private NATS up")

    def restart(self) -> None:
        """Starts the server again (after a kill) on the same port and JetStream directory."""
        self._spawn()

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.log.close()


class Proxy:
    """A TCP relay between one node and NATS (loopback only), that can cut the node off and let
    it back: a network partition of that node alone."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.port = free_port()
        self.cut_off = False
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.cut_off:
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.pairs.append((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.close()

    def cut(self) -> None:
        self.cut_off = True
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for a, b in pairs:
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()

    def restore(self) -> None:
        self.cut_off = False

    def close(self) -> None:
        self.cut()
        self.listener.close()
