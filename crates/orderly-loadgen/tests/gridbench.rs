//! The grid-command benchmark's machinery end to end on a few chargers: the real `orderly serve`
//! (with its controller) from the benchmark's own config file, `gridbench::run`, and what it reports. Latencies are
//! printed, never asserted.

mod support;

use std::time::Duration;

use jiff::Timestamp;
use orderly_loadgen::gridbench::{Scenario, Settings, run, server_config};
use support::{Server, ServerSpec, TOKEN, TempDir};

async fn bench(scenario: Scenario) {
    let n = 4;
    let dir = TempDir::new("gridbench");
    let server = Server::start(&ServerSpec {
        data_dir: &dir.0,
        listen: "127.0.0.1:0".parse().unwrap(),
        clock_start: Timestamp::now(),
        speed: 1.0,
        config: Some(server_config(n, "GB%05d", 1, scenario, 60, 300, Timestamp::now()).unwrap()),
    });
    let mut s = Settings::new(format!("ws://{}/ocpp/", server.addr), server.addr, TOKEN, n);
    s.register = false;
    s.scenario = scenario;
    s.ready_timeout = Duration::from_secs(60);
    s.settle = Duration::from_secs(1);
    // A charger the controller leaves where it is keeps the run waiting this long.
    s.measure_timeout = Duration::from_secs(10);
    let report = run(s).await.expect("benchmark ran");
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    assert_eq!(report.n, n);
    assert_eq!(report.plugged, n, "{report:#?}\n{}", server.log_tail());
    // Ready meant a TxProfile on every charger in that scenario (in the other the controller
    // may or may not send TxProfiles: its plan decides).
    if scenario == Scenario::TxProfile {
        assert_eq!(
            report.with_tx_profile,
            n,
            "{report:#?}\n{}",
            server.log_tail()
        );
    }
    assert!(report.aggregate_kw_before > 0.0, "{report:#?}");
    assert_eq!(
        report.command_kw,
        (report.aggregate_kw_before * 5.0).floor() / 10.0
    );
    // The controller need not lower every charger to meet the command (it may lower some more
    // and leave others), so "missing" is a figure, not a failure; but something was lowered,
    // and the limits held came under the command.
    assert!(
        report.latency_ms.count >= 1,
        "{report:#?}\n{}",
        server.log_tail()
    );
    assert_eq!(report.latency_ms.count + report.missing, n);
    // The first lowered profile need not be the last, so the draw is only known to be lower.
    assert!(
        report.aggregate_kw_after < report.aggregate_kw_before,
        "{report:#?}"
    );
    assert!(report.limits_within_command_ms.is_some(), "{report:#?}");
    assert_eq!(report.profiles_rejected, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tx_profiles_are_lowered_after_the_command() {
    bench(Scenario::TxProfile).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallbacks_are_lowered_after_the_command() {
    bench(Scenario::Fallback).await;
}
