//! Which cars get V2G parameters under `--v2g-share`, and with what assumptions.
//!
//! Selection is deterministic: the sessions whose users' battery capacity is known are ranked
//! by the 64-bit FNV-1a hash of their session id and the first `round(share × sessions)` of
//! them are chosen (all of them if fewer are eligible). A hash, not the plug-in order, so the
//! chosen cars are spread over the week and the same car stays chosen when the window moves.
//!
//! Assumptions (the dataset records no V2G), per chosen car:
//! - battery: the user's estimated `battery_capacity`;
//! - state of charge at arrival: the session's `SoC_start` from `sessions_soc.csv` where the
//!   dataset estimates it, otherwise whatever leaves the car full after its wanted energy; in
//!   both cases lowered, if needed, so that the wanted energy fits in the battery;
//! - floor: [`FLOOR_FRACTION`] of the battery, or the arrival level if that is lower (V2G may
//!   never take the car lower than it came);
//! - discharge limit: the household charger's rate (a bidirectional charger of the same size);
//! - efficiencies [`CHARGE_EFFICIENCY`] and [`DISCHARGE_EFFICIENCY`] (grid ↔ battery);
//! - wear [`WEAR_CNY_PER_KWH`] per kWh taken out of the battery: an LFP pack at about
//!   600 CNY/kWh lasting about 6,000 cycles costs about 0.10 CNY per kWh cycled.

use std::collections::HashMap;

use orderly_schedule::V2g;

use crate::window::Scenario;

pub const FLOOR_FRACTION: f64 = 0.2;
pub const CHARGE_EFFICIENCY: f64 = 0.95;
pub const DISCHARGE_EFFICIENCY: f64 = 0.95;
pub const WEAR_CNY_PER_KWH: f64 = 0.10;

/// 64-bit FNV-1a: a fixed, documented hash (std's `DefaultHasher` may change between releases,
/// which would silently change which cars are chosen).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// V2G parameters per session of the scenario (`None` for charge-only cars).
/// `soc_start_pct` maps session ids to the dataset's `SoC_start` (percent).
pub fn assign(
    scenario: &Scenario,
    share: f64,
    soc_start_pct: &HashMap<String, f64>,
) -> Vec<Option<V2g>> {
    let mut params = vec![None; scenario.sessions.len()];
    let wanted_count = (share * scenario.sessions.len() as f64).round() as usize;
    let mut eligible: Vec<(u64, usize)> = scenario
        .sessions
        .iter()
        .filter(|s| s.battery_kwh.is_some_and(|b| b > 0.0) && s.slots() > 0)
        .map(|s| (fnv1a(&s.session_id), s.index))
        .collect();
    eligible.sort_unstable();
    for &(_, index) in eligible.iter().take(wanted_count) {
        let s = &scenario.sessions[index];
        let Some(battery) = s.battery_kwh else {
            continue;
        };
        let headroom = (battery - s.wanted_kwh * CHARGE_EFFICIENCY).max(0.0);
        let soc = soc_start_pct
            .get(&s.session_id)
            .map_or(headroom, |pct| pct / 100.0 * battery)
            .min(headroom);
        params[index] = Some(V2g {
            battery_kwh: battery.max(s.wanted_kwh * CHARGE_EFFICIENCY),
            soc_kwh: soc,
            floor_kwh: (FLOOR_FRACTION * battery).min(soc),
            max_discharge_kw: s.rate_kw,
            charge_efficiency: CHARGE_EFFICIENCY,
            discharge_efficiency: DISCHARGE_EFFICIENCY,
            wear_cny_per_kwh: WEAR_CNY_PER_KWH,
        });
    }
    params
}

#[cfg(test)]
mod tests {
    use super::fnv1a;

    #[test]
    fn fnv1a_matches_the_published_vectors() {
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a("foobar"), 0x8594_4171_f739_67e8);
    }
}
