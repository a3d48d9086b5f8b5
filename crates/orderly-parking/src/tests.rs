use super::*;
use proptest::prelude::*;

fn t(minutes: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + minutes * 60).unwrap()
}

/// 30 min before a car that is not charging counts, 15 min grace, 2 CNY per 15 min, cap 10 CNY.
fn rule() -> Rule {
    Rule::from_minutes(30, 15, Fen(200), 15, Fen(1000)).unwrap()
}

fn bay() -> BayContext {
    BayContext {
        ev_only: true,
        rule: Some(rule()),
    }
}

fn arrive(vehicle: Vehicle, plate: Option<&str>, at: Timestamp) -> Input {
    Input::Occupancy(Occupancy {
        occupied: true,
        vehicle,
        plate: plate.map(str::to_owned),
        at,
    })
}

fn leave(at: Timestamp) -> Input {
    Input::Occupancy(Occupancy {
        occupied: false,
        vehicle: Vehicle::Unknown,
        plate: None,
        at,
    })
}

fn connector(status: Connector, at: Timestamp) -> Input {
    Input::Connector { status, at }
}

fn run(state: &mut BayState, input: Input, now: Timestamp) -> Vec<Action> {
    step(state, bay(), input, now).unwrap()
}

#[test]
fn fee_is_zero_before_opening_then_per_started_interval_up_to_the_cap() {
    let r = rule();
    assert_eq!(r.fee(t(30), t(29)), Fen(0));
    assert_eq!(r.fee(t(30), t(30)), Fen(200));
    assert_eq!(r.fee(t(30), t(44)), Fen(200));
    assert_eq!(r.fee(t(30), t(45)), Fen(400));
    assert_eq!(r.fee(t(30), t(30 + 4 * 15 + 1)), Fen(1000));
    assert_eq!(r.fee(t(30), t(10_000)), Fen(1000));
}

#[test]
fn rule_validation_names_the_field() {
    let err = Rule::from_minutes(30, 15, Fen(200), 0, Fen(1000)).unwrap_err();
    assert!(err.to_string().starts_with("interval_minutes:"), "{err}");
    let err = Rule::from_minutes(-1, 15, Fen(200), 15, Fen(1000)).unwrap_err();
    assert!(
        err.to_string().starts_with("not_charging_minutes:"),
        "{err}"
    );
    let err = Rule::from_minutes(30, 20_000, Fen(200), 15, Fen(1000)).unwrap_err();
    assert!(err.to_string().starts_with("grace_minutes:"), "{err}");
    let err = Rule::from_minutes(30, 15, Fen(-1), 15, Fen(1000)).unwrap_err();
    assert_eq!(err.to_string(), "fee_per_interval: must not be negative");
    let err = Rule::from_minutes(30, 15, Fen(1), 15, Fen(-5)).unwrap_err();
    assert_eq!(err.to_string(), "cap: must not be negative");
}

#[test]
fn fen_from_cny_accepts_cents_only() {
    assert_eq!(Fen::from_cny(2.5), Some(Fen(250)));
    assert_eq!(Fen::from_cny(0.0), Some(Fen(0)));
    assert_eq!(Fen::from_cny(19.99), Some(Fen(1999)));
    assert_eq!(Fen::from_cny(0.001), None);
    assert_eq!(Fen::from_cny(-1.0), None);
    assert_eq!(Fen::from_cny(f64::NAN), None);
}

#[test]
fn a_fuel_car_in_an_ev_bay_opens_an_episode_after_the_threshold_and_settles_when_it_leaves() {
    let mut s = BayState::default();
    assert_eq!(
        run(&mut s, arrive(Vehicle::Fuel, Some("京A1"), t(0)), t(0)),
        []
    );
    assert_eq!(run(&mut s, Input::Tick, t(29)), []);
    assert_eq!(next_deadline(&s, bay()), Some(t(30)));
    let opened = run(&mut s, Input::Tick, t(30));
    let [Action::Opened(ep)] = &opened[..] else {
        panic!("{opened:?}")
    };
    assert_eq!(ep.kind, EpisodeKind::NotCharging);
    assert_eq!((ep.since, ep.opened, ep.fee), (t(0), t(30), Fen(200)));
    // Ticks in the same interval change nothing; the next interval adds a fee.
    assert_eq!(run(&mut s, Input::Tick, t(44)), []);
    assert_eq!(next_deadline(&s, bay()), Some(t(45)));
    assert_eq!(run(&mut s, Input::Tick, t(45)), [Action::Accrued(Fen(400))]);
    assert_eq!(
        run(&mut s, leave(t(50)), t(50)),
        [Action::Settled {
            at: t(50),
            fee: Fen(400)
        }]
    );
    assert_eq!(s.stay, None);
    assert_eq!(s.episode, None);
    assert_eq!(run(&mut s, Input::Tick, t(500)), []);
}

#[test]
fn a_car_leaving_within_the_threshold_owes_nothing() {
    let mut s = BayState::default();
    run(&mut s, arrive(Vehicle::Unknown, None, t(0)), t(0));
    assert_eq!(run(&mut s, Input::Tick, t(20)), []);
    assert_eq!(run(&mut s, leave(t(29)), t(29)), []);
    assert_eq!(run(&mut s, Input::Tick, t(100)), []);
}

#[test]
fn a_late_report_settles_at_the_time_it_carries() {
    // A tick opened the episode; a report delivered late says the car left one minute after
    // the threshold: it owes the one interval it started, not the time the report took.
    let mut s = BayState::default();
    run(&mut s, arrive(Vehicle::Fuel, None, t(0)), t(0));
    assert!(matches!(
        run(&mut s, Input::Tick, t(40))[..],
        [Action::Opened(_)]
    ));
    assert_eq!(run(&mut s, Input::Tick, t(50)), [Action::Accrued(Fen(400))]);
    assert_eq!(
        run(&mut s, leave(t(31)), t(60)),
        [Action::Settled {
            at: t(31),
            fee: Fen(200)
        }]
    );
}

#[test]
fn an_ev_charging_is_never_counted_and_overstays_after_the_grace() {
    let mut s = BayState::default();
    run(&mut s, arrive(Vehicle::Ev, Some("京AD1"), t(0)), t(0));
    run(&mut s, connector(Connector::Idle, t(1)), t(1));
    assert_eq!(run(&mut s, connector(Connector::Charging, t(2)), t(2)), []);
    assert_eq!(run(&mut s, Input::Tick, t(300)), [], "charging for hours");
    assert_eq!(next_deadline(&s, bay()), None);
    assert_eq!(
        run(&mut s, connector(Connector::Finishing, t(300)), t(300)),
        []
    );
    assert_eq!(run(&mut s, Input::Tick, t(314)), []);
    let opened = run(&mut s, Input::Tick, t(315));
    let [Action::Opened(ep)] = &opened[..] else {
        panic!("{opened:?}")
    };
    assert_eq!(ep.kind, EpisodeKind::Overstay);
    assert_eq!((ep.since, ep.opened), (t(300), t(315)));
    // Available after Finishing (cable out, car still there) does not restart the grace.
    assert_eq!(
        run(&mut s, connector(Connector::Available, t(320)), t(320)),
        []
    );
    // Hours later the fee is at the cap and stays there.
    assert_eq!(
        run(&mut s, Input::Tick, t(900)),
        [Action::Accrued(Fen(1000))]
    );
    assert_eq!(next_deadline(&s, bay()), None);
    assert_eq!(run(&mut s, Input::Tick, t(2000)), []);
    assert_eq!(
        run(&mut s, leave(t(2001)), t(2001)),
        [Action::Settled {
            at: t(2001),
            fee: Fen(1000)
        }]
    );
}

#[test]
fn charging_again_settles_an_episode_and_a_new_finish_restarts_the_grace() {
    let mut s = BayState::default();
    run(&mut s, arrive(Vehicle::Ev, None, t(0)), t(0));
    // Plugged in late: a not-charging episode opened at 30 min.
    assert!(matches!(
        run(&mut s, Input::Tick, t(31))[..],
        [Action::Opened(_)]
    ));
    assert_eq!(
        run(&mut s, connector(Connector::Charging, t(40)), t(40)),
        [Action::Settled {
            at: t(40),
            fee: Fen(200)
        }]
    );
    run(&mut s, connector(Connector::Finishing, t(100)), t(100));
    assert_eq!(next_deadline(&s, bay()), Some(t(115)));
    let opened = run(&mut s, Input::Tick, t(120));
    assert!(
        matches!(&opened[..], [Action::Opened(e)] if e.kind == EpisodeKind::Overstay && e.since == t(100)),
        "{opened:?}"
    );
}

#[test]
fn a_car_at_a_faulted_charger_is_not_counted_but_a_fuel_car_is() {
    let mut s = BayState::default();
    run(&mut s, connector(Connector::Out, t(0)), t(0));
    run(&mut s, arrive(Vehicle::Ev, None, t(0)), t(0));
    assert_eq!(run(&mut s, Input::Tick, t(100)), []);
    run(&mut s, leave(t(101)), t(101));
    run(&mut s, arrive(Vehicle::Fuel, None, t(102)), t(102));
    assert!(matches!(
        run(&mut s, Input::Tick, t(132))[..],
        [Action::Opened(_)]
    ));
}

#[test]
fn bays_not_ev_only_or_without_a_rule_are_not_watched() {
    for ctx in [
        BayContext {
            ev_only: false,
            rule: Some(rule()),
        },
        BayContext {
            ev_only: true,
            rule: None,
        },
    ] {
        let mut s = BayState::default();
        step(&mut s, ctx, arrive(Vehicle::Fuel, None, t(0)), t(0)).unwrap();
        assert_eq!(step(&mut s, ctx, Input::Tick, t(1000)).unwrap(), []);
        assert_eq!(next_deadline(&s, ctx), None);
    }
}

#[test]
fn reports_out_of_order_are_refused_and_change_nothing() {
    let mut s = BayState::default();
    run(&mut s, arrive(Vehicle::Fuel, None, t(10)), t(10));
    let before = s.clone();
    let err = step(&mut s, bay(), leave(t(9)), t(11)).unwrap_err();
    assert!(err.to_string().starts_with("at:"), "{err}");
    assert_eq!(s, before);
}

#[test]
fn a_repeated_report_keeps_the_arrival_and_another_plate_is_another_car() {
    let mut s = BayState::default();
    run(&mut s, arrive(Vehicle::Unknown, None, t(0)), t(0));
    run(&mut s, arrive(Vehicle::Fuel, Some("京B2"), t(5)), t(5));
    let stay = s.stay.clone().unwrap();
    assert_eq!((stay.since, stay.vehicle), (t(0), Vehicle::Fuel));
    assert!(matches!(
        run(&mut s, Input::Tick, t(30))[..],
        [Action::Opened(_)]
    ));
    let actions = run(&mut s, arrive(Vehicle::Ev, Some("京C3"), t(35)), t(35));
    assert_eq!(
        actions,
        [Action::Settled {
            at: t(35),
            fee: Fen(200)
        }]
    );
    assert_eq!(s.stay.as_ref().unwrap().since, t(35));
}

#[test]
fn a_car_found_charging_on_arrival_has_charged() {
    let mut s = BayState::default();
    run(&mut s, connector(Connector::Charging, t(0)), t(0));
    run(&mut s, arrive(Vehicle::Ev, None, t(1)), t(1));
    run(&mut s, connector(Connector::Finishing, t(60)), t(60));
    let opened = run(&mut s, Input::Tick, t(75));
    assert!(
        matches!(&opened[..], [Action::Opened(e)] if e.kind == EpisodeKind::Overstay),
        "{opened:?}"
    );
}

#[test]
fn the_state_survives_serialization() {
    let mut s = BayState::default();
    run(&mut s, arrive(Vehicle::Fuel, Some("京A1"), t(0)), t(0));
    run(&mut s, Input::Tick, t(31));
    let json = serde_json::to_string(&s).unwrap();
    let back: BayState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
}

fn arb_rule() -> impl Strategy<Value = Rule> {
    (0i64..120, 0i64..120, 0i64..1000, 1i64..120, 0i64..10_000)
        .prop_map(|(n, g, f, i, c)| Rule::from_minutes(n, g, Fen(f), i, Fen(c)).unwrap())
}

fn arb_input() -> impl Strategy<Value = (u8, u8, u8)> {
    (0u8..6, 0u8..5, 0u8..3)
}

proptest! {
    #[test]
    fn fee_is_capped_monotone_and_zero_before_opening(
        rule in arb_rule(), opened in 0i64..10_000, a in -500i64..20_000, b in -500i64..20_000,
    ) {
        let (a, b) = (a.min(b), a.max(b));
        let opened = t(opened);
        let (fa, fb) = (rule.fee(opened, t(a)), rule.fee(opened, t(b)));
        prop_assert!(fa <= fb);
        prop_assert!(fb <= rule.cap);
        prop_assert!(fa.0 >= 0);
        if t(a) < opened {
            prop_assert_eq!(fa, Fen(0));
        }
    }

    /// Any sequence of reports, statuses and ticks: at most one episode at a time, every fee
    /// within the cap, accruals rising, and an episode only after its threshold.
    #[test]
    fn episodes_respect_the_rule_whatever_happens(
        rule in arb_rule(),
        inputs in proptest::collection::vec((arb_input(), 0i64..40), 1..60),
    ) {
        let ctx = BayContext { ev_only: true, rule: Some(rule) };
        let mut s = BayState::default();
        let mut now = 0;
        let mut open: Option<Episode> = None;
        for ((what, status, vehicle), gap) in inputs {
            now += gap;
            let at = t(now);
            let input = match what {
                0 => Input::Occupancy(Occupancy {
                    occupied: true,
                    vehicle: Vehicle::ALL[usize::from(vehicle)],
                    plate: None,
                    at,
                }),
                1 => Input::Occupancy(Occupancy { occupied: false, vehicle: Vehicle::Unknown, plate: None, at }),
                2 => Input::Connector {
                    status: [Connector::Charging, Connector::Finishing, Connector::Available,
                             Connector::Idle, Connector::Out][usize::from(status)],
                    at,
                },
                _ => Input::Tick,
            };
            for action in step(&mut s, ctx, input, at).unwrap() {
                match action {
                    Action::Opened(ep) => {
                        prop_assert!(open.is_none(), "two episodes at once");
                        prop_assert!(ep.opened <= at);
                        prop_assert_eq!(ep.opened, ep.since.checked_add(rule.threshold(ep.kind)).unwrap());
                        prop_assert!(ep.fee <= rule.cap);
                        open = Some(ep);
                    }
                    Action::Accrued(fee) => {
                        let ep = open.as_mut().expect("accrued without an episode");
                        prop_assert!(fee > ep.fee && fee <= rule.cap);
                        ep.fee = fee;
                    }
                    Action::Settled { fee, .. } => {
                        let ep = open.take().expect("settled without an episode");
                        // Reports here are never late, so the final fee is at least what accrued.
                        prop_assert!(fee >= ep.fee && fee <= rule.cap);
                    }
                }
            }
            prop_assert_eq!(open.is_some(), s.episode.is_some());
            if s.stay.is_none() {
                prop_assert!(s.episode.is_none(), "an episode outlived the stay");
            }
        }
    }
}
