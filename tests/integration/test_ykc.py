"""YKC (云快充) chargers over raw TCP against the real server.

The frames here are built and parsed by an implementation written for these tests alone (struct
and a CRC-16/Modbus of its own), independent of the Rust codec in crates/ykc: two readings of
the protocol text have to agree for a test to pass.

Layout: 0x68 | len | seq (u16 LE) | enc | type | body | CRC-16/Modbus over seq..body.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import socket
import struct
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from chargepoints import charge_point
from harness import BINARY, WAIT, EventStream, body_list, event_is, free_port, run, uid, wait_until

BEIJING = timezone(timedelta(hours=8))
_ids = itertools.count(1)


def crc16_modbus(data: bytes) -> int:
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def frame(ftype: int, body: bytes, seq: int = 0, enc: int = 0, crc: str = "low") -> bytes:
    counted = struct.pack("<HBB", seq, enc, ftype) + body
    c = crc16_modbus(counted)
    tail = struct.pack("<H", c) if crc == "low" else struct.pack(">H", c)
    return bytes([0x68, len(counted)]) + counted + tail


def bcd(digits: str, n: int) -> bytes:
    return bytes.fromhex(digits.rjust(n * 2, "0"))


def cp56(t: datetime) -> bytes:
    t = t.astimezone(BEIJING)
    ms = t.second * 1000 + t.microsecond // 1000
    return struct.pack("<HBBBBB", ms, t.minute, t.hour, t.day, t.month, t.year - 2000)


def new_charger_id() -> str:
    """A 14-digit charger id unique in this run."""
    return f"3201{int(time.time()) % 100000:05d}{next(_ids):05d}"


def login_body(cid: str, guns: int = 2) -> bytes:
    return bcd(cid, 7) + bytes([0, guns, 0x10]) + b"V1.0.0\x00\x00" + bytes([1]) + bytes(10) + bytes([4])


def realtime_body(cid: str, gun: int, status: int, plugged: int, serial: bytes = bytes(16),
                  energy: int = 0, amount: int = 0, faults: int = 0) -> bytes:
    return (
        serial + bcd(cid, 7) + bytes([gun, status, 1, plugged])
        + struct.pack("<HHB", 3800 if status == 3 else 0, 1250 if status == 3 else 0, 75)
        + bytes(8) + bytes([55, 70]) + struct.pack("<HH", 12, 30)
        + struct.pack("<IIIH", energy, energy, amount, faults)
    )


def record_body(cid: str, serial: bytes, gun: int, start: datetime, end: datetime,
                tou_energy=(0, 0, 0, 0), stop_reason: int = 0x40, meter_start: int = 1_000_000,
                card: bytes = bytes.fromhex("00000000D14B0A54")) -> bytes:
    prices = (170000, 140000, 110000, 70000)  # energy + service, 0.00001 yuan/kWh
    body = serial + bcd(cid, 7) + bytes([gun]) + cp56(start) + cp56(end)
    total_energy = sum(tou_energy)
    total_amount = 0
    for p, e in zip(prices, tou_energy):
        amount = e * p // 100000  # 0.0001 kWh * 0.00001 yuan/kWh -> 0.0001 yuan
        total_amount += amount
        body += struct.pack("<IIII", p, e, e, amount)
    body += (meter_start).to_bytes(5, "little") + (meter_start + total_energy).to_bytes(5, "little")
    body += struct.pack("<III", total_energy, total_energy, total_amount)
    body += b"LSVAU2180N2183294" + bytes([1]) + cp56(end) + bytes([stop_reason]) + card
    assert len(body) == 158, len(body)
    return body


class Parsed:
    def __init__(self, seq: int, enc: int, ftype: int, body: bytes, crc_order: str):
        self.seq, self.enc, self.type, self.body, self.crc_order = seq, enc, ftype, body, crc_order

    def __repr__(self) -> str:
        return f"Frame(type={self.type:#04x}, seq={self.seq}, body={self.body.hex()})"


def parse_stream(buf: bytearray) -> list[Parsed]:
    """Takes every whole frame off the front of `buf` (which the server only sends clean)."""
    out = []
    while len(buf) >= 2:
        assert buf[0] == 0x68, f"server sent a frame not starting with 0x68: {bytes(buf[:16]).hex()}"
        n = buf[1]
        if len(buf) < n + 4:
            break
        counted = bytes(buf[2:2 + n])
        tail = bytes(buf[2 + n:4 + n])
        c = crc16_modbus(counted)
        order = "low" if tail == struct.pack("<H", c) else "high" if tail == struct.pack(">H", c) else None
        assert order is not None, f"bad CRC from the server: {bytes(buf[:4 + n]).hex()}"
        seq, enc, ftype = struct.unpack("<HBB", counted[:4])
        out.append(Parsed(seq, enc, ftype, counted[4:], order))
        del buf[:4 + n]
    return out


class YkcCharger:
    """A YKC charger over a raw socket. A reader thread answers the platform's commands the way
    a charger does (0x34 -> 0x33, 0x36 -> 0x35, 0x92 -> 0x91, 0x52 -> 0x51, 0x56 -> 0x55) and
    queues every frame for the test."""

    def __init__(self, port: int, cid: str | None = None, *, answer_commands: bool = True):
        self.cid = cid or new_charger_id()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.frames: "queue.Queue[Parsed]" = queue.Queue()
        self.seen: list[Parsed] = []
        self.closed = threading.Event()
        self.answer_commands = answer_commands
        self.started_serials: list[bytes] = []
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        buf = bytearray()
        try:
            while True:
                chunk = self.sock.recv(4096)
                if not chunk:
                    break
                buf.extend(chunk)
                for f in parse_stream(buf):
                    self.seen.append(f)
                    if self.answer_commands:
                        self._answer(f)
                    self.frames.put(f)
        except OSError:
            pass
        finally:
            self.closed.set()

    def _answer(self, f: Parsed) -> None:
        me = bcd(self.cid, 7)
        if f.type == 0x34:
            serial, gun = f.body[:16], f.body[23]
            self.started_serials.append(serial)
            self.send(0x33, serial + me + bytes([gun, 1, 0]), seq=f.seq)
        elif f.type == 0x36:
            self.send(0x35, me + bytes([f.body[7], 1, 0]), seq=f.seq)
        elif f.type in (0x92, 0x52):
            self.send(f.type - 1, me + bytes([1]), seq=f.seq)
        elif f.type == 0x56:
            self.send(0x55, f.body, seq=f.seq)

    # -- sending

    def send_raw(self, data: bytes) -> None:
        with self._lock:
            self.sock.sendall(data)

    def send(self, ftype: int, body: bytes, seq: int | None = None, **kw) -> int:
        seq = next(self._seq) if seq is None else seq
        self.send_raw(frame(ftype, body, seq, **kw))
        return seq

    def expect(self, ftype: int, timeout: float = WAIT, seq: int | None = None) -> Parsed:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no frame {ftype:#04x} (seq {seq}) within {timeout}s; saw {self.seen[-10:]}")
            try:
                f = self.frames.get(timeout=min(left, 0.5))
            except queue.Empty:
                if self.closed.is_set() and self.frames.empty():
                    raise AssertionError(f"connection closed while waiting for {ftype:#04x}; saw {self.seen[-10:]}")
                continue
            if f.type == ftype and (seq is None or f.seq == seq):
                return f

    def nothing_for(self, ftype: int, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                f = self.frames.get(timeout=0.1)
            except queue.Empty:
                continue
            if f.type == ftype:
                return False
        return True

    # -- protocol

    def login(self, crc: str = "low") -> int:
        seq = self.send(0x01, login_body(self.cid), crc=crc)
        reply = self.expect(0x02, seq=seq)
        assert reply.body[:7] == bcd(self.cid, 7)
        return reply.body[7]

    def heartbeat(self, gun: int = 1, crc: str = "low") -> Parsed:
        seq = self.send(0x03, bcd(self.cid, 7) + bytes([gun, 0]), crc=crc)
        reply = self.expect(0x04, seq=seq)
        assert reply.body == bcd(self.cid, 7) + bytes([gun, 0])
        return reply

    def realtime(self, gun: int, status: int, plugged: int, **kw) -> None:
        self.send(0x13, realtime_body(self.cid, gun, status, plugged, **kw))

    def close(self) -> None:
        # shutdown() sends the FIN now; close() alone would wait for the reader thread, which
        # still holds the socket in recv(), and the platform would not see the charger leave.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


@contextlib.contextmanager
def logged_in(server, cid: str | None = None):
    """A YKC charger connected to `server` and logged in, closed afterwards."""
    cp = YkcCharger(server.ykc_port, cid)
    try:
        assert cp.login() == 0
        yield cp
    finally:
        cp.close()


def remote_start(server, cp: YkcCharger, id_tag: str) -> tuple[dict, bytes]:
    """Gun 1 plugged in, then a remote start through the API: its answer and the serial the
    charger was given."""
    cp.realtime(1, 0x02, 1)
    wait_until(lambda: connector_status(server, cp.cid) == "occupied")
    r = server.ok("POST", f"/api/v1/chargers/{cp.cid}/commands/remote-start",
                  {"connector_id": 1, "id_tag": id_tag})
    assert r["status"] == "Accepted", r
    return r, cp.started_serials[-1]


def ykc_server(make_server, registration: str = "open", timeout: int | None = None, **opts):
    port = free_port()
    args = ["--ykc-listen", f"127.0.0.1:{port}"]
    if timeout is not None:
        args += ["--ykc-heartbeat-timeout-secs", str(timeout)]
    server = make_server(registration=registration, extra_args=tuple(args), **opts)
    server.ykc_port = port
    return server


def connector_status(server, cid: str, gun: int = 1):
    c = server.connector(cid, gun)
    return c and c["status"]


# ------------------------------------------------------------------------------------------


def test_login_heartbeat_time_sync_and_statuses(make_server):
    server = ykc_server(make_server)
    with logged_in(server) as cp:
        sync = cp.expect(0x56)
        assert sync.body[:7] == bcd(cp.cid, 7) and len(sync.body) == 14
        charger = server.charger(cp.cid)
        assert charger["protocol"] == "ykc"
        assert charger["online"] is True
        assert charger["station_id"] == "unassigned"

        reply = cp.heartbeat(gun=2)
        assert reply.crc_order == "low"

        for status, plugged, expected in [
            (0x02, 0, "available"),
            (0x02, 1, "occupied"),
            (0x03, 1, "charging"),
            (0x01, 0, "faulted"),
            (0x00, 0, "offline"),
            (0x02, 0, "available"),
        ]:
            cp.realtime(1, status, plugged, faults=0x0001 if status == 1 else 0)
            wait_until(lambda: connector_status(server, cp.cid) == expected, what=f"status {expected}")
        assert server.charger(cp.cid)["online"] is True


def test_billing_model_check_and_request(make_server):
    server = ykc_server(make_server)
    with logged_in(server) as cp:
        seq = cp.send(0x05, bcd(cp.cid, 7) + b"\x00\x00")
        reply = cp.expect(0x06, seq=seq)
        assert reply.body[:7] == bcd(cp.cid, 7)
        assert reply.body[9] == 1, "model 0000 must be told it is not current"
        model_no = reply.body[7:9]
        seq = cp.send(0x09, bcd(cp.cid, 7))
        model = cp.expect(0x0A, seq=seq)
        assert len(model.body) == 0x5E - 4
        assert model.body[7:9] == model_no
        rates = struct.unpack("<8I", model.body[9:41])
        assert all(r > 0 for r in rates)
        periods = model.body[42:90]
        assert len(periods) == 48 and set(periods) <= {0, 1, 2, 3}
        seq = cp.send(0x05, bcd(cp.cid, 7) + model_no)
        assert cp.expect(0x06, seq=seq).body[9] == 0


def test_configured_tariff_and_periodic_time_sync(make_server, tmp_path):
    config = tmp_path / "chargeops.toml"
    config.write_text(
        "ykc_time_sync_secs = 1\n"
        "[ykc_tariff]\nmodel = 42\npeak = 1.5\nservice = 0.6\nhours = \"vvvvvvvvpppppppppsssssff\"\n"
    )
    port = free_port()
    server = make_server(registration="open", extra_args=("--ykc-listen", f"127.0.0.1:{port}", "--config", str(config)))
    cp = YkcCharger(port)
    try:
        assert cp.login() == 0
        first = cp.expect(0x56)
        # The clock is set again every second, not only at login.
        again = cp.expect(0x56, timeout=5)
        assert again.seq != first.seq and again.body[:7] == bcd(cp.cid, 7)
        seq = cp.send(0x09, bcd(cp.cid, 7))
        model = cp.expect(0x0A, seq=seq)
        assert model.body[7:9] == bytes([0x00, 0x42])
        rates = struct.unpack("<8I", model.body[9:41])
        assert rates[2:4] == (150_000, 60_000), rates
        periods = model.body[42:90]
        assert periods[0] == 3 and periods[16] == 1 and periods[17 * 2] == 0 and periods[47] == 2
    finally:
        cp.close()


def test_a_bad_tariff_is_refused_at_start_with_the_field_named(tmp_path):
    config = tmp_path / "chargeops.toml"
    config.write_text("[ykc_tariff]\npeak = -2\n")
    out = subprocess.run([str(BINARY), "serve", "--config", str(config), "--data-dir", str(tmp_path / "d"),
                          "--listen", "127.0.0.1:0"], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "[ykc_tariff]" in out.stderr and "peak" in out.stderr, out.stderr


def test_a_charger_logging_in_again_and_again_gets_a_reboot_loop_case(make_server):
    server = ykc_server(make_server)
    cid = new_charger_id()
    with EventStream(server) as events:
        for _ in range(3):
            with logged_in(server, cid):
                pass
        boots = events.wait_for(lambda e: e.get("_event") == "charger_booted" and e.get("charger_id") == cid)
        assert boots["station_id"] == "unassigned"
    cases = wait_until(lambda: [c for c in server.ok("GET", f"/api/v1/cases?charger={cid}") if c["kind"] == "reboot_loop"],
                       what="a reboot-loop case")
    assert len(cases) == 1, cases


def test_a_meter_that_runs_backwards_opens_a_meter_case(make_server):
    # Real-time energy goes to the fault detector as an OCPP charger's meter values do.
    server = ykc_server(make_server)
    with logged_in(server) as cp:
        r, serial = remote_start(server, cp, "1000000574")
        cp.realtime(1, 0x03, 1, serial=serial, energy=52_000)
        wait_until(lambda: server.ok("GET", f"/api/v1/sessions/{r['response']['session_id']}")["energy_wh"] == 5200,
                   what="running energy")
        cp.realtime(1, 0x03, 1, serial=serial, energy=31_000)
        cases = wait_until(lambda: [c for c in server.ok("GET", f"/api/v1/cases?charger={cp.cid}")
                                    if c["kind"] == "meter_anomaly"], what="a meter case")
        assert len(cases) == 1, cases
        timeline = server.ok("GET", f"/api/v1/cases/{cases[0]['id']}")["timeline"]
        assert any("backwards" in (e.get("detail") or "") for e in timeline), timeline


def test_remote_start_stop_and_record_stored_once(make_server):
    server = ykc_server(make_server)
    with logged_in(server) as cp:
        with EventStream(server) as events:
            r, serial = remote_start(server, cp, "1000000573")
            assert r["response"]["transaction_ref"] == serial.hex().upper()
            start = next(f for f in cp.seen if f.type == 0x34)
            assert start.body[16:23] == bcd(cp.cid, 7) and start.body[23] == 0x01
            assert start.body[24:32] == bcd("1000000573", 8)
            session_id = r["response"]["session_id"]
            s = server.ok("GET", f"/api/v1/sessions/{session_id}")
            assert s["stopped_at"] is None and s["id_tag"] == "1000000573"
            assert s["transaction_ref"] == serial.hex().upper()

            cp.realtime(1, 0x03, 1, serial=serial, energy=52_000, amount=80_000)
            wait_until(lambda: connector_status(server, cp.cid) == "charging")
            wait_until(lambda: server.ok("GET", f"/api/v1/sessions/{session_id}")["energy_wh"] == 5200,
                       what="running energy")

            r = server.ok("POST", f"/api/v1/chargers/{cp.cid}/commands/remote-stop", {"session_id": session_id})
            assert r["status"] == "Accepted", r

            end = datetime.now(timezone.utc).replace(microsecond=0)
            begin = end - timedelta(minutes=30)
            body = record_body(cp.cid, serial, 1, begin, end, tou_energy=(10_000, 20_000, 30_000, 40_000))
            for _ in range(3):  # the charger did not hear the first acknowledgements
                seq = cp.send(0x3B, body)
                ack = cp.expect(0x40, seq=seq)
                assert ack.body == serial + b"\x00"
            stopped = events.wait_for(event_is("session_stopped", cp.cid, session_id=session_id))
            # 1 kWh sharp at 1.70, 2 peak at 1.40, 3 flat at 1.10, 4 valley at 0.70 (default tariff)
            assert stopped["cost"] == pytest.approx(1.70 + 2.80 + 3.30 + 2.80, abs=0.01)
        sessions = server.sessions(cp.cid)
        assert len(sessions) == 1, sessions
        s = sessions[0]
        assert s["id"] == session_id
        assert s["energy_wh"] == 10_000
        assert s["stop_reason"] == "remote"
        assert s["stopped_at"] is not None
        assert datetime.fromisoformat(s["stopped_at"].replace("Z", "+00:00")) == end
        assert len(events.matching(event_is("session_stopped", cp.cid))) == 1


def test_record_of_an_unknown_transaction_creates_one_session(make_server):
    server = ykc_server(make_server)
    with logged_in(server) as cp:
        serial = bcd(cp.cid, 7) + bytes.fromhex("01250101120000") + b"\x00\x07"
        end = datetime.now(timezone.utc).replace(microsecond=0)
        body = record_body(cp.cid, serial, 1, end - timedelta(minutes=5), end, tou_energy=(0, 0, 12_345, 0),
                           stop_reason=0x45)
        for _ in range(3):
            seq = cp.send(0x3B, body)
            assert cp.expect(0x40, seq=seq).body == serial + b"\x00"
        sessions = server.sessions(cp.cid)
        assert len(sessions) == 1, sessions
        assert sessions[0]["transaction_ref"] == serial.hex().upper()
        assert sessions[0]["energy_wh"] == 1234
        assert sessions[0]["stop_reason"] == "local"
        assert sessions[0]["id_tag"] == "00000000D14B0A54"


def test_reset_and_availability_commands(make_server):
    server = ykc_server(make_server)
    with logged_in(server) as cp:
        r = server.ok("POST", f"/api/v1/chargers/{cp.cid}/commands/reset", {"hard": True})
        assert r["status"] == "Accepted"
        reboot = next(f for f in cp.seen if f.type == 0x92)
        assert reboot.body == bcd(cp.cid, 7) + b"\x01"
        r = server.ok("POST", f"/api/v1/chargers/{cp.cid}/commands/change-availability",
                      {"connector_id": 1, "available": False})
        assert r["status"] == "Accepted"
        work = next(f for f in cp.seen if f.type == 0x52)
        assert work.body == bcd(cp.cid, 7) + bytes([1, 100])
        r = server.api("POST", f"/api/v1/chargers/{cp.cid}/commands/clear-cache", {})
        assert r.status_code >= 400 and "ykc" in r.text


def test_command_timeout_when_the_charger_does_not_answer(make_server):
    server = ykc_server(make_server, command_timeout=1)
    cp = YkcCharger(server.ykc_port, answer_commands=False)
    try:
        assert cp.login() == 0
        r = server.api("POST", f"/api/v1/chargers/{cp.cid}/commands/reset", {"hard": False})
        assert r.status_code == 504, r.text
        cp.heartbeat()  # the link itself is fine
    finally:
        cp.close()


def test_silent_charger_is_disconnected_and_shown_offline(make_server):
    server = ykc_server(make_server, timeout=2)
    quiet = YkcCharger(server.ykc_port)
    talker = YkcCharger(server.ykc_port)
    try:
        assert quiet.login() == 0 and talker.login() == 0
        quiet.realtime(1, 0x02, 0)
        wait_until(lambda: connector_status(server, quiet.cid) == "available")
        with EventStream(server) as events:
            deadline = time.monotonic() + 3.5
            while time.monotonic() < deadline:  # the neighbour keeps heartbeating
                talker.heartbeat()
                time.sleep(0.5)
            events.wait_for(event_is("charger_offline", quiet.cid))
        assert quiet.closed.wait(WAIT), "the server should close a silent connection"
        assert server.charger(quiet.cid)["online"] is False
        assert connector_status(server, quiet.cid) == "offline"
        assert server.charger(talker.cid)["online"] is True
        # The charger comes back: log in again and it is online.
        back = YkcCharger(server.ykc_port, quiet.cid)
        assert back.login() == 0
        wait_until(lambda: server.charger(quiet.cid)["online"] is True)
        back.close()
    finally:
        quiet.close()
        talker.close()


def test_connection_that_sends_nothing_is_closed(make_server):
    server = ykc_server(make_server, timeout=1)
    sock = socket.create_connection(("127.0.0.1", server.ykc_port), timeout=WAIT)
    try:
        sock.settimeout(WAIT)
        assert sock.recv(64) == b"", "a connection that never logs in is closed without an answer"
    finally:
        sock.close()
    assert server.healthy()
    assert "closed before login" in server.log_text()


def test_closed_policy_refuses_unknown_chargers(make_server):
    server = ykc_server(make_server, registration="closed")
    stranger = YkcCharger(server.ykc_port)
    known = YkcCharger(server.ykc_port)
    try:
        server.register(known.cid)
        assert stranger.login() == 1
        assert stranger.closed.wait(WAIT), "a refused login is followed by a close"
        assert server.api("GET", f"/api/v1/chargers/{stranger.cid}").status_code == 404
        assert known.login() == 0
        known.heartbeat()
        assert server.charger(known.cid)["station_id"] == "test-station"
    finally:
        stranger.close()
        known.close()


def test_pending_charger_is_refused_until_accepted(make_server):
    server = ykc_server(make_server, registration="pending")
    cp = YkcCharger(server.ykc_port)
    try:
        assert cp.login() == 1
        charger = server.charger(cp.cid)
        assert charger["registration"] == "pending" and charger["protocol"] == "ykc"
        server.ok("POST", f"/api/v1/chargers/{cp.cid}/accept", status=(200, 204))
        assert cp.login() == 0
        assert server.charger(cp.cid)["online"] is True
    finally:
        cp.close()


def test_bad_input_is_dropped_and_neighbours_are_untouched(make_server):
    server = ykc_server(make_server)
    victim = YkcCharger(server.ykc_port)
    neighbour = YkcCharger(server.ykc_port)
    ocpp_id = uid("ocpp-nb")
    try:
        assert victim.login() == 0 and neighbour.login() == 0
        me = bcd(victim.cid, 7)
        hb = lambda seq, **kw: frame(0x03, me + b"\x01\x00", seq, **kw)  # noqa: E731

        # Wrong CRC: no answer; the next good frame is answered.
        bad = bytearray(hb(100))
        bad[-1] ^= 0xFF
        victim.send_raw(bytes(bad))
        assert victim.nothing_for(0x04, 0.5)
        victim.heartbeat()

        # Unknown frame type and a frame type of the platform's direction: ignored.
        victim.send(0x7F, b"\x01\x02\x03")
        victim.send(0x02, me + b"\x00")
        victim.heartbeat()

        # Garbage without a start byte, then a heartbeat in the same write.
        victim.send_raw(b"\x00\x01GET / HTTP/1.1\r\n\r\n" + hb(101))
        victim.expect(0x04, seq=101)

        # A length field larger than the frame: the frame swallows what follows until its
        # CRC fails, then the decoder resyncs on the next start byte.
        bogus = bytearray(hb(102))
        bogus[1] = 0x40
        victim.send_raw(bytes(bogus))
        for seq in range(103, 110):
            victim.send_raw(hb(seq))
        victim.expect(0x04, seq=109)

        # A body shorter than its layout.
        victim.send(0x13, me + b"\x01")
        victim.heartbeat()

        # Encrypted frame (no 3DES key configured): refused, logged.
        victim.send(0x03, bytes(16), enc=1)
        victim.heartbeat()

        # Frames split across reads, byte by byte.
        for b in hb(200):
            victim.send_raw(bytes([b]))
            time.sleep(0.002)
        victim.expect(0x04, seq=200)

        # Many frames in one read: every one answered, in order, sequence numbers echoed.
        victim.send_raw(b"".join(hb(seq) for seq in range(300, 340)))
        got = [victim.expect(0x04).seq for _ in range(40)]
        assert got == list(range(300, 340))

        # The other CRC byte order is accepted too; we answer low byte first.
        seq = victim.send(0x03, me + b"\x01\x00", crc="high")
        assert victim.expect(0x04, seq=seq).crc_order == "low"

        # A frame naming another charger is ignored.
        victim.send(0x03, bcd(neighbour.cid, 7) + b"\x01\x00", seq=400)
        assert victim.nothing_for(0x04, 0.5)

        # The connection, its neighbour and an OCPP charger all still work.
        victim.heartbeat()
        neighbour.heartbeat()
        assert server.charger(victim.cid)["online"] is True

        async def ocpp():
            async with charge_point(server, ocpp_id, "1.6") as cp:
                assert (await cp.boot()).status == "Accepted"
                await cp.heartbeat()

        run(ocpp())
        log = server.log_text()
        assert "bad YKC frame dropped" in log
        assert "unknown or unhandled YKC frame type ignored" in log
        assert "encrypted YKC frame refused" in log
        assert server.healthy()
    finally:
        victim.close()
        neighbour.close()


def test_newer_connection_supersedes_the_older(make_server):
    server = ykc_server(make_server)
    first = YkcCharger(server.ykc_port)
    try:
        assert first.login() == 0
        second = YkcCharger(server.ykc_port, first.cid)
        assert second.login() == 0
        assert first.closed.wait(WAIT)
        second.heartbeat()
        assert server.charger(first.cid)["online"] is True
        r = server.ok("POST", f"/api/v1/chargers/{first.cid}/commands/reset", {"hard": False})
        assert r["status"] == "Accepted"
        assert any(f.type == 0x92 for f in second.seen)
        second.close()
        wait_until(lambda: server.charger(first.cid)["online"] is False)
    finally:
        first.close()


def test_sessions_listed_for_ykc_chargers(make_server):
    """The API lists the platform's YKC sessions like any other (filter by charger)."""
    server = ykc_server(make_server)
    with logged_in(server) as cp:
        assert body_list(server.ok("GET", f"/api/v1/sessions?charger={cp.cid}")) == []


def test_encrypted_heartbeat_with_the_chargers_3des_key(make_server):
    # 3DES from pycryptodome, not the platform's codec: EDE, ECB, PKCS#7 padding.
    from Crypto.Cipher import DES3
    from Crypto.Util.Padding import pad, unpad

    server = ykc_server(make_server, registration="closed")
    keyed = YkcCharger(server.ykc_port)
    keyless = YkcCharger(server.ykc_port)
    key = bytes.fromhex("0123456789ABCDEFFEDCBA987654321089ABCDEF01234567")
    try:
        server.ensure_station("test-station")
        # The key must be 32 or 48 hex digits.
        for bad in ("00" * 8, "zz" * 16, "00" * 20):
            r = server.api("POST", "/api/v1/chargers", {"id": keyed.cid, "station_id": "test-station", "ykc_key": bad})
            assert r.status_code == 400, (bad, r.text)
        created = server.ok("POST", "/api/v1/chargers",
                            {"id": keyed.cid, "station_id": "test-station", "ykc_key": key.hex()}, status=201)
        server.register(keyless.cid)
        # Never returned.
        assert key.hex() not in str(created).lower()
        assert key.hex() not in server.api("GET", f"/api/v1/chargers/{keyed.cid}").text.lower()

        assert keyed.login() == 0
        cipher = DES3.new(key, DES3.MODE_ECB)
        body = bcd(keyed.cid, 7) + bytes([1, 0])
        seq = keyed.send(0x03, cipher.encrypt(pad(body, 8)), enc=1)
        reply = keyed.expect(0x04, seq=seq)
        # A charger that encrypts is answered encrypted, with its own key.
        assert reply.enc == 1 and unpad(cipher.decrypt(reply.body), 8) == body

        # Garbage under the flag, and a charger without a key: dropped, logged, link kept.
        keyed.send(0x03, bytes(16), enc=1)
        assert keyless.login() == 0
        keyless.send(0x03, cipher.encrypt(pad(bcd(keyless.cid, 7) + bytes([1, 0]), 8)), enc=1)
        assert keyless.nothing_for(0x04, 1.0)
        seq = keyed.send(0x03, body)
        again = keyed.expect(0x04, seq=seq)
        assert again.enc == 1 and unpad(cipher.decrypt(again.body), 8) == body
        assert keyless.heartbeat().enc == 0, "a charger without a key is answered in the clear"
        log = server.log_text()
        assert "could not be decrypted" in log and "encrypted YKC frame refused" in log
    finally:
        keyed.close()
        keyless.close()
