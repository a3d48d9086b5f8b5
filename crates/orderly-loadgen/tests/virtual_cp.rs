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

/// Two chargers under a 7 kW transformer (7.04 kW each), the current hour dear and the next
/// cheap: the controller holds the cars with TxProfiles, the virtual chargers obey what they
/// hold, so the community's draw (from the meter values the server recorded) stays within its
/// capacity, and each car still gets what it wants by departure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_from_the_controller_are_honored() {
    // 240×: the 2 h stay takes 30 s.
    const SPEED: f64 = 240.0;
    const CAPACITY_KW: f64 = 7.0;
    let dir = TempDir::new("controlled");
    let tariff: Vec<&str> = (0..24)
        .map(|h| if h == 16 { "2.0" } else { "0.3" })
        .collect();
    let config = format!(
        "[control]\nreplan_interval_secs = 60\nprofile_validity_secs = 300\n\n\
         [[communities]]\nid = \"vc\"\ntimezone = \"UTC\"\n\
         rating_kva = 8.0\npower_factor = 0.9\nbase_load_kw = 0.2\n\
         tariff_cny_per_kwh = [{}]\ndefault_stay_hours = 2.0\ndefault_energy_kwh = 5.0\n\
         chargers = [\n  {{ id = \"VCA\", phases = 1, voltage_v = 220.0, max_current_a = 32.0 }},\n\
         {{ id = \"VCB\", phases = 1, voltage_v = 220.0, max_current_a = 32.0 }},\n]\n",
        tariff.join(", ")
    );
    let server = Server::start(&ServerSpec {
        data_dir: &dir.0,
        listen: "127.0.0.1:0".parse().unwrap(),
        clock_start: start(),
        speed: SPEED,
        config: Some(config),
    });
    server.register("VCA", "TAGA").await;
    server.register("VCB", "TAGB").await;
    let clock = accelerated_clock(start(), SPEED);
    let (tx, mut events) = mpsc::unbounded_channel();
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for (id, tag) in [("VCA", "TAGA"), ("VCB", "TAGB")] {
        let mut config = VirtualChargerConfig::new(server.ws_url(id), id, clock.clone());
        config.speed = SPEED;
        config.meter_interval_secs = 300.0;
        // The server's clock started a moment before ours: at 240× that moment is seconds of
        // protocol time, and a profile starting "now" on the server would start in our future.
        config.adopt_server_time = true;
        let visit = CarVisit {
            id_tag: tag.into(),
            arrival: at(5),
            departure: at(125),
            energy_kwh: 5.0,
            max_kw: 11.0,
        };
        tasks.push(tokio::spawn(run_virtual_charger(
            config,
            vec![visit],
            tx.clone(),
            shutdown_rx.clone(),
        )));
    }
    drop(tx);

    let mut power = std::collections::BTreeMap::<String, f64>::new();
    let mut tx_profiles = std::collections::BTreeMap::<String, u32>::new();
    let mut delivered = std::collections::BTreeMap::<i64, f64>::new();
    let mut max_total: f64 = 0.0;
    while delivered.len() < 2 {
        let e = timeout(WAIT, events.recv())
            .await
            .unwrap_or_else(|_| panic!("visits did not end\n{}", server.log_tail()))
            .expect("chargers alive");
        match e {
            VcpEvent::Power { charger, kw } => {
                power.insert(charger, kw);
                max_total = max_total.max(power.values().sum());
            }
            VcpEvent::Profile {
                charger,
                purpose,
                accepted,
                ..
            } => {
                assert!(accepted, "{charger} rejected a {purpose}");
                if purpose == "TxProfile" {
                    *tx_profiles.entry(charger).or_default() += 1;
                }
            }
            VcpEvent::Unplugged {
                transaction_id,
                delivered_kwh,
                ..
            } => {
                delivered.insert(transaction_id, delivered_kwh);
            }
            VcpEvent::Plugged { .. } => {}
        }
    }
    shutdown.send(true).unwrap();
    for task in tasks {
        timeout(WAIT, task).await.unwrap().unwrap().unwrap();
    }
    assert_eq!(tx_profiles.len(), 2, "{tx_profiles:?}");
    // The community's draw, from what the server recorded: each charger's energy register
    // (StartTransaction, MeterValues every 5 min, StopTransaction), interpolated onto 15-minute
    // windows. Instantaneous sums are not compared: at 240× a millisecond of difference between
    // the two chargers' clocks is a quarter of a protocol second at every period boundary.
    let mut registers = Vec::new();
    for (&transaction_id, &kwh) in &delivered {
        assert!(
            (kwh - 5.0).abs() < 1e-6,
            "transaction {transaction_id}: {kwh} kWh"
        );
        let t = server
            .api("GET", &format!("/transactions/{transaction_id}"), None)
            .await;
        assert_eq!(t.body["energy_wh"], 5000, "{:?}", t.body);
        let ts = |v: &serde_json::Value| v.as_str().unwrap().parse::<Timestamp>().unwrap();
        let mut points = vec![(
            ts(&t.body["started_at"]),
            t.body["meter_start_wh"].as_f64().unwrap(),
        )];
        let mv = server
            .api(
                "GET",
                &format!("/transactions/{transaction_id}/meter-values"),
                None,
            )
            .await;
        for s in mv.body.as_array().unwrap() {
            if s["measurand"] == "Energy.Active.Import.Register" {
                points.push((ts(&s["timestamp"]), s["value_number"].as_f64().unwrap()));
            }
        }
        points.push((
            ts(&t.body["stopped_at"]),
            t.body["meter_stop_wh"].as_f64().unwrap(),
        ));
        registers.push(points);
    }
    let energy_at = |points: &[(Timestamp, f64)], t: Timestamp| -> f64 {
        let i = points.partition_point(|(p, _)| *p <= t);
        if i == 0 {
            return points[0].1;
        }
        if i == points.len() {
            return points[i - 1].1;
        }
        let ((t0, e0), (t1, e1)) = (points[i - 1], points[i]);
        let f = t.duration_since(t0).as_secs_f64() / t1.duration_since(t0).as_secs_f64();
        e0 + f * (e1 - e0)
    };
    let window = SignedDuration::from_mins(15);
    let mut t = registers.iter().map(|r| r[0].0).min().unwrap();
    let end = registers.iter().map(|r| r.last().unwrap().0).max().unwrap();
    let mut worst_kw: f64 = 0.0;
    while t < end {
        let next = t.checked_add(window).unwrap();
        let wh: f64 = registers
            .iter()
            .map(|r| energy_at(r, next) - energy_at(r, t))
            .sum();
        worst_kw = worst_kw.max(wh / 1000.0 / 0.25);
        t = next;
    }
    eprintln!(
        "highest instantaneous sum seen {max_total:.3} kW; highest 15-min mean {worst_kw:.3} kW"
    );
    assert!(
        worst_kw <= CAPACITY_KW * 1.01,
        "15-minute mean draw {worst_kw} kW over the {CAPACITY_KW} kW capacity\n{}",
        server.log_tail()
    );
}
