//! Issue 3's acceptance check. An independent LP (not this code) computed, for OSL_S from
//! 2019-11-04, 7 days, 5-minute slots, capacity fraction 0.25: 115 sessions, capacity
//! 18.879 kW, 1,623.105 kWh requested and deliverable, and 908.97 CNY at the least. The window
//! rules and the offline optimum must reproduce those figures (to the digits given).

mod common;

use common::real_args;
use orderly_sim::{Policy, run};

#[test]
fn osl_s_week_matches_the_independent_lp() {
    let mut args = real_args("OSL_S", "2019-11-04", 7, 0.25);
    args.policy = Policy::OfflineOptimal;
    let m = run(&args).unwrap();
    assert_eq!(m.sessions, 115);
    assert_eq!(m.sessions_skipped, 0);
    assert!((m.capacity_kw - 18.879).abs() < 5e-4, "{}", m.capacity_kw);
    assert!(
        (m.energy_requested_kwh - 1623.105).abs() < 5e-4,
        "{}",
        m.energy_requested_kwh
    );
    assert!(
        (m.energy_delivered_kwh - m.energy_requested_kwh).abs() < 1e-6 * m.energy_requested_kwh,
        "{}",
        m.energy_delivered_kwh
    );
    assert_eq!(m.sessions_fully_served_pct, 100.0);
    assert!((m.cost_cny - 908.97).abs() < 5e-3, "{}", m.cost_cny);
    assert_eq!(m.slots_over_capacity, 0);
    assert!(m.peak_kw <= m.capacity_kw + 1e-6);
}
