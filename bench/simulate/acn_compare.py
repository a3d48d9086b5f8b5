#!/usr/bin/env python3
"""Side-by-side run of acnportal's EDF and LLF and orderly-sim's `edf` / `llf`.

For each location with at least --min-sessions sessions in the window and each capacity
fraction, this script

1. applies issue 3's window rules to the Norway data *itself* (its own CSV parsing, in Python,
   so the Rust window code is cross-checked too: session count, capacity, energy requested);
2. runs acnportal's ``SortedSchedulingAlgo`` with ``earliest_deadline_first`` and
   ``least_laxity_first`` in ``acnsim`` on those sessions: one continuous EVSE per session
   (registered in plug-in order, so ties break as in orderly-sim), capped at the household's
   rate, one aggregate ``Current`` constraint at the capacity, an ideal ``Battery`` holding
   exactly the wanted energy, one period per slot;
3. runs ``cargo run --release -p orderly-sim --example simulate`` with ``--policy edf`` and
   ``--policy llf`` on the same window;
4. prints a markdown table of energy delivered, peak, cost and sessions fully served for both,
   with the largest relative difference.

Setup (once): ``python3 -m venv bench/simulate/.venv &&
bench/simulate/.venv/bin/pip install -r bench/simulate/requirements.txt``; then
``bench/simulate/.venv/bin/python bench/simulate/acn_compare.py``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
from importlib.metadata import version
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from acnportal import acnsim
from acnportal.acnsim.events import EventQueue, PluginEvent
from acnportal.acnsim.models import EV, EVSE, Battery
from acnportal.acnsim.network import ChargingNetwork, Current
from acnportal.algorithms import (
    SortedSchedulingAlgo,
    earliest_deadline_first,
    least_laxity_first,
)

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "data"
DEFAULT_RATING_KW = 7.04
VOLTAGE = 230.0  # any voltage works: powers are converted to amps and back
FULLY_SERVED_TOLERANCE_KWH = 1e-3


@dataclass
class Sess:
    session_id: str
    user_id: str
    plugin: dt.datetime
    arrival: int
    departure: int
    wanted_kwh: float
    rate_kw: float


def number(text: str) -> float | None:
    return None if text == "NA" else float(text.replace(",", "."))


def time_or_none(text: str) -> dt.datetime | None:
    return None if text == "NA" else dt.datetime.fromisoformat(text)


def load_window(location: str, start: dt.datetime, days: int, slot_minutes: int):
    """Issue 3's rules, implemented independently of the Rust code."""
    ratings = {}
    with open(DATA / "norway-residential/users.csv", newline="") as f:
        for row in csv.DictReader(f, delimiter=";"):
            power = number(row["charging_power"])
            ratings[row["user_id"]] = DEFAULT_RATING_KW if power is None else power
    slot_s = slot_minutes * 60
    n_slots = days * 24 * 60 // slot_minutes
    window_s = n_slots * slot_s
    sessions, skipped = [], 0
    with open(DATA / "norway-residential/sessions.csv", newline="") as f:
        for row in csv.DictReader(f, delimiter=";"):
            if row["location"] != location:
                continue
            plugin = time_or_none(row["plugin_time"])
            if plugin is None:
                skipped += 1
                continue
            t_in = int((plugin - start).total_seconds())
            inside = 0 <= t_in < window_s
            plugout = time_or_none(row["plugout_time"])
            energy = number(row["energy_session"])
            if plugout is None or energy is None:
                skipped += inside
                continue
            if not inside:
                continue
            t_out = min(int((plugout - start).total_seconds()), window_s)
            arrival = -(-t_in // slot_s)
            departure = max(t_out // slot_s, arrival)
            rate = ratings[row["user_id"]]
            wanted = min(energy, rate * (departure - arrival) * slot_minutes / 60)
            sessions.append(
                Sess(row["session_id"], row["user_id"], plugin, arrival, departure, wanted, rate)
            )
    sessions.sort(key=lambda s: (s.plugin, s.session_id))
    return sessions, skipped, n_slots, sum(ratings[u] for u in {s.user_id for s in sessions})


def prices(start: dt.datetime, n_slots: int, slot_minutes: int) -> list[float]:
    tariff = json.loads((DATA / "tariffs/beijing-ev-tou-2016.json").read_text())
    per_minute = [None] * 1440
    for band in tariff["bands"]:
        for lo, hi in band["hours"]:
            for m in range(int(lo * 60), int(hi * 60)):
                per_minute[m] = band["price"]
    first = start.hour * 60 + start.minute
    return [
        sum(per_minute[(first + k * slot_minutes + j) % 1440] for j in range(slot_minutes))
        / slot_minutes
        for k in range(n_slots)
    ]


def run_acn(sessions, n_slots, slot_minutes, capacity_kw, price, sort_fn):
    network = ChargingNetwork()
    events = []
    ids = []
    for i, s in enumerate(sessions):
        if s.departure <= s.arrival or s.wanted_kwh <= 0:
            continue  # holds no slot or wants nothing: nothing to schedule
        station = f"S{i:05d}"
        ids.append((station, s))
        network.register_evse(EVSE(station, max_rate=s.rate_kw * 1000 / VOLTAGE), VOLTAGE, 0)
        battery = Battery(capacity=s.wanted_kwh, init_charge=0, max_power=s.rate_kw)
        ev = EV(s.arrival, s.departure, s.wanted_kwh, station, s.session_id, battery)
        events.append(PluginEvent(s.arrival, ev))
    network.add_constraint(
        Current([station for station, _ in ids]), capacity_kw * 1000 / VOLTAGE, name="cap"
    )
    sim = acnsim.Simulator(
        network,
        SortedSchedulingAlgo(sort_fn),
        EventQueue(events),
        dt.datetime(2019, 1, 1),
        period=slot_minutes,
        verbose=False,
    )
    began = time.perf_counter()
    sim.run()
    seconds = time.perf_counter() - began
    load_kw = sim.charging_rates.sum(axis=0) * VOLTAGE / 1000
    load_kw = list(load_kw[:n_slots]) + [0.0] * max(0, n_slots - len(load_kw))
    h = slot_minutes / 60
    delivered = sum(ev.energy_delivered for ev in sim.ev_history.values())
    fully = sum(
        1
        for s in sessions
        if s.wanted_kwh <= FULLY_SERVED_TOLERANCE_KWH
        or sim.ev_history[s.session_id].energy_delivered
        >= s.wanted_kwh - FULLY_SERVED_TOLERANCE_KWH
    )
    return {
        "energy_delivered_kwh": delivered,
        "peak_kw": max(load_kw),
        "cost_cny": sum(kw * h * p for kw, p in zip(load_kw, price)),
        "sessions_fully_served_pct": 100 * fully / len(sessions),
        "slots_over_capacity": sum(1 for kw in load_kw if kw > capacity_kw + 1e-6),
        "seconds": seconds,
    }


def run_ours(location, start, days, slot_minutes, fraction, policy):
    cmd = [
        "cargo", "run", "--quiet", "--release", "-p", "orderly-sim", "--example", "simulate",
        "--", "--location", location, "--from", start.date().isoformat(), "--days", str(days),
        "--slot-minutes", str(slot_minutes), "--capacity-fraction", str(fraction),
        "--policy", policy,
    ]
    out = subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--from", dest="start", default="2019-11-04")
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--slot-minutes", type=int, default=5)
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.15, 0.25, 0.40])
    ap.add_argument("--locations", nargs="*", help="default: every location with enough sessions")
    ap.add_argument("--min-sessions", type=int, default=100)
    args = ap.parse_args()
    start = dt.datetime.fromisoformat(args.start)
    if args.locations:
        locations = args.locations
    else:
        with open(DATA / "norway-residential/sessions.csv", newline="") as f:
            locations = sorted({row["location"] for row in csv.DictReader(f, delimiter=";")})
    print(
        f"acnportal {version('acnportal')}, numpy {version('numpy')}; week {args.start}, "
        f"{args.days} days, {args.slot_minutes}-min slots"
    )
    print()
    print("| location | sessions | fraction | cap kW | policy | energy kWh (acn / ours) | peak kW (acn / ours) | cost CNY (acn / ours) | fully served % (acn / ours) | max rel. diff | acn run s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for location in locations:
        sessions, skipped, n_slots, ratings = load_window(location, start, args.days, args.slot_minutes)
        if len(sessions) < args.min_sessions:
            continue
        price = prices(start, n_slots, args.slot_minutes)
        requested = sum(s.wanted_kwh for s in sessions)
        for fraction in args.fractions:
            cap = fraction * ratings
            for policy, sort_fn in [("edf", earliest_deadline_first), ("llf", least_laxity_first)]:
                acn = run_acn(sessions, n_slots, args.slot_minutes, cap, price, sort_fn)
                ours = run_ours(location, start, args.days, args.slot_minutes, fraction, policy)
                # The window rules, computed twice independently, must agree exactly.
                assert ours["sessions"] == len(sessions), (ours["sessions"], len(sessions))
                assert ours["sessions_skipped"] == skipped
                assert rel(ours["capacity_kw"], cap) < 1e-12
                assert rel(ours["energy_requested_kwh"], requested) < 1e-12
                diff = max(
                    rel(acn[k], ours[k]) for k in ("energy_delivered_kwh", "peak_kw", "cost_cny")
                )
                worst = max(worst, diff)
                print(
                    f"| {location} | {len(sessions)} | {fraction:.2f} | {cap:.3f} | {policy} "
                    f"| {acn['energy_delivered_kwh']:.3f} / {ours['energy_delivered_kwh']:.3f} "
                    f"| {acn['peak_kw']:.3f} / {ours['peak_kw']:.3f} "
                    f"| {acn['cost_cny']:.2f} / {ours['cost_cny']:.2f} "
                    f"| {acn['sessions_fully_served_pct']:.1f} / {ours['sessions_fully_served_pct']:.1f} "
                    f"| {diff:.1e} | {acn['seconds']:.1f} |",
                    flush=True,
                )
    print()
    print(f"largest relative difference (energy, peak, cost): {worst:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
