"""A called queue ticket reserves its connector on the charger itself (OCPP ReserveNow), end to
end with Python `ocpp` charge points (1.6 and 2.0.1) that keep every reservation the platform
asks for and answer as a real charger would.

- A freed connector calls the next ticket, and the charger receives ReserveNow for that
  connector, expiring at the ticket's `plug_by`, with the ticket's own id tag; the charger shows
  the connector reserved.
- The car starts with that tag (and the reservation id): accepted at that charger only, and the
  ticket goes to charging; nothing is cancelled.
- A no-show, a driver cancelling and a staff skip each send CancelReservation for that
  reservation, and the tag stops working.
- A charger that answers Occupied or Rejected, or is offline, leaves the ticket called with the
  reservation's status recorded, and is sent no cancellation.
- The REST commands reserve-now and cancel-reservation answer the charger's reply; bad bodies
  are 400, an offline charger 409.

The plug-in window is 4 s (`[queue]` in a config file), enough for a car to start and short
enough to wait out a no-show.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from ocpp.routing import after, on
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

from chargepoints import ChargePoint16, ChargePoint201, charge_point
from harness import await_until, now, run, uid

PW = "queue-reserve-password-16"
PLUG_IN_SECS = 4


class Reserving16(ChargePoint16):
    """A 1.6 charge point that keeps reservations: Reserved while one holds a connector,
    Available again when it is cancelled."""

    reservations: dict[int, int]

    def _held(self) -> dict[int, int]:
        if not hasattr(self, "reservations"):
            self.reservations = {}
        return self.reservations

    @on("ReserveNow")
    def on_reserve_now(self, connector_id, expiry_date, id_tag, reservation_id, **kwargs):
        return result16.ReserveNow(status=self.answers.get("ReserveNow", "Accepted"))

    @after("ReserveNow")
    def after_reserve_now(self, connector_id, expiry_date, id_tag, reservation_id, **kwargs):
        if self.answers.get("ReserveNow", "Accepted") == "Accepted":
            self._held()[reservation_id] = connector_id
            self._spawn(self.status_notification(connector_id, "Reserved"))

    @on("CancelReservation")
    def on_cancel_reservation(self, reservation_id, **kwargs):
        known = reservation_id in self._held()
        return result16.CancelReservation(status="Accepted" if known else "Rejected")

    @after("CancelReservation")
    def after_cancel_reservation(self, reservation_id, **kwargs):
        connector = self._held().pop(reservation_id, None)
        if connector is not None:
            self._spawn(self.status_notification(connector, "Available"))


class Reserving201(ChargePoint201):
    reservations: dict[int, int]

    def _held(self) -> dict[int, int]:
        if not hasattr(self, "reservations"):
            self.reservations = {}
        return self.reservations

    @on("ReserveNow")
    def on_reserve_now(self, id, expiry_date_time, id_token, evse_id=None, **kwargs):
        return result201.ReserveNow(status=self.answers.get("ReserveNow", "Accepted"))

    @after("ReserveNow")
    def after_reserve_now(self, id, expiry_date_time, id_token, evse_id=None, **kwargs):
        if self.answers.get("ReserveNow", "Accepted") == "Accepted":
            self._held()[id] = evse_id or 1
            self._spawn(self.status_notification(evse_id or 1, 1, "Reserved"))

    @on("CancelReservation")
    def on_cancel_reservation(self, reservation_id, **kwargs):
        known = reservation_id in self._held()
        return result201.CancelReservation(status="Accepted" if known else "Rejected")

    @after("CancelReservation")
    def after_cancel_reservation(self, reservation_id, **kwargs):
        evse = self._held().pop(reservation_id, None)
        if evse is not None:
            self._spawn(self.status_notification(evse, 1, "Available"))


CLASSES = {"1.6": Reserving16, "2.0.1": Reserving201}


@pytest.fixture(scope="module")
def q(make_module_server, tmp_path_factory):
    path = tmp_path_factory.mktemp("queue-reserve-config") / "chargeops.toml"
    path.write_text(
        f"""
[queue]
plug_in_secs = {PLUG_IN_SECS}
tick_ms = 100
"""
    )
    return make_module_server(heartbeat_interval=77, command_timeout=3, extra_args=("--config", str(path)))


def setup(q):
    sid = uid("qr-st")
    q.ensure_station(sid)
    cid = uid("qr-cp")
    q.register(cid, PW, station=sid)
    return sid, cid


def take(q, sid, contact):
    r = q.api("POST", f"/api/v1/stations/{sid}/queue", {"contact": contact}, token=None)
    assert r.status_code == 201, r.text
    return r.json()


def holder_view(q, tid):
    """The ticket as its holder sees it (no token, knows the id)."""
    r = q.api("GET", f"/api/v1/queue/{tid}", token=None)
    assert r.status_code == 200, r.text
    return r.json()


def when(q, tid, pred):
    t = holder_view(q, tid)
    return t if pred(t) else None


def instant(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


async def set_status(cp, version, connector, status):
    """A 1.6 status, or its 2.0.1 counterpart on EVSE `connector` (connector 1)."""
    if version == "1.6":
        await cp.status_notification(connector, status)
    else:
        mapped = {"Charging": "Occupied", "Preparing": "Occupied"}.get(status, status)
        await cp.status_notification(connector, 1, mapped)


async def busy(cp, version, connectors=(1, 2)):
    await cp.boot()
    for c in connectors:
        await set_status(cp, version, c, "Charging")


def reserved_connector(version, payload):
    return payload["connectorId"] if version == "1.6" else payload["evseId"]


def reservation_of(version, payload):
    return payload["reservationId"] if version == "1.6" else payload["id"]


def tag_of(version, payload):
    return payload["idTag"] if version == "1.6" else payload["idToken"]["idToken"]


def expiry_of(version, payload):
    return payload["expiryDate"] if version == "1.6" else payload["expiryDateTime"]


async def called_and_reserved(q, cp, version, tid, connector, count=1):
    """Waits for the ticket to be called on `connector` and the charger to accept its
    reservation; returns (ticket, ReserveNow payload)."""
    called = await await_until(lambda: when(q, tid, lambda t: t["state"] == "called"), what="ticket called")
    assert called["connector_id" if version == "1.6" else "evse_id"] == connector
    sent = await cp.wait_call("ReserveNow", count)
    assert reserved_connector(version, sent) == connector
    t = await await_until(
        lambda: when(q, tid, lambda t: (t["reservation"] or {}).get("status") == "accepted"),
        what="reservation accepted",
    )
    r = t["reservation"]
    assert r["reservation_id"] == reservation_of(version, sent)
    assert r["id_tag"] == tag_of(version, sent), "the holder sees the tag the charger holds for"
    assert r["holding"] is True and r["ended"] is None and r["cancel_status"] is None
    # The charger holds it until the call's no-show deadline (to the millisecond OCPP carries).
    assert instant(r["expiry"]) == instant(t["plug_by"])
    assert abs((instant(expiry_of(version, sent)) - instant(t["plug_by"])).total_seconds()) < 0.001
    return t, sent


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_a_called_ticket_reserves_its_connector_and_the_car_starts_with_its_tag(q, version):
    sid, cid = setup(q)
    other = uid("qr-cp")
    q.register(other, PW, station=sid)

    async def scenario():
        async with charge_point(q, cid, version, PW, cls=CLASSES[version]) as cp, \
                charge_point(q, other, version, PW, cls=CLASSES[version]) as cp2:
            await busy(cp, version)
            await busy(cp2, version)
            a = await asyncio.to_thread(take, q, sid, "13800138100")
            assert a["reservation"] is None, "a waiting ticket holds nothing"

            await set_status(cp, version, 2, "Available")
            t, sent = await called_and_reserved(q, cp, version, a["id"], 2)
            tag, rid = t["reservation"]["id_tag"], t["reservation"]["reservation_id"]
            assert len(tag) <= 20, "a tag 1.6 chargers can hold"
            # The charger says the connector is reserved; the live state shows it.
            live = await await_until(
                lambda: (c := q.connector(cid, 2 if version == "1.6" else 1, None if version == "1.6" else 2))
                and c["status"] == "reserved" and c,
                what="connector reserved",
            )
            assert live["status"] == "reserved"
            # Others see the reservation but not the tag.
            public = (await q.aapi("GET", f"/api/v1/stations/{sid}/queue", token=None)).json()
            mine = [x for x in public["tickets"] if x["number"] == a["number"]][0]
            assert mine["reservation"]["status"] == "accepted" and "id_tag" not in mine["reservation"]
            staff = (await q.aapi("GET", f"/api/v1/queue/{a['id']}")).json()
            assert staff["reservation"]["id_tag"] == tag

            # The tag is good at this charger only.
            if version == "1.6":
                assert (await cp2.authorize(tag)).id_tag_info["status"] == "Invalid"
                assert (await cp.authorize(tag)).id_tag_info["status"] == "Accepted"
                await cp.status_notification(2, "Preparing")
                res = await cp.call(
                    call16.StartTransaction(connector_id=2, id_tag=tag, meter_start=1000, timestamp=now(),
                                            reservation_id=rid),
                    suppress=False,
                )
                assert res.id_tag_info["status"] == "Accepted"
                await cp.status_notification(2, "Charging")
            else:
                assert (await cp2.authorize(tag, "Central")).id_token_info["status"] == "Invalid"
                assert (await cp.authorize(tag, "Central")).id_token_info["status"] == "Accepted"
                res = await cp.call(
                    call201.TransactionEvent(
                        event_type="Started", timestamp=now(), trigger_reason="Authorized", seq_no=0,
                        transaction_info={"transaction_id": f"{cid}-resv", "charging_state": "Charging"},
                        reservation_id=rid, evse={"id": 2, "connector_id": 1},
                        id_token={"id_token": tag, "type": "Central"},
                    ),
                    suppress=False,
                )
                assert res.id_token_info["status"] == "Accepted"
                await cp.status_notification(2, 1, "Occupied")
            charging = await await_until(lambda: when(q, a["id"], lambda t: t["state"] == "charging"),
                                         what="ticket charging")
            assert charging["reservation"]["ended"] == "charging" and charging["reservation"]["holding"] is True
            # The session is the ticket's, under its tag.
            sessions = await asyncio.to_thread(q.sessions, cid)
            assert [s["id_tag"] for s in sessions] == [tag]
            # The charger used the reservation up: nothing to cancel, even past the window.
            await asyncio.sleep(PLUG_IN_SECS + 0.5)
            assert cp.calls_of("CancelReservation") == []
            assert holder_view(q, a["id"])["state"] == "charging"

    run(scenario())


def test_a_no_show_cancels_the_reservation_and_the_next_ticket_gets_its_own(q):
    version = "1.6"
    sid, cid = setup(q)

    async def scenario():
        async with charge_point(q, cid, version, PW, cls=Reserving16) as cp:
            await busy(cp, version)
            a = await asyncio.to_thread(take, q, sid, "13800138200")
            b = await asyncio.to_thread(take, q, sid, "13800138201")
            await cp.status_notification(1, "Available")
            t, sent = await called_and_reserved(q, cp, version, a["id"], 1)
            tag = t["reservation"]["id_tag"]

            # Nobody comes: expired, and the charger is told to let go of that reservation.
            cancel = await cp.wait_call("CancelReservation", timeout=PLUG_IN_SECS + 10)
            assert cancel == {"reservationId": sent["reservationId"]}
            gone = await await_until(
                lambda: when(q, a["id"], lambda t: t["state"] == "expired"
                             and t["reservation"]["cancel_status"] == "accepted"),
                what="expired and cancelled",
            )
            assert gone["reservation"]["ended"] == "no_show" and gone["reservation"]["holding"] is False
            assert (await cp.authorize(tag)).id_tag_info["status"] == "Invalid", "the tag ended with the hold"

            # The charger frees the connector; number 2 gets it with a reservation of its own.
            t2, sent2 = await called_and_reserved(q, cp, version, b["id"], 1, count=2)
            assert sent2["reservationId"] != sent["reservationId"] and sent2["idTag"] != tag

    run(scenario())


def test_a_driver_cancelling_cancels_the_reservation(q):
    version = "2.0.1"
    sid, cid = setup(q)

    async def scenario():
        async with charge_point(q, cid, version, PW, cls=Reserving201) as cp:
            await busy(cp, version)
            a = await asyncio.to_thread(take, q, sid, "13800138300")
            await cp.status_notification(1, 1, "Available")
            t, sent = await called_and_reserved(q, cp, version, a["id"], 1)
            r = await q.aapi("DELETE", f"/api/v1/queue/{a['id']}", None, token=None)
            assert r.status_code == 200 and r.json()["state"] == "cancelled", r.text
            cancel = await cp.wait_call("CancelReservation")
            assert cancel == {"reservationId": sent["id"]}
            done = await await_until(
                lambda: when(q, a["id"], lambda t: t["reservation"]["cancel_status"] == "accepted"),
                what="cancellation answered",
            )
            assert done["reservation"]["ended"] == "cancelled"
            assert (await cp.authorize(t["reservation"]["id_tag"], "Central")).id_token_info["status"] == "Invalid"
            await await_until(lambda: q.connector(cid, 1, 1)["status"] == "available", what="connector free again")
            # A station may tell of a reservation it removed itself: heard, and answered.
            await cp.call(call201.ReservationStatusUpdate(reservation_id=sent["id"], reservation_update_status="Removed"),
                          suppress=False)

    run(scenario())


def test_a_staff_skip_cancels_the_reservation(q):
    version = "1.6"
    sid, cid = setup(q)

    async def scenario():
        async with charge_point(q, cid, version, PW, cls=Reserving16) as cp:
            await busy(cp, version)
            a = await asyncio.to_thread(take, q, sid, "13800138400")
            await cp.status_notification(2, "Available")
            _, sent = await called_and_reserved(q, cp, version, a["id"], 2)
            skipped = await q.aok("POST", f"/api/v1/queue/{a['id']}/skip", {})
            assert skipped["state"] in ("waiting", "called"), skipped
            cancel = await cp.wait_call("CancelReservation")
            assert cancel == {"reservationId": sent["reservationId"]}
            # Alone in the queue, the ticket is called again once the charger frees the
            # connector: a fresh reservation, the same tag (it is the ticket's).
            again = await cp.wait_call("ReserveNow", 2)
            assert again["reservationId"] != sent["reservationId"] and again["idTag"] == sent["idTag"]
            t = await await_until(
                lambda: when(q, a["id"], lambda t: t["state"] == "called"
                             and t["reservation"]["reservation_id"] == again["reservationId"]
                             and t["reservation"]["status"] == "accepted"),
                what="called again",
            )
            assert t["reservation"]["holding"] is True

    run(scenario())


@pytest.mark.parametrize("version,answer", [("1.6", "Occupied"), ("2.0.1", "Rejected")])
def test_a_refused_reservation_leaves_the_ticket_called(q, version, answer):
    sid, cid = setup(q)

    async def scenario():
        async with charge_point(q, cid, version, PW, cls=CLASSES[version]) as cp:
            cp.answers["ReserveNow"] = answer
            await busy(cp, version)
            a = await asyncio.to_thread(take, q, sid, "13800138500")
            await set_status(cp, version, 1, "Available")
            await cp.wait_call("ReserveNow")
            t = await await_until(
                lambda: when(q, a["id"], lambda t: (t["reservation"] or {}).get("status") == answer.lower()),
                what="refusal recorded",
            )
            # The queue holds the connector for the ticket all the same.
            assert t["state"] == "called" and t["reservation"]["holding"] is True
            assert t["connector_id" if version == "1.6" else "evse_id"] == 1
            # Nothing was reserved on the charger, so cancelling the ticket sends nothing.
            r = await q.aapi("DELETE", f"/api/v1/queue/{a['id']}", None, token=None)
            assert r.status_code == 200, r.text
            await asyncio.sleep(0.5)
            assert cp.calls_of("CancelReservation") == []
            assert holder_view(q, a["id"])["reservation"]["cancel_status"] is None

    run(scenario())


def test_an_offline_charger_is_recorded_and_the_ticket_still_called(q):
    sid, cid = setup(q)

    async def scenario():
        async with charge_point(q, cid, "1.6", PW, cls=Reserving16) as cp:
            await busy(cp, "1.6")
        await await_until(lambda: not q.charger(cid)["online"], what="charger offline")
        a = await asyncio.to_thread(take, q, sid, "13800138600")
        called = await q.aok("POST", f"/api/v1/queue/{a['id']}/call", {"charger_id": cid, "connector_id": 1})
        assert called["state"] == "called" and called["connector_id"] == 1
        t = await await_until(
            lambda: when(q, a["id"], lambda t: (t["reservation"] or {}).get("status") == "offline"),
            what="offline recorded",
        )
        assert t["state"] == "called" and t["reservation"]["holding"] is True

    run(scenario())


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_rest_reserve_now_and_cancel_reservation(q, version):
    sid, cid = setup(q)
    cmd = lambda name: f"/api/v1/chargers/{cid}/commands/{name}"  # noqa: E731
    where = {"connector_id": 2} if version == "1.6" else {"evse_id": 2}

    async def scenario():
        async with charge_point(q, cid, version, PW, cls=CLASSES[version]) as cp:
            await cp.boot()
            for c in (1, 2):
                await set_status(cp, version, c, "Available")
            tag = uid("T")[:20]
            out = await q.aok("POST", cmd("reserve-now"), {**where, "id_tag": tag, "expires_in_s": 90})
            assert out["status"] == "Accepted" and out["response"] == {"status": "Accepted"}
            sent = await cp.wait_call("ReserveNow")
            assert reservation_of(version, sent) == out["reservation_id"] > 0
            assert reserved_connector(version, sent) == 2 and tag_of(version, sent) == tag
            left = (instant(expiry_of(version, sent)) - instant(now())).total_seconds()
            assert 80 < left <= 90, left

            cancelled = await q.aok("POST", cmd("cancel-reservation"), {"reservation_id": out["reservation_id"]})
            assert cancelled["status"] == "Accepted"
            assert (await cp.wait_call("CancelReservation")) == {"reservationId": out["reservation_id"]}
            again = await q.aok("POST", cmd("cancel-reservation"), {"reservation_id": out["reservation_id"]})
            assert again["status"] == "Rejected", "the charger's own answer"

            # The caller's id and an absolute expiry; the charger's refusal is the answer.
            cp.answers["ReserveNow"] = "Occupied"
            until = "2099-01-01T00:00:00Z"
            r = await q.aapi("POST", cmd("reserve-now"), {**where, "id_tag": tag, "expiry": until, "reservation_id": 77})
            assert r.status_code == 400, "more than a day ahead"
            soon = datetime.fromtimestamp(instant(now()).timestamp() + 600).astimezone().isoformat()
            out = await q.aok("POST", cmd("reserve-now"), {**where, "id_tag": tag, "expiry": soon, "reservation_id": 77})
            assert (out["status"], out["reservation_id"]) == ("Occupied", 77)
            assert reservation_of(version, await cp.wait_call("ReserveNow", 2)) == 77

            # Bad bodies change nothing and reach no charger.
            too_long = "x" * (21 if version == "1.6" else 37)
            for body in [
                {**where, "expires_in_s": 60},
                {**where, "id_tag": "", "expires_in_s": 60},
                {**where, "id_tag": too_long, "expires_in_s": 60},
                {**where, "id_tag": tag, "expires_in_s": -5},
                {**where, "id_tag": tag, "expires_in_s": 0},
                {**where, "id_tag": tag},
                {**where, "id_tag": tag, "expires_in_s": 60, "expiry": soon},
                {**where, "id_tag": tag, "expiry": "2001-01-01T00:00:00Z"},
                {**where, "id_tag": tag, "expiry": "tomorrow"},
                {**where, "id_tag": tag, "expires_in_s": 60, "reservation_id": -1},
                {**where, "id_tag": tag, "expires_in_s": 60, "reservation_id": 2**31},
                {"id_tag": tag, "expires_in_s": 60},
                {"connector_id": 7, "id_tag": tag, "expires_in_s": 60},
                {"evse_id": 7, "id_tag": tag, "expires_in_s": 60},
                {"connector_id": -1, "id_tag": tag, "expires_in_s": 60},
                {**where, "id_tag": tag, "expires_in_s": "soon"},
                {**where, "id_tag": tag, "expires_in_s": 60, "colour": "red"},
            ]:
                r = await q.aapi("POST", cmd("reserve-now"), body)
                assert r.status_code == 400, (body, r.status_code, r.text)
                assert set(r.json()) == {"code", "message"}, r.text
            for body in [{}, {"reservation_id": -3}, {"reservation_id": "x"}]:
                r = await q.aapi("POST", cmd("cancel-reservation"), body)
                assert r.status_code == 400, (body, r.text)
            assert len(cp.calls_of("ReserveNow")) == 2 and len(cp.calls_of("CancelReservation")) == 2

        # Disconnected: 409, as for every command; an unknown charger is 404.
        await await_until(lambda: not q.charger(cid)["online"], what="charger offline")
        r = await q.aapi("POST", cmd("reserve-now"), {**where, "id_tag": "T1", "expires_in_s": 60})
        assert r.status_code == 409 and r.json()["code"] == "charger_offline", r.text
        r = await q.aapi("POST", cmd("cancel-reservation"), {"reservation_id": 1})
        assert r.status_code == 409, r.text
        r = await q.aapi("POST", f"/api/v1/chargers/{uid('nope')}/commands/reserve-now",
                         {"connector_id": 1, "id_tag": "T1", "expires_in_s": 60})
        assert r.status_code == 404, r.text

    run(scenario())


def test_a_charger_that_never_connected_is_409(q):
    sid, cid = setup(q)
    r = q.api("POST", f"/api/v1/chargers/{cid}/commands/reserve-now",
              {"connector_id": 1, "id_tag": "T1", "expires_in_s": 60})
    assert r.status_code == 409 and r.json()["code"] == "charger_offline", r.text


def test_a_restart_keeps_the_reservation_and_its_tag(q):
    """Last in this module: it restarts the shared server."""
    sid, cid = setup(q)

    async def called():
        async with charge_point(q, cid, "1.6", PW, cls=Reserving16) as cp:
            await busy(cp, "1.6")
            a = await asyncio.to_thread(take, q, sid, "13800138700")
            await cp.status_notification(1, "Available")
            t, _ = await called_and_reserved(q, cp, "1.6", a["id"], 1)
            return t

    t = run(called())
    # Long enough a window that the restart does not see a no-show.
    assert (instant(t["plug_by"]) - instant(now())).total_seconds() > 0.5
    q.restart()

    async def after():
        back = await asyncio.to_thread(holder_view, q, t["id"])
        if (instant(t["plug_by"]) - instant(now())).total_seconds() > 1:
            # Well inside the window (a slow machine may pass it during the restart).
            assert back["state"] == "called" and back["reservation"] == t["reservation"], back
        assert back["reservation"] == t["reservation"] or back["state"] == "expired", back
        async with charge_point(q, cid, "1.6", PW, cls=Reserving16) as cp:
            await cp.boot()
            status = (await cp.authorize(t["reservation"]["id_tag"])).id_tag_info["status"]
            now_t = await asyncio.to_thread(holder_view, q, t["id"])
            assert status == ("Accepted" if now_t["state"] == "called" else "Invalid"), (status, now_t)

    run(after())


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_the_driver_starts_at_the_reserved_connector_without_a_card(q, version):
    sid, cid = setup(q)

    async def scenario():
        async with charge_point(q, cid, version, PW, cls=CLASSES[version]) as cp:
            await busy(cp, version)
            a = await asyncio.to_thread(take, q, sid, "13800138500")
            b = await asyncio.to_thread(take, q, sid, "13800138501")
            # A waiting ticket has nothing to start.
            r = await q.aapi("POST", f"/api/v1/queue/{b['id']}/start", token=None)
            assert r.status_code == 409 and r.json()["code"] == "invalid_state", r.text
            r = await q.aapi("POST", "/api/v1/queue/00000000000000000000000000000000/start", token=None)
            assert r.status_code == 404, r.text

            await set_status(cp, version, 2, "Available")
            t, _ = await called_and_reserved(q, cp, version, a["id"], 2)
            tag = t["reservation"]["id_tag"]
            # The ticket's id is all the driver needs: the platform starts with the ticket's tag.
            r = await q.aapi("POST", f"/api/v1/queue/{a['id']}/start", token=None)
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "Accepted" and r.json()["connector_id"] == (2 if version == "1.6" else 1)
            if version == "1.6":
                sent = await cp.wait_call("RemoteStartTransaction")
                assert sent["idTag"] == tag and sent["connectorId"] == 2
            else:
                sent = await cp.wait_call("RequestStartTransaction")
                assert sent["idToken"]["idToken"] == tag and sent["evseId"] == 2
            charging = await await_until(lambda: when(q, a["id"], lambda t: t["state"] == "charging"),
                                         what="ticket charging")
            assert charging["reservation"]["ended"] == "charging"
            # The ticket charges once the car is plugged in; the session follows the charger's
            # StartTransaction a moment later.
            sessions = await await_until(lambda: q.sessions(cid) or None, what="the session")
            assert [s["id_tag"] for s in sessions] == [tag]
            # Started once: a second press finds the ticket charging, and nothing more is sent.
            r = await q.aapi("POST", f"/api/v1/queue/{a['id']}/start", token=None)
            assert r.status_code == 409 and r.json()["code"] == "invalid_state", r.text
            name = "RemoteStartTransaction" if version == "1.6" else "RequestStartTransaction"
            assert len(cp.calls_of(name)) == 1

    run(scenario())


def test_a_charger_that_refused_the_reservation_still_takes_the_ticket_s_remote_start(q):
    version = "1.6"
    sid, cid = setup(q)

    async def scenario():
        async with charge_point(q, cid, version, PW, cls=Reserving16) as cp:
            cp.answers["ReserveNow"] = "Occupied"
            await busy(cp, version)
            a = await asyncio.to_thread(take, q, sid, "13800138600")
            await cp.status_notification(1, "Available")
            t = await await_until(
                lambda: when(q, a["id"], lambda t: (t["reservation"] or {}).get("status") == "occupied"),
                what="reservation refused")
            # The platform still holds the connector and vouches for the ticket's tag there.
            r = await q.aapi("POST", f"/api/v1/queue/{a['id']}/start", token=None)
            assert r.status_code == 200 and r.json()["status"] == "Accepted", r.text
            sent = await cp.wait_call("RemoteStartTransaction")
            assert sent["idTag"] == t["reservation"]["id_tag"] and sent["connectorId"] == 1
            await await_until(lambda: when(q, a["id"], lambda t: t["state"] == "charging"), what="ticket charging")

    run(scenario())
