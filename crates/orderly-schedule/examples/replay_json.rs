//! Replay a [`Problem`] (JSON) through the online planner, slot by slot, and compare with the
//! offline optimum. The second file holds the forecast's history:
//! `{"history": [HistoricSession…], "days": DaysObserved, "calendar": Calendar}`.
//!
//! Run: `cargo run --release -p orderly-schedule --example replay_json -- problem.json history.json [forecast_scale [lookahead_slots]]`

use orderly_schedule::{
    Calendar, DaysObserved, Forecast, HistoricSession, OnlineConfig, OnlinePlanner, Problem,
    Session, solve_offline,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct History {
    history: Vec<HistoricSession>,
    days: DaysObserved,
    calendar: Calendar,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err(
            "usage: replay_json PROBLEM.json HISTORY.json [FORECAST_SCALE [LOOKAHEAD_SLOTS]]"
                .into(),
        );
    }
    let problem: Problem = serde_json::from_str(&std::fs::read_to_string(&args[1])?)?;
    let hist: History = serde_json::from_str(&std::fs::read_to_string(&args[2])?)?;
    let scale: f64 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(1.0);
    let best = solve_offline(&problem)?;
    let off_e: f64 = best.sessions.iter().map(|s| s.energy_kwh).sum();
    let off_c: f64 = best.sessions.iter().map(|s| s.cost_cny).sum();

    let forecast = Forecast::learn(problem.slot_minutes, hist.days, &hist.history)?;
    let planner = OnlinePlanner::new(
        forecast,
        hist.calendar,
        OnlineConfig {
            forecast_scale: scale,
            lookahead_slots: args
                .get(4)
                .map(|s| s.parse())
                .transpose()?
                .unwrap_or((1440 / problem.slot_minutes) as usize),
            ..OnlineConfig::for_slot_minutes(problem.slot_minutes)
        },
    );
    let h = f64::from(problem.slot_minutes) / 60.0;
    let mut left: Vec<f64> = problem.sessions.iter().map(|s| s.energy_kwh).collect();
    let (mut e, mut c, mut over, mut worst_ms) = (0.0, 0.0, 0usize, 0.0f64);
    let mut times = Vec::new();
    for t in 0..problem.price.len() {
        let here: Vec<usize> = (0..problem.sessions.len())
            .filter(|&i| {
                let s = &problem.sessions[i];
                s.arrival_slot <= t && t < s.departure_slot && left[i] > 1e-9
            })
            .collect();
        if here.is_empty() {
            continue;
        }
        let now = Problem {
            sessions: here
                .iter()
                .map(|&i| Session {
                    energy_kwh: left[i],
                    ..problem.sessions[i].clone()
                })
                .collect(),
            ..problem.clone()
        };
        let t0 = std::time::Instant::now();
        let plan = planner.plan(t, &now)?;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        worst_ms = worst_ms.max(ms);
        times.push(ms);
        let mut load = 0.0;
        for (k, &i) in here.iter().enumerate() {
            let kw = plan.sessions[k].power_kw[t];
            left[i] -= kw * h;
            e += kw * h;
            c += kw * h * problem.price[t];
            load += kw;
        }
        if load > problem.capacity_kw[t] + 1e-6 {
            over += 1;
        }
    }
    let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
    println!(
        "offline {off_e:.3} kWh {off_c:.3} CNY | online {e:.3} kWh ({:.3} %) {c:.3} CNY ({:.4}×) | over capacity {over} | re-plan mean {mean:.3} ms max {worst_ms:.3} ms",
        100.0 * e / off_e,
        c / off_c
    );
    Ok(())
}
