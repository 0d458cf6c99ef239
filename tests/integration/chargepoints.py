"""Charge points built on the `ocpp` package (an independent implementation that validates every
message it sends and receives against the official OCPP JSON schemas).

Each charge point records the exact CALL frames the server sent it (`calls`), answers the
server's commands the way a real charger would, and then does what the command asked (a remote
start really starts a transaction, a trigger really sends the message, ...).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as _CP16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as _CP201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

from harness import WAIT, Server, now, open_ws

ENERGY = "Energy.Active.Import.Register"


class Recorder:
    """Keeps the server-initiated CALLs exactly as they came over the wire."""

    def _init_recorder(self) -> None:
        self.calls: list[tuple[str, str, dict]] = []  # (unique id, action, payload)
        self.frames_in: list[str] = []
        self.errors: list[BaseException] = []
        self.answers: dict[str, Any] = {}  # action -> status to answer instead of the default
        self.completed: list[tuple[str, Any]] = []  # (action, answer) of CALLs this charger made

    async def call(self, payload, *args, **kwargs):
        result = await super().call(payload, *args, **kwargs)
        self.completed.append((payload.__class__.__name__, result))
        return result

    async def wait_completed(self, action: str, count: int = 1, timeout: float = WAIT):
        """Wait until this charger has had `count` answers from the server to its `action` CALLs."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            got = [r for (a, r) in self.completed if a == action]
            if len(got) >= count:
                return got[count - 1]
            if self.errors:
                raise AssertionError(f"{self.id}: follow-up work failed: {self.errors!r}")
            if loop.time() > deadline:
                raise AssertionError(f"{self.id}: no answer to {action} #{count} within {timeout}s")
            await asyncio.sleep(0.02)

    async def route_message(self, raw_msg):
        self.frames_in.append(raw_msg)
        with contextlib.suppress(Exception):
            msg = json.loads(raw_msg)
            if isinstance(msg, list) and len(msg) == 4 and msg[0] == 2:
                self.calls.append((msg[1], msg[2], msg[3]))
        return await super().route_message(raw_msg)

    def calls_of(self, action: str) -> list[dict]:
        return [p for (_, a, p) in self.calls if a == action]

    async def wait_call(self, action: str, count: int = 1, timeout: float = WAIT) -> dict:
        """The `count`-th CALL of `action` the server sent (waits for it)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            got = self.calls_of(action)
            if len(got) >= count:
                return got[count - 1]
            if loop.time() > deadline:
                raise AssertionError(
                    f"{self.id}: server did not send {action} #{count} within {timeout}s; calls: {self.calls}"
                )
            await asyncio.sleep(0.02)

    def _spawn(self, coro) -> None:
        """Run follow-up work of a command (e.g. start the transaction a remote start asked for)."""

        async def guarded():
            try:
                await coro
            except BaseException as e:  # noqa: BLE001 - surfaced through self.errors
                self.errors.append(e)

        asyncio.ensure_future(guarded())


# --------------------------------------------------------------------------------------------
# OCPP 1.6J


class ChargePoint16(Recorder, _CP16):
    def __init__(self, id, connection, response_timeout=WAIT):
        super().__init__(id, connection, response_timeout=response_timeout)
        self._init_recorder()
        self.meter_wh = 10_000
        self.transactions: dict[int, int] = {}  # connector -> transactionId
        self.status: dict[int, str] = {}
        self.config: dict[str, tuple[str, bool]] = {
            "HeartbeatInterval": ("300", False),
            "MeterValueSampleInterval": ("60", False),
            "NumberOfConnectors": ("2", True),
        }
        self.remote_tx_started = asyncio.Event()
        self.remote_tx_stopped = asyncio.Event()

    # -- charger-initiated

    async def boot(self, vendor="TestVendor", model="TestModel16", **extra):
        return await self.call(
            call16.BootNotification(charge_point_vendor=vendor, charge_point_model=model, **extra),
            suppress=False,
        )

    async def heartbeat(self):
        return await self.call(call16.Heartbeat(), suppress=False)

    async def status_notification(self, connector_id: int, status: str, error_code: str = "NoError", **extra):
        self.status[connector_id] = status
        return await self.call(
            call16.StatusNotification(
                connector_id=connector_id, error_code=error_code, status=status, timestamp=now(), **extra
            ),
            suppress=False,
        )

    async def authorize(self, id_tag: str):
        return await self.call(call16.Authorize(id_tag=id_tag), suppress=False)

    async def start_transaction(self, connector_id: int, id_tag: str, meter_start: int | None = None,
                                timestamp: str | None = None):
        meter_start = self.meter_wh if meter_start is None else meter_start
        res = await self.call(
            call16.StartTransaction(
                connector_id=connector_id, id_tag=id_tag, meter_start=meter_start, timestamp=timestamp or now()
            ),
            suppress=False,
        )
        self.transactions[connector_id] = res.transaction_id
        return res

    async def meter_values(self, connector_id: int, transaction_id: int | None, wh: int):
        return await self.call(
            call16.MeterValues(
                connector_id=connector_id,
                transaction_id=transaction_id,
                meter_value=[
                    {
                        "timestamp": now(),
                        "sampled_value": [
                            {"value": str(wh), "measurand": ENERGY, "unit": "Wh", "context": "Sample.Periodic"}
                        ],
                    }
                ],
            ),
            suppress=False,
        )

    async def stop_transaction(self, transaction_id: int, meter_stop: int, reason: str | None = "Local",
                               id_tag: str | None = None, timestamp: str | None = None,
                               transaction_data: list | None = None):
        return await self.call(
            call16.StopTransaction(
                meter_stop=meter_stop,
                timestamp=timestamp or now(),
                transaction_id=transaction_id,
                reason=reason,
                id_tag=id_tag,
                transaction_data=transaction_data,
            ),
            suppress=False,
        )

    # -- server-initiated

    @on("RemoteStartTransaction")
    def on_remote_start(self, id_tag, connector_id=None, **kwargs):
        return result16.RemoteStartTransaction(status=self.answers.get("RemoteStartTransaction", "Accepted"))

    @after("RemoteStartTransaction")
    def after_remote_start(self, id_tag, connector_id=None, **kwargs):
        if self.answers.get("RemoteStartTransaction", "Accepted") != "Accepted":
            return

        async def go():
            connector = connector_id or 1
            await self.status_notification(connector, "Preparing")
            await self.start_transaction(connector, id_tag)
            await self.status_notification(connector, "Charging")
            self.remote_tx_started.set()

        self._spawn(go())

    @on("RemoteStopTransaction")
    def on_remote_stop(self, transaction_id, **kwargs):
        known = transaction_id in self.transactions.values()
        status = self.answers.get("RemoteStopTransaction", "Accepted" if known else "Rejected")
        return result16.RemoteStopTransaction(status=status)

    @after("RemoteStopTransaction")
    def after_remote_stop(self, transaction_id, **kwargs):
        connector = next((c for c, t in self.transactions.items() if t == transaction_id), None)
        if connector is None or self.answers.get("RemoteStopTransaction", "Accepted") != "Accepted":
            return

        async def go():
            self.meter_wh += 2_000
            await self.stop_transaction(transaction_id, self.meter_wh, reason="Remote")
            del self.transactions[connector]
            await self.status_notification(connector, "Finishing")
            await self.status_notification(connector, "Available")
            self.remote_tx_stopped.set()

        self._spawn(go())

    @on("ChangeAvailability")
    def on_change_availability(self, connector_id, type, **kwargs):
        return result16.ChangeAvailability(status=self.answers.get("ChangeAvailability", "Accepted"))

    @after("ChangeAvailability")
    def after_change_availability(self, connector_id, type, **kwargs):
        if self.answers.get("ChangeAvailability", "Accepted") != "Accepted":
            return
        status = "Unavailable" if type == "Inoperative" else "Available"
        self._spawn(self.status_notification(connector_id, status))

    @on("Reset")
    def on_reset(self, type, **kwargs):
        return result16.Reset(status=self.answers.get("Reset", "Accepted"))

    @on("UnlockConnector")
    def on_unlock(self, connector_id, **kwargs):
        return result16.UnlockConnector(status=self.answers.get("UnlockConnector", "Unlocked"))

    @on("TriggerMessage")
    def on_trigger(self, requested_message, connector_id=None, **kwargs):
        default = "Accepted" if requested_message in ("Heartbeat", "StatusNotification", "BootNotification") else "NotImplemented"
        return result16.TriggerMessage(status=self.answers.get("TriggerMessage", default))

    @after("TriggerMessage")
    def after_trigger(self, requested_message, connector_id=None, **kwargs):
        if self.answers.get("TriggerMessage", "Accepted") != "Accepted":
            return
        if requested_message == "Heartbeat":
            self._spawn(self.heartbeat())
        elif requested_message == "StatusNotification":
            connector = connector_id if connector_id is not None else 1
            self._spawn(self.status_notification(connector, self.status.get(connector, "Available")))
        elif requested_message == "BootNotification":
            self._spawn(self.boot())

    @on("GetConfiguration")
    def on_get_configuration(self, key=None, **kwargs):
        wanted = key if key else list(self.config)
        known = [
            {"key": k, "readonly": self.config[k][1], "value": self.config[k][0]} for k in wanted if k in self.config
        ]
        unknown = [k for k in wanted if k not in self.config]
        return result16.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @on("ChangeConfiguration")
    def on_change_configuration(self, key, value, **kwargs):
        if key not in self.config:
            return result16.ChangeConfiguration(status="NotSupported")
        if self.config[key][1]:
            return result16.ChangeConfiguration(status="Rejected")
        self.config[key] = (value, False)
        return result16.ChangeConfiguration(status="Accepted")

    @on("ClearCache")
    def on_clear_cache(self, **kwargs):
        return result16.ClearCache(status=self.answers.get("ClearCache", "Accepted"))


# --------------------------------------------------------------------------------------------
# OCPP 2.0.1


class ChargePoint201(Recorder, _CP201):
    def __init__(self, id, connection, response_timeout=WAIT):
        super().__init__(id, connection, response_timeout=response_timeout)
        self._init_recorder()
        self.meter_wh = 20_000.0
        self.seq: dict[str, int] = {}  # transactionId -> next seqNo
        self.transactions: dict[int, str] = {}  # evse -> transactionId
        self.variables: dict[tuple[str, str], str] = {
            ("OCPPCommCtrlr", "HeartbeatInterval"): "300",
            ("SampledDataCtrlr", "TxUpdatedInterval"): "60",
        }
        self.remote_tx_started = asyncio.Event()
        self.remote_tx_stopped = asyncio.Event()
        self._tx_counter = 0

    def new_transaction_id(self) -> str:
        self._tx_counter += 1
        return f"{self.id}-tx{self._tx_counter}"

    def next_seq(self, transaction_id: str) -> int:
        n = self.seq.get(transaction_id, 0)
        self.seq[transaction_id] = n + 1
        return n

    # -- charger-initiated

    async def boot(self, vendor="TestVendor", model="TestModel201", reason="PowerUp", **station):
        return await self.call(
            call201.BootNotification(
                charging_station={"vendor_name": vendor, "model": model, **station}, reason=reason
            ),
            suppress=False,
        )

    async def heartbeat(self):
        return await self.call(call201.Heartbeat(), suppress=False)

    async def status_notification(self, evse_id: int, connector_id: int, status: str):
        return await self.call(
            call201.StatusNotification(
                timestamp=now(), connector_status=status, evse_id=evse_id, connector_id=connector_id
            ),
            suppress=False,
        )

    async def authorize(self, id_token: str, type: str = "ISO14443"):
        return await self.call(call201.Authorize(id_token={"id_token": id_token, "type": type}), suppress=False)

    @staticmethod
    def meter(wh: float, context: str = "Sample.Periodic") -> list:
        return [
            {
                "timestamp": now(),
                "sampled_value": [
                    {"value": wh, "measurand": ENERGY, "context": context, "unit_of_measure": {"unit": "Wh"}}
                ],
            }
        ]

    async def transaction_event(
        self,
        event_type: str,
        transaction_id: str,
        trigger_reason: str,
        *,
        seq_no: int | None = None,
        charging_state: str | None = None,
        stopped_reason: str | None = None,
        remote_start_id: int | None = None,
        evse_id: int | None = 1,
        connector_id: int | None = 1,
        id_token: str | None = None,
        meter_wh: float | None = None,
        meter_context: str | None = None,
        offline: bool | None = None,
        timestamp: str | None = None,
    ):
        info: dict[str, Any] = {"transaction_id": transaction_id}
        if charging_state:
            info["charging_state"] = charging_state
        if stopped_reason:
            info["stopped_reason"] = stopped_reason
        if remote_start_id is not None:
            info["remote_start_id"] = remote_start_id
        context = meter_context or {
            "Started": "Transaction.Begin",
            "Ended": "Transaction.End",
        }.get(event_type, "Sample.Periodic")
        return await self.call(
            call201.TransactionEvent(
                event_type=event_type,
                timestamp=timestamp or now(),
                trigger_reason=trigger_reason,
                seq_no=self.next_seq(transaction_id) if seq_no is None else seq_no,
                transaction_info=info,
                meter_value=self.meter(meter_wh, context) if meter_wh is not None else None,
                offline=offline,
                evse={"id": evse_id, "connector_id": connector_id} if evse_id is not None else None,
                id_token={"id_token": id_token, "type": "ISO14443"} if id_token else None,
            ),
            suppress=False,
        )

    # -- server-initiated

    @on("RequestStartTransaction")
    def on_request_start(self, id_token, remote_start_id, evse_id=None, **kwargs):
        return result201.RequestStartTransaction(status=self.answers.get("RequestStartTransaction", "Accepted"))

    @after("RequestStartTransaction")
    def after_request_start(self, id_token, remote_start_id, evse_id=None, **kwargs):
        if self.answers.get("RequestStartTransaction", "Accepted") != "Accepted":
            return

        async def go():
            evse = evse_id or 1
            tx = self.new_transaction_id()
            self.transactions[evse] = tx
            await self.status_notification(evse, 1, "Occupied")
            await self.transaction_event(
                "Started", tx, "RemoteStart", charging_state="Charging", remote_start_id=remote_start_id,
                evse_id=evse, id_token=id_token["id_token"], meter_wh=self.meter_wh,
            )
            self.remote_tx_started.set()

        self._spawn(go())

    @on("RequestStopTransaction")
    def on_request_stop(self, transaction_id, **kwargs):
        known = transaction_id in self.transactions.values()
        status = self.answers.get("RequestStopTransaction", "Accepted" if known else "Rejected")
        return result201.RequestStopTransaction(status=status)

    @after("RequestStopTransaction")
    def after_request_stop(self, transaction_id, **kwargs):
        evse = next((e for e, t in self.transactions.items() if t == transaction_id), None)
        if evse is None or self.answers.get("RequestStopTransaction", "Accepted") != "Accepted":
            return

        async def go():
            self.meter_wh += 3_000
            await self.transaction_event(
                "Ended", transaction_id, "RemoteStop", charging_state="EVConnected", stopped_reason="Remote",
                evse_id=evse, meter_wh=self.meter_wh,
            )
            del self.transactions[evse]
            await self.status_notification(evse, 1, "Available")
            self.remote_tx_stopped.set()

        self._spawn(go())

    @on("ChangeAvailability")
    def on_change_availability(self, operational_status, evse=None, **kwargs):
        return result201.ChangeAvailability(status=self.answers.get("ChangeAvailability", "Accepted"))

    @after("ChangeAvailability")
    def after_change_availability(self, operational_status, evse=None, **kwargs):
        if self.answers.get("ChangeAvailability", "Accepted") != "Accepted":
            return
        status = "Unavailable" if operational_status == "Inoperative" else "Available"
        evse_id = (evse or {}).get("id", 1) or 1
        connector = (evse or {}).get("connector_id", 1) or 1
        self._spawn(self.status_notification(evse_id, connector, status))

    @on("Reset")
    def on_reset(self, type, evse_id=None, **kwargs):
        return result201.Reset(status=self.answers.get("Reset", "Accepted"))

    @on("UnlockConnector")
    def on_unlock(self, evse_id, connector_id, **kwargs):
        return result201.UnlockConnector(status=self.answers.get("UnlockConnector", "Unlocked"))

    @on("TriggerMessage")
    def on_trigger(self, requested_message, evse=None, **kwargs):
        default = "Accepted" if requested_message in ("Heartbeat", "StatusNotification", "BootNotification") else "NotImplemented"
        return result201.TriggerMessage(status=self.answers.get("TriggerMessage", default))

    @after("TriggerMessage")
    def after_trigger(self, requested_message, evse=None, **kwargs):
        if self.answers.get("TriggerMessage", "Accepted") != "Accepted":
            return
        if requested_message == "Heartbeat":
            self._spawn(self.heartbeat())
        elif requested_message == "StatusNotification":
            evse_id = (evse or {}).get("id", 1) or 1
            connector = (evse or {}).get("connector_id", 1) or 1
            self._spawn(self.status_notification(evse_id, connector, "Available"))
        elif requested_message == "BootNotification":
            self._spawn(self.boot(reason="Triggered"))

    @on("GetVariables")
    def on_get_variables(self, get_variable_data, **kwargs):
        results = []
        for item in get_variable_data:
            key = (item["component"]["name"], item["variable"]["name"])
            if key in self.variables:
                results.append({"attribute_status": "Accepted", "attribute_value": self.variables[key],
                                "component": item["component"], "variable": item["variable"]})
            else:
                results.append({"attribute_status": "UnknownVariable",
                                "component": item["component"], "variable": item["variable"]})
        return result201.GetVariables(get_variable_result=results)

    @on("SetVariables")
    def on_set_variables(self, set_variable_data, **kwargs):
        results = []
        for item in set_variable_data:
            key = (item["component"]["name"], item["variable"]["name"])
            status = "Accepted" if key in self.variables else "UnknownVariable"
            if key in self.variables:
                self.variables[key] = item["attribute_value"]
            results.append({"attribute_status": status, "component": item["component"], "variable": item["variable"]})
        return result201.SetVariables(set_variable_result=results)

    @on("GetBaseReport")
    def on_get_base_report(self, request_id, report_base, **kwargs):
        return result201.GetBaseReport(status="Accepted")


# --------------------------------------------------------------------------------------------


CLASSES = {"1.6": ChargePoint16, "2.0.1": ChargePoint201}


@contextlib.asynccontextmanager
async def charge_point(server: Server, charger_id: str, version: str = "1.6", password: str | None = None,
                       cls=None):
    """A running charge point (its receive loop runs as a task) connected to `server`."""
    ws = await open_ws(server, charger_id, [f"ocpp{version}"], password)
    assert ws.subprotocol == f"ocpp{version}", f"server chose subprotocol {ws.subprotocol!r}"
    cp = (cls or CLASSES[version])(charger_id, ws)
    cp.ws = ws
    task = asyncio.create_task(cp.start())
    cp.task = task
    try:
        yield cp
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        with contextlib.suppress(BaseException):
            await ws.close()
