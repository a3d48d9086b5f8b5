//! The closed loop's core, sans-IO: one [`Controller`] per community.
//!
//! Layout:
//! - [`community`]: what a community is electrically (`CommunitySpec`: transformer rating,
//!   power factor, base-load profile, tariff, emergency rules) and its chargers (`ChargerSpec`:
//!   phases, voltage, current limits, the rate unit they take profiles in).
//! - [`fallback`]: the TxDefaultProfile limits every charger holds so that, with the platform
//!   unreachable, all chargers together stay within capacity.
//! - [`controller`]: `Controller` — inputs (`Input`: transactions, meter values, wishes, grid
//!   commands, profile answers) and `now` in; `Action`s (profiles to send, reports) out; the plan
//!   as residents and operators see it (`PlanView`).
//!
//! Architecture invariant: no IO, no clock, no async, no tokio/sqlx/axum. Time is an argument
//! (`jiff::Timestamp` values, never read from the system).

pub mod community;
pub mod controller;
pub mod fallback;
pub mod profile;

pub use community::{ChargerSpec, CommunitySpec, RateUnit};
pub use controller::{
    Action, ControlError, Controller, ControllerConfig, Input, PlanView, ProfileOutcome, RequestId,
    ResolvedWish, SessionView, WishSource,
};
