"""Fixtures: real `chargeops serve` processes on free ports with fresh data directories.

`server` is shared by the tests of one module (they use distinct charger ids); `make_server`
starts a dedicated server for a test that needs its own flags or a crash. Every server is killed
at teardown, and a failing test shows the tail of each live server's log.
"""

from __future__ import annotations

import pytest

from harness import BINARY, LIVE_SERVERS, Server


class ServerPool:
    def __init__(self, tmp_factory, name: str):
        self._tmp_factory = tmp_factory
        self._name = name
        self.servers: list[Server] = []

    def __call__(self, **opts) -> Server:
        workdir = self._tmp_factory.mktemp(f"{self._name}-srv", numbered=True)
        server = Server(workdir, **opts)
        self.servers.append(server)
        return server.start()

    def close(self) -> None:
        for server in self.servers:
            server.stop()


def _check_binary():
    if not BINARY.exists():
        pytest.fail(f"{BINARY} does not exist; run `cargo build --bin chargeops` first", pytrace=False)


@pytest.fixture
def make_server(tmp_path_factory, request):
    """Start a dedicated server: make_server(registration="open", command_timeout=2, ...)."""
    _check_binary()
    pool = ServerPool(tmp_path_factory, request.node.name[:40])
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def make_module_server(tmp_path_factory, request):
    _check_binary()
    pool = ServerPool(tmp_path_factory, request.module.__name__.rsplit(".", 1)[-1])
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def server(make_module_server) -> Server:
    """A server shared by one module: default registration policy (pending), a known heartbeat
    interval so that BootNotification answers can be checked, a command timeout that a live
    charge point never hits."""
    return make_module_server(heartbeat_interval=77, command_timeout=10)


@pytest.fixture(scope="module")
def open_server(make_module_server) -> Server:
    return make_module_server(registration="open", heartbeat_interval=77, command_timeout=10)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and LIVE_SERVERS:
        for server in LIVE_SERVERS:
            report.sections.append(
                (f"chargeops log tail (port {server.port}, {server.log_path})", server.log_tail(80))
            )


def pytest_terminal_summary(terminalreporter):
    """The answers that differed from the OpenAPI document, when only collected."""
    from openapi_check import DEVIATIONS

    if DEVIATIONS:
        terminalreporter.section("answers that differ from the OpenAPI document")
        for line in sorted(set(DEVIATIONS)):
            terminalreporter.line(line)
