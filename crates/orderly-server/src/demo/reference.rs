//! The offline reference for day 1: the engine's exact optimum (`orderly_schedule::solve_offline`:
//! emergencies, then max-min fair energy, then least cost, then the flattest load) with every
//! car of the first day known in advance, under the demo's capacity and the Beijing tariff.
//!
//! It tells a user what was possible: if the reference delivers every wish but the live run
//! does not, the shortfall is the live controller's (it learns of each car only as it plugs
//! in), not the transformer's. Slots are 5 minutes from the demo's start; a car may charge from
//! the first slot starting at or after its arrival to the last one ending by its departure (the
//! simulator's rule), so the reference is slightly pessimistic for cars arriving mid-slot.

use jiff::{SignedDuration, Timestamp};
use orderly_schedule::{Priority, Problem, ScheduleError, Session};
use orderly_sim::tariff::Tariff;

use super::replay::{Replay, Visit};
use super::sizing::Sizing;

const SLOT_MINUTES: u32 = 5;

/// What the reference achieves for the cars of day 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub cars: usize,
    pub wanted_kwh: f64,
    pub delivered_kwh: f64,
    /// Cars that get their whole wish (within 0.1 kWh or 1 %, as in the live summary).
    pub full: usize,
    pub cost_cny: f64,
    /// Highest 15-minute demand of the day-1 cars (kW).
    pub peak_kw: f64,
}

/// Solve the day-1 reference (CPU-bound: run it on a blocking thread).
pub fn day_one(
    replay: &Replay,
    sizing: &Sizing,
    tariff: &Tariff,
    emergency_price: f64,
) -> Result<Reference, ScheduleError> {
    let day_end = replay.start + SignedDuration::from_hours(24);
    let cars: Vec<&Visit> = replay.visits().filter(|v| v.arrival < day_end).collect();
    let horizon_end = cars.iter().map(|v| v.departure).max().unwrap_or(day_end);
    let slot_secs = i64::from(SLOT_MINUTES) * 60;
    let offset = |t: Timestamp| t.duration_since(replay.start).as_secs();
    let n_slots = (offset(horizon_end) / slot_secs + 1) as usize;
    let slot_start = |k: usize| replay.start + SignedDuration::from_secs(k as i64 * slot_secs);
    let local = |t: Timestamp| t.to_zoned_datetime(replay.tz.clone());
    let capacity_kw = (0..n_slots)
        .map(|k| sizing.capacity_kw(usize::from(local(slot_start(k)).hour() as u8)))
        .collect();
    let price = tariff.price_per_slot(local(replay.start).datetime(), SLOT_MINUTES, n_slots);
    let sessions = cars
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let arrival = offset(v.arrival);
            let arrival_slot = (arrival + slot_secs - 1).div_euclid(slot_secs).max(0) as usize;
            let departure_slot = (offset(v.departure).div_euclid(slot_secs).max(0) as usize)
                .clamp(arrival_slot, n_slots);
            Session {
                id: i as u64,
                arrival_slot,
                departure_slot,
                energy_kwh: v.energy_kwh,
                max_kw: v.max_kw,
                min_kw: 0.0,
                priority: if v.emergency {
                    Priority::Emergency
                } else {
                    Priority::Normal
                },
                v2g: None,
            }
        })
        .collect();
    let problem = Problem {
        slot_minutes: SLOT_MINUTES,
        capacity_kw,
        price,
        sessions,
    };
    let plan = orderly_schedule::solve_offline(&problem)?;
    let mut load = vec![0.0; n_slots];
    let mut reference = Reference {
        cars: cars.len(),
        wanted_kwh: cars.iter().map(|v| v.energy_kwh).sum(),
        delivered_kwh: 0.0,
        full: 0,
        cost_cny: 0.0,
        peak_kw: 0.0,
    };
    for session in &plan.sessions {
        let visit = cars[session.id as usize];
        reference.delivered_kwh += session.energy_kwh;
        if session.energy_kwh + (0.01 * visit.energy_kwh).max(0.1) >= visit.energy_kwh {
            reference.full += 1;
        }
        // Priced as the live summary prices it: emergencies at the emergency price.
        reference.cost_cny += if visit.emergency {
            session.energy_kwh * emergency_price
        } else {
            session.cost_cny
        };
        for (k, p) in session.power_kw.iter().enumerate() {
            load[k] += p.max(0.0);
        }
    }
    let per_quarter = (15 / SLOT_MINUTES) as usize;
    reference.peak_kw = load
        .chunks(per_quarter)
        .map(|q| q.iter().sum::<f64>() / per_quarter as f64)
        .fold(0.0, f64::max);
    Ok(reference)
}

impl Reference {
    pub fn describe(&self) -> String {
        format!(
            "offline reference for day 1 (every car known in advance, engine optimum): {} cars get {:.1} of {:.1} kWh wanted ({} with all of it), peak {:.1} kW, {:.2} CNY",
            self.cars, self.delivered_kwh, self.wanted_kwh, self.full, self.peak_kw, self.cost_cny
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::replay::{ReplaySpec, read, shanghai};

    #[test]
    fn the_default_day_is_feasible_under_the_demo_capacity() {
        let replay = read(
            &ReplaySpec {
                chargers: 60,
                from: "2020-01-15".parse().unwrap(),
                days: 1,
                demo_day: "2026-11-26".parse().unwrap(),
                tz: shanghai(),
                car_kw: None,
            },
            &orderly_sim::default_data_file("norway-residential/sessions.csv"),
            &orderly_sim::default_data_file("norway-residential/users.csv"),
        )
        .unwrap();
        let sizing = Sizing::for_community(60, replay.uncontrolled().first_day_peak());
        let tariff = Tariff::read(&orderly_sim::default_data_file(
            "tariffs/beijing-ev-tou-2016.json",
        ))
        .unwrap();
        let r = day_one(&replay, &sizing, &tariff, 1.5).unwrap();
        assert_eq!(r.cars, replay.visit_count());
        // The sizing leaves room for every wish (up to the slot rule's rounding).
        assert!(r.delivered_kwh >= 0.97 * r.wanted_kwh, "{}", r.describe());
        assert!(r.peak_kw <= sizing.max_capacity_kw() + 1e-6);
    }
}
