//! Virtual charge points against the real `orderly serve` (see `support`): a visit becomes a
//! transaction with the energy the car wanted, and survives the server going away mid-visit.

mod support;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;

use orderly_loadgen::virtual_cp::{
    CarVisit, VcpEvent, VcpSummary, VirtualChargerConfig, run_virtual_charger,
};
use support::{Server, ServerSpec, TempDir, WAIT, accelerated_clock, free_addr};

/// A day per minute, as in the demo.
const SPEED: f64 = 1440.0;

fn start() -> Timestamp {
    "2026-11-26T16:00:00Z".parse().unwrap()
}

fn at(minutes: i64) -> Timestamp {
    start()
        .checked_add(SignedDuration::from_mins(minutes))
        .unwrap()
}

/// Waits for the visit's end; returns the transaction id and every event seen.
async fn until_unplugged(
    events: &mut mpsc::UnboundedReceiver<VcpEvent>,
    server_log: impl Fn() -> String,
) -> (i64, f64, Vec<VcpEvent>) {
    let mut seen = Vec::new();
    loop {
        let e = timeout(WAIT, events.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no Unplugged event; events so far: {seen:#?}\n{}",
                    server_log()
                )
            })
            .expect("charger task alive");
        seen.push(e.clone());
        if let VcpEvent::Unplugged {
            transaction_id,
            delivered_kwh,
            ..
        } = e
        {
            return (transaction_id, delivered_kwh, seen);
        }
    }
}

async fn stop(
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<VcpSummary, orderly_loadgen::virtual_cp::VcpError>>,
) -> VcpSummary {
    shutdown.send(true).unwrap();
    timeout(WAIT, task)
        .await
        .expect("charger stops")
        .unwrap()
        .expect("charger ran")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncontrolled_visit_becomes_a_transaction_with_the_wanted_energy() {
    let dir = TempDir::new("uncontrolled");
    let server = Server::start(&ServerSpec {
        data_dir: &dir.0,
        listen: "127.0.0.1:0".parse().unwrap(),
        clock_start: start(),
        speed: SPEED,
        config: None,
    });
    server.register("VCP1", "TAG1").await;

    let mut config = VirtualChargerConfig::new(
        server.ws_url("VCP1"),
        "VCP1",
        accelerated_clock(start(), SPEED),
    );
    config.speed = SPEED;
    config.meter_interval_secs = 900.0;
    // 1 phase, 220 V, 32 A: 7.04 kW; 10 kWh take 85 min 13.6 s.
    let visit = CarVisit {
        id_tag: "TAG1".into(),
        arrival: at(30),
        departure: at(300),
        energy_kwh: 10.0,
        max_kw: 11.0,
    };
    let (tx, mut events) = mpsc::unbounded_channel();
    let (shutdown, shutdown_rx) = watch::channel(false);
    let task = tokio::spawn(run_virtual_charger(
        config,
        vec![visit.clone()],
        tx,
        shutdown_rx,
    ));

    let (transaction_id, delivered, seen) =
        until_unplugged(&mut events, || server.log_tail()).await;
    assert!((delivered - 10.0).abs() < 1e-9, "{delivered}");
    assert!(seen.contains(&VcpEvent::Plugged {
        charger: "VCP1".into(),
        transaction_id,
        visit
    }));
    let powers: Vec<f64> = seen
        .iter()
        .filter_map(|e| match e {
            VcpEvent::Power { kw, .. } => Some(*kw),
            _ => None,
        })
        .collect();
    assert_eq!(powers, [0.0, 7.04, 0.0]);
    let summary = stop(shutdown, task).await;
    assert_eq!((summary.visits_started, summary.visits_completed), (1, 1));

    let t = server
        .api("GET", &format!("/transactions/{transaction_id}"), None)
        .await;
    assert_eq!(t.status, 200, "{t:?}");
    assert_eq!(t.body["charger_id"], "VCP1");
    assert_eq!(t.body["energy_wh"], 10_000, "{:?}", t.body);
    assert_eq!(t.body["stop_reason"], "EVDisconnected");
    let started: Timestamp = t.body["started_at"].as_str().unwrap().parse().unwrap();
    let stopped: Timestamp = t.body["stopped_at"].as_str().unwrap().parse().unwrap();
    assert!(started >= at(30) && started < at(300), "{started}");
    assert_eq!(stopped, at(300));

    let mv = server
        .api(
            "GET",
            &format!("/transactions/{transaction_id}/meter-values"),
            None,
        )
        .await;
    let samples = mv.body.as_array().expect("meter values");
    let energy: Vec<f64> = samples
        .iter()
        .filter(|s| s["measurand"] == "Energy.Active.Import.Register")
        .map(|s| s["value_number"].as_f64().unwrap())
        .collect();
    // A sample every 15 min of protocol time over the 4.5 h stay (the last one is the stop).
    assert_eq!(energy.len(), 17, "{energy:?}");
    assert!(energy.windows(2).all(|w| w[0] <= w[1]), "{energy:?}");
    assert_eq!(energy.last(), Some(&10_000.0));
    assert!(
        samples
            .iter()
            .any(|s| s["measurand"] == "Power.Active.Import" && s["value_number"] == 7040.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_visit_survives_the_server_going_away() {
    let dir = TempDir::new("reconnect");
    let listen = free_addr();
    let spec = ServerSpec {
        data_dir: &dir.0,
        listen,
        clock_start: start(),
        speed: SPEED,
        config: None,
    };
    let server = Server::start(&spec);
    server.register("VCP2", "TAG2").await;

    let mut config = VirtualChargerConfig::new(
        server.ws_url("VCP2"),
        "VCP2",
        accelerated_clock(start(), SPEED),
    );
    config.speed = SPEED;
    config.meter_interval_secs = 600.0;
    let visit = CarVisit {
        id_tag: "TAG2".into(),
        arrival: at(10),
        departure: at(600),
        energy_kwh: 20.0,
        max_kw: 7.0,
    };
    let (tx, mut events) = mpsc::unbounded_channel();
    let (shutdown, shutdown_rx) = watch::channel(false);
    let task = tokio::spawn(run_virtual_charger(config, vec![visit], tx, shutdown_rx));

    // Once the transaction runs, the server crashes; it comes back on the same address later.
    loop {
        match timeout(WAIT, events.recv())
            .await
            .expect("plugged in")
            .unwrap()
        {
            VcpEvent::Plugged { .. } => break,
            _ => continue,
        }
    }
    server.kill();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let server = Server::start(&spec);

    let (transaction_id, delivered, _) = until_unplugged(&mut events, || server.log_tail()).await;
    assert!((delivered - 20.0).abs() < 1e-9, "{delivered}");
    let summary = stop(shutdown, task).await;
    assert!(
        summary.disconnects >= 1 && summary.connects >= 2,
        "{summary:?}"
    );
    let t = server
        .api("GET", &format!("/transactions/{transaction_id}"), None)
        .await;
    assert_eq!(t.body["energy_wh"], 20_000, "{:?}", t.body);
    assert_eq!(
        t.body["stopped_at"]
            .as_str()
            .unwrap()
            .parse::<Timestamp>()
            .unwrap(),
        at(600)
    );
}
