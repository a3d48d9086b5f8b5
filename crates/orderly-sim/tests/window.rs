//! The window and slot rules of issue 3, on a hand-made dataset.

mod common;

use common::{Fixture, session, session_at};
use orderly_sim::{Inputs, Scenario, SimError};

fn fixture() -> Fixture {
    Fixture::new(
        &[
            // A: 00:10–01:20 with 15-minute slots → slots 1..5; wants 10 but 4 kW × 1 h = 4.
            session(
                "u1",
                "A",
                "2020-01-01 00:10:00",
                "2020-01-01 01:20:00",
                "10",
            ),
            // B: plugs in exactly at a slot start, leaves after the window: cut at slot 96.
            session(
                "u2",
                "B",
                "2020-01-01 00:15:00",
                "2020-01-02 03:00:00",
                "5,5",
            ),
            // C: arrived before the window, still there at its start: neither in nor history.
            session("u3", "C", "2019-12-31 23:00:00", "2020-01-01 02:00:00", "9"),
            // D: came and went before the window: history.
            session("u3", "D", "2019-12-30 20:00:00", "2019-12-31 06:00:00", "8"),
            // E: arrives exactly at the window end: outside.
            session("u4", "E", "2020-01-02 00:00:00", "2020-01-02 05:00:00", "3"),
            // F, I, J: missing plug-out, plug-in, energy: skipped.
            session("u1", "F", "2020-01-01 10:00:00", "NA", "3"),
            session("u1", "I", "NA", "2020-01-01 11:00:00", "3"),
            session(
                "u1",
                "J",
                "2020-01-01 12:00:00",
                "2020-01-01 13:00:00",
                "NA",
            ),
            // Missing energy outside the window: not counted.
            session(
                "u1",
                "K",
                "2020-01-05 12:00:00",
                "2020-01-05 13:00:00",
                "NA",
            ),
            // G: 10:02–10:14 holds no whole slot: it counts, wanting nothing.
            session("u1", "G", "2020-01-01 10:02:00", "2020-01-01 10:14:00", "1"),
            // Another location: ignored.
            session_at(
                "M",
                "u5",
                "H",
                "2020-01-01 09:00:00",
                "2020-01-01 10:00:00",
                "2",
            ),
        ],
        &[
            "\"u1\";4;50",
            "\"u2\";NA;60",
            "\"u3\";3;NA",
            "\"u4\";10;40",
            "\"u5\";11;40",
        ],
    )
}

fn scenario(f: &Fixture, slot_minutes: u32) -> Scenario {
    let args = f.args("2020-01-01", 1, slot_minutes, 0.5);
    Inputs::read(&args)
        .unwrap()
        .scenario(args.window())
        .unwrap()
}

#[test]
fn sessions_slots_energy_and_capacity_follow_the_rules() {
    let f = fixture();
    let sc = scenario(&f, 15);
    assert_eq!(sc.n_slots, 96);
    assert_eq!(sc.start.to_string(), "2020-01-01T00:00:00");
    let ids: Vec<&str> = sc.sessions.iter().map(|s| s.session_id.as_str()).collect();
    assert_eq!(ids, ["A", "B", "G"]);

    let a = &sc.sessions[0];
    assert_eq!((a.arrival_slot, a.departure_slot), (1, 5));
    assert_eq!(a.rate_kw, 4.0);
    assert_eq!(a.recorded_kwh, 10.0);
    assert!((a.wanted_kwh - 4.0).abs() < 1e-12);

    let b = &sc.sessions[1];
    assert_eq!((b.arrival_slot, b.departure_slot), (1, 96));
    assert_eq!(b.rate_kw, 7.04, "NA rating gets 7.04 kW");
    assert_eq!(b.wanted_kwh, 5.5);

    let g = &sc.sessions[2];
    assert_eq!(g.slots(), 0);
    assert_eq!(g.wanted_kwh, 0.0);

    assert_eq!(sc.skipped, 3);
    // Only u1 and u2 have a session in the window.
    assert!((sc.ratings_sum_kw - 11.04).abs() < 1e-12);
    assert!((sc.capacity_kw - 5.52).abs() < 1e-12);
    assert_eq!(sc.history.len(), 1);
    assert_eq!(sc.history[0].energy_kwh, 8.0);
    assert_eq!(sc.price.len(), 96);
    assert!((sc.price[0] - 0.3946).abs() < 1e-12);
    assert!((sc.price[40] - 1.0044).abs() < 1e-12, "10:00 is peak");
}

#[test]
fn five_minute_slots_align_to_the_window_start() {
    let f = fixture();
    let sc = scenario(&f, 5);
    let a = &sc.sessions[0];
    // 00:10 is a slot start; 01:20 is too.
    assert_eq!((a.arrival_slot, a.departure_slot), (2, 16));
    let g = &sc.sessions[2];
    // 10:02 → first slot start at or after is 10:05 (slot 121); 10:14 → the last slot ending
    // by then is 10:05–10:10, so with 5-minute slots G holds one slot.
    assert_eq!((g.arrival_slot, g.departure_slot), (121, 122));
    assert!((g.wanted_kwh - 4.0 / 12.0).abs() < 1e-12);
    assert_eq!(sc.sessions[1].departure_slot, 288);
}

#[test]
fn empty_window_and_bad_arguments_are_errors() {
    let f = fixture();
    let mut args = f.args("2021-01-01", 1, 15, 0.5);
    let inputs = Inputs::read(&args).unwrap();
    assert!(matches!(
        inputs.scenario(args.window()),
        Err(SimError::EmptyWindow { .. })
    ));
    args.from = "2020-01-01".parse().unwrap();
    args.capacity_fraction = -1.0;
    assert!(matches!(
        inputs.scenario(args.window()),
        Err(SimError::Argument {
            arg: "capacity-fraction",
            ..
        })
    ));
    args.capacity_fraction = 0.5;
    args.days = 0;
    assert!(matches!(
        inputs.scenario(args.window()),
        Err(SimError::Argument { arg: "days", .. })
    ));
}
