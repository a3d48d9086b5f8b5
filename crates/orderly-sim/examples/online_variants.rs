//! The online policy with a chosen feasibility guard (`OnlineConfig::guard_z`) and re-plan
//! cadence, on every busy Norway location at each capacity fraction; energy and cost relative
//! to the offline optimum. Shows what the guard buys and what it costs (docs/bench-schedule.md).
//!
//!     cargo run --release -p orderly-sim --example online_variants -- --guard-z 2 --every-slot

use clap::Parser;
use orderly_schedule::OnlineConfig;
use orderly_sim::plant::Plant;
use orderly_sim::{Inputs, Metrics, Policy, SimulateArgs, engine, simulate};

#[derive(Parser)]
struct Cli {
    #[arg(long, default_value = "2019-11-04")]
    from: jiff::civil::Date,
    #[arg(long, default_value_t = 7)]
    days: u32,
    #[arg(long, num_args = 1.., default_values_t = [0.15, 0.25, 0.40])]
    fractions: Vec<f64>,
    #[arg(long, num_args = 1.., default_values = ["ASK", "OSL_S", "TRO_R"])]
    locations: Vec<String>,
    /// Feasibility guard: busy scenario at mean + this many sd (negative: off, the default).
    #[arg(long, default_value_t = -1.0, allow_hyphen_values = true)]
    guard_z: f64,
    /// Re-plan at every slot, as the controller does (every 60 s), instead of only at events.
    #[arg(long)]
    every_slot: bool,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    let mut args = SimulateArgs {
        sessions: None,
        users: None,
        soc: None,
        location: String::new(),
        from: cli.from,
        days: cli.days,
        slot_minutes: 5,
        capacity_fraction: 0.25,
        tariff: None,
        v2g_share: 0.0,
        policy: Policy::Online,
        plan_out: None,
    };
    let inputs = Inputs::read(&args)?;
    println!(
        "guard_z {}, re-plan {}",
        cli.guard_z,
        if cli.every_slot {
            "every slot"
        } else {
            "at events"
        }
    );
    println!(
        "| location | fraction | energy % of offline | cost × offline | slots over cap | re-plan ms mean / p95 / max |"
    );
    println!("|---|---|---|---|---|---|");
    for location in &cli.locations {
        for &fraction in &cli.fractions {
            args.location = location.clone();
            args.capacity_fraction = fraction;
            let sc = inputs.scenario(args.window())?;
            let none = vec![None; sc.sessions.len()];
            let (opt, _) = simulate(&sc, none.clone(), Policy::OfflineOptimal)?;
            let config = OnlineConfig {
                guard_z: cli.guard_z,
                ..OnlineConfig::for_slot_minutes(sc.spec.slot_minutes)
            };
            let planner = engine::online_planner_with(&sc, config)?;
            let mut plant = Plant::new(&sc, none);
            let times = if cli.every_slot {
                let mut times = Vec::new();
                for now in 0..sc.n_slots {
                    let problem = engine::problem_now(&plant, now);
                    if problem.sessions.is_empty() {
                        continue;
                    }
                    let began = std::time::Instant::now();
                    let plan = planner.plan(now, &problem)?;
                    times.push(began.elapsed().as_secs_f64() * 1e3);
                    for s in plan.sessions {
                        plant.apply(now, s.id as usize, s.power_kw[now]);
                    }
                }
                times
            } else {
                engine::receding_horizon(&mut plant, |now, p| planner.plan(now, p))?
            };
            let m = Metrics::measure("online", &plant, &times);
            println!(
                "| {location} | {fraction:.2} | {:.3} | {:.4} | {} | {:.2} / {:.2} / {:.2} |",
                100.0 * m.energy_delivered_kwh / opt.energy_delivered_kwh,
                m.cost_cny / opt.cost_cny,
                m.slots_over_capacity,
                m.replan_ms_mean,
                m.replan_ms_p95,
                m.replan_ms_max
            );
        }
    }
    Ok(())
}
