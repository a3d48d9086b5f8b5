"""Test harness for the interop suite: the real `orderly` process, its HTTP API,
and independent OCPP 1.6 charge points written with the `ocpp` package.

Nothing here imitates the server: every test talks to the binary over its
sockets, exactly as a charger and an operator would.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import httpx
import websockets
from ocpp.charge_point import camel_to_snake_case
from ocpp.exceptions import NotImplementedError as OcppNotImplemented
from ocpp.exceptions import OCPPError
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

# How long any single wait in a test may take before it is a failure. Generous
# because CI shares two cores with compiling neighbours; tests never sleep for
# it, they wait on an event that normally arrives in milliseconds.
EVENT_TIMEOUT = 15.0
SERVER_START_TIMEOUT = 60.0
LISTENING_RE = re.compile(r"listening on (127\.0\.0\.1:\d+)")
ADMIN_TOKEN_RE = re.compile(r"^admin token: (\S+)$")


# --------------------------------------------------------------------------
# Time helpers: OCPP timestamps are RFC 3339 UTC.


def utcnow() -> datetime:
    # Whole seconds, so a timestamp sent on the wire and read back from the API
    # compares equal whatever sub-second precision the server keeps.
    return datetime.now(timezone.utc).replace(microsecond=0)


def iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_ts(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None, f"timestamp without zone: {value!r}"
    return parsed


def same_instant(api_value: str | None, expected: datetime, tolerance_s: float = 0.001) -> bool:
    """The server may store millisecond or microsecond precision; compare instants."""
    if api_value is None:
        return False
    return abs((parse_ts(api_value) - expected).total_seconds()) <= tolerance_s


# --------------------------------------------------------------------------
# The server process.


@dataclass
class Server:
    """One running `orderly serve` process."""

    binary: str
    data_dir: Path
    database_url: str | None
    # None: let the server create (and print) its bootstrap token.
    admin_token: str | None
    env_extra: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)
    printed_token: str | None = None
    proc: subprocess.Popen | None = None
    address: str = ""
    stdout_lines: list[str] = field(default_factory=list)
    log_path: Path | None = None
    starts: int = 0

    @property
    def http_base(self) -> str:
        return f"http://{self.address}"

    def ws_url(self, cp_id: str) -> str:
        return f"ws://{self.address}/ocpp/{cp_id}"

    def env(self) -> dict[str, str]:
        # A clean ORDERLY_* environment so a developer's shell cannot change
        # what the test sees; the call timeout is short so a broken server
        # fails a test in seconds rather than the default 30 s.
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLY_")}
        if self.admin_token is not None:
            env["ORDERLY_ADMIN_TOKEN"] = self.admin_token
        env["ORDERLY_CALL_TIMEOUT"] = "10"
        env.setdefault("RUST_LOG", "info")
        env["NO_COLOR"] = "1"  # plain server logs in failure reports
        env.update(self.env_extra)
        return env

    def storage_args(self) -> list[str]:
        args = ["--data-dir", str(self.data_dir)]
        if self.database_url:
            args += ["--database-url", self.database_url]
        return args

    def cli_storage_args(self) -> list[str]:
        # The CLI takes one storage location: the database URL when there is
        # one, else the data directory (its SQLite file).
        if self.database_url:
            return ["--database-url", self.database_url]
        return ["--data-dir", str(self.data_dir)]

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server-{self.starts}.log"
        log = open(self.log_path, "ab")
        cmd = [self.binary, "serve", "--listen", "127.0.0.1:0", *self.storage_args(), *self.extra_args]
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=log,
            env=self.env(),
            text=True,
            bufsize=1,
        )
        log.close()
        found = threading.Event()

        def pump() -> None:
            # Keep draining stdout for the whole life of the process so the
            # server never blocks on a full pipe.
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.stdout_lines.append(line.rstrip("\n"))
                token = ADMIN_TOKEN_RE.match(line.strip())
                if token and not found.is_set():
                    self.printed_token = token.group(1)
                match = LISTENING_RE.search(line)
                if match and not found.is_set():
                    self.address = match.group(1)
                    found.set()
            found.set()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while not found.wait(0.05):
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(
                    f"server printed no 'listening on' line within {SERVER_START_TIMEOUT}s\n"
                    + self.log_tail()
                )
        if not self.address:
            code = self.proc.wait(5)
            raise AssertionError(
                f"server exited with {code} before listening; stdout={self.stdout_lines}\n" + self.log_tail()
            )

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        code = self.proc.returncode
        self.proc = None
        return code

    def crash(self) -> None:
        """SIGKILL: nothing gets flushed that was not committed already."""
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.address = ""
        self.printed_token = None
        self.start()

    def log_tail(self, lines: int = 60) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no server log)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "---- server stderr (tail) ----\n" + "\n".join(text[-lines:])

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run `orderly ARGS...` against this server's storage."""
        result = subprocess.run(
            [self.binary, *args, *self.cli_storage_args()],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=60,
        )
        if check:
            assert result.returncode == 0, (
                f"`orderly {' '.join(args)}` exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result


# --------------------------------------------------------------------------
# The operator API.


class Api:
    """Thin client for /api/v1; every helper asserts the documented status."""

    def __init__(self, server: Server, token: str | None = None):
        self.server = server
        self.client = httpx.AsyncClient(
            base_url=f"{server.http_base}/api/v1",
            headers={"Authorization": f"Bearer {token or server.admin_token or server.printed_token}"},
            timeout=httpx.Timeout(60.0),
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.client.get(path, **kw)

    async def post(self, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        return await self.client.post(path, json=body, **kw)

    async def put(self, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        return await self.client.put(path, json=body, **kw)

    async def delete(self, path: str, **kw: Any) -> httpx.Response:
        return await self.client.delete(path, **kw)

    @staticmethod
    def ok(resp: httpx.Response, *codes: int) -> Any:
        codes = codes or (200,)
        assert resp.status_code in codes, (
            f"{resp.request.method} {resp.request.url} → {resp.status_code}, expected {codes}: {resp.text}"
        )
        return resp.json() if resp.content else None

    async def add_charger(self, cp_id: str, password: str | None = None, **extra: Any) -> Any:
        body: dict[str, Any] = {"id": cp_id, **extra}
        if password is not None:
            body["password"] = password
        return self.ok(await self.post("/chargers", body), 201)

    async def add_tag(
        self,
        tag: str,
        status: str = "Accepted",
        expiry: datetime | None = None,
        parent: str | None = None,
    ) -> Any:
        body: dict[str, Any] = {"id_tag": tag, "status": status}
        if expiry is not None:
            body["expiry_date"] = iso(expiry)
        if parent is not None:
            body["parent_id_tag"] = parent
        return self.ok(await self.post("/id-tags", body), 201)

    async def charger(self, cp_id: str) -> dict:
        return self.ok(await self.get(f"/chargers/{cp_id}"))

    async def connectors(self, cp_id: str) -> list[dict]:
        return self.ok(await self.get(f"/chargers/{cp_id}/connectors"))

    async def status_history(self, cp_id: str) -> list[dict]:
        return self.ok(await self.get(f"/chargers/{cp_id}/status-history"))

    async def transactions(self, charger_id: str | None = None, active: bool | None = None) -> list[dict]:
        params: dict[str, str] = {}
        if charger_id is not None:
            params["charger_id"] = charger_id
        if active is not None:
            params["active"] = "true" if active else "false"
        return self.ok(await self.get("/transactions", params=params))

    async def transaction(self, tx_id: int) -> dict:
        return self.ok(await self.get(f"/transactions/{tx_id}"))

    async def meter_values(self, tx_id: int) -> list[dict]:
        return self.ok(await self.get(f"/transactions/{tx_id}/meter-values"))

    async def operation_raw(
        self, cp_id: str, action: str, payload: dict, timeout: float | None = None
    ) -> httpx.Response:
        params = {"timeout": str(timeout)} if timeout is not None else None
        return await self.post(f"/chargers/{cp_id}/operations/{action}", payload, params=params)

    async def operation(self, cp_id: str, action: str, payload: dict) -> dict:
        """Run an operation the charger answers with a CALLRESULT; return that payload."""
        body = self.ok(await self.operation_raw(cp_id, action, payload))
        assert isinstance(body, dict) and "response" in body, body
        return body["response"]

    async def wait_for(self, what: str, probe: Callable[[], Any], timeout: float = EVENT_TIMEOUT) -> Any:
        """Poll an API view until `probe` returns a truthy value (for state the
        server updates after answering, such as `connected` after a close)."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = await probe()
            if last:
                return last
            await asyncio.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


# --------------------------------------------------------------------------
# Charge points.

# Every CS→CP action of OCPP 1.6 (Core, Firmware, LocalAuthList, Reservation,
# RemoteTrigger, SmartCharging). The simulated charger answers only the ones a
# test scripted; any other incoming CALL is recorded as unsolicited (lesson
# L3: the CSMS must send only what the operator asked for).
CS_TO_CP_ACTIONS = [
    "CancelReservation",
    "ChangeAvailability",
    "ChangeConfiguration",
    "ClearCache",
    "ClearChargingProfile",
    "DataTransfer",
    "GetCompositeSchedule",
    "GetConfiguration",
    "GetDiagnostics",
    "GetLocalListVersion",
    "RemoteStartTransaction",
    "RemoteStopTransaction",
    "ReserveNow",
    "Reset",
    "SendLocalList",
    "SetChargingProfile",
    "TriggerMessage",
    "UnlockConnector",
    "UpdateFirmware",
]

Answer = dict | Callable[[dict], dict] | OCPPError


class SimChargePoint(ChargePoint):
    """A scriptable OCPP 1.6 charge point.

    `answers[action]` is the CALLRESULT payload (camelCase, as on the wire), a
    function of the request payload returning it, or an OCPPError to answer
    with a CALLERROR. Every request received is kept in `received` (camelCase),
    and `expect(action)` waits for the next one.
    """

    def __init__(self, cp_id: str, connection: ClientConnection):
        super().__init__(cp_id, connection, response_timeout=EVENT_TIMEOUT)
        self.answers: dict[str, Answer] = {}
        self.received: list[tuple[str, dict]] = []
        self.unsolicited: list[tuple[str, dict]] = []
        self._inbox: dict[str, asyncio.Queue[dict]] = {}

    def _queue(self, action: str) -> asyncio.Queue[dict]:
        return self._inbox.setdefault(action, asyncio.Queue())

    def answer(self, action: str, response: Answer) -> None:
        self.answers[action] = response

    async def expect(self, action: str, timeout: float = EVENT_TIMEOUT) -> dict:
        try:
            return await asyncio.wait_for(self._queue(action).get(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(
                f"{self.id}: no {action} request from the server within {timeout}s; "
                f"received so far: {[a for a, _ in self.received]}"
            ) from None

    def _handle(self, action: str, kwargs: dict) -> Any:
        # The library hands us snake_case; the tests reason about the wire.
        from ocpp.charge_point import snake_to_camel_case

        payload = snake_to_camel_case(kwargs)
        self.received.append((action, payload))
        self._queue(action).put_nowait(payload)
        if action not in self.answers:
            self.unsolicited.append((action, payload))
            raise OcppNotImplemented(description=f"test charger did not expect {action}")
        answer = self.answers[action]
        if isinstance(answer, OCPPError):
            raise answer
        if callable(answer):
            answer = answer(payload)
        return getattr(call_result, action)(**camel_to_snake_case(answer))

    async def send(self, request: Any) -> Any:
        """Send a CALL; a CALLERROR from the server is a test failure."""
        return await self.call(request, suppress=False)

    # One @on handler per CS→CP action; each just defers to the script.
    @on(Action.cancel_reservation)
    def on_cancel_reservation(self, **kw: Any) -> Any:
        return self._handle("CancelReservation", kw)

    @on(Action.change_availability)
    def on_change_availability(self, **kw: Any) -> Any:
        return self._handle("ChangeAvailability", kw)

    @on(Action.change_configuration)
    def on_change_configuration(self, **kw: Any) -> Any:
        return self._handle("ChangeConfiguration", kw)

    @on(Action.clear_cache)
    def on_clear_cache(self, **kw: Any) -> Any:
        return self._handle("ClearCache", kw)

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(self, **kw: Any) -> Any:
        return self._handle("ClearChargingProfile", kw)

    @on(Action.data_transfer)
    def on_data_transfer(self, **kw: Any) -> Any:
        return self._handle("DataTransfer", kw)

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(self, **kw: Any) -> Any:
        return self._handle("GetCompositeSchedule", kw)

    @on(Action.get_configuration)
    def on_get_configuration(self, **kw: Any) -> Any:
        return self._handle("GetConfiguration", kw)

    @on(Action.get_diagnostics)
    def on_get_diagnostics(self, **kw: Any) -> Any:
        return self._handle("GetDiagnostics", kw)

    @on(Action.get_local_list_version)
    def on_get_local_list_version(self, **kw: Any) -> Any:
        return self._handle("GetLocalListVersion", kw)

    @on(Action.remote_start_transaction)
    def on_remote_start_transaction(self, **kw: Any) -> Any:
        return self._handle("RemoteStartTransaction", kw)

    @on(Action.remote_stop_transaction)
    def on_remote_stop_transaction(self, **kw: Any) -> Any:
        return self._handle("RemoteStopTransaction", kw)

    @on(Action.reserve_now)
    def on_reserve_now(self, **kw: Any) -> Any:
        return self._handle("ReserveNow", kw)

    @on(Action.reset)
    def on_reset(self, **kw: Any) -> Any:
        return self._handle("Reset", kw)

    @on(Action.send_local_list)
    def on_send_local_list(self, **kw: Any) -> Any:
        return self._handle("SendLocalList", kw)

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, **kw: Any) -> Any:
        return self._handle("SetChargingProfile", kw)

    @on(Action.trigger_message)
    def on_trigger_message(self, **kw: Any) -> Any:
        return self._handle("TriggerMessage", kw)

    @on(Action.unlock_connector)
    def on_unlock_connector(self, **kw: Any) -> Any:
        return self._handle("UnlockConnector", kw)

    @on(Action.update_firmware)
    def on_update_firmware(self, **kw: Any) -> Any:
        return self._handle("UpdateFirmware", kw)

    # ---- scripted charger-side flows (the OCA "reusable states") ----------

    async def boot(self, connectors: int = 2, expect: str = "Accepted") -> Any:
        conf = await self.send(
            call.BootNotification(
                charge_point_vendor="OrderlyTest",
                charge_point_model="Sim-2",
                charge_point_serial_number=f"SN-{self.id}",
                charge_box_serial_number=f"BOX-{self.id}",
                firmware_version="1.2.3",
            )
        )
        assert conf.status == expect, f"BootNotification → {conf.status}, expected {expect}"
        assert conf.interval >= 0
        parse_ts(conf.current_time)
        if expect == "Accepted":
            assert conf.interval > 0, "an Accepted boot must give a heartbeat interval"
            for connector in range(connectors + 1):
                await self.status(connector, "Available")
        return conf

    async def status(
        self,
        connector: int,
        status: str,
        error_code: str = "NoError",
        timestamp: datetime | None = None,
        **extra: Any,
    ) -> Any:
        return await self.send(
            call.StatusNotification(
                connector_id=connector,
                error_code=error_code,
                status=status,
                timestamp=iso(timestamp or utcnow()),
                **extra,
            )
        )

    async def authorize(self, id_tag: str) -> dict:
        conf = await self.send(call.Authorize(id_tag=id_tag))
        return conf.id_tag_info

    async def start_tx(
        self,
        id_tag: str,
        connector: int = 1,
        meter_start: int = 0,
        timestamp: datetime | None = None,
        reservation_id: int | None = None,
        expect: str | None = "Accepted",
    ) -> int:
        conf = await self.send(
            call.StartTransaction(
                connector_id=connector,
                id_tag=id_tag,
                meter_start=meter_start,
                timestamp=iso(timestamp or utcnow()),
                reservation_id=reservation_id,
            )
        )
        if expect is not None:
            assert conf.id_tag_info["status"] == expect, conf
        assert isinstance(conf.transaction_id, int) and conf.transaction_id > 0, conf
        return conf.transaction_id

    async def stop_tx(
        self,
        tx_id: int,
        meter_stop: int,
        reason: str | None = None,
        id_tag: str | None = None,
        timestamp: datetime | None = None,
        transaction_data: list | None = None,
    ) -> Any:
        return await self.send(
            call.StopTransaction(
                transaction_id=tx_id,
                meter_stop=meter_stop,
                timestamp=iso(timestamp or utcnow()),
                reason=reason,
                id_tag=id_tag,
                transaction_data=transaction_data,
            )
        )

    async def meter(
        self, connector: int, tx_id: int | None, samples: list[tuple[datetime, float]], **kw: Any
    ) -> Any:
        return await self.send(
            call.MeterValues(
                connector_id=connector,
                transaction_id=tx_id,
                meter_value=[energy_sample(ts, wh, **kw) for ts, wh in samples],
            )
        )

    async def enter_charging(
        self, id_tag: str, connector: int = 1, meter_start: int = 0, authorize: bool = True
    ) -> int:
        """OCA reusable state "Charging"."""
        if authorize:
            assert (await self.authorize(id_tag))["status"] == "Accepted"
        await self.status(connector, "Preparing")
        tx_id = await self.start_tx(id_tag, connector=connector, meter_start=meter_start)
        await self.status(connector, "Charging")
        return tx_id


def energy_sample(ts: datetime, wh: float, context: str = "Sample.Periodic") -> dict:
    return {
        "timestamp": iso(ts),
        "sampledValue": [
            {
                "value": f"{wh:g}",
                "context": context,
                "measurand": "Energy.Active.Import.Register",
                "unit": "Wh",
            }
        ],
    }


def basic_auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def open_ws(
    server: Server,
    cp_id: str,
    password: str | None = None,
    subprotocols: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> ClientConnection:
    all_headers = dict(headers or {})
    if password is not None:
        all_headers.update(basic_auth(cp_id, password))
    return await connect(
        server.ws_url(cp_id),
        subprotocols=["ocpp1.6"] if subprotocols is None else subprotocols,
        additional_headers=all_headers,
        open_timeout=EVENT_TIMEOUT,
        # The server's own ping/pong keeps the link; ours would only add noise.
        ping_interval=None,
    )


async def refused_status(server: Server, cp_id: str, **kw: Any) -> tuple[int, str]:
    """Attempt a handshake that must be refused; return (HTTP status, body)."""
    try:
        ws = await open_ws(server, cp_id, **kw)
    except InvalidStatus as exc:
        body = exc.response.body.decode(errors="replace") if exc.response.body else ""
        return exc.response.status_code, body
    await ws.close()
    raise AssertionError(f"handshake for {cp_id} was accepted but should have been refused")


@contextlib.asynccontextmanager
async def charge_point(server: Server, cp_id: str, password: str | None = None, **kw: Any):
    """Connect a SimChargePoint and run its receive loop while the body runs.

    On a clean exit it asserts the server sent no CALL the test did not script.
    """
    ws = await open_ws(server, cp_id, password=password, **kw)
    assert ws.subprotocol == "ocpp1.6", f"negotiated {ws.subprotocol!r}"
    cp = SimChargePoint(cp_id, ws)
    loop = asyncio.create_task(cp.start())
    try:
        yield cp
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
            await loop
        await ws.close()
    assert not cp.unsolicited, f"server sent unsolicited CALLs: {cp.unsolicited}"


# --------------------------------------------------------------------------
# Raw frames, for what the `ocpp` package would refuse to send.


class RawLink:
    """A bare OCPP-J WebSocket; frames are sent and read as text."""

    def __init__(self, ws: ClientConnection):
        self.ws = ws
        self.other_frames: list[Any] = []

    async def send_text(self, text: str) -> None:
        await self.ws.send(text)

    async def recv_frame(self, timeout: float = EVENT_TIMEOUT) -> Any:
        try:
            text = await asyncio.wait_for(self.ws.recv(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"no frame from the server within {timeout}s") from None
        frame = json.loads(text)
        assert isinstance(frame, list), f"server sent a non-array frame: {text}"
        return frame

    async def call(self, action: str, payload: Any, unique_id: str | None = None) -> list:
        unique_id = unique_id or uuid.uuid4().hex
        await self.send_text(json.dumps([2, unique_id, action, payload]))
        return await self.reply_to(unique_id)

    async def reply_to(self, unique_id: Any) -> list:
        """The CALLRESULT/CALLERROR for `unique_id`; other frames are kept aside."""
        while True:
            frame = await self.recv_frame()
            if frame[0] in (3, 4) and frame[1] == unique_id:
                return frame
            self.other_frames.append(frame)

    async def next_error(self) -> list:
        """The next CALLERROR, whatever its id (for frames whose id is unreadable)."""
        while True:
            frame = await self.recv_frame()
            if frame[0] == 4:
                return frame
            self.other_frames.append(frame)

    async def boot(self) -> None:
        frame = await self.call(
            "BootNotification", {"chargePointVendor": "OrderlyTest", "chargePointModel": "Raw"}
        )
        assert frame[0] == 3 and frame[2]["status"] == "Accepted", frame

    async def heartbeat_works(self) -> None:
        frame = await self.call("Heartbeat", {})
        assert frame[0] == 3, f"Heartbeat after a bad frame got {frame}"
        parse_ts(frame[2]["currentTime"])


@contextlib.asynccontextmanager
async def raw_link(server: Server, cp_id: str, password: str | None = None):
    ws = await open_ws(server, cp_id, password=password)
    try:
        yield RawLink(ws)
    finally:
        await ws.close()


@contextlib.asynccontextmanager
async def silent_peer(server: Server, cp_id: str):
    """A charge point that completes the WebSocket handshake and then goes
    dead: it never reads, never answers a Ping (a power cut, a dropped NAT).
    Written on a bare TCP stream because WebSocket libraries answer Pings on
    their own. Yields the stream (reader, writer) for tests that write frames
    by hand."""
    host, port = server.address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    writer.write(
        (
            f"GET /ocpp/{cp_id} HTTP/1.1\r\nHost: {server.address}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), EVENT_TIMEOUT)
    assert head.startswith(b"HTTP/1.1 101"), head
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def new_id(prefix: str = "CP") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def new_tag(prefix: str = "TAG") -> str:
    # idTag is CiString20: keep it short.
    return f"{prefix}{secrets.token_hex(3)}".upper()[:20]


async def collect(aws: list) -> list:
    return list(await asyncio.gather(*aws))


__all__ = [
    "Api",
    "EVENT_TIMEOUT",
    "RawLink",
    "Server",
    "SimChargePoint",
    "basic_auth",
    "call",
    "charge_point",
    "collect",
    "energy_sample",
    "iso",
    "new_id",
    "new_tag",
    "open_ws",
    "parse_ts",
    "raw_link",
    "refused_status",
    "same_instant",
    "silent_peer",
    "timedelta",
    "utcnow",
]


def storage_dump(server: Server) -> str:
    """Every row of every table of the server's database, as text (to check
    what is, and is not, stored)."""
    if server.database_url:
        import psycopg
        from psycopg import sql

        out = []
        with psycopg.connect(server.database_url) as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
                )
            ]
            for table in tables:
                for row in conn.execute(sql.SQL("SELECT t::text FROM {} t").format(sql.Identifier(table))):
                    out.append(f"{table}: {row[0]}")
        return "\n".join(out)
    import sqlite3

    conn = sqlite3.connect(f"file:{server.data_dir / 'orderly.db'}?mode=ro", uri=True)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()
