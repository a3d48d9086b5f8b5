//! Domain types shared by every Orderly crate.
//!
//! Layout:
//! - [`units`]: physical quantities as newtypes (`Watts`, `KilowattHours`, `WattHours`, `Amperes`),
//!   so a kW value can never be passed where a W value is expected.
//! - [`ids`]: identifiers parsed once at the boundary (`ChargePointId`, `IdTag`).
//!
//! Architecture invariant: this crate does no IO, reads no clock and depends on nothing heavier
//! than `serde`.

pub mod ids;
pub mod units;

pub use ids::{ChargePointId, IdError, IdTag};
pub use units::{Amperes, KilowattHours, Kilowatts, WattHours, Watts};
