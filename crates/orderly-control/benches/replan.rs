//! One re-plan of a 500-charger community with ~350 running sessions: `handle_timeout` when the
//! re-plan is due plus draining the actions it produces (the TxProfiles and guards that changed),
//! and the engine's share of it (`OnlinePlanner::plan` on the same problem). Target (issue 4):
//! ≤ 20 ms per re-plan.
//!
//! `cargo bench -p orderly-control`

use divan::{Bencher, black_box};
use jiff::{SignedDuration, Timestamp};
use orderly_control::community::HourlyTariff;
use orderly_control::{
    Action, ChargerSpec, CommunitySpec, Controller, ControllerConfig, Input, ProfileOutcome,
    RateUnit, ResolvedWish, WishSource,
};
use orderly_core::ChargePointId;
use std::sync::OnceLock;

fn main() {
    let (ctl, now) = steady();
    let n_tx = ctl.plan_view().sessions.len();
    let p = ctl.last_problem().expect("planned");
    let sends = |secs: i64| {
        let mut c = ctl.clone();
        c.handle_timeout(*now + SignedDuration::from_secs(secs));
        let mut n = 0;
        while c.poll_action().is_some() {
            n += 1;
        }
        n
    };
    // The whole renewal with every answer fed back: the idle guards (one per idle charger,
    // decreases), then the pairs (two requests each; a pair that lowers some instants goes
    // as its pointwise minimum first, then whole).
    let renewal = |secs: i64| {
        let mut c = ctl.clone();
        let t = *now + SignedDuration::from_secs(secs);
        c.handle_timeout(t);
        let (mut n, mut idle) = (0, 0);
        loop {
            let mut k = 0;
            while let Some(a) = c.poll_action() {
                if let Action::SetProfile {
                    request,
                    charger,
                    request_body,
                } = a
                {
                    k += 1;
                    let p = &request_body.cs_charging_profiles;
                    if request_body.connector_id > 0
                        && p.transaction_id.is_none()
                        && p.charging_schedule
                            .charging_schedule_period
                            .iter()
                            .all(|x| x.limit == 0.0)
                        && p.charging_schedule.start_schedule.map(|s| s.0) < Some(t)
                    {
                        idle += 1;
                    }
                    c.handle(
                        Input::ProfileResult {
                            charger,
                            request,
                            outcome: ProfileOutcome::Accepted,
                        },
                        t,
                    );
                }
            }
            if k == 0 {
                break;
            }
            n += k;
        }
        (n, idle)
    };
    let (total, idle) = renewal(180);
    println!(
        "community: 500 chargers, {n_tx} sessions; engine problem {} slots × {} sessions; \
         requests before answers: {} at a re-plan a minute on, {} when every expiry moves on; \
         that whole renewal with answers: {total} requests ({idle} idle guards)",
        p.capacity_kw.len(),
        p.sessions.len(),
        sends(60),
        sends(180)
    );
    divan::main();
}

fn answer(ctl: &mut Controller, now: Timestamp) -> usize {
    let mut n = 0;
    while let Some(a) = ctl.poll_action() {
        if let Action::SetProfile {
            request, charger, ..
        }
        | Action::ClearProfile {
            request, charger, ..
        } = a
        {
            n += 1;
            ctl.handle(
                Input::ProfileResult {
                    charger,
                    request,
                    outcome: ProfileOutcome::Accepted,
                },
                now,
            );
        }
    }
    n
}

/// A community in steady state: every charger connected and holding its profiles, 350 cars
/// plugged in over the evening with varied needs, re-planned and answered.
fn steady() -> &'static (Controller, Timestamp) {
    static STATE: OnceLock<(Controller, Timestamp)> = OnceLock::new();
    STATE.get_or_init(|| {
        let n = 500;
        let community = CommunitySpec {
            id: "bench".into(),
            rating_kva: 1600.0,
            power_factor: 0.9,
            base_load_kw: (0..24)
                .map(|h| if (18..22).contains(&h) { 700.0 } else { 450.0 })
                .collect(),
            timezone: "Asia/Shanghai".into(),
            tariff: HourlyTariff {
                cny_per_kwh: (0..24)
                    .map(|h| match h {
                        23 | 0..=6 => 0.3,
                        10..=14 | 18..=20 => 1.0,
                        _ => 0.6,
                    })
                    .collect(),
            },
            emergency_price_cny_per_kwh: 1.5,
            max_emergencies: Some(5),
            default_stay_hours: 10.0,
            default_energy_kwh: 10.0,
            chargers: (0..n)
                .map(|i| ChargerSpec {
                    id: ChargePointId::parse(format!("CP{i:04}")).unwrap(),
                    phases: if i % 10 == 0 { 3 } else { 1 },
                    voltage_v: 220.0,
                    max_current_a: if i % 10 == 0 { 16.0 } else { 32.0 },
                    min_current_a: 6.0,
                    rate_unit: if i % 7 == 0 {
                        RateUnit::Watts
                    } else {
                        RateUnit::Amperes
                    },
                })
                .collect(),
        };
        let chargers: Vec<ChargePointId> =
            community.chargers.iter().map(|c| c.id.clone()).collect();
        let mut now: Timestamp = "2026-11-26T10:00:00Z".parse().unwrap(); // 18:00 local
        let mut ctl = Controller::new(community, ControllerConfig::default(), now).unwrap();
        for c in &chargers {
            ctl.handle(Input::ChargerConnected { charger: c.clone() }, now);
        }
        ctl.handle_timeout(now);
        answer(&mut ctl, now);
        for (k, c) in chargers.iter().take(350).enumerate() {
            now += SignedDuration::from_secs(5);
            let stay_h = 6.0 + (k % 13) as f64;
            ctl.handle(
                Input::TransactionStarted {
                    transaction_id: k as i64 + 1,
                    charger: c.clone(),
                    connector_id: 1,
                    meter_start_wh: 0,
                    at: now,
                    wish: ResolvedWish {
                        departure: now + SignedDuration::from_secs_f64(stay_h * 3600.0),
                        energy_kwh: 5.0 + (k % 29) as f64,
                        emergency: k % 97 == 0,
                        source: WishSource::Explicit,
                    },
                },
                now,
            );
            if k % 50 == 49 {
                ctl.handle_timeout(now);
                answer(&mut ctl, now);
            }
        }
        for _ in 0..3 {
            now += SignedDuration::from_secs(60);
            ctl.handle_timeout(now);
            while answer(&mut ctl, now) > 0 {}
        }
        (ctl, now)
    })
}

/// One re-plan when due (the interval elapsed; the plan moves on by a minute) and the actions
/// drained (not answered).
#[divan::bench(sample_count = 30)]
fn replan(bencher: Bencher) {
    let (base, now) = steady();
    let t = *now + SignedDuration::from_secs(60);
    bencher
        .with_inputs(|| base.clone())
        .bench_local_values(|mut ctl| {
            ctl.handle_timeout(t);
            let mut n = 0;
            while let Some(a) = ctl.poll_action() {
                black_box(&a);
                n += 1;
            }
            black_box(n);
            ctl
        });
}

/// As `replan`, after an event (an emergency car arrives) and with every answer fed back, so
/// the gated increases go out too: the whole controller side of one plan change.
#[divan::bench(sample_count = 30)]
fn replan_after_arrival_with_answers(bencher: Bencher) {
    let (base, now) = steady();
    let t = *now + SignedDuration::from_secs(60);
    bencher
        .with_inputs(|| base.clone())
        .bench_local_values(|mut ctl| {
            ctl.handle(
                Input::TransactionStarted {
                    transaction_id: 10_000,
                    charger: ChargePointId::parse("CP0400").unwrap(),
                    connector_id: 1,
                    meter_start_wh: 0,
                    at: t,
                    wish: ResolvedWish {
                        departure: t + SignedDuration::from_hours(3),
                        energy_kwh: 20.0,
                        emergency: true,
                        source: WishSource::Explicit,
                    },
                },
                t,
            );
            ctl.handle_timeout(t);
            while answer(&mut ctl, t) > 0 {}
            ctl
        });
}

/// The engine's share: `OnlinePlanner::plan` on the problem the last re-plan gave it.
#[divan::bench(sample_count = 30)]
fn engine_only(bencher: Bencher) {
    let (base, _) = steady();
    let problem = base.last_problem().expect("planned").clone();
    let planner = base.planner().clone();
    bencher.bench(|| black_box(planner.plan(0, black_box(&problem)).unwrap()));
}

/// The worst case: the re-plan at which every TxProfile's expiry moves on (all renewed), with
/// every answer fed back.
#[divan::bench(sample_count = 30)]
fn replan_renewing_all_with_answers(bencher: Bencher) {
    let (base, now) = steady();
    // The expiry grid is validity − 2 × interval = 180 s with the defaults.
    let t = *now + SignedDuration::from_secs(180);
    bencher
        .with_inputs(|| base.clone())
        .bench_local_values(|mut ctl| {
            ctl.handle_timeout(t);
            let mut n = 0;
            loop {
                let k = answer(&mut ctl, t);
                if k == 0 {
                    break;
                }
                n += k;
            }
            black_box(n);
            ctl
        });
}
