//! The closed loop's core, sans-IO: one [`Controller`] per community.
//!
//! Layout:
//! - [`community`]: what a community is electrically (`CommunitySpec`: transformer rating,
//!   power factor, base-load profile, tariff, emergency rules) and its chargers (`ChargerSpec`:
//!   phases, voltage, current limits, the rate unit they take profiles in).
//! - [`fallback`]: the TxDefaultProfile limits every charger holds so that, with the platform
//!   unreachable, all chargers together stay within capacity.
//! - [`profile`]: the profiles the controller sends (ids, stack levels, OCPP 1.6 bodies) and
//!   how it compares a new one with what a charger holds.
//! - [`controller`]: `Controller` — inputs (`Input`: transactions, meter values, wishes, grid
//!   commands, profile answers, the learned forecast of arrivals) and `now` in; `Action`s
//!   (profiles to send, reports) out; the plan as residents and operators see it (`PlanView`).
//!
//! Architecture invariant: no IO, no clock, no async, no tokio/sqlx/axum. Time is an argument
//! (`jiff::Timestamp` values, never read from the system).
//!
//! # Objective
//!
//! Every car plugged in is planned together with the others under the capacity the transformer
//! leaves (rating × power factor − the household base load of that local hour, learned from
//! the community meter, lowered by grid commands, by the measured draw of chargers that ignore
//! their limits and by the room kept for the fallbacks below), by the engine
//! (`orderly_schedule`, its objective in this order): emergency sessions first at full rate
//! (at most `max_emergencies` at once, earliest first), then the most energy by each car's
//! departure with any shortfall shared max-min fairly, then the least cost at the local tariff,
//! then the flattest load. Re-planned on every event that changes the picture and every
//! `replan_interval`; slots aligned to `slot_minutes` in the community's time zone.
//!
//! # Forecast
//!
//! Planning only the cars plugged in fills the cheap valley with them, and the cars that arrive
//! later find it full. Given a forecast learned from the community's history
//! ([`Input::Forecast`], an `orderly_schedule::Forecast`: expected arrivals per day type and slot
//! of day), every re-plan builds the engine's `Calendar` from its own slot 0 (the floor of now:
//! its local slot of the day, and weekday or weekend for each local day the horizon touches,
//! from slot 0's day on) and the engine adds the expected arrivals of the next day as *ghost*
//! sessions (a fraction of a car each, minimum power 0) that compete with the real ones for
//! capacity and price; only the real sessions get powers, and so profiles. A car plugged in early
//! then takes some energy before the valley when the expected late arrivals would not all fit in
//! it. Without a forecast (or with one that expects nobody) the plan is exactly what it was.
//! The calendar assumes days of `1440 / slot_minutes` slots (no daylight-saving days).
//!
//! # Safety rule (Invariant S)
//!
//! For every instant `t ≥ now`, if the platform stopped now and every profile sent so far were
//! accepted, `Σ_chargers worst_i(t) ≤ capacity(t)`, where `worst_i(t)` is the larger of what
//! the running transaction's profile allows and what a car newly plugged in would get (the
//! running car may leave and another arrive), each capped by the ChargePointMaxProfile. How:
//! - every charger holds a TxDefaultProfile (connector 0, stack level 0, daily) from
//!   [`fallback::fallback_limits`], whose sum is within the capacity of every local hour; a
//!   grid command adds one at stack level 1 (2, 3, … while earlier commands are pending) for its window;
//! - a TxProfile (connector `c`, stack level 0, the plan's limits until `validTo`) always goes
//!   with a *guard*: a TxDefaultProfile on connector `c` at stack level 9 with the same periods
//!   and `validTo` (an addition to the session contract: without it a car swapped in on that
//!   connector would get the connector-0 fallback on top of the plan). Every TxProfile and
//!   guard of a plan expires at the same instant, on a grid of the re-plan interval, so after
//!   it only the fallbacks apply;
//! - every charger without a running transaction holds an *idle guard* (below) until the same
//!   instant, so the plan keeps no room for its fallback; it keeps room for the guards left by
//!   ended transactions until the idle guard replaces them, and for the fallback of a charger
//!   that refuses idle guards or is disconnected (and of such a charger after its car's
//!   departure).
//!
//! # Idle guards
//!
//! The fallbacks share the whole capacity among all chargers, so keeping room for the fallback
//! of every idle charger left the cars only their own chargers' equal shares (60 chargers on
//! 100 kW with 40 cars plugged in: 33 kW kept for 20 idle chargers; a lone car got about
//! 1/60 of the capacity). Instead an idle connector (no transaction, including after its car
//! left) holds a TxDefaultProfile with the guard's chargingProfileId (20 + connector) and stack
//! level (9): Absolute, limit 0 (A or W; OCPP 1.6 allows 0, "pause"), validTo = the plan's
//! shared expiry (schedule started a little before `now`, so a charge point whose clock is
//! behind already applies it). It replaces the guard left by the last transaction, and the next
//! transaction's guard replaces it. While it is valid that charger's worst case is 0; after
//! the expiry every TxProfile, guard and idle guard of the plan has expired together and only
//! the fallbacks apply, whose sum fits. So the plan reserves for an idle charger only what it
//! may draw from what it holds until the expiry (a stale guard) and nothing after it (the
//! re-plans renew the idle guards with the expiry); cars share (nearly) the whole capacity.
//!
//! Safety of the transitions, by the ordering rule below: renewing an idle guard to a later
//! expiry lowers that charger from its fallback to 0 over `[old expiry, new expiry)` (a
//! decrease, sent at once); extending a car's pair raises it there (an increase), so the pairs
//! go out only after every idle guard was accepted. A charger that rejects an idle guard, says
//! NotSupported or does not answer is marked: the next re-plan keeps room for its fallback
//! again (over the whole horizon, as before) and no increase goes out until that re-plan
//! (increases wait while a re-plan is due); it is retried after `retry_after` and counted on
//! again once it accepts one. A car plugged into an idle charger draws 0 until its pair
//! arrives; the pair is an increase over the idle guard and waits for no other increase. When
//! a transaction stops the charger keeps its pair's guard (a stale guard, reserved until its
//! expiry or until the idle guard with the same id is accepted). An idle guard identical to the
//! one held (same expiry) is not sent again: one request per idle charger per expiry grid step.
//! A pair equal to the fallback it would replace is still sent when the charger does not hold
//! it (a fallback can change under a pair the plan counts on, e.g. a command's rotation).
//!
//! A plan that can give a car the whole capacity must know the car's own maximum: a car seen
//! drawing clearly less than its limit (two readings in a row, while it still wants energy) is
//! planned at what it drew (+5 %), never above its charger's maximum.
//!
//! # Ordering rule
//!
//! A change is sent as a decrease first: a profile that lowers a charger's limit somewhere
//! (compared, as a function of time, with what it holds: its TxProfile/guard until their
//! `validTo`, then its fallback) goes out at once; where a change raises some instants and
//! lowers others, the pointwise minimum goes first. Increases go out only when no decrease,
//! and nothing the latest plan no longer wants, is in flight anywhere in the community. A
//! charger that rejects a profile or does not answer (or is disconnected, or draws more than
//! its limit) is not planned until the retry: its held profiles, or its measured draw if
//! higher, count as fixed load. So the sum over what each charger may hold stays within
//! capacity during a transition too. A profile identical (from now on) to the one the charger
//! holds is not sent again; rejected and unanswered ones are retried after `retry_after`.
//!
//! # Known limits
//!
//! - One connector per charger is assumed by the fallback (connector-0 TxDefaultProfile applies
//!   to each connector).
//! - A charger that never accepted its fallback is assumed to hold it for the room kept for
//!   it (it could draw its hardware maximum).
//! - The idle guard goes on the connector of the charger's last transaction (1 before any):
//!   with one connector per charger assumed, a car on another connector would get the
//!   connector-0 fallback.
//! - The learned base load is applied with hysteresis (a change of more than 1 % of the usable
//!   rating or 1 kW), since each change re-sends every charger's fallback.

pub mod community;
pub mod controller;
pub mod fallback;
pub mod profile;

pub use community::{ChargerSpec, CommunitySpec, RateUnit};
pub use controller::{
    Action, ControlError, Controller, ControllerConfig, ForecastView, Input, PlanView,
    ProfileOutcome, RequestId, ResolvedWish, SessionView, WishSource, day_type,
};
/// The engine's forecast types, as [`Input::Forecast`] takes them.
pub use orderly_schedule::{DayType, DaysObserved, Forecast, HistoricSession};
