//! Safe fallback: the TxDefaultProfile each charger holds.
//!
//! Rule (Architecture Invariant of the closed loop): for every instant of the local day, the sum
//! over the community's chargers of their fallback limits (kW) is at most the charging capacity
//! at that instant (rating × power factor − base-load forecast, lowered by any grid command in
//! force). A limit is 0 or at least the charger's minimum current.

use crate::community::CommunitySpec;
use serde::{Deserialize, Serialize};

/// One charger's fallback: limit (A per phase) per local clock hour, 24 values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fallback {
    pub charger: orderly_core::ChargePointId,
    pub amps_by_hour: Vec<f64>,
}

/// The fallback of every charger of `community`, with `capacity_cap_kw[h]` (if given) lowering
/// the capacity of hour `h` further (a grid command).
pub fn fallback_limits(
    community: &CommunitySpec,
    capacity_cap_kw: Option<&[f64]>,
) -> Vec<Fallback> {
    let _ = (community, capacity_cap_kw);
    todo!("orderly-control helper")
}
