"""An independent OCPP 1.6 smart-charging evaluator, written from the specification
(OCPP 1.6 edition 2 §3.13 "Smart Charging", §5.16 SetChargingProfile, §5.5
ClearChargingProfile, §7.8–7.15 the charging-profile types), not from the server's
code, so the end-to-end tests do not share the server's mistakes.

Times are float seconds since the Unix epoch (protocol time); profiles are the wire
dicts (camelCase) exactly as a charge point received them.

What a charge point does with the profiles it holds, at an instant t, on a connector:
- Within one purpose, the profile with the highest stackLevel that is valid at t
  (validFrom <= t < validTo) and whose schedule defines a limit at t prevails
  (§3.13.2 "Stacking charging profiles").
- TxProfile (for the running transaction only) overrides TxDefaultProfile
  (§3.13.1: "TxProfile ... overrules TxDefaultProfile").
- ChargePointMaxProfile caps the result (§3.13.4: the composite is the minimum).
- A schedule in A is turned into W with the period's numberPhases (default 3,
  §7.13) — never more phases than the charger has — and the charger's voltage.

The worst case of the safety invariant (contract "Invariant S"): if the server
stops now, charger i may draw at t at most
  min(ChargePointMax_i(t), max(TxProfile_i(t) when a transaction runs, TxDefault_i(t)))
(a running car may leave and another arrive: its new transaction gets TxDefault).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable
from zoneinfo import ZoneInfo

DAY = 86400.0
WEEK = 7 * DAY

TX_PROFILE = "TxProfile"
TX_DEFAULT = "TxDefaultProfile"
CP_MAX = "ChargePointMaxProfile"


def ts(value: str) -> float:
    """RFC 3339 → epoch seconds."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without zone: {value!r}")
    return parsed.timestamp()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Charger:
    """What the charge point knows about its own hardware."""

    phases: int = 1
    voltage_v: float = 220.0
    max_current_a: float = 32.0
    connectors: int = 1

    @property
    def max_w(self) -> float:
        return self.max_current_a * self.voltage_v * self.phases

    def amps_to_w(self, amps: float, number_phases: int | None) -> float:
        # §7.13 numberPhases: "If a number of phases is needed, numberPhases=3 will be
        # assumed unless another number is given" — a 1-phase charger still uses one.
        phases = min(number_phases if number_phases is not None else 3, self.phases)
        return amps * self.voltage_v * phases

    def w_to_amps(self, watts: float) -> float:
        return watts / (self.voltage_v * self.phases)


@dataclass
class Held:
    """One profile as installed on a connector."""

    connector: int
    profile: dict
    # When the charge point installed it (for an Absolute schedule without
    # startSchedule; unused by the server's layout but defined by the spec).
    installed: float


@dataclass
class Tx:
    transaction_id: int
    start: float


def _schedule_offset(held: Held, t: float, tx: Tx | None) -> float | None:
    """Seconds since the start of the schedule's current run at t, or None."""
    prof = held.profile
    sched = prof["chargingSchedule"]
    kind = prof["chargingProfileKind"]
    start_schedule = sched.get("startSchedule")
    if kind == "Recurring":
        if start_schedule is None:
            return None
        period = DAY if prof.get("recurrencyKind", "Daily") == "Daily" else WEEK
        # The recurrence repeats every period from startSchedule (both ways: a charger
        # holding a daily profile applies it every day).
        return (t - ts(start_schedule)) % period
    if kind == "Relative":
        if tx is None:
            return None
        return t - tx.start
    # Absolute
    if start_schedule is not None:
        start = ts(start_schedule)
    elif prof.get("chargingProfilePurpose") == TX_PROFILE and tx is not None:
        start = tx.start
    else:
        start = held.installed
    return t - start


def schedule_limit(held: Held, t: float, tx: Tx | None) -> tuple[float, str, int | None] | None:
    """(limit, unit, numberPhases) the profile sets at t, or None when it sets nothing
    (not valid at t, before its schedule, after its duration)."""
    prof = held.profile
    if "validFrom" in prof and prof["validFrom"] is not None and t < ts(prof["validFrom"]):
        return None
    if "validTo" in prof and prof["validTo"] is not None and t >= ts(prof["validTo"]):
        return None
    offset = _schedule_offset(held, t, tx)
    if offset is None or offset < 0:
        return None
    sched = prof["chargingSchedule"]
    duration = sched.get("duration")
    if duration is not None and offset >= duration:
        return None
    current = None
    for period in sorted(sched["chargingSchedulePeriod"], key=lambda p: p["startPeriod"]):
        if period["startPeriod"] <= offset:
            current = period
        else:
            break
    if current is None:
        return None
    return float(current["limit"]), sched["chargingRateUnit"], current.get("numberPhases")


def limit_w(held: Held, t: float, tx: Tx | None, charger: Charger) -> float | None:
    found = schedule_limit(held, t, tx)
    if found is None:
        return None
    limit, unit, phases = found
    if unit == "A":
        return charger.amps_to_w(limit, phases)
    return limit


def _prevailing_w(
    profiles: Iterable[Held], purpose: str, connector: int, t: float, tx: Tx | None, charger: Charger
) -> float | None:
    """The prevailing limit (W) of one purpose on `connector` at t: highest stackLevel
    among the profiles that set a limit at t; a connector's own profile wins a tie
    with connector 0's (it is the more specific one)."""
    best: tuple[int, int, float] | None = None
    for held in profiles:
        prof = held.profile
        if prof["chargingProfilePurpose"] != purpose:
            continue
        if held.connector not in (0, connector):
            continue
        if purpose == TX_PROFILE:
            if tx is None:
                continue
            if prof.get("transactionId") is not None and prof["transactionId"] != tx.transaction_id:
                continue
        w = limit_w(held, t, tx, charger)
        if w is None:
            continue
        key = (prof["stackLevel"], 1 if held.connector == connector else 0)
        if best is None or key > best[:2]:
            best = (key[0], key[1], w)
    return None if best is None else best[2]


def composite_w(profiles: Iterable[Held], connector: int, t: float, tx: Tx | None, charger: Charger) -> float:
    """What the charge point lets the car on `connector` draw at t (W), §3.13.4."""
    profiles = list(profiles)
    cap = charger.max_w
    cp_max = _prevailing_w(profiles, CP_MAX, 0, t, None, charger)
    if cp_max is not None:
        cap = min(cap, cp_max)
    tx_limit = _prevailing_w(profiles, TX_PROFILE, connector, t, tx, charger) if tx is not None else None
    if tx_limit is None:
        tx_limit = _prevailing_w(profiles, TX_DEFAULT, connector, t, tx, charger)
    if tx_limit is not None:
        cap = min(cap, tx_limit)
    return max(cap, 0.0)


def worst_case_w(profiles: Iterable[Held], connector: int, t: float, tx: Tx | None, charger: Charger) -> float:
    """Invariant S: the most charger `connector` may draw at t if the server stopped
    now — the running transaction's profile, or a new car's TxDefault, whichever is
    higher, under ChargePointMax and the hardware."""
    profiles = list(profiles)
    cap = charger.max_w
    cp_max = _prevailing_w(profiles, CP_MAX, 0, t, None, charger)
    if cp_max is not None:
        cap = min(cap, cp_max)
    new_car = _prevailing_w(profiles, TX_DEFAULT, connector, t, None, charger)
    if new_car is None:
        new_car = math.inf  # no TxDefault: an arriving car draws the hardware max
    running = 0.0
    if tx is not None:
        running = _prevailing_w(profiles, TX_PROFILE, connector, t, tx, charger)
        if running is None:
            running = new_car
    return max(min(cap, max(running, new_car)), 0.0)


def breakpoints(profiles: Iterable[Held], t0: float, t1: float, tx: Tx | None = None) -> list[float]:
    """Every instant in (t0, t1] at which some profile's limit may change; with t0
    this covers all the pieces of the (right-continuous, piecewise-constant)
    composite on [t0, t1]."""
    out: set[float] = set()

    def add(t: float) -> None:
        if t0 < t <= t1:
            out.add(t)

    for held in profiles:
        prof = held.profile
        for key in ("validFrom", "validTo"):
            if prof.get(key) is not None:
                add(ts(prof[key]))
        sched = prof["chargingSchedule"]
        starts = [p["startPeriod"] for p in sched["chargingSchedulePeriod"]]
        duration = sched.get("duration")
        if duration is not None:
            starts.append(duration)
        kind = prof["chargingProfileKind"]
        if kind == "Recurring":
            if sched.get("startSchedule") is None:
                continue
            period = DAY if prof.get("recurrencyKind", "Daily") == "Daily" else WEEK
            base = ts(sched["startSchedule"])
            k = math.floor((t0 - base) / period) - 1
            while base + k * period <= t1:
                run = base + k * period
                add(run)
                for s in starts:
                    add(run + s)
                k += 1
            continue
        if kind == "Relative":
            if tx is None:
                continue
            base = tx.start
        elif sched.get("startSchedule") is not None:
            base = ts(sched["startSchedule"])
        elif prof.get("chargingProfilePurpose") == TX_PROFILE and tx is not None:
            base = tx.start
        else:
            base = held.installed
        add(base)
        for s in starts:
            add(base + s)
    return sorted(out)


# --------------------------------------------------------------------------
# What a charge point does on SetChargingProfile / ClearChargingProfile.


class ProfileStore:
    """The profiles one charge point holds, with the install and clear rules of §5.16/§5.5."""

    def __init__(self, charger: Charger):
        self.charger = charger
        self.held: list[Held] = []

    def snapshot(self) -> list[Held]:
        return [Held(h.connector, copy.deepcopy(h.profile), h.installed) for h in self.held]

    def set(self, connector: int, profile: dict, now: float, tx: Tx | None) -> str:
        """Install; returns the SetChargingProfile.conf status."""
        purpose = profile["chargingProfilePurpose"]
        if connector < 0 or connector > self.charger.connectors:
            return "Rejected"
        if purpose == CP_MAX and connector != 0:
            return "Rejected"
        if purpose == TX_PROFILE:
            # §5.16: a TxProfile is for a running transaction on a real connector.
            if connector == 0 or tx is None:
                return "Rejected"
            if profile.get("transactionId") is not None and profile["transactionId"] != tx.transaction_id:
                return "Rejected"
        # Same id anywhere, or same stackLevel + purpose on the same connector: replaced.
        self.held = [
            h
            for h in self.held
            if h.profile["chargingProfileId"] != profile["chargingProfileId"]
            and not (
                h.connector == connector
                and h.profile["stackLevel"] == profile["stackLevel"]
                and h.profile["chargingProfilePurpose"] == purpose
            )
        ]
        self.held.append(Held(connector, copy.deepcopy(profile), now))
        return "Accepted"

    def clear(self, request: dict) -> str:
        """ClearChargingProfile: by id, or by the criteria given (all when none)."""
        before = len(self.held)
        pid = request.get("id")
        if pid is not None:
            self.held = [h for h in self.held if h.profile["chargingProfileId"] != pid]
        else:

            def matches(h: Held) -> bool:
                if request.get("connectorId") is not None and h.connector != request["connectorId"]:
                    return False
                if (
                    request.get("chargingProfilePurpose") is not None
                    and h.profile["chargingProfilePurpose"] != request["chargingProfilePurpose"]
                ):
                    return False
                if request.get("stackLevel") is not None and h.profile["stackLevel"] != request["stackLevel"]:
                    return False
                return True

            self.held = [h for h in self.held if not matches(h)]
        return "Accepted" if len(self.held) < before else "Unknown"

    def end_transaction(self, connector: int) -> None:
        """A TxProfile lives only as long as its transaction."""
        self.held = [
            h
            for h in self.held
            if not (h.connector == connector and h.profile["chargingProfilePurpose"] == TX_PROFILE)
        ]


# --------------------------------------------------------------------------
# The community's capacity, from its configuration (not from the server's plan).


@dataclass
class Capacity:
    """Charging capacity (kW) at an instant: rating × pf − base load of the local
    hour, lowered by grid limit commands in force."""

    rating_kva: float
    power_factor: float
    base_load_kw: list[float]
    timezone: str = "Asia/Shanghai"
    # (start, end, kW): "limit the community's charging to kW" from start to end.
    limits: list[tuple[float, float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.base_load_kw) == 1:
            self.base_load_kw = self.base_load_kw * 24
        assert len(self.base_load_kw) == 24
        self._tz = ZoneInfo(self.timezone)

    def local_hour(self, t: float) -> int:
        return datetime.fromtimestamp(t, self._tz).hour

    def kw(self, t: float, with_commands: bool = True) -> float:
        cap = max(self.rating_kva * self.power_factor - self.base_load_kw[self.local_hour(t)], 0.0)
        if with_commands:
            for start, end, limit in self.limits:
                if start <= t < end:
                    cap = min(cap, limit)
        return cap

    def breakpoints(self, t0: float, t1: float, with_commands: bool = True) -> list[float]:
        """Local hour boundaries (and command edges) in (t0, t1]."""
        out = set()
        # Whole hours in UTC are whole local hours for zones with whole-hour offsets
        # (Asia/Shanghai); half-hour zones get their :30 too.
        t = math.floor(t0 / 1800.0) * 1800.0 + 1800.0
        while t <= t1:
            out.add(t)
            t += 1800.0
        if with_commands:
            for start, end, _ in self.limits:
                for edge in (start, end):
                    if t0 < edge <= t1:
                        out.add(edge)
        return sorted(out)


# --------------------------------------------------------------------------
# Invariant S over a horizon.


@dataclass
class ChargerState:
    """One charger as the safety check sees it at an instant: what it holds and
    whether a transaction runs."""

    name: str
    charger: Charger
    profiles: list[Held]
    tx: Tx | None
    connector: int = 1


@dataclass
class Violation:
    t: float
    total_w: float
    capacity_w: float
    parts: dict[str, float]

    def __str__(self) -> str:
        parts = ", ".join(f"{k}={v:.0f}" for k, v in self.parts.items())
        return f"{iso(self.t)}: {self.total_w:.0f} W > {self.capacity_w:.0f} W ({parts})"


def invariant_s_violations(
    states: list[ChargerState],
    capacity: Capacity,
    t0: float,
    horizon_s: float = DAY,
    tolerance_w: float = 1.0,
    with_commands: bool = True,
) -> list[Violation]:
    """Every piece of [t0, t0 + horizon] where Σ worst-case draw > capacity."""
    t1 = t0 + horizon_s
    instants = {t0}
    for st in states:
        instants.update(breakpoints(st.profiles, t0, t1, st.tx))
    instants.update(capacity.breakpoints(t0, t1, with_commands))
    out = []
    for t in sorted(instants):
        if t >= t1:
            continue
        parts = {st.name: worst_case_w(st.profiles, st.connector, t, st.tx, st.charger) for st in states}
        total = sum(parts.values())
        cap_w = capacity.kw(t, with_commands) * 1000.0
        if total > cap_w + tolerance_w:
            out.append(Violation(t, total, cap_w, parts))
    return out
