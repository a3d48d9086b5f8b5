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
//!   commands, profile answers) and `now` in; `Action`s (profiles to send, reports) out; the plan
//!   as residents and operators see it (`PlanView`).
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
//! - the plan keeps room for the fallback of every idle charger (and of every charger after its
//!   car's departure), and for the guards left by ended transactions until they expire.
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
//! - The learned base load is applied with hysteresis (a change of more than 1 % of the usable
//!   rating or 1 kW), since each change re-sends every charger's fallback.

pub mod community;
pub mod controller;
pub mod fallback;
pub mod profile;

pub use community::{ChargerSpec, CommunitySpec, RateUnit};
pub use controller::{
    Action, ControlError, Controller, ControllerConfig, Input, PlanView, ProfileOutcome, RequestId,
    ResolvedWish, SessionView, WishSource,
};
