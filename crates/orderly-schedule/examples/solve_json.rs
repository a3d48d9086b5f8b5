//! Solve a [`Problem`] stored as JSON and print the totals: a quick way to check the engine on an
//! instance built elsewhere (for example by the simulator's input rules).
//!
//! Run: `cargo run --release -p orderly-schedule --example solve_json -- problem.json`

use orderly_schedule::{Problem, solve_offline};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: solve_json PROBLEM.json")?;
    let problem: Problem = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let t = std::time::Instant::now();
    let plan = solve_offline(&problem)?;
    let took = t.elapsed();
    let requested: f64 = problem.sessions.iter().map(|s| s.energy_kwh).sum();
    let energy: f64 = plan.sessions.iter().map(|s| s.energy_kwh).sum();
    let cost: f64 = plan.sessions.iter().map(|s| s.cost_cny).sum();
    let peak = (0..problem.price.len())
        .map(|t| plan.sessions.iter().map(|s| s.power_kw[t]).sum::<f64>())
        .fold(0.0, f64::max);
    println!(
        "sessions {} slots {} requested {requested:.3} kWh delivered {energy:.3} kWh cost {cost:.4} CNY peak {peak:.3} kW solve {took:?}",
        problem.sessions.len(),
        problem.price.len()
    );
    Ok(())
}
