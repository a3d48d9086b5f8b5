//! A small synthetic community and a replay loop, to compare the online planner with the offline
//! optimum without the simulator crate.

use orderly_schedule::{
    Calendar, DayType, DaysObserved, Forecast, HistoricSession, OnlineConfig, OnlinePlanner,
    Priority, Problem, Session, solve_offline,
};

pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() * (hi - lo) as f64) as usize
    }
}

/// A recorded visit: arrival slot, departure slot, energy (kWh), household.
pub type Visit = (usize, usize, f64, usize);

pub const MINUTES: u32 = 15;
pub const SPD: usize = 96;

pub fn day_type(day: usize) -> DayType {
    if day % 7 >= 5 {
        DayType::Weekend
    } else {
        DayType::Weekday
    }
}

/// Beijing time-of-use price of slot `t` (slot 0 at midnight).
pub fn price(t: usize) -> f64 {
    match (t % SPD) / 4 {
        0..=6 | 23 => 0.3946,
        7..=9 | 15..=17 | 21..=22 => 0.6950,
        _ => 1.0044,
    }
}

/// `days` days of a community of `homes` households (rates fixed per household): evening arrivals,
/// morning departures, some daytime top-ups at weekends.
pub fn community(homes: usize, days: usize, seed: u64) -> (Vec<f64>, Vec<Visit>) {
    let mut rng = Rng(seed);
    let rates: Vec<f64> = (0..homes)
        .map(|_| [3.6, 7.4, 11.0][rng.range(0, 3)])
        .collect();
    let mut out = Vec::new();
    for day in 0..days {
        for (h, _) in rates.iter().enumerate() {
            if rng.next() > 0.7 {
                continue;
            }
            let (a, dur) = if day_type(day) == DayType::Weekend && rng.next() < 0.3 {
                (day * SPD + rng.range(40, 64), rng.range(4, 16))
            } else {
                (day * SPD + rng.range(64, 92), rng.range(36, 60))
            };
            out.push((a, a + dur, 4.0 + 26.0 * rng.next(), h));
        }
    }
    (rates, out)
}

pub struct Outcome {
    pub energy: f64,
    pub cost: f64,
    pub over_capacity: usize,
}

/// Replay `days` days after `history_days` days of history; returns (online, offline) outcomes.
pub fn compare(
    homes: usize,
    history_days: usize,
    days: usize,
    seed: u64,
    forecast: bool,
) -> (Outcome, Outcome) {
    let (rates, all) = community(homes, history_days + days, seed);
    let cap = 0.25 * rates.iter().sum::<f64>();
    let start = history_days * SPD;
    let history: Vec<HistoricSession> = all
        .iter()
        .filter(|s| s.0 < start)
        .map(|&(a, d, e, h)| HistoricSession {
            day_type: day_type(a / SPD),
            arrival_slot_of_day: a % SPD,
            duration_slots: d - a,
            energy_kwh: e,
            max_kw: rates[h],
        })
        .collect();
    let mut obs = DaysObserved::default();
    for d in 0..history_days {
        match day_type(d) {
            DayType::Weekday => obs.weekdays += 1,
            DayType::Weekend => obs.weekend_days += 1,
        }
    }
    let fc = if forecast {
        Forecast::learn(MINUTES, obs, &history).unwrap()
    } else {
        Forecast::none(MINUTES).unwrap()
    };
    let slots = days * SPD;
    let h = f64::from(MINUTES) / 60.0;
    // Sessions of the replayed window (slot 0 = its first midnight), capped at their rate.
    let sessions: Vec<Session> = all
        .iter()
        .filter(|s| s.0 >= start)
        .enumerate()
        .map(|(i, &(a, d, e, hh))| {
            let (a, d) = (a - start, (d - start).min(slots));
            Session {
                id: i as u64,
                arrival_slot: a,
                departure_slot: d,
                energy_kwh: e.min(rates[hh] * (d - a) as f64 * h),
                max_kw: rates[hh],
                min_kw: 0.0,
                priority: Priority::Normal,
                v2g: None,
            }
        })
        .collect();
    let prices: Vec<f64> = (0..slots).map(|t| price(start + t)).collect();
    let full = Problem {
        slot_minutes: MINUTES,
        capacity_kw: vec![cap; slots],
        price: prices.clone(),
        sessions: sessions.clone(),
    };
    let best = solve_offline(&full).unwrap();
    let offline = Outcome {
        energy: best.sessions.iter().map(|s| s.energy_kwh).sum(),
        cost: best.sessions.iter().map(|s| s.cost_cny).sum(),
        over_capacity: 0,
    };

    let planner = OnlinePlanner::new(
        fc,
        Calendar {
            slot_of_day_at_zero: 0,
            day_types: (0..days).map(|d| day_type(history_days + d)).collect(),
        },
        OnlineConfig {
            forecast_scale: 1.0,
            ..OnlineConfig::for_slot_minutes(MINUTES)
        },
    );
    let mut left: Vec<f64> = sessions.iter().map(|s| s.energy_kwh).collect();
    let mut online = Outcome {
        energy: 0.0,
        cost: 0.0,
        over_capacity: 0,
    };
    for t in 0..slots {
        let here: Vec<usize> = (0..sessions.len())
            .filter(|&i| {
                sessions[i].arrival_slot <= t && t < sessions[i].departure_slot && left[i] > 1e-9
            })
            .collect();
        if here.is_empty() {
            continue;
        }
        let pr = Problem {
            slot_minutes: MINUTES,
            capacity_kw: full.capacity_kw.clone(),
            price: prices.clone(),
            sessions: here
                .iter()
                .map(|&i| Session {
                    energy_kwh: left[i],
                    ..sessions[i].clone()
                })
                .collect(),
        };
        let plan = planner.plan(t, &pr).unwrap();
        let mut load = 0.0;
        for (k, &i) in here.iter().enumerate() {
            let kw = plan.sessions[k].power_kw[t];
            left[i] -= kw * h;
            online.energy += kw * h;
            online.cost += kw * h * prices[t];
            load += kw;
        }
        if load > cap + 1e-6 {
            online.over_capacity += 1;
        }
    }
    (online, offline)
}
