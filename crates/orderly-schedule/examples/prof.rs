use orderly_schedule::{Priority, Problem, Session, solve_offline};
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

fn main() {
    let n: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    let arb = std::env::args().nth(2).is_some();
    let pr = problem(n, arb);
    let t = std::time::Instant::now();
    let plan = solve_offline(&pr).unwrap();
    let e: f64 = plan.sessions.iter().map(|s| s.energy_kwh).sum();
    let want: f64 = pr.sessions.iter().map(|s| s.energy_kwh).sum();
    eprintln!("n={n} time={:?} energy {e:.3}/{want:.3}", t.elapsed());
}
