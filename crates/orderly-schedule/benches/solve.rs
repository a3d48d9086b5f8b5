//! Solve times: offline optimum and one online re-plan, 288 five-minute slots (12:00 to 12:00),
//! residential windows (arrivals 16:00–23:00, departures 06:00–09:00), Beijing time-of-use prices.
//! Run: `cargo bench -p orderly-schedule`.

use orderly_schedule::{
    Calendar, DayType, DaysObserved, Forecast, HistoricSession, OnlineConfig, OnlinePlanner,
    Priority, Problem, Session, V2g, solve_offline,
};

fn main() {
    divan::main();
}

/// Deterministic pseudo-random numbers (splitmix64), so every run solves the same instances.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() * (hi - lo) as f64) as usize
    }
}

const SLOTS: usize = 288;

/// Beijing bands for the slot starting `12:00 + 5 min · t`.
fn beijing(t: usize) -> f64 {
    let hour = (12 + t / 12) % 24;
    match hour {
        0..=6 | 23 => 0.3946,
        7..=9 | 15..=17 | 21..=22 => 0.6950,
        _ => 1.0044,
    }
}

fn sessions(n: usize, seed: u64) -> Vec<Session> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|i| {
            let max_kw = [3.6, 7.4, 11.0][rng.range(0, 3)];
            Session {
                id: i as u64,
                arrival_slot: rng.range(48, 132),
                departure_slot: rng.range(216, 252),
                energy_kwh: 5.0 + 35.0 * rng.next(),
                max_kw,
                min_kw: 0.0,
                priority: Priority::Normal,
                v2g: None,
            }
        })
        .collect()
}

/// Capacity a quarter of the sum of charger ratings: tight in the valley, enough overall.
fn problem(n: usize, arbitrary_prices: bool) -> Problem {
    let sessions = sessions(n, 42 + n as u64);
    let cap = 0.25 * sessions.iter().map(|s| s.max_kw).sum::<f64>();
    let mut rng = Rng(7);
    let price = (0..SLOTS)
        .map(|t| {
            if arbitrary_prices {
                beijing(t) * (0.9 + 0.2 * rng.next())
            } else {
                beijing(t)
            }
        })
        .collect();
    Problem {
        slot_minutes: 5,
        capacity_kw: vec![cap; SLOTS],
        price,
        sessions,
    }
}

#[divan::bench(args = [50, 200, 1000, 10000], sample_count = 10)]
fn offline_tariff(bencher: divan::Bencher, n: usize) {
    let pr = problem(n, false);
    bencher.bench(|| solve_offline(divan::black_box(&pr)).unwrap());
}

#[divan::bench(args = [50, 200, 1000], sample_count = 10)]
fn offline_arbitrary_prices(bencher: divan::Bencher, n: usize) {
    let pr = problem(n, true);
    bencher.bench(|| solve_offline(divan::black_box(&pr)).unwrap());
}

/// One re-plan at 20:00 (slot 96) with `n` cars plugged in and the forecast of a community of
/// 1.5 × `n` homes learned from 20 days of history (ghosts for the rest of the evening).
fn online_setup(n: usize) -> (OnlinePlanner, usize, Problem) {
    online_setup_with(n, OnlineConfig::for_slot_minutes(5))
}

fn online_setup_with(n: usize, config: OnlineConfig) -> (OnlinePlanner, usize, Problem) {
    let now = 96;
    let mut pr = problem(n, false);
    for s in &mut pr.sessions {
        s.arrival_slot = s.arrival_slot.min(now);
    }
    let history: Vec<HistoricSession> = sessions(n * 30, 1)
        .iter()
        .map(|s| HistoricSession {
            day_type: DayType::Weekday,
            // Slot 0 of the bench horizon is 12:00, slot 144 of the day.
            arrival_slot_of_day: (s.arrival_slot + 144) % 288,
            duration_slots: s.departure_slot - s.arrival_slot,
            energy_kwh: s.energy_kwh,
            max_kw: s.max_kw,
        })
        .collect();
    let fc = Forecast::learn(
        5,
        DaysObserved {
            weekdays: 20,
            weekend_days: 0,
        },
        &history,
    )
    .unwrap();
    let planner = OnlinePlanner::new(
        fc,
        Calendar {
            slot_of_day_at_zero: 144,
            day_types: vec![DayType::Weekday],
        },
        config,
    );
    (planner, now, pr)
}

#[divan::bench(args = [50, 200, 1000, 10000], sample_count = 10)]
fn online_replan(bencher: divan::Bencher, n: usize) {
    let (planner, now, pr) = online_setup(n);
    bencher.bench(|| planner.plan(now, divan::black_box(&pr)).unwrap());
}

/// The same re-plan with the upper-quantile hedge on (`upper_z` 1): two fast-path solves.
#[divan::bench(args = [50, 200, 1000], sample_count = 20)]
fn online_replan_hedged(bencher: divan::Bencher, n: usize) {
    let (planner, now, pr) = online_setup_with(
        n,
        OnlineConfig {
            upper_z: 1.0,
            ..OnlineConfig::for_slot_minutes(5)
        },
    );
    bencher.bench(|| planner.plan(now, divan::black_box(&pr)).unwrap());
}

/// Offline with 30 % of the cars offering V2G (60 kWh battery, half full, floor 20 kWh, 7 kW
/// discharge, 95 % each way, 0.05 CNY/kWh wear): the V2G cars go through the LP.
#[divan::bench(args = [50, 200], sample_count = 5)]
fn offline_v2g_30pct(bencher: divan::Bencher, n: usize) {
    let mut pr = problem(n, false);
    for s in pr.sessions.iter_mut().filter(|s| s.id % 10 < 3) {
        s.v2g = Some(V2g {
            battery_kwh: 60.0,
            soc_kwh: 30.0,
            floor_kwh: 20.0,
            max_discharge_kw: 7.0,
            charge_efficiency: 0.95,
            discharge_efficiency: 0.95,
            wear_cny_per_kwh: 0.05,
        });
    }
    bencher.bench(|| solve_offline(divan::black_box(&pr)).unwrap());
}
