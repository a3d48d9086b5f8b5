//! The `orderly simulate` arguments as clap parses them.

use clap::Parser;
use orderly_sim::{Policy, SimulateArgs};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: SimulateArgs,
}

fn parse(args: &[&str]) -> Result<SimulateArgs, clap::Error> {
    Cli::try_parse_from(std::iter::once("simulate").chain(args.iter().copied())).map(|c| c.args)
}

#[test]
fn defaults_are_the_acceptance_week() {
    let a = parse(&[]).unwrap();
    assert_eq!(a.location, "OSL_S");
    assert_eq!(a.from.to_string(), "2019-11-04");
    assert_eq!((a.days, a.slot_minutes), (7, 5));
    assert_eq!(a.capacity_fraction, 0.25);
    assert_eq!(a.v2g_share, 0.0);
    assert_eq!(a.sessions, None);
    assert_eq!(a.plan_out, None);
}

#[test]
fn every_flag_parses() {
    let a = parse(&[
        "--sessions",
        "s.csv",
        "--users",
        "u.csv",
        "--location",
        "ASK",
        "--from",
        "2020-01-06",
        "--days",
        "3",
        "--slot-minutes",
        "15",
        "--capacity-fraction",
        "0.4",
        "--tariff",
        "t.json",
        "--v2g-share",
        "0.3",
        "--policy",
        "llf",
        "--plan-out",
        "plan.csv",
    ])
    .unwrap();
    assert_eq!(a.sessions.unwrap().to_str(), Some("s.csv"));
    assert_eq!(a.users.unwrap().to_str(), Some("u.csv"));
    assert_eq!(a.location, "ASK");
    assert_eq!(a.from.to_string(), "2020-01-06");
    assert_eq!((a.days, a.slot_minutes), (3, 15));
    assert_eq!((a.capacity_fraction, a.v2g_share), (0.4, 0.3));
    assert_eq!(a.tariff.unwrap().to_str(), Some("t.json"));
    assert_eq!(a.policy, Policy::Llf);
    assert_eq!(a.plan_out.unwrap().to_str(), Some("plan.csv"));
    for policy in Policy::ALL {
        assert_eq!(parse(&["--policy", policy.name()]).unwrap().policy, policy);
    }
}

#[test]
fn bad_values_are_refused() {
    assert!(parse(&["--slot-minutes", "10"]).is_err());
    assert!(parse(&["--from", "2019-13-01"]).is_err());
    assert!(parse(&["--policy", "fifo"]).is_err());
}
