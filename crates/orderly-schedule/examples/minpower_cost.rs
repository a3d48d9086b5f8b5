//! What the minimum-power rule costs against the relaxation, on the benchmark's residential day
//! (288 five-minute slots, Beijing prices, capacity a quarter of the charger ratings) and on a
//! tight variant (capacity a sixth). Minimum power is 6 A: 1.38 kW on single-phase chargers
//! (3.6 and 7.4 kW), 4.14 kW on three-phase ones (11 kW).
//!
//! Run: `cargo run --release -p orderly-schedule --example minpower_cost`

use orderly_schedule::{Plan, Priority, Problem, Session, solve_offline};

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

fn beijing(t: usize) -> f64 {
    match (12 + t / 12) % 24 {
        0..=6 | 23 => 0.3946,
        7..=9 | 15..=17 | 21..=22 => 0.6950,
        _ => 1.0044,
    }
}

fn problem(n: usize, fraction: f64, min_power: bool) -> Problem {
    let mut rng = Rng(42 + n as u64);
    let sessions: Vec<Session> = (0..n)
        .map(|i| {
            let max_kw = [3.6, 7.4, 11.0][rng.range(0, 3)];
            Session {
                id: i as u64,
                arrival_slot: rng.range(48, 132),
                departure_slot: rng.range(216, 252),
                energy_kwh: 5.0 + 35.0 * rng.next(),
                max_kw,
                min_kw: match (min_power, max_kw > 8.0) {
                    (false, _) => 0.0,
                    (true, false) => 1.38,
                    (true, true) => 4.14,
                },
                priority: Priority::Normal,
                v2g: None,
            }
        })
        .collect();
    let cap = fraction * sessions.iter().map(|s| s.max_kw).sum::<f64>();
    Problem {
        slot_minutes: 5,
        capacity_kw: vec![cap; 288],
        price: (0..288).map(beijing).collect(),
        sessions,
    }
}

fn totals(plan: &Plan) -> (f64, f64) {
    (
        plan.sessions.iter().map(|s| s.energy_kwh).sum(),
        plan.sessions.iter().map(|s| s.cost_cny).sum(),
    )
}

fn main() {
    println!(
        "cars  capacity  relaxed kWh  relaxed CNY  min-power kWh  min-power CNY  energy Δ %  cost/kWh Δ %"
    );
    for fraction in [0.25, 1.0 / 6.0] {
        for n in [50, 200, 1000] {
            let (e0, c0) = totals(&solve_offline(&problem(n, fraction, false)).unwrap());
            let (e1, c1) = totals(&solve_offline(&problem(n, fraction, true)).unwrap());
            println!(
                "{n:>5}  {fraction:>8.3}  {e0:>11.3}  {c0:>11.3}  {e1:>13.3}  {c1:>13.3}  {:>10.4}  {:>12.4}",
                100.0 * (e1 - e0) / e0,
                100.0 * ((c1 / e1) / (c0 / e0) - 1.0)
            );
        }
    }
}
