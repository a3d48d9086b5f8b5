//! Quality benchmark: every location with at least `--min-sessions` sessions in the window, at
//! each capacity fraction, every policy side by side with the offline optimum as yardstick;
//! prints a markdown table. Run through `bench/simulate/quality.sh`.

use clap::Parser;
use orderly_sim::plant::Plant;
use orderly_sim::{Inputs, Metrics, Policy, SimulateArgs, engine, simulate};

#[derive(Parser)]
#[command(about = "All policies on every busy Norway location, as a markdown table")]
struct Cli {
    /// First day of the window.
    #[arg(long, default_value = "2019-11-04")]
    from: jiff::civil::Date,
    #[arg(long, default_value_t = 7)]
    days: u32,
    #[arg(long, default_value_t = 5)]
    slot_minutes: u32,
    #[arg(long, num_args = 1.., default_values_t = [0.15, 0.25, 0.40])]
    fractions: Vec<f64>,
    #[arg(long, default_value_t = 100)]
    min_sessions: usize,
    /// Also run the engine's policies with this share of V2G cars (0 to skip).
    #[arg(long, default_value_t = 0.3)]
    v2g_share: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    let base = SimulateArgs {
        sessions: None,
        users: None,
        soc: None,
        location: String::new(),
        from: cli.from,
        days: cli.days,
        slot_minutes: cli.slot_minutes,
        capacity_fraction: 0.25,
        tariff: None,
        v2g_share: 0.0,
        policy: Policy::OfflineOptimal,
        plan_out: None,
    };
    let inputs = Inputs::read(&base)?;
    let mut locations: Vec<&str> = inputs
        .sessions
        .iter()
        .map(|s| s.location.as_str())
        .collect();
    locations.sort_unstable();
    locations.dedup();

    println!(
        "Window {} + {} days, {}-minute slots, Beijing TOU tariff. \
         Energy and cost relative to the offline optimum without V2G.\n",
        cli.from, cli.days, cli.slot_minutes
    );
    println!(
        "| location | sessions | fraction | cap kW | policy | energy % req. | energy / opt. | cost CNY | cost / opt. | fully served % | peak kW | slots over cap | max over kW | re-plan ms mean / p95 / max | V2G out kWh | floor viol. | V2G cars short (of them, got less than without V2G) / V2G cars |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for location in locations {
        let mut args = base.clone();
        args.location = location.to_owned();
        for &fraction in &cli.fractions {
            args.capacity_fraction = fraction;
            let scenario = match inputs.scenario(args.window()) {
                Ok(s) if s.sessions.len() >= cli.min_sessions => s,
                _ => continue,
            };
            let none = vec![None; scenario.sessions.len()];
            let (opt, _) = simulate(&scenario, none.clone(), Policy::OfflineOptimal)?;
            let mut rows: Vec<(String, Metrics, String)> = Vec::new();
            // Energy per car without V2G, per policy, to tell V2G's shortfalls from capacity's.
            let mut without: Vec<(Policy, Vec<f64>)> = Vec::new();
            for policy in Policy::ALL {
                let (m, plant) = simulate(&scenario, none.clone(), policy)?;
                without.push((
                    policy,
                    (0..scenario.sessions.len())
                        .map(|i| plant.delivered_kwh(i))
                        .collect(),
                ));
                rows.push((policy.name().to_owned(), m, "–".to_owned()));
            }
            // Forecast-free receding horizon: the offline solver on the cars plugged in now,
            // re-run at each event. Shows what the online planner's forecast is for.
            let mut plant = Plant::new(&scenario, none.clone());
            let times = engine::receding_horizon(&mut plant, engine::Replan::AtEvents, |_, p| {
                orderly_schedule::solve_offline(p)
            })?;
            rows.push((
                "mpc without forecast".to_owned(),
                Metrics::measure("mpc", &plant, &times),
                "–".to_owned(),
            ));
            if cli.v2g_share > 0.0 {
                let v2g = inputs.v2g(&scenario, cli.v2g_share)?;
                let engine_policies = Policy::ALL
                    .into_iter()
                    .filter(|p| matches!(p, Policy::Online | Policy::OfflineOptimal));
                for policy in engine_policies {
                    let (m, plant) = simulate(&scenario, v2g.clone(), policy)?;
                    let name = format!("{} + V2G {:.0} %", policy.name(), cli.v2g_share * 100.0);
                    // V2G cars that left with less than they wanted, and with less than the
                    // same policy gave them without V2G, of all V2G cars.
                    let tol = orderly_sim::metrics::FULLY_SERVED_TOLERANCE_KWH;
                    let before = &without.iter().find(|(p, _)| *p == policy).map(|w| &w.1);
                    let cars: Vec<usize> = (0..scenario.sessions.len())
                        .filter(|&i| plant.v2g[i].is_some())
                        .collect();
                    let short = cars
                        .iter()
                        .filter(|&&i| {
                            plant.delivered_kwh(i) < scenario.sessions[i].wanted_kwh - tol
                        })
                        .count();
                    let worse = cars
                        .iter()
                        .filter(|&&i| before.is_some_and(|b| plant.delivered_kwh(i) < b[i] - tol))
                        .count();
                    rows.push((name, m, format!("{short} ({worse}) / {}", cars.len())));
                }
            }
            for (name, m, v2g_short) in rows {
                println!(
                    "| {location} | {} | {fraction:.2} | {:.3} | {name} | {:.3} | {:.5} | {:.2} | {:.4} | {:.1} | {:.3} | {} | {:.3} | {:.3} / {:.3} / {:.3} | {:.1} | {} | {v2g_short} |",
                    m.sessions,
                    m.capacity_kw,
                    m.energy_delivered_pct,
                    m.energy_delivered_kwh / opt.energy_delivered_kwh,
                    m.cost_cny,
                    m.cost_cny / opt.cost_cny,
                    m.sessions_fully_served_pct,
                    m.peak_kw,
                    m.slots_over_capacity,
                    m.max_overshoot_kw,
                    m.replan_ms_mean,
                    m.replan_ms_p95,
                    m.replan_ms_max,
                    m.v2g_discharged_kwh,
                    m.floor_violations,
                );
            }
        }
    }
    Ok(())
}
