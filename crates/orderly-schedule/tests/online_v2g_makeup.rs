//! Online V2G make-up slack: a V2G car makes up what it discharged by `departure − margin`
//! (`OnlineConfig::v2g_makeup_margin_slots`); its last `margin` slots keep the plan without V2G,
//! and a car whose plan without V2G needs those slots does not discharge, so a make-up never
//! competes there with cars that have no slack.

use orderly_schedule::{
    Calendar, DayType, Forecast, OnlineConfig, OnlinePlanner, Plan, Priority, Problem, Session, V2g,
};

const MINUTES: u32 = 15;

fn planner(margin: usize) -> OnlinePlanner {
    OnlinePlanner::new(
        Forecast::none(MINUTES).unwrap(),
        Calendar {
            slot_of_day_at_zero: 0,
            day_types: vec![DayType::Weekday],
        },
        OnlineConfig {
            v2g_makeup_margin_slots: margin,
            ..OnlineConfig::for_slot_minutes(MINUTES)
        },
    )
}

/// Four hours: a dear first hour (worth discharging into), two middling hours, and a cheap last
/// hour, which the make-up of a discharge would fill if it were allowed to.
fn problem(v2g: bool) -> Problem {
    problem_priced(v2g, 0.5, 0.3)
}

/// As [`problem`], the middle two hours at `middle` and the last hour at `last` CNY/kWh.
fn problem_priced(v2g: bool, middle: f64, last: f64) -> Problem {
    let mut price = vec![1.0; 4];
    price.extend(vec![middle; 8]);
    price.extend(vec![last; 4]);
    Problem {
        slot_minutes: MINUTES,
        capacity_kw: vec![50.0; 16],
        price,
        sessions: vec![Session {
            id: 1,
            arrival_slot: 0,
            departure_slot: 16,
            energy_kwh: 3.5,
            max_kw: 7.0,
            min_kw: 0.0,
            priority: Priority::Normal,
            v2g: v2g.then_some(V2g {
                battery_kwh: 60.0,
                soc_kwh: 30.0,
                floor_kwh: 10.0,
                max_discharge_kw: 7.0,
                charge_efficiency: 0.95,
                discharge_efficiency: 0.95,
                wear_cny_per_kwh: 0.05,
            }),
        }],
    }
}

fn battery_gain(plan: &Plan) -> f64 {
    let h = f64::from(MINUTES) / 60.0;
    plan.sessions[0]
        .power_kw
        .iter()
        .map(|&kw| {
            if kw >= 0.0 {
                0.95 * kw * h
            } else {
                kw * h / 0.95
            }
        })
        .sum()
}

/// One hour of 15-minute slots (the instances are four hours long; the default is three hours).
const MARGIN: usize = 4;

#[test]
fn default_margin_is_three_hours() {
    assert_eq!(
        OnlineConfig::for_slot_minutes(MINUTES).v2g_makeup_margin_slots,
        12
    );
    assert_eq!(
        OnlineConfig::for_slot_minutes(5).v2g_makeup_margin_slots,
        36
    );
}

/// The plan without V2G needs the cheap last hour: the car has no slack for a make-up, so it
/// does not discharge and keeps the plan without V2G.
#[test]
fn no_discharge_whose_make_up_would_need_the_last_hour() {
    let without = planner(MARGIN).plan(0, &problem(false)).unwrap();
    let with = planner(MARGIN).plan(0, &problem(true)).unwrap();
    let (w, p) = (&with.sessions[0].power_kw, &without.sessions[0].power_kw);
    assert!(p[12..].iter().any(|&kw| kw > 1.0), "{p:?}");
    for t in 0..16 {
        assert!(
            (w[t] - p[t]).abs() < 1e-6,
            "slot {t}: {} kW with V2G, {} kW without: {w:?} vs {p:?}",
            w[t],
            p[t]
        );
    }
}

/// The plan without V2G is done before the last hour (the middle hours are cheapest): the car
/// sells into the dear hour, makes it up before the last hour and leaves as full as without V2G.
#[test]
fn a_car_with_slack_still_discharges() {
    let without = planner(MARGIN)
        .plan(0, &problem_priced(false, 0.3, 0.5))
        .unwrap();
    let with = planner(MARGIN)
        .plan(0, &problem_priced(true, 0.3, 0.5))
        .unwrap();
    let w = &with.sessions[0].power_kw;
    assert!(
        w[..4].iter().any(|&kw| kw < -1.0),
        "no discharge in the dear hour: {w:?}"
    );
    assert!(w[12..].iter().all(|&kw| kw.abs() < 1e-6), "{w:?}");
    assert!(battery_gain(&with) >= 0.95 * without.sessions[0].energy_kwh - 1e-6);
    assert!(with.sessions[0].cost_cny < without.sessions[0].cost_cny - 0.1);
}

/// The instance exercises the rule: with no margin the make-up goes into the cheap last hour,
/// beyond what the plan without V2G puts there.
#[test]
fn without_the_margin_the_make_up_fills_the_last_hour() {
    let without = planner(0).plan(0, &problem(false)).unwrap();
    let with = planner(0).plan(0, &problem(true)).unwrap();
    let last = |p: &Plan| p.sessions[0].power_kw[12..16].iter().sum::<f64>();
    assert!(
        last(&with) > last(&without) + 1.0,
        "{:?} vs {:?}",
        with.sessions[0].power_kw,
        without.sessions[0].power_kw
    );
}
