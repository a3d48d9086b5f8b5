//! The simulated plant: the cars of a window, charged slot by slot with whatever power a policy
//! asks for, within what each car can physically take. Metrics are measured here, on what was
//! delivered, not on what a policy claimed.
//!
//! A car takes at most its rate and never more energy than it still wants (its battery is full
//! when the wanted energy is in). A V2G car may also give power back, at most its discharge
//! limit; its battery level is tracked with its efficiencies, and a slot that leaves it below
//! its floor counts as a floor violation (the plant obeys the policy: the violation is the
//! policy's fault and is reported, not hidden).
//!
//! V2G accounting: `power_kw` is grid-side. Charging `p` for `h` hours adds `p·h·η_c` to the
//! battery; discharging removes `|p|·h/η_d`. The car's target is the battery level it would
//! reach by charging its wanted energy without V2G: `soc_arrival + wanted·η_c`. Its delivered
//! energy is counted as its battery gain divided by `η_c` (so a V2G car that ends where plain
//! charging would have left it has delivered exactly its wanted energy), capped at the wanted
//! energy. Wear is charged per kWh discharged from the battery.

use orderly_schedule::V2g;

use crate::window::Scenario;

/// Below this, a remaining energy is float noise: the car counts as full (kWh).
pub const ENERGY_EPS_KWH: f64 = 1e-9;

/// Battery state of a V2G car.
#[derive(Debug, Clone, PartialEq)]
pub struct V2gState {
    pub params: V2g,
    /// Battery level now (kWh).
    pub soc_kwh: f64,
    /// Battery level the car must reach by departure (kWh).
    pub target_kwh: f64,
    /// Grid-side energy given back so far (kWh).
    pub discharged_kwh: f64,
    /// Battery-side energy taken out so far (kWh), for wear.
    pub cycled_kwh: f64,
}

/// The cars and what they have received.
#[derive(Debug, Clone)]
pub struct Plant<'a> {
    pub scenario: &'a Scenario,
    /// Per session, delivered grid-side power per slot of its stay (index 0 is its arrival slot).
    pub delivered_kw: Vec<Vec<f64>>,
    /// Per session, energy still wanted (kWh). For a V2G car: `(target − soc) / η_c`, ≥ 0.
    pub remaining_kwh: Vec<f64>,
    pub v2g: Vec<Option<V2gState>>,
    /// Aggregate grid-side load per slot (kW).
    pub load_kw: Vec<f64>,
    /// Slots × V2G cars left below their floor.
    pub floor_violations: usize,
}

impl<'a> Plant<'a> {
    /// A plant with the given V2G parameters per session (`None` for charge-only cars).
    pub fn new(scenario: &'a Scenario, v2g: Vec<Option<V2g>>) -> Self {
        let v2g: Vec<Option<V2gState>> = v2g
            .into_iter()
            .zip(&scenario.sessions)
            .map(|(p, s)| {
                p.map(|params| V2gState {
                    soc_kwh: params.soc_kwh,
                    target_kwh: params.soc_kwh + s.wanted_kwh * params.charge_efficiency,
                    params,
                    discharged_kwh: 0.0,
                    cycled_kwh: 0.0,
                })
            })
            .collect();
        Self {
            scenario,
            delivered_kw: scenario
                .sessions
                .iter()
                .map(|s| vec![0.0; s.slots()])
                .collect(),
            remaining_kwh: scenario.sessions.iter().map(|s| s.wanted_kwh).collect(),
            v2g,
            load_kw: vec![0.0; scenario.n_slots],
            floor_violations: 0,
        }
    }

    /// Sessions plugged in during `slot`.
    pub fn present(&self, slot: usize) -> impl Iterator<Item = usize> + '_ {
        self.scenario
            .sessions
            .iter()
            .filter(move |s| s.is_present(slot))
            .map(|s| s.index)
    }

    /// Applies a requested power to session `index` in `slot` and returns what was delivered:
    /// the request clipped to the car's limits. Each session may be driven once per slot.
    pub fn apply(&mut self, slot: usize, index: usize, requested_kw: f64) -> f64 {
        let session = &self.scenario.sessions[index];
        if !session.is_present(slot) || !requested_kw.is_finite() {
            return 0.0;
        }
        let h = self.scenario.slot_hours();
        let delivered = match &mut self.v2g[index] {
            None => {
                let kw = requested_kw
                    .min(session.rate_kw)
                    .min(self.remaining_kwh[index] / h)
                    .max(0.0);
                self.remaining_kwh[index] -= kw * h;
                kw
            }
            Some(car) => {
                let p = &car.params;
                let room_kw = (p.battery_kwh - car.soc_kwh).max(0.0) / (h * p.charge_efficiency);
                let kw = requested_kw
                    .min(session.rate_kw)
                    .min(room_kw)
                    .max(-p.max_discharge_kw);
                if kw >= 0.0 {
                    car.soc_kwh += kw * h * p.charge_efficiency;
                } else {
                    let out = -kw * h / p.discharge_efficiency;
                    car.soc_kwh -= out;
                    car.cycled_kwh += out;
                    car.discharged_kwh += -kw * h;
                }
                if car.soc_kwh < p.floor_kwh - ENERGY_EPS_KWH {
                    self.floor_violations += 1;
                }
                self.remaining_kwh[index] =
                    ((car.target_kwh - car.soc_kwh) / p.charge_efficiency).max(0.0);
                kw
            }
        };
        self.delivered_kw[index][slot - session.arrival_slot] = delivered;
        self.load_kw[slot] += delivered;
        delivered
    }

    /// Energy counted as delivered to session `index` (kWh), see the module docs.
    pub fn delivered_kwh(&self, index: usize) -> f64 {
        let wanted = self.scenario.sessions[index].wanted_kwh;
        (wanted - self.remaining_kwh[index]).clamp(0.0, wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::{SimSession, WindowSpec};

    /// One car, 4 kW, in slots 0..4 of 15 minutes, wanting 2 kWh.
    fn scenario() -> Scenario {
        Scenario {
            spec: WindowSpec {
                location: "L".into(),
                from: "2020-01-01".parse().unwrap(),
                days: 1,
                slot_minutes: 15,
                capacity_fraction: 1.0,
            },
            start: "2020-01-01T00:00".parse().unwrap(),
            n_slots: 96,
            capacity_kw: 4.0,
            ratings_sum_kw: 4.0,
            price: vec![1.0; 96],
            sessions: vec![SimSession {
                index: 0,
                session_id: "s".into(),
                user_id: "u".into(),
                plugin: "2020-01-01T00:00".parse().unwrap(),
                plugout: "2020-01-01T01:00".parse().unwrap(),
                arrival_slot: 0,
                departure_slot: 4,
                recorded_kwh: 2.0,
                wanted_kwh: 2.0,
                rate_kw: 4.0,
                battery_kwh: Some(10.0),
            }],
            skipped: 0,
            history: Vec::new(),
        }
    }

    #[test]
    fn charge_only_car_is_clipped_to_rate_energy_and_stay() {
        let sc = scenario();
        let mut plant = Plant::new(&sc, vec![None]);
        assert_eq!(plant.apply(0, 0, 10.0), 4.0, "clipped to the rate");
        assert_eq!(plant.apply(1, 0, 4.0), 4.0);
        assert_eq!(plant.apply(2, 0, 4.0), 0.0, "full after 2 kWh");
        assert_eq!(plant.apply(5, 0, 4.0), 0.0, "gone");
        assert_eq!(plant.apply(3, 0, -4.0), 0.0, "no discharge without V2G");
        assert_eq!(plant.delivered_kwh(0), 2.0);
        assert_eq!(plant.load_kw[..4], [4.0, 4.0, 0.0, 0.0]);
    }

    #[test]
    fn v2g_car_tracks_efficiency_floor_and_target() {
        let sc = scenario();
        let v2g = V2g {
            battery_kwh: 10.0,
            soc_kwh: 2.0,
            floor_kwh: 1.5,
            max_discharge_kw: 4.0,
            charge_efficiency: 0.8,
            discharge_efficiency: 0.5,
            wear_cny_per_kwh: 0.1,
        };
        let mut plant = Plant::new(&sc, vec![Some(v2g)]);
        let car = plant.v2g[0].clone().unwrap();
        assert!((car.target_kwh - 3.6).abs() < 1e-12, "2 + 2 kWh × 0.8");
        // Give 0.5 kWh back to the grid: 1 kWh leaves the battery, which drops to 1 < floor.
        assert_eq!(plant.apply(0, 0, -2.0), -2.0);
        let car = plant.v2g[0].clone().unwrap();
        assert!((car.soc_kwh - 1.0).abs() < 1e-12);
        assert!((car.discharged_kwh - 0.5).abs() < 1e-12);
        assert!((car.cycled_kwh - 1.0).abs() < 1e-12);
        assert_eq!(plant.floor_violations, 1);
        // 3 kWh from the grid put 2.4 in the battery: 3.4, still 0.25 kWh (grid) short.
        plant.apply(1, 0, 4.0);
        plant.apply(2, 0, 4.0);
        plant.apply(3, 0, 4.0);
        assert!((plant.remaining_kwh[0] - 0.25).abs() < 1e-12);
        assert!((plant.delivered_kwh(0) - 1.75).abs() < 1e-12);
        assert_eq!(
            plant.floor_violations, 1,
            "back above the floor from slot 1 on"
        );
    }
}
