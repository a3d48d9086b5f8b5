//! Safe fallback: the TxDefaultProfile each charger holds.
//!
//! Rule (Architecture Invariant of the closed loop): for every instant of the local day, the sum
//! over the community's chargers of their fallback limits (kW) is at most the charging capacity
//! at that instant (rating × power factor − base-load forecast, lowered by any grid command in
//! force). A limit is 0 or at least the charger's minimum current, and at most its maximum.
//!
//! # How the limits are chosen, hour by hour
//!
//! Let `C` be the hour's charging capacity (kW) and every charger `i` have a minimum `m_i` and a
//! maximum `M_i` (kW at its phases and voltage).
//!
//! 1. **Who gets power.** If `Σ m_i ≤ C`, every charger. Otherwise as many as fit at their
//!    minimum: chargers are taken in a rotating order (the hour's order starts where the previous
//!    hour's chosen run ended, cyclically over the chargers sorted by id), each added while the
//!    minima of those chosen so far still fit; the others get 0. Over a day the zeros move
//!    round the community, so no charger is always off. The rotation offsets are computed from
//!    the capacity without any grid command, so a command does not reshuffle who is served.
//! 2. **How much.** The chosen chargers share `C` equally (water-filling): each gets the same
//!    level `L` kW, clamped to `[m_i, M_i]`, with `L` the largest level whose total is at most `C`.
//!    So with enough capacity every charger gets an equal share; a charger capped at its maximum
//!    leaves its unused share to the others.
//! 3. **Rounding.** The level is converted to A per phase and rounded **down** to 0.1 A (the
//!    OCPP `multipleOf`), so rounding never adds load; a result below the minimum current (only
//!    possible through rounding) is 0.
//!
//! Under a grid command (`capacity_cap_kw`), each limit is also at most the limit without the
//! command, so the command's fallback (a stack-level-1 TxDefaultProfile) only ever lowers what a
//! charger may draw: sending it is a pure decrease (see the ordering rule in the crate docs).
//!
//! One connector per charger is assumed: a TxDefaultProfile on connector 0 applies to every
//! connector, so a charger with two sockets could draw twice its fallback.

use crate::community::{ChargerSpec, CommunitySpec};
use serde::{Deserialize, Serialize};

/// One charger's fallback: limit (A per phase) per local clock hour, 24 values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fallback {
    pub charger: orderly_core::ChargePointId,
    pub amps_by_hour: Vec<f64>,
}

/// `x` rounded down to 0.1 (with a hair of slack so that 6.0 computed as 5.999999 stays 6.0).
pub(crate) fn floor_tenth(x: f64) -> f64 {
    ((x * 10.0 + 1e-6).floor() / 10.0).max(0.0)
}

/// The hour's charging capacity (kW) without a command.
fn hour_capacity(community: &CommunitySpec, hour: usize, cap: Option<&[f64]>) -> f64 {
    let c = community.charging_capacity_kw(hour);
    match cap.and_then(|c| c.get(hour)) {
        Some(&k) if k.is_finite() => c.min(k.max(0.0)),
        _ => c,
    }
}

/// Indices (into `order`) chosen at the hour with capacity `c`, starting at `offset`.
fn choose(chargers: &[&ChargerSpec], c: f64, offset: usize) -> Vec<usize> {
    let n = chargers.len();
    let total_min: f64 = chargers.iter().map(|s| s.min_kw()).sum();
    if total_min <= c + 1e-9 {
        return (0..n).collect();
    }
    let mut chosen = Vec::new();
    let mut used = 0.0;
    for k in 0..n {
        let i = (offset + k) % n;
        let m = chargers[i].min_kw();
        if used + m <= c + 1e-9 {
            used += m;
            chosen.push(i);
        } else {
            // A prefix of the rotation: stop at the first that does not fit, so a lower capacity
            // (a grid command) chooses a subset of the chargers chosen without it.
            break;
        }
    }
    chosen
}

/// Water-filling level: kW per chosen charger, clamped to `[min, max]`, summing to at most `c`.
fn level_fill(chargers: &[&ChargerSpec], chosen: &[usize], c: f64) -> Vec<f64> {
    let total = |l: f64| -> f64 {
        chosen
            .iter()
            .map(|&i| l.clamp(chargers[i].min_kw(), chargers[i].max_kw()))
            .sum()
    };
    let hi_l = chosen
        .iter()
        .map(|&i| chargers[i].max_kw())
        .fold(0.0, f64::max);
    if total(hi_l) <= c {
        return chosen.iter().map(|&i| chargers[i].max_kw()).collect();
    }
    // total(l) is continuous and non-decreasing; bisect for the largest l with total(l) <= c.
    let (mut lo, mut hi) = (0.0, hi_l);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if total(mid) <= c { lo = mid } else { hi = mid }
    }
    chosen
        .iter()
        .map(|&i| lo.clamp(chargers[i].min_kw(), chargers[i].max_kw()))
        .collect()
}

/// kW → A per phase, rounded down to 0.1, 0 below the minimum current.
fn to_amps(spec: &ChargerSpec, kw: f64) -> f64 {
    let a = floor_tenth(
        (kw * 1000.0 / (spec.voltage_v * f64::from(spec.phases))).min(spec.max_current_a),
    );
    if a + 1e-9 < spec.min_current_a {
        0.0
    } else {
        a
    }
}

/// Amps per hour (`[hour][charger]`, chargers in `order`) for the capacities `caps`, with the
/// rotation `offsets`.
fn limits_for(order: &[&ChargerSpec], caps: &[f64; 24], offsets: &[usize; 24]) -> Vec<Vec<f64>> {
    (0..24)
        .map(|h| {
            let chosen = choose(order, caps[h], offsets[h]);
            let kw = level_fill(order, &chosen, caps[h]);
            let mut amps = vec![0.0; order.len()];
            for (&i, &k) in chosen.iter().zip(&kw) {
                amps[i] = to_amps(order[i], k);
            }
            amps
        })
        .collect()
}

/// The fallback of every charger of `community`, with `capacity_cap_kw[h]` (if given) lowering
/// the capacity of hour `h` further (a grid command). See the module docs for the rule.
pub fn fallback_limits(
    community: &CommunitySpec,
    capacity_cap_kw: Option<&[f64]>,
) -> Vec<Fallback> {
    let mut order: Vec<&ChargerSpec> = community.chargers.iter().collect();
    order.sort_by(|a, b| a.id.cmp(&b.id));
    let n = order.len();
    if n == 0 {
        return Vec::new();
    }
    let base_caps: [f64; 24] = std::array::from_fn(|h| hour_capacity(community, h, None));
    // Rotation offsets from the capacity without a command: each hour starts after the run the
    // previous hour chose.
    let mut offsets = [0usize; 24];
    let mut off = 0usize;
    for h in 0..24 {
        offsets[h] = off % n;
        off += choose(&order, base_caps[h], off % n).len();
    }
    let base = limits_for(&order, &base_caps, &offsets);
    let limits = match capacity_cap_kw {
        None => base,
        Some(cap) => {
            let caps: [f64; 24] = std::array::from_fn(|h| hour_capacity(community, h, Some(cap)));
            let mut capped = limits_for(&order, &caps, &offsets);
            for (c, b) in capped.iter_mut().zip(&base) {
                for (x, y) in c.iter_mut().zip(b) {
                    *x = x.min(*y);
                }
            }
            capped
        }
    };
    order
        .iter()
        .enumerate()
        .map(|(i, s)| Fallback {
            charger: s.id.clone(),
            amps_by_hour: (0..24).map(|h| limits[h][i]).collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::community::{HourlyTariff, RateUnit};
    use orderly_core::ChargePointId;

    fn community(n: usize, rating: f64, base: f64) -> CommunitySpec {
        CommunitySpec {
            id: "c".into(),
            rating_kva: rating,
            power_factor: 0.9,
            base_load_kw: (0..24).map(|h| base + h as f64).collect(),
            timezone: "Asia/Shanghai".into(),
            tariff: HourlyTariff {
                cny_per_kwh: vec![0.5; 24],
            },
            emergency_price_cny_per_kwh: 1.5,
            max_emergencies: None,
            default_stay_hours: 10.0,
            default_energy_kwh: 10.0,
            chargers: (0..n)
                .map(|i| ChargerSpec {
                    id: ChargePointId::parse(format!("CP{i:03}")).unwrap(),
                    phases: if i % 5 == 0 { 3 } else { 1 },
                    voltage_v: 220.0,
                    max_current_a: if i % 3 == 0 { 16.0 } else { 32.0 },
                    min_current_a: 6.0,
                    rate_unit: RateUnit::Amperes,
                })
                .collect(),
        }
    }

    fn check(c: &CommunitySpec, cap: Option<&[f64]>) -> Vec<Fallback> {
        let fb = fallback_limits(c, cap);
        assert_eq!(fb.len(), c.chargers.len());
        for h in 0..24 {
            let mut kw = 0.0;
            for f in &fb {
                let s = c.chargers.iter().find(|s| s.id == f.charger).unwrap();
                let a = f.amps_by_hour[h];
                assert!(
                    a == 0.0 || (a >= s.min_current_a && a <= s.max_current_a),
                    "{a}"
                );
                assert_eq!(a, floor_tenth(a));
                kw += s.kw_at(a);
            }
            let mut capacity = c.charging_capacity_kw(h);
            if let Some(cap) = cap {
                capacity = capacity.min(cap[h]);
            }
            assert!(kw <= capacity + 1e-9, "hour {h}: {kw} > {capacity}");
        }
        fb
    }

    #[test]
    fn equal_share_when_everyone_fits() {
        let c = community(10, 400.0, 100.0);
        let fb = check(&c, None);
        // 360 − 100 = 260 kW over 10 chargers at most 21 kW each: everyone at its maximum
        // where that fits, equal shares otherwise; nobody at 0.
        assert!(fb.iter().all(|f| f.amps_by_hour.iter().all(|&a| a > 0.0)));
    }

    #[test]
    fn rotation_when_minimum_does_not_fit() {
        let c = community(60, 160.0, 100.0);
        let fb = check(&c, None);
        // Every charger gets power in some hour, and some hour has zeros.
        for f in &fb {
            assert!(f.amps_by_hour.iter().any(|&a| a > 0.0), "{:?}", f.charger);
        }
        assert!(fb.iter().any(|f| f.amps_by_hour.contains(&0.0)));
    }

    #[test]
    fn command_only_lowers() {
        let c = community(40, 250.0, 100.0);
        let base = check(&c, None);
        let cap: Vec<f64> = (0..24).map(|h| 20.0 + 3.0 * h as f64).collect();
        let cmd = check(&c, Some(&cap));
        for (b, k) in base.iter().zip(&cmd) {
            for h in 0..24 {
                assert!(k.amps_by_hour[h] <= b.amps_by_hour[h]);
            }
        }
    }

    #[test]
    fn no_capacity_means_zero() {
        let c = community(5, 100.0, 95.0);
        let fb = check(&c, None);
        assert!(fb.iter().all(|f| f.amps_by_hour.iter().all(|&a| a == 0.0)));
    }
}
