//! Gateway load generator: opens N OCPP 1.6J charge-point connections against a central system on
//! loopback, boots each one, then sends Heartbeat and MeterValues on a schedule and measures how the
//! server keeps up (connections held, messages per second, round trip, server RSS per connection).
//!
//! Layout:
//! - [`pattern`]: `LG%05d`-style identity and password patterns.
//! - [`plan`]: the validated run configuration: target, source addresses, deterministic jitter.
//! - [`ocpp`]: the few OCPP-J 1.6 frames a charge point needs here (building CALLs, reading replies).
//! - [`stats`]: shared counters and round-trip histograms, and the JSON [`stats::Report`].
//! - [`conn`]: one task per charge point (connect, boot, scheduled messages, drain, close).
//! - [`sys`]: process limits and `/proc` readings (open-file limit, VmRSS).
//! - [`run`]: the orchestration: ramp, steady window, stop, report.
//! - [`smart`]: OCPP 1.6 smart charging as a charge point evaluates it (pure: profiles + t → limit).
//! - [`virtual_cp`]: virtual charge points that replay car visits in protocol time and obey the
//!   charging profiles they are sent (the demo's chargers and the grid-command benchmark's).
//! - [`gridbench`]: the "grid command → new limits accepted by every charger" benchmark
//!   (`orderly-gridbench`).
//! - [`http`]: a minimal HTTP/1.1 JSON client for the central system's API on loopback.
//!
//! The generator is bounded: [`run::run`] returns after ramp + steady window + a short drain, and it
//! refuses targets and source addresses outside 127.0.0.0/8, so it only ever loads this machine.

pub mod conn;
pub mod gridbench;
pub mod http;
pub mod ocpp;
pub mod pattern;
pub mod plan;
pub mod run;
pub mod smart;
pub mod stats;
pub mod sys;
pub mod virtual_cp;
