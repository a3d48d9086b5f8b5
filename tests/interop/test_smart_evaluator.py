"""Unit tests of the e2e suite's own OCPP 1.6 smart-charging evaluator (smart.py)
against hand-computed cases. No server involved: if these fail, the closed-loop
tests' verdicts cannot be trusted."""

from __future__ import annotations

import pytest

from smart import (
    CP_MAX,
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
    invariant_s_violations,
    iso,
    ts,
    worst_case_w,
)

ONE_PHASE = Charger(phases=1, voltage_v=220.0, max_current_a=32.0)  # 7040 W
THREE_PHASE = Charger(phases=3, voltage_v=220.0, max_current_a=16.0)  # 10560 W
T0 = ts("2026-11-26T10:00:00Z")  # 18:00 in Asia/Shanghai
MIDNIGHT_LOCAL = ts("2026-11-25T16:00:00Z")  # 2026-11-26 00:00 Asia/Shanghai


def profile(
    pid: int,
    purpose: str,
    periods: list[tuple[int, float]] | list[tuple[int, float, int]],
    *,
    stack: int = 0,
    kind: str = "Absolute",
    start: float | None = None,
    unit: str = "A",
    valid_from: float | None = None,
    valid_to: float | None = None,
    duration: int | None = None,
    tx_id: int | None = None,
    recurrency: str | None = None,
) -> dict:
    sched: dict = {
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": [
            {"startPeriod": p[0], "limit": p[1], **({"numberPhases": p[2]} if len(p) > 2 else {})}
            for p in periods
        ],
    }
    if start is not None:
        sched["startSchedule"] = iso(start)
    if duration is not None:
        sched["duration"] = duration
    prof: dict = {
        "chargingProfileId": pid,
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": sched,
    }
    if recurrency:
        prof["recurrencyKind"] = recurrency
    if valid_from is not None:
        prof["validFrom"] = iso(valid_from)
    if valid_to is not None:
        prof["validTo"] = iso(valid_to)
    if tx_id is not None:
        prof["transactionId"] = tx_id
    return prof


def daily_default(periods, pid=2, stack=0, **kw) -> dict:
    return profile(pid, TX_DEFAULT, periods, stack=stack, kind="Recurring", recurrency="Daily",
                   start=MIDNIGHT_LOCAL, duration=86400, **kw)


def held(*items: tuple[int, dict]) -> list[Held]:
    return [Held(connector, prof, T0) for connector, prof in items]


TX = Tx(transaction_id=7, start=T0 - 60)


def test_absolute_tx_profile_periods_in_amperes():
    tx_prof = profile(11, TX_PROFILE, [(0, 16.0), (600, 10.0)], start=T0, tx_id=7)
    profs = held((1, tx_prof), (0, daily_default([(0, 6.0)])))
    assert composite_w(profs, 1, T0 + 100, TX, ONE_PHASE) == pytest.approx(16 * 220)
    assert composite_w(profs, 1, T0 + 600, TX, ONE_PHASE) == pytest.approx(10 * 220)
    assert composite_w(profs, 1, T0 + 5000, TX, ONE_PHASE) == pytest.approx(10 * 220)  # last period goes on
    # Before its startSchedule the TxProfile sets nothing: TxDefault applies.
    assert composite_w(profs, 1, T0 - 1, TX, ONE_PHASE) == pytest.approx(6 * 220)


def test_number_phases_default_is_three_but_never_more_than_the_charger_has():
    three = held((0, daily_default([(0, 16.0)])))
    assert composite_w(three, 1, T0, TX, THREE_PHASE) == pytest.approx(16 * 220 * 3)
    one_phase_period = held((0, daily_default([(0, 16.0, 1)])))
    assert composite_w(one_phase_period, 1, T0, TX, THREE_PHASE) == pytest.approx(16 * 220)
    # A 1-phase charger given numberPhases 3 still draws on one phase.
    assert composite_w(held((0, daily_default([(0, 16.0, 3)]))), 1, T0, TX, ONE_PHASE) == pytest.approx(16 * 220)


def test_recurring_daily_tx_default_follows_the_local_day():
    # Local (UTC+8) 00:00 → 10 A, 07:00 → 6 A, 18:00 → 8 A.
    profs = held((0, daily_default([(0, 10.0), (7 * 3600, 6.0), (18 * 3600, 8.0)])))
    assert composite_w(profs, 1, ts("2026-11-26T00:30:00Z"), None, ONE_PHASE) == pytest.approx(6 * 220)  # 08:30
    assert composite_w(profs, 1, ts("2026-11-26T11:00:00Z"), None, ONE_PHASE) == pytest.approx(8 * 220)  # 19:00
    assert composite_w(profs, 1, ts("2026-11-27T17:00:00Z"), None, ONE_PHASE) == pytest.approx(10 * 220)  # +1 day 01:00
    assert composite_w(profs, 1, ts("2026-11-26T15:59:59Z"), None, ONE_PHASE) == pytest.approx(8 * 220)  # 23:59:59
    assert composite_w(profs, 1, ts("2026-11-26T16:00:00Z"), None, ONE_PHASE) == pytest.approx(10 * 220)  # midnight


def test_highest_valid_stack_level_prevails_within_a_purpose():
    base = daily_default([(0, 10.0)])
    window = daily_default([(0, 16.0)], pid=101, stack=1)
    window["validFrom"], window["validTo"] = iso(T0), iso(T0 + 1800)
    profs = held((0, base), (0, window))
    # Higher stack level wins even though its limit is higher (it is not a minimum).
    assert composite_w(profs, 1, T0 + 10, None, ONE_PHASE) == pytest.approx(16 * 220)
    assert composite_w(profs, 1, T0 + 1800, None, ONE_PHASE) == pytest.approx(10 * 220)  # validTo exclusive
    assert composite_w(profs, 1, T0 - 1, None, ONE_PHASE) == pytest.approx(10 * 220)


def test_tx_profile_overrides_tx_default_only_for_its_transaction():
    tx_prof = profile(11, TX_PROFILE, [(0, 20.0)], start=T0, valid_to=T0 + 300, tx_id=7)
    profs = held((1, tx_prof), (0, daily_default([(0, 6.0)])))
    assert composite_w(profs, 1, T0 + 1, TX, ONE_PHASE) == pytest.approx(20 * 220)  # higher than the default
    assert composite_w(profs, 1, T0 + 300, TX, ONE_PHASE) == pytest.approx(6 * 220)  # expired
    other = Tx(transaction_id=8, start=T0)
    assert composite_w(profs, 1, T0 + 1, other, ONE_PHASE) == pytest.approx(6 * 220)
    assert composite_w(profs, 1, T0 + 1, None, ONE_PHASE) == pytest.approx(6 * 220)


def test_charge_point_max_and_hardware_cap_the_composite():
    tx_prof = profile(11, TX_PROFILE, [(0, 40.0)], start=T0, tx_id=7)
    cp_max = profile(1, CP_MAX, [(0, 16.0)], start=T0 - 3600)
    assert composite_w(held((1, tx_prof), (0, cp_max)), 1, T0, TX, ONE_PHASE) == pytest.approx(16 * 220)
    assert composite_w(held((1, tx_prof)), 1, T0, TX, ONE_PHASE) == pytest.approx(32 * 220)  # hardware
    assert composite_w([], 1, T0, TX, ONE_PHASE) == pytest.approx(32 * 220)  # nothing held


def test_watts_profile_and_duration():
    tx_prof = profile(11, TX_PROFILE, [(0, 5000.0)], start=T0, unit="W", duration=600, tx_id=7)
    profs = held((1, tx_prof), (0, daily_default([(0, 8.0)])))
    assert composite_w(profs, 1, T0 + 599, TX, ONE_PHASE) == pytest.approx(5000)
    assert composite_w(profs, 1, T0 + 600, TX, ONE_PHASE) == pytest.approx(8 * 220)  # schedule over


def test_relative_tx_profile_runs_from_transaction_start():
    tx_prof = profile(11, TX_PROFILE, [(0, 10.0), (120, 20.0)], kind="Relative")
    profs = held((1, tx_prof))
    assert composite_w(profs, 1, TX.start + 119, TX, ONE_PHASE) == pytest.approx(10 * 220)
    assert composite_w(profs, 1, TX.start + 120, TX, ONE_PHASE) == pytest.approx(20 * 220)


def test_worst_case_is_the_higher_of_running_profile_and_default():
    default = daily_default([(0, 8.0)])
    low = profile(11, TX_PROFILE, [(0, 4.0)], start=T0, valid_to=T0 + 300, tx_id=7)
    high = profile(11, TX_PROFILE, [(0, 20.0)], start=T0, valid_to=T0 + 300, tx_id=7)
    assert worst_case_w(held((1, low), (0, default)), 1, T0, TX, ONE_PHASE) == pytest.approx(8 * 220)
    assert worst_case_w(held((1, high), (0, default)), 1, T0, TX, ONE_PHASE) == pytest.approx(20 * 220)
    assert worst_case_w(held((1, high), (0, default)), 1, T0 + 300, TX, ONE_PHASE) == pytest.approx(8 * 220)
    assert worst_case_w(held((0, default)), 1, T0, None, ONE_PHASE) == pytest.approx(8 * 220)
    assert worst_case_w([], 1, T0, None, ONE_PHASE) == pytest.approx(32 * 220)
    cp_max = profile(1, CP_MAX, [(0, 10.0)], start=T0 - 10)
    assert worst_case_w(held((1, high), (0, default), (0, cp_max)), 1, T0, TX, ONE_PHASE) == pytest.approx(10 * 220)


def test_profile_store_install_and_clear_rules():
    store = ProfileStore(ONE_PHASE)
    assert store.set(1, profile(1, CP_MAX, [(0, 32.0)], start=T0), T0, None) == "Rejected"  # connector 0 only
    assert store.set(0, profile(1, CP_MAX, [(0, 32.0)], start=T0), T0, None) == "Accepted"
    assert store.set(1, profile(11, TX_PROFILE, [(0, 10.0)], start=T0), T0, None) == "Rejected"  # no transaction
    assert store.set(0, profile(11, TX_PROFILE, [(0, 10.0)], start=T0), T0, TX) == "Rejected"  # connector 0
    assert store.set(1, profile(11, TX_PROFILE, [(0, 10.0)], start=T0, tx_id=99), T0, TX) == "Rejected"
    assert store.set(1, profile(11, TX_PROFILE, [(0, 10.0)], start=T0, tx_id=7), T0, TX) == "Accepted"
    assert store.set(9, daily_default([(0, 6.0)]), T0, None) == "Rejected"  # no such connector
    assert store.set(0, daily_default([(0, 6.0)]), T0, None) == "Accepted"
    # Same id replaces; same stackLevel + purpose on the same connector replaces.
    assert store.set(0, daily_default([(0, 7.0)]), T0, None) == "Accepted"
    assert store.set(0, daily_default([(0, 8.0)], pid=3), T0, None) == "Accepted"
    defaults = [h for h in store.held if h.profile["chargingProfilePurpose"] == TX_DEFAULT]
    assert [(h.profile["chargingProfileId"], h.profile["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"])
            for h in defaults] == [(3, 8.0)]
    assert store.set(0, daily_default([(0, 5.0)], pid=101, stack=1), T0, None) == "Accepted"
    assert len(store.held) == 4
    assert store.clear({"id": 101}) == "Accepted"
    assert store.clear({"id": 101}) == "Unknown"
    assert store.clear({"chargingProfilePurpose": TX_DEFAULT}) == "Accepted"
    assert {h.profile["chargingProfileId"] for h in store.held} == {1, 11}
    store.end_transaction(1)
    assert {h.profile["chargingProfileId"] for h in store.held} == {1}
    assert store.clear({}) == "Accepted"
    assert store.held == []
    assert store.clear({}) == "Unknown"


def test_breakpoints_cover_periods_validity_and_recurrences():
    tx_prof = profile(11, TX_PROFILE, [(0, 16.0), (600, 10.0)], start=T0, valid_to=T0 + 900, tx_id=7)
    default = daily_default([(0, 10.0), (18 * 3600, 8.0)])  # changes at local 00:00 and 18:00
    points = breakpoints(held((1, tx_prof), (0, default)), T0 - 1, T0 + 86400, TX)
    assert points == [T0, T0 + 600, T0 + 900, ts("2026-11-26T16:00:00Z"), T0 + 86400]


def test_capacity_by_local_hour_and_limit_command():
    base = [5.0] * 24
    base[18] = 12.0  # 18:00–19:00 local
    cap = Capacity(rating_kva=25.0, power_factor=0.9, base_load_kw=base, timezone="Asia/Shanghai")
    assert cap.kw(T0) == pytest.approx(22.5 - 12.0)
    assert cap.kw(T0 - 1) == pytest.approx(22.5 - 5.0)
    cap.limits.append((T0 + 60, T0 + 120, 4.0))
    assert cap.kw(T0 + 60) == pytest.approx(4.0)
    assert cap.kw(T0 + 60, with_commands=False) == pytest.approx(10.5)
    assert cap.kw(T0 + 120) == pytest.approx(10.5)


def test_invariant_s_finds_the_hour_where_defaults_overbook():
    base = [0.0] * 24
    base[19] = 8.0  # local 19:00–20:00: capacity 2 kW
    cap = Capacity(rating_kva=10.0, power_factor=1.0, base_load_kw=base)
    # Both chargers fall back to 6 A (1320 W) all day: 2640 W fits 10 kW but not 2 kW.
    default = daily_default([(0, 6.0)])
    states = [
        ChargerState("a", ONE_PHASE, held((0, default)), None),
        ChargerState("b", ONE_PHASE, held((0, default)), None),
    ]
    found = invariant_s_violations(states, cap, T0)
    assert [iso(v.t) for v in found] == ["2026-11-26T11:00:00.000Z", "2026-11-26T11:30:00.000Z"]
    assert found[0].total_w == pytest.approx(2640) and found[0].capacity_w == pytest.approx(2000)
    # With a 0 A hour there the defaults are safe; a running TxProfile of 20 A until
    # T0+300 overbooks only while it is valid.
    safe = daily_default([(0, 6.0), (19 * 3600, 0.0), (20 * 3600, 6.0)])
    tx_prof = profile(11, TX_PROFILE, [(0, 20.0)], start=T0, valid_to=T0 + 300, tx_id=7)
    states = [
        ChargerState("a", ONE_PHASE, held((0, safe), (1, tx_prof)), TX),
        ChargerState("b", ONE_PHASE, held((0, safe)), None),
    ]
    found = invariant_s_violations(states, cap, T0 - 3600)
    assert found == []
    cap.base_load_kw[18] = 6.0  # 18:00 local: capacity 4 kW < 4400 + 1320
    found = invariant_s_violations(states, cap, T0)
    assert [iso(v.t) for v in found] == [iso(T0)]
