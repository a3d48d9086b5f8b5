//! The controller against simulated charge points (simulated clock): capacity, feasibility,
//! emergencies, grid commands, non-compliance and the safe fallback (Invariant S).

mod common;

use common::{Sim, community, config};
use jiff::SignedDuration;
use orderly_control::{Action, Input};
use proptest::prelude::*;

/// 17:00 Asia/Shanghai.
const EVENING: &str = "2026-11-26T09:00:00Z";
/// 01:00 Asia/Shanghai.
const NIGHT: &str = "2026-11-26T17:00:00Z";

fn assert_safe_now(sim: &Sim) {
    let found = sim.invariant_s_violations(&sim.cps, 24);
    assert!(
        found.is_empty(),
        "Invariant S broken at {}: first {:?}",
        sim.now,
        found[0]
    );
}

#[test]
fn aggregate_within_capacity_and_feasible_cars_full() {
    // 8 chargers, 45 kW rating × pf, 20 kW base (25 kW 18–22): 20–25 kW for charging.
    let mut sim = Sim::new(community(8, 50.0, 20.0), config(), EVENING);
    assert_safe_now(&sim);
    // Demands feasible with room: each within an equal share of the evening capacity.
    let cars = [
        (0, 4.0, 2.0),
        (1, 6.0, 3.0),
        (2, 3.0, 1.5),
        (3, 8.0, 4.0),
        (4, 5.0, 2.5),
        (5, 2.0, 1.0),
        (6, 7.0, 5.0),
        (7, 4.0, 2.0),
    ];
    for (k, &(i, kwh, stay)) in cars.iter().enumerate() {
        sim.plug(i, kwh, stay, 7040.0, false);
        assert_safe_now(&sim);
        sim.run(600 + 60 * k as i64, 10);
        assert_safe_now(&sim);
    }
    sim.run(6 * 3600, 10);
    assert!(
        sim.over.is_empty(),
        "drawn above capacity: {:?}",
        &sim.over[..sim.over.len().min(5)]
    );
    let visits: Vec<_> = sim.cps.iter().flat_map(|c| c.visits.iter()).collect();
    assert_eq!(visits.len(), cars.len());
    for (wanted, got, _) in visits {
        assert!(
            got >= &(wanted * 0.995),
            "short: {got:.0} of {wanted:.0} Wh"
        );
    }
    println!(
        "peak {:.1} % of capacity, {} profile requests",
        sim.peak_ratio * 100.0,
        sim.sent
    );
}

#[test]
fn tight_capacity_is_never_exceeded() {
    // 10 chargers on 12–15 kW: the fallback rotates the minimum, the plan shares the rest.
    let mut sim = Sim::new(community(10, 25.0, 8.0), config(), EVENING);
    for i in 0..10 {
        sim.plug(i, 10.0 + i as f64, 3.0 + 0.5 * i as f64, 7040.0, false);
        sim.run(300, 10);
        assert_safe_now(&sim);
    }
    for _ in 0..12 {
        sim.run(900, 10);
        assert_safe_now(&sim);
    }
    assert!(
        sim.over.is_empty(),
        "drawn above capacity: {:?}",
        &sim.over[..sim.over.len().min(5)]
    );
    assert!(
        sim.peak_ratio > 0.8,
        "the chargers were hardly used: {}",
        sim.peak_ratio
    );
}

#[test]
fn emergency_gets_full_rate_on_the_next_plan() {
    let mut sim = Sim::new(community(4, 25.0, 6.5), config(), NIGHT);
    let mut txs = Vec::new();
    for i in 0..4 {
        txs.push(sim.plug(i, 30.0, 5.0, 11000.0, false));
    }
    sim.run(600, 10);
    let full = sim.cps[0].spec.max_kw() * 1000.0;
    let before = sim.cps[0].limit_w(sim.now);
    assert!(before < full - 500.0, "no contention: {before}");
    let mut wish = sim.ctl.plan_view().sessions[0].wish.clone();
    wish.emergency = true;
    sim.input(Input::Wish {
        transaction_id: txs[0],
        wish,
    });
    sim.timeout();
    let after = sim.cps[0].limit_w(sim.now);
    assert!(after >= full - 22.0, "emergency at {after} W of {full} W");
    let view = sim.ctl.plan_view();
    let s = view
        .sessions
        .iter()
        .find(|s| s.transaction_id == txs[0])
        .unwrap();
    assert!(!s.emergency_waiting);
    assert!(s.expected_cost_cny > 0.0);
    // A second emergency waits: the community allows one at a time.
    let mut wish = view.sessions[1].wish.clone();
    wish.emergency = true;
    sim.input(Input::Wish {
        transaction_id: txs[1],
        wish,
    });
    sim.timeout();
    let view = sim.ctl.plan_view();
    assert!(
        view.sessions
            .iter()
            .find(|s| s.transaction_id == txs[1])
            .unwrap()
            .emergency_waiting
    );
    sim.run(1800, 10);
    assert!(sim.over.is_empty(), "{:?}", sim.over.first());
    assert_safe_now(&sim);
}

#[test]
fn grid_command_lowers_planned_and_drawn_load_and_is_reported() {
    let mut sim = Sim::new(community(6, 40.0, 8.0), config(), NIGHT);
    for i in 0..6 {
        sim.plug(i, 25.0, 6.0, 7040.0, false);
    }
    sim.run(900, 10);
    let drawn_before: f64 = sim.cps.iter().map(|c| c.power_w).sum();
    assert!(drawn_before > 15_000.0, "{drawn_before}");
    let start = sim.now + SignedDuration::from_mins(5);
    let end = start + SignedDuration::from_mins(60);
    let id = sim.limit(10.0, start, end);
    sim.timeout();
    // The plan honours the command in its window at once.
    let view = sim.ctl.plan_view();
    for (k, p) in view.planned_kw.iter().enumerate() {
        let t = view.slot_start + SignedDuration::from_mins(15 * k as i64);
        if t + SignedDuration::from_mins(15) > start && t < end {
            assert!(*p <= 10.0 + 1e-6, "slot {k}: {p} kW planned");
        }
    }
    assert_safe_now(&sim);
    sim.run(300, 10);
    assert_safe_now(&sim);
    sim.run(3600, 10);
    assert!(sim.over.is_empty(), "{:?}", sim.over.first());
    sim.run(120, 10);
    let last = sim.reports.iter().rev().find(|r| r.command == id).unwrap();
    assert!(last.complete, "{last:?}");
    assert_eq!(last.complied, Some(true), "{last:?}");
    assert!(last.delivered_reduction_kw > 3.0, "{last:?}");
    // Reports came slot by slot.
    assert!(sim.reports.iter().filter(|r| r.command == id).count() >= 5);
}

#[test]
fn non_compliant_charger_is_reported_and_planned_around() {
    let mut sim = Sim::new(community(5, 40.0, 10.0), config(), NIGHT);
    sim.cps[2].ignore_limits = true;
    for i in 0..5 {
        sim.plug(i, 30.0, 6.0, 7040.0, false);
    }
    sim.run(600, 10);
    let rogue = sim.cps[2].spec.id.clone();
    assert!(
        sim.compliance.contains(&(rogue.clone(), false)),
        "{:?}",
        sim.compliance
    );
    let view = sim.ctl.plan_view();
    assert_eq!(view.non_compliant_chargers, vec![rogue.clone()]);
    // The others are held within what the rogue leaves.
    sim.run(600, 10);
    let cap = sim.capacity_w(sim.now);
    let rogue_w = sim.cps[2].power_w;
    let others: f64 = sim
        .cps
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, c)| c.limit_w(sim.now))
        .sum();
    assert!(
        others + rogue_w <= cap + 1.0,
        "{others} + {rogue_w} > {cap}"
    );
    // It behaves again: compliant after readings within its limit.
    sim.cps[2].ignore_limits = false;
    sim.run(300, 10);
    assert!(
        sim.compliance.contains(&(rogue, true)),
        "{:?}",
        sim.compliance
    );
    assert!(sim.ctl.plan_view().non_compliant_chargers.is_empty());
}

#[test]
fn fallback_is_sent_on_connect_and_plan_view_is_filled() {
    let mut sim = Sim::new(community(3, 30.0, 10.0), config(), EVENING);
    for cp in &sim.cps {
        let ids: Vec<i64> = cp
            .profiles
            .profiles()
            .iter()
            .map(|h| h.profile.charging_profile_id)
            .collect();
        assert!(ids.contains(&1) && ids.contains(&2), "{ids:?}");
    }
    let tx = sim.plug(0, 5.0, 4.0, 7040.0, false);
    sim.run(120, 10);
    let view = sim.ctl.plan_view();
    let s = view
        .sessions
        .iter()
        .find(|s| s.transaction_id == tx)
        .unwrap();
    assert!(
        (s.expected_energy_by_departure_kwh - 5.0).abs() < 0.05,
        "{s:?}"
    );
    assert!(s.expected_finish.is_some());
    assert!(s.current_limit_kw.is_some());
    assert!(
        view.unconfirmed_chargers.is_empty(),
        "{:?}",
        view.unconfirmed_chargers
    );
    assert_eq!(view.capacity_kw.len(), 96);
}

#[test]
fn rejected_profiles_are_retried_and_planned_around() {
    let mut sim = Sim::new(community(4, 30.0, 8.0), config(), NIGHT);
    for i in 0..4 {
        sim.plug(i, 20.0, 5.0, 7040.0, false);
    }
    sim.run(120, 10);
    // Charger 1 stops answering: its requests fail.
    sim.answering = false;
    let mut wish = sim.ctl.plan_view().sessions[0].wish.clone();
    wish.emergency = true;
    let tx0 = sim.ctl.plan_view().sessions[0].transaction_id;
    sim.input(Input::Wish {
        transaction_id: tx0,
        wish,
    });
    sim.timeout();
    let pending: Vec<Action> = std::mem::take(&mut sim.unanswered);
    assert!(!pending.is_empty());
    for a in &pending {
        if let Action::SetProfile {
            request, charger, ..
        } = a
        {
            sim.ctl.handle(
                Input::ProfileResult {
                    charger: charger.clone(),
                    request: *request,
                    outcome: orderly_control::ProfileOutcome::Rejected,
                },
                sim.now,
            );
        }
    }
    sim.answering = true;
    sim.pump();
    assert!(!sim.ctl.plan_view().unconfirmed_chargers.is_empty());
    sim.run(120, 10);
    assert!(sim.ctl.plan_view().unconfirmed_chargers.is_empty());
    assert!(sim.over.is_empty(), "{:?}", sim.over.first());
    assert_safe_now(&sim);
}

#[derive(Debug, Clone)]
enum Ev {
    Plug {
        charger: usize,
        kwh: f64,
        stay_h: f64,
        emergency: bool,
    },
    Unplug {
        charger: usize,
    },
    Limit {
        kw: f64,
        in_min: i64,
        len_min: i64,
    },
    Wait {
        secs: i64,
    },
}

fn ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        4 => (0usize..8, 1.0f64..30.0, 0.5f64..12.0, prop::bool::weighted(0.15))
            .prop_map(|(charger, kwh, stay_h, emergency)| Ev::Plug { charger, kwh, stay_h, emergency }),
        1 => (0usize..8).prop_map(|charger| Ev::Unplug { charger }),
        1 => (0.0f64..15.0, 0i64..30, 5i64..120).prop_map(|(kw, in_min, len_min)| Ev::Limit { kw, in_min, len_min }),
        4 => (10i64..1200).prop_map(|secs| Ev::Wait { secs }),
    ]
}

proptest! {
    // PROPTEST_CASES=300 for a longer run (an explicit `cases` would override the variable).
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(32),
        ..ProptestConfig::default()
    })]

    /// Invariant S: at a random instant the platform stops answering; whether or not the
    /// requests in flight reach the charge points, the worst case of what they hold (each
    /// charger: its running transaction's limit or a new car's, whichever is higher) stays
    /// within capacity for the next 24 h.
    #[test]
    fn invariant_s_holds_when_the_platform_stops(
        events in prop::collection::vec(ev(), 1..25),
        night in any::<bool>(),
        stop_after in 0usize..25,
        rating in 18.0f64..40.0,
        refusing in prop::collection::vec(prop::bool::weighted(0.2), 8),
    ) {
        // Some charge points refuse idle guards (NotSupported) from the start, others accept
        // them at first and refuse the renewals from the k-th event on.
        let start = if night { NIGHT } else { EVENING };
        let initially: Vec<bool> = refusing.iter().enumerate().map(|(i, r)| *r && i % 2 == 0).collect();
        let mut sim = Sim::with_refusing(community(8, rating, 6.0), config(), start, initially);
        for (k, e) in events.iter().enumerate() {
            if k == stop_after {
                sim.answering = false;
            }
            if k == stop_after / 2 {
                sim.refusing_idle_guards.clone_from(&refusing);
            }
            match *e {
                Ev::Plug { charger, kwh, stay_h, emergency } => {
                    if sim.cps[charger].car.is_none() {
                        sim.plug(charger, kwh, stay_h, 7040.0, emergency);
                    }
                }
                Ev::Unplug { charger } => sim.unplug(charger),
                Ev::Limit { kw, in_min, len_min } => {
                    let start = sim.now + SignedDuration::from_mins(in_min);
                    sim.limit(kw, start, start + SignedDuration::from_mins(len_min));
                }
                Ev::Wait { secs } => {
                    if sim.answering {
                        sim.run(secs, 10);
                    } else {
                        sim.timeout();
                    }
                }
            }
            if !sim.answering {
                break;
            }
        }
        sim.answering = false;
        sim.timeout();
        // (a) Only what was answered is held.
        let found = sim.invariant_s_violations(&sim.cps, 24);
        prop_assert!(found.is_empty(), "held (answered): {:?}", found.first());
        // (b) Every request sent so far reached its charge point.
        let mut cps: Vec<common::Cp> = sim.cps.iter().map(|c| common::Cp {
            spec: c.spec.clone(),
            profiles: c.profiles.clone(),
            car: c.car.clone(),
            register_wh: c.register_wh,
            ignore_limits: false,
            power_w: c.power_w,
            visits: Vec::new(),
        }).collect();
        for a in &sim.unanswered {
            let (Action::SetProfile { charger, .. } | Action::ClearProfile { charger, .. }) = a else { continue };
            let i = sim.index(charger);
            cps[i].apply(a);
        }
        let found = sim.invariant_s_with(&cps, 24, true);
        prop_assert!(found.is_empty(), "held (all sent): {:?}", found.first());
        prop_assert!(sim.over.is_empty(), "drawn: {:?}", sim.over.first());
    }
}

#[test]
fn cancelled_command_is_cleared_and_learned_base_load_lowers_the_fallback() {
    let mut sim = Sim::new(community(4, 30.0, 8.0), config(), NIGHT);
    let start = sim.now + SignedDuration::from_mins(10);
    let id = sim.limit(5.0, start, start + SignedDuration::from_mins(60));
    let pid = orderly_control::profile::command_profile_id(id.0);
    let holds = |sim: &Sim| {
        sim.cps.iter().all(|c| {
            c.profiles
                .profiles()
                .iter()
                .any(|h| h.profile.charging_profile_id == pid)
        })
    };
    assert!(holds(&sim));
    sim.run(60, 10);
    sim.input(Input::GridCommandCancelled { id });
    sim.limits.clear();
    sim.run(60, 10);
    assert!(sim.cps.iter().all(|c| {
        !c.profiles
            .profiles()
            .iter()
            .any(|h| h.profile.charging_profile_id == pid)
    }));
    let last = sim.reports.iter().rev().find(|r| r.command == id).unwrap();
    assert!(!last.complete);

    // The community meter says the households draw 6 kW more than configured this hour.
    let h = jiff::tz::TimeZone::get(common::TZ)
        .map(|tz| sim.now.to_zoned_datetime(tz).hour() as usize)
        .unwrap();
    let configured = sim.community.base_load_kw[h];
    for _ in 0..40 {
        let chargers_w: f64 = sim.cps.iter().map(|c| c.power_w).sum();
        let at = sim.now;
        sim.input(Input::CommunityMeter {
            at,
            power_w: (configured + 6.0) * 1000.0 + chargers_w,
        });
        sim.run(30, 10);
    }
    let learned = sim.ctl.base_load_kw()[h];
    assert!(learned > configured + 4.0, "{learned}");
    // The fallback the chargers now hold fits the lower capacity.
    sim.community.base_load_kw[h] = learned;
    assert_safe_now(&sim);
}

/// Idle guards: a car alone among 40 chargers gets up to its charger's maximum, not the equal
/// share of capacity the idle chargers' fallbacks would leave it, and gets it as soon as it
/// plugs in.
#[test]
fn lone_car_gets_its_charger_max_not_an_equal_share() {
    // 40 chargers on 27 − 6 = 21 kW at night: an equal share is about 0.5 kW.
    let mut sim = Sim::new(community(40, 30.0, 6.0), config(), NIGHT);
    let cap = sim.capacity_w(sim.now);
    let share = cap / 40.0;
    // Every idle charger holds limit 0 for a newly arriving car (its idle guard).
    for cp in &sim.cps {
        assert_eq!(cp.worst_w(sim.now), 0.0, "{}", cp.spec.id.as_str());
    }
    // 14 kWh in 2 h from a 7.04 kW charger: only (nearly) full rate makes it.
    sim.plug(0, 14.0, 2.0, 7040.0, false);
    let max = sim.cps[0].spec.max_kw() * 1000.0;
    let got = sim.cps[0].limit_w(sim.now);
    assert!(
        got >= 0.98 * max,
        "at plug-in: {got:.0} W of {max:.0} W (equal share {share:.0} W)"
    );
    assert_safe_now(&sim);
    sim.run(2 * 3600 + 60, 10);
    assert!(sim.over.is_empty(), "{:?}", sim.over.first());
    let (wanted, got, _) = sim.cps[0].visits[0];
    assert!(got >= wanted * 0.995, "short: {got:.0} of {wanted:.0} Wh");
    assert_safe_now(&sim);
}

/// Five cars among 40 chargers share the whole capacity, not five equal shares of it.
#[test]
fn five_cars_among_forty_chargers_use_the_whole_capacity() {
    let mut sim = Sim::new(community(40, 30.0, 6.0), config(), NIGHT);
    let cap = sim.capacity_w(sim.now);
    // Single-phase chargers (7.04 kW each; a three-phase one's 3.96 kW minimum would leave the
    // engine an awkward remainder).
    for i in [0, 1, 2, 4, 5] {
        // More than the night can give them: the plan fills every slot.
        sim.plug(i, 40.0, 8.0, 11000.0, false);
        assert_safe_now(&sim);
    }
    sim.run(600, 10);
    let drawn: f64 = sim.cps.iter().map(|c| c.power_w).sum();
    assert!(
        drawn >= 0.95 * cap,
        "drawn {drawn:.0} W of {cap:.0} W (5 equal shares: {:.0} W)",
        cap * 5.0 / 40.0
    );
    assert!(sim.over.is_empty(), "{:?}", sim.over.first());
    assert_safe_now(&sim);
    // The rest keep their idle guards renewed: still safe an hour later.
    sim.run(3600, 10);
    assert!(sim.over.is_empty(), "{:?}", sim.over.first());
    assert_safe_now(&sim);
    let drawn: f64 = sim.cps.iter().map(|c| c.power_w).sum();
    assert!(
        drawn >= 0.95 * cap,
        "an hour on: {drawn:.0} W of {cap:.0} W"
    );
}

/// A charger that does not support idle guards keeps its fallback reserved: the lone car gets
/// what the others' fallbacks leave, the others' idle guards still count.
#[test]
fn charger_refusing_idle_guards_is_reserved_at_its_fallback() {
    // 3 chargers on 18 − 8 = 10 kW at night: fallback 10/3 kW each.
    let mut sim = Sim::with_refusing(
        community(3, 20.0, 8.0),
        config(),
        NIGHT,
        vec![false, false, true],
    );
    let cap = sim.capacity_w(sim.now);
    let refusing_fallback = sim.cps[2].worst_w(sim.now);
    assert!(refusing_fallback > 3000.0, "{refusing_fallback}");
    assert_eq!(sim.cps[1].worst_w(sim.now), 0.0);
    // More than 3 h at the charger's maximum can give: it wants full rate.
    sim.plug(0, 25.0, 3.0, 7040.0, false);
    sim.run(120, 10);
    assert_safe_now(&sim);
    let got = sim.cps[0].limit_w(sim.now);
    // Not the charger's maximum (7.04 kW would leave 2.96 kW for a car at charger 2)...
    assert!(
        got <= cap - refusing_fallback + 1.0,
        "{got:.0} W with {refusing_fallback:.0} W kept for charger 2 of {cap:.0} W"
    );
    // ...but all of the rest (charger 1 holds its idle guard).
    assert!(
        got >= cap - refusing_fallback - 200.0,
        "{got:.0} W with {refusing_fallback:.0} W kept for charger 2 of {cap:.0} W"
    );
    assert_eq!(sim.cps[1].worst_w(sim.now), 0.0);
    assert_eq!(sim.cps[2].worst_w(sim.now), refusing_fallback);
    // Once it accepts idle guards (retried), the car gets its charger's maximum.
    sim.refusing_idle_guards[2] = false;
    sim.run(120, 10);
    assert_safe_now(&sim);
    let max = sim.cps[0].spec.max_kw() * 1000.0;
    let got = sim.cps[0].limit_w(sim.now);
    assert!(got >= max - 25.0, "{got:.0} W of {max:.0} W");
    assert_eq!(sim.cps[2].worst_w(sim.now), 0.0);
}
