"""A simulated community for the closed-loop tests: independent OCPP 1.6 charge
points (the `ocpp` package) that hold the charging profiles the server sends and
apply them as the specification says (smart.py), each with a simulated car that
draws min(limit, car max, what it still needs) and reports MeterValues.

Time: the server runs an accelerated clock. Every charge point reads protocol time
from one `ProtocolClock`, calibrated from the first BootNotification.conf
currentTime (+ real elapsed × speed). The cars' physics is event-driven and exact
in protocol time: power is piecewise constant, changing only at schedule
breakpoints (taken at their exact instant, however late the event loop wakes),
when a car is full, or when a profile arrives (at its arrival time). So the power
trace each charge point records is exactly what its meter values sample, and sums
across charge points are exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import websockets
from ocpp.charge_point import camel_to_snake_case, snake_to_camel_case
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action

from harness import EVENT_TIMEOUT, Server, open_ws
from smart import (
    TX_DEFAULT,
    TX_PROFILE,
    Capacity,
    Charger,
    ChargerState,
    Held,
    ProfileStore,
    Tx,
    breakpoints,
    composite_w,
    iso,
    ts,
)

log = logging.getLogger("community")


async def cancel_all(tasks: list[asyncio.Task]) -> None:
    """Cancel and reap; re-cancel what is still running (Python 3.11's wait_for can
    swallow a cancellation that races with its inner future completing)."""
    pending = {t for t in tasks if not t.done()}
    for _ in range(20):
        if not pending:
            break
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.5)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: no "never retrieved" warnings
    assert not pending, f"tasks would not stop: {pending}"


class ProtocolClock:
    """Protocol time = offset + real (monotonic) time × speed.

    The server stamps currentTime when it receives a request, i.e. after we sent
    it: `currentTime − sent × speed` is an upper bound of the offset (and
    `currentTime − received × speed` a lower one). The clock takes the least upper
    bound seen (every BootNotification refines it), so it reads the server's time
    or a hair later — never earlier. A charge point whose clock lags would see
    each refreshed profile's startSchedule (the server's "now") still in the
    future and fall back to its TxDefaultProfile for that lag; here the lag is
    the server's business only (see `clock_skew_s`)."""

    def __init__(self, speed: float):
        self.speed = speed
        self._offset: float | None = None
        self._lower: float = -math.inf
        # Protocol seconds this clock runs behind the server (to test the server's
        # tolerance of a lagging charger clock); 0: synchronised.
        self.clock_skew_s = 0.0

    @property
    def calibrated(self) -> bool:
        return self._offset is not None

    def calibrate(self, current_time: str, mono_sent: float, mono_received: float) -> None:
        upper = ts(current_time) - mono_sent * self.speed
        self._lower = max(self._lower, ts(current_time) - mono_received * self.speed)
        if self._offset is None or upper < self._offset:
            self._offset = upper

    @property
    def uncertainty_s(self) -> float:
        """Protocol seconds the clock may be ahead of the server's."""
        return 0.0 if self._offset is None else self._offset - self._lower

    def at(self, mono: float) -> float:
        assert self._offset is not None, "clock not calibrated (no BootNotification yet)"
        return self._offset + mono * self.speed - self.clock_skew_s

    def now(self) -> float:
        return self.at(time.monotonic())

    def real_delay(self, t: float) -> float:
        """Real seconds until protocol time t (0 if past)."""
        return max((t - self.now()) / self.speed, 0.0)

    async def sleep_until(self, t: float) -> None:
        await asyncio.sleep(self.real_delay(t))


@dataclass
class Car:
    energy_wh: float
    max_w: float = 7040.0
    # Protocol time the car leaves (the charge point stops the transaction); None: stays.
    departure: float | None = None


@dataclass
class Visit:
    car: Car
    transaction_id: int
    start: float
    meter_start_wh: float
    stop: float | None = None
    delivered_wh: float = 0.0

    @property
    def full(self) -> bool:
        return self.delivered_wh >= self.car.energy_wh - 1e-6


@dataclass
class ProfileEvent:
    t: float
    mono: float
    action: str
    payload: dict
    status: str


# Smart-charging configuration the charge points report (GetConfiguration).
CONFIG_KEYS = {
    "ChargeProfileMaxStackLevel": "10",
    "ChargingScheduleAllowedChargingRateUnit": "Current,Power",
    "ChargingScheduleMaxPeriods": "288",
    "MaxChargingProfilesInstalled": "20",
    "ConnectorSwitch3to1PhaseSupported": "false",
    "MeterValuesSampledData": "Energy.Active.Import.Register,Power.Active.Import",
    "NumberOfConnectors": "1",
}


class VirtualChargePoint(ChargePoint):
    """One charger (one connector) with its car. `ignore_limits`: a broken charger
    that accepts profiles but lets the car draw its maximum."""

    def __init__(
        self,
        cp_id: str,
        connection: Any,
        clock: ProtocolClock,
        charger: Charger,
        meter_interval_s: float,
        ignore_limits: bool = False,
    ):
        super().__init__(cp_id, connection, response_timeout=EVENT_TIMEOUT)
        self.clock = clock
        self.charger = charger
        self.meter_interval_s = meter_interval_s
        self.ignore_limits = ignore_limits
        self.store = ProfileStore(charger)
        # (protocol time, snapshot of every profile held) after each change.
        self.profile_history: list[tuple[float, list[Held]]] = []
        self.profile_events: list[ProfileEvent] = []
        # (protocol time, W) whenever the drawn power changes; starts at 0 W.
        self.trace: list[tuple[float, float]] = []
        # (protocol time, register Wh, W) of every MeterValues sent (or queued while offline).
        self.meters: list[tuple[float, float, float]] = []
        self.visits: list[Visit] = []
        self.other_calls: list[tuple[str, dict]] = []
        self.on_profile: Callable[[VirtualChargePoint, str, dict], None] | None = None
        self.register_wh = 0.0
        self.power_w = 0.0
        self.t = 0.0  # protocol time the physics has been advanced to
        self.online = True
        self._wake = asyncio.Event()
        self._next_meter: float | None = None
        self._outbox: asyncio.Queue = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._profile_changed = asyncio.Event()
        # A car whose StartTransaction is on the wire: (car, start time).
        self._starting: tuple[Car, float] | None = None
        self._stopping = False

    # ---- state ----------------------------------------------------------

    @property
    def visit(self) -> Visit | None:
        v = self.visits[-1] if self.visits else None
        return v if v is not None and v.stop is None else None

    @property
    def tx(self) -> Tx | None:
        v = self.visit
        return Tx(v.transaction_id, v.start) if v else None

    def limit_w(self, t: float) -> float:
        return composite_w(self.store.held, 1, t, self.tx, self.charger)

    def holds(self, purpose: str, profile_id: int | None = None) -> list[Held]:
        return [
            h
            for h in self.store.held
            if h.profile["chargingProfilePurpose"] == purpose
            and (profile_id is None or h.profile["chargingProfileId"] == profile_id)
        ]

    def profiles_at(self, t: float) -> list[Held]:
        """The profiles this charge point held at protocol time t."""
        held: list[Held] = []
        for when, snap in self.profile_history:
            if when <= t:
                held = snap
            else:
                break
        return held

    def tx_at(self, t: float) -> Tx | None:
        for v in self.visits:
            if v.start <= t and (v.stop is None or t < v.stop):
                return Tx(v.transaction_id, v.start)
        return None

    def power_at(self, t: float) -> float:
        p = 0.0
        for when, w in self.trace:
            if when <= t:
                p = w
            else:
                break
        return p

    def state_at(self, t: float) -> ChargerState:
        return ChargerState(self.id, self.charger, self.profiles_at(t), self.tx_at(t))

    def state_now(self) -> ChargerState:
        return ChargerState(self.id, self.charger, self.store.snapshot(), self.tx)

    # ---- physics --------------------------------------------------------

    def _target_power(self, t: float) -> float:
        v = self.visit
        if v is None:
            return 0.0
        remaining = v.car.energy_wh - v.delivered_wh
        if remaining <= 1e-6:
            return 0.0
        cap = self.charger.max_w if self.ignore_limits else self.limit_w(t)
        return max(min(cap, v.car.max_w), 0.0)

    def _set_power(self, t: float) -> None:
        p = self._target_power(t)
        if not self.trace or abs(p - self.trace[-1][1]) > 1e-9:
            self.trace.append((t, p))
        self.power_w = p

    def _integrate(self, t: float) -> None:
        dt = t - self.t
        if dt > 0 and self.power_w > 0:
            wh = self.power_w * dt / 3600.0
            v = self.visit
            if v is not None:
                wh = min(wh, v.car.energy_wh - v.delivered_wh)
                v.delivered_wh += wh
            self.register_wh += wh
        self.t = max(self.t, t)

    def _next_internal(self, after: float) -> float | None:
        """Next instant > after at which the drawn power may change by itself."""
        candidates = []
        v = self.visit
        if v is not None and self.power_w > 0:
            # (at least 1 ms on: epoch floats cannot step by less)
            finish = after + (v.car.energy_wh - v.delivered_wh) / self.power_w * 3600.0
            candidates.append(max(finish, after + 1e-3))
        bps = breakpoints(self.store.held, after, after + 2 * 86400, self.tx)
        if bps:
            candidates.append(bps[0])
        return min(candidates) if candidates else None

    def advance(self, t: float) -> None:
        """Run the car's physics exactly up to protocol time t."""
        while True:
            nxt = self._next_internal(self.t)
            if nxt is None or nxt > t:
                break
            self._integrate(nxt)
            self._set_power(nxt)
        self._integrate(t)
        self._set_power(t)

    def _now(self) -> float:
        return max(self.clock.now(), self.t)

    def _profiles_changed(self, t: float) -> None:
        self.profile_history.append((t, self.store.snapshot()))
        self._set_power(t)
        self._profile_changed.set()
        self._wake.set()

    async def _physics(self) -> None:
        while not self._stopping:
            targets = [x for x in (self._next_internal(self.t), self._next_meter) if x is not None]
            v = self.visit
            if v is not None and v.car.departure is not None:
                targets.append(v.car.departure)
            target = min(targets) if targets else None
            self._wake.clear()
            if target is not None and target > self.t:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.clock.real_delay(target))
                if self._wake.is_set() and self.clock.now() < target:
                    continue  # woken by a profile or a plug-in: re-plan the wake-up
            if target is None:
                await self._wake.wait()
                continue
            t = max(target, self.t)
            self.advance(t)
            v = self.visit
            if v is not None and v.car.departure is not None and t >= v.car.departure:
                await self._depart(t)
            if self._next_meter is not None and t >= self._next_meter:
                self._queue_meter(t)
                self._next_meter = t + self.meter_interval_s if self.visit else None

    def _queue_meter(self, t: float) -> None:
        v = self.visit
        self.meters.append((t, self.register_wh, self.power_w))
        self._outbox.put_nowait(
            call.MeterValues(
                connector_id=1,
                transaction_id=v.transaction_id if v else None,
                meter_value=[
                    {
                        "timestamp": iso(t),
                        "sampledValue": [
                            {
                                "value": f"{self.register_wh:.1f}",
                                "context": "Sample.Periodic",
                                "measurand": "Energy.Active.Import.Register",
                                "unit": "Wh",
                            },
                            {
                                "value": f"{self.power_w:.1f}",
                                "context": "Sample.Periodic",
                                "measurand": "Power.Active.Import",
                                "unit": "W",
                            },
                        ],
                    }
                ],
            )
        )

    async def _sender(self) -> None:
        # MeterValues go out in order, one CALL at a time; once the server is gone
        # they are dropped (the tests read what was sent from `meters`).
        while not self._stopping:
            req = await self._outbox.get()
            if not self.online:
                continue
            try:
                await self.call(req, suppress=False)
            except Exception as exc:  # noqa: BLE001 - a dead server is expected in the fallback test
                log.info("%s: %s not delivered: %s", self.id, type(req).__name__, exc)

    # ---- lifecycle ------------------------------------------------------

    async def boot(self) -> None:
        sent = time.monotonic()
        conf = await self.call(
            call.BootNotification(charge_point_vendor="OrderlyE2E", charge_point_model="VirtualCar-1"),
            suppress=False,
        )
        received = time.monotonic()
        assert conf.status == "Accepted", f"{self.id}: BootNotification → {conf.status}"
        self.clock.calibrate(conf.current_time, sent, received)
        self.t = self.clock.now()
        self.trace.append((self.t, 0.0))
        self.profile_history.append((self.t, []))
        await self.call(
            call.StatusNotification(connector_id=0, error_code="NoError", status="Available", timestamp=iso(self.t)),
            suppress=False,
        )
        await self.call(
            call.StatusNotification(connector_id=1, error_code="NoError", status="Available", timestamp=iso(self.t)),
            suppress=False,
        )
        self._tasks.append(asyncio.create_task(self._physics()))
        self._tasks.append(asyncio.create_task(self._sender()))

    async def plug_in(self, car: Car, id_tag: str) -> int:
        """The car arrives now: Preparing, StartTransaction, Charging. Returns the
        transaction id."""
        assert self.visit is None, f"{self.id}: a car is already plugged in"
        t = self._now()
        self.advance(t)
        await self.call(
            call.StatusNotification(connector_id=1, error_code="NoError", status="Preparing", timestamp=iso(t)),
            suppress=False,
        )
        self._starting = (car, t)
        conf = await self.call(
            call.StartTransaction(connector_id=1, id_tag=id_tag, meter_start=int(self.register_wh), timestamp=iso(t)),
            suppress=False,
        )
        self._starting = None
        assert conf.id_tag_info["status"] == "Accepted", conf
        # The car starts drawing once the transaction is confirmed.
        now = self._now()
        self.advance(now)
        if self.visit is None:
            self.visits.append(Visit(car, conf.transaction_id, t, self.register_wh))
        assert self.visit.transaction_id == conf.transaction_id, (
            f"{self.id}: a TxProfile for transaction {self.visit.transaction_id} arrived before "
            f"StartTransaction.conf gave {conf.transaction_id}"
        )
        self._set_power(now)
        self._next_meter = now
        self._wake.set()
        await self.call(
            call.StatusNotification(connector_id=1, error_code="NoError", status="Charging", timestamp=iso(now)),
            suppress=False,
        )
        return conf.transaction_id

    async def _depart(self, t: float) -> None:
        v = self.visit
        assert v is not None
        self._queue_meter(t)
        v.stop = t
        self.store.end_transaction(1)
        self._profiles_changed(t)
        self._next_meter = None
        self._outbox.put_nowait(
            call.StopTransaction(
                transaction_id=v.transaction_id,
                meter_stop=int(round(self.register_wh)),
                timestamp=iso(t),
                reason="EVDisconnected",
            )
        )
        self._outbox.put_nowait(
            call.StatusNotification(connector_id=1, error_code="NoError", status="Available", timestamp=iso(t))
        )

    async def unplug(self) -> Visit:
        v = self.visit
        assert v is not None
        t = self._now()
        self.advance(t)
        await self._depart(t)
        return v

    async def stop_tasks(self) -> None:
        self._stopping = True
        self._wake.set()
        await cancel_all(self._tasks)

    async def wait_profile(self, pred: Callable[[VirtualChargePoint], bool], what: str, timeout: float = EVENT_TIMEOUT):
        """Wait until `pred(self)` holds, re-checked after every profile change."""
        deadline = time.monotonic() + timeout
        while not pred(self):
            self._profile_changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"{self.id}: timed out waiting for {what}; holds "
                    f"{[(h.connector, h.profile) for h in self.store.held]}"
                )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._profile_changed.wait(), min(left, 0.5))

    # ---- CS → CP --------------------------------------------------------

    def _record(self, action: str, payload: dict, status: str) -> None:
        t = self._now()
        self.profile_events.append(ProfileEvent(t, time.monotonic(), action, payload, status))

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict, **_: Any):
        profile = snake_to_camel_case(cs_charging_profiles)
        t = self._now()
        self.advance(t)
        if (
            self.visit is None
            and self._starting is not None
            and profile["chargingProfilePurpose"] == TX_PROFILE
            and profile.get("transactionId") is not None
        ):
            # The server answered StartTransaction and sent the TxProfile right after;
            # the charge point knows its transaction id by now, only our coroutine
            # that sent StartTransaction has not resumed yet.
            car, start = self._starting
            self.visits.append(Visit(car, profile["transactionId"], start, self.register_wh))
        status = self.store.set(connector_id, profile, t, self.tx)
        self._record("SetChargingProfile", {"connectorId": connector_id, "csChargingProfiles": profile}, status)
        if status == "Accepted":
            self._profiles_changed(t)
        if self.on_profile is not None:
            self.on_profile(self, "SetChargingProfile", profile)
        return call_result.SetChargingProfile(status=status)

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(self, **kw: Any):
        request = snake_to_camel_case(kw)
        t = self._now()
        self.advance(t)
        status = self.store.clear(request)
        self._record("ClearChargingProfile", request, status)
        if status == "Accepted":
            self._profiles_changed(t)
        if self.on_profile is not None:
            self.on_profile(self, "ClearChargingProfile", request)
        return call_result.ClearChargingProfile(status=status)

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(self, connector_id: int, duration: int, charging_rate_unit: str | None = None, **_):
        t0 = self._now()
        tx = self.tx
        points = [t0] + breakpoints(self.store.held, t0, t0 + duration, tx)
        periods = []
        for t in points:
            if t >= t0 + duration:
                break
            w = composite_w(self.store.held, max(connector_id, 1), t, tx, self.charger)
            limit = round(self.charger.w_to_amps(w), 1) if charging_rate_unit != "W" else round(w, 1)
            if not periods or periods[-1]["limit"] != limit:
                periods.append({"startPeriod": int(t - t0), "limit": limit})
        return call_result.GetCompositeSchedule(
            status="Accepted",
            connector_id=connector_id,
            schedule_start=iso(t0),
            charging_schedule=camel_to_snake_case(
                {
                    "duration": duration,
                    "startSchedule": iso(t0),
                    "chargingRateUnit": "W" if charging_rate_unit == "W" else "A",
                    "chargingSchedulePeriod": periods,
                }
            ),
        )

    @on(Action.get_configuration)
    def on_get_configuration(self, key: list | None = None, **_):
        self.other_calls.append(("GetConfiguration", {"key": key}))
        keys = key or list(CONFIG_KEYS)
        known = [{"key": k, "readonly": True, "value": CONFIG_KEYS[k]} for k in keys if k in CONFIG_KEYS]
        unknown = [k for k in keys if k not in CONFIG_KEYS]
        return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @on(Action.change_configuration)
    def on_change_configuration(self, key: str, value: str, **_):
        self.other_calls.append(("ChangeConfiguration", {"key": key, "value": value}))
        return call_result.ChangeConfiguration(status="Accepted")

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str, **_):
        self.other_calls.append(("TriggerMessage", {"requestedMessage": requested_message}))
        if requested_message == "MeterValues":
            self._queue_meter(self._now())
            return call_result.TriggerMessage(status="Accepted")
        if requested_message == "Heartbeat":
            self._outbox.put_nowait(call.Heartbeat())
            return call_result.TriggerMessage(status="Accepted")
        return call_result.TriggerMessage(status="Rejected")

    @on(Action.remote_start_transaction)
    def on_remote_start(self, **kw: Any):
        self.other_calls.append(("RemoteStartTransaction", kw))
        return call_result.RemoteStartTransaction(status="Rejected")

    @on(Action.remote_stop_transaction)
    def on_remote_stop(self, **kw: Any):
        self.other_calls.append(("RemoteStopTransaction", kw))
        return call_result.RemoteStopTransaction(status="Rejected")


# --------------------------------------------------------------------------
# The community as the tests drive it.


@dataclass
class ChargerConfig:
    id: str
    phases: int = 1
    voltage_v: float = 220.0
    max_current_a: float = 32.0
    ignore_limits: bool = False
    # The unit the server is told to send profiles in: "amperes" or "watts".
    rate_unit: str = "amperes"

    @property
    def charger(self) -> Charger:
        return Charger(self.phases, self.voltage_v, self.max_current_a)


@dataclass
class Community:
    id: str
    rating_kva: float
    power_factor: float
    base_load_kw: list[float]
    chargers: list[ChargerConfig]
    timezone: str = "Asia/Shanghai"

    def capacity(self) -> Capacity:
        return Capacity(self.rating_kva, self.power_factor, list(self.base_load_kw), self.timezone)

    def toml(self, speed: float, clock_start: str, control: dict[str, Any]) -> str:
        lines = [f"clock_speed = {speed!r}", f'clock_start = "{clock_start}"', "", "[control]"]
        lines += [f"{k} = {v!r}" for k, v in control.items()]
        lines += [
            "",
            "[[communities]]",
            f'id = "{self.id}"',
            f"rating_kva = {self.rating_kva!r}",
            f"power_factor = {self.power_factor!r}",
            f"base_load_kw = [{', '.join(repr(float(x)) for x in self.base_load_kw)}]",
            "chargers = [",
        ]
        for c in self.chargers:
            lines.append(
                f'  {{ id = "{c.id}", phases = {c.phases}, voltage_v = {c.voltage_v!r}, '
                f'max_current_a = {c.max_current_a!r}, rate_unit = "{c.rate_unit}" }},'
            )
        lines.append("]")
        return "\n".join(lines) + "\n"


class Fleet:
    """The community's charge points, connected to one server."""

    def __init__(self, community: Community, clock: ProtocolClock, meter_interval_s: float):
        self.community = community
        self.clock = clock
        self.meter_interval_s = meter_interval_s
        self.cps: dict[str, VirtualChargePoint] = {}
        self._loops: list[asyncio.Task] = []
        self._sockets: list[Any] = []

    def __getitem__(self, cp_id: str) -> VirtualChargePoint:
        return self.cps[cp_id]

    def __iter__(self):
        return iter(self.cps.values())

    async def connect(self, server: Server) -> None:
        for cfg in self.community.chargers:
            ws = await open_ws(server, cfg.id)
            cp = VirtualChargePoint(cfg.id, ws, self.clock, cfg.charger, self.meter_interval_s, cfg.ignore_limits)
            self._sockets.append(ws)
            self._loops.append(asyncio.create_task(self._run(cp)))
            self.cps[cfg.id] = cp
            await cp.boot()

    @staticmethod
    async def _run(cp: VirtualChargePoint) -> None:
        try:
            await cp.start()
        except websockets.ConnectionClosed:
            pass
        finally:
            cp.online = False

    async def wait_fallback_installed(self, timeout: float = EVENT_TIMEOUT) -> float:
        """Every charge point holds its TxDefaultProfile (id 2) and ChargePointMaxProfile
        (id 1); returns the protocol time from which all did."""
        for cp in self:
            await cp.wait_profile(
                lambda c: c.holds(TX_DEFAULT, 2) and c.holds("ChargePointMaxProfile", 1),
                "TxDefaultProfile id 2 and ChargePointMaxProfile id 1",
                timeout,
            )
        return max(
            next(t for t, snap in cp.profile_history if any(h.profile["chargingProfileId"] == 2 for h in snap)
                 and any(h.profile["chargingProfileId"] == 1 for h in snap))
            for cp in self
        )

    def freeze(self) -> None:
        """Advance every car's physics to now (before reading traces)."""
        now = self.clock.now()
        for cp in self:
            cp.advance(max(now, cp.t))

    async def close(self) -> None:
        for cp in self:
            await cp.stop_tasks()
        await cancel_all(self._loops)
        for ws in self._sockets:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 5.0)

    # ---- checks ---------------------------------------------------------

    def drawn_violations(
        self, capacity: Capacity, t0: float, t1: float, tolerance_w: float = 1.0, with_commands: bool = True,
        exclude: tuple[str, ...] = (),
    ) -> tuple[list[str], int, float]:
        """Σ drawn power (what the meter values report) vs capacity at every instant
        in [t0, t1] where either changes. Returns (violations, instants checked,
        highest ratio total/capacity)."""
        instants = {t0}
        for cp in self:
            instants.update(t for t, _ in cp.trace if t0 <= t <= t1)
        instants.update(capacity.breakpoints(t0, t1, with_commands))
        out = []
        worst = 0.0
        for t in sorted(instants):
            parts = {cp.id: cp.power_at(t) for cp in self}
            total = sum(parts.values())
            cap_w = capacity.kw(t, with_commands) * 1000.0
            if cap_w > 0:
                worst = max(worst, total / cap_w)
            if total > cap_w + tolerance_w:
                out.append(f"{iso(t)}: drawn {total:.0f} W > capacity {cap_w:.0f} W "
                           f"({', '.join(f'{k}={v:.0f}' for k, v in parts.items())})")
        return out, len(instants), worst

    def allowed_violations(
        self, capacity: Capacity, t0: float, t1: float, tolerance_w: float = 1.0, with_commands: bool = True
    ) -> tuple[list[str], int]:
        """Σ over charging chargers of the composite limit of the profiles each held
        at that instant, vs capacity, at every instant in [t0, t1] where any of it
        changes."""
        instants = {t0}
        for cp in self:
            instants.update(t for t, _ in cp.profile_history if t0 <= t <= t1)
            for v in cp.visits:
                instants.update(x for x in (v.start, v.stop) if x is not None and t0 <= x <= t1)
            for t, snap in cp.profile_history:
                instants.update(breakpoints(snap, t0, t1))
        instants.update(capacity.breakpoints(t0, t1, with_commands))
        out = []
        for t in sorted(instants):
            if t > t1:
                continue
            parts = {}
            for cp in self:
                tx = cp.tx_at(t)
                parts[cp.id] = composite_w(cp.profiles_at(t), 1, t, tx, cp.charger) if tx else 0.0
            total = sum(parts.values())
            cap_w = capacity.kw(t, with_commands) * 1000.0
            if total > cap_w + tolerance_w:
                out.append(f"{iso(t)}: allowed {total:.0f} W > capacity {cap_w:.0f} W "
                           f"({', '.join(f'{k}={v:.0f}' for k, v in parts.items())})")
        return out, len(instants)

    def profile_change_instants(self, t0: float, t1: float) -> list[float]:
        out = set()
        for cp in self:
            out.update(t for t, _ in cp.profile_history if t0 <= t <= t1)
            for v in cp.visits:
                out.update(x for x in (v.start, v.stop) if x is not None and t0 <= x <= t1)
        return sorted(out)


def summarize_profiles(cp: VirtualChargePoint) -> str:
    def span(p: dict) -> str:
        start = p["chargingSchedule"].get("startSchedule")
        return (f" start={start}" if start and p["chargingProfileKind"] != "Recurring" else "") + (
            f" valid=[{p.get('validFrom')}, {p.get('validTo')})" if p.get("validFrom") or p.get("validTo") else "")

    return "; ".join(
        f"c{h.connector} id{h.profile['chargingProfileId']} {h.profile['chargingProfilePurpose']}"
        f"/sl{h.profile['stackLevel']}{span(h.profile)} {h.profile['chargingSchedule']['chargingRateUnit']} "
        f"{[(p['startPeriod'], float(p['limit'])) for p in h.profile['chargingSchedule']['chargingSchedulePeriod']][:8]}"
        for h in cp.store.held
    )


__all__ = [
    "Car",
    "ChargerConfig",
    "Community",
    "Fleet",
    "ProtocolClock",
    "VirtualChargePoint",
    "Visit",
    "summarize_profiles",
    "TX_PROFILE",
    "TX_DEFAULT",
]
