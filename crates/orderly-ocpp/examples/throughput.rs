//! Prints what one inbound message costs the sans-IO layer (parse + schema validation + typed
//! conversion, and the CALLRESULT text), the size of a `Connection`, and the one-off cost of
//! compiling the 56 schemas. A benchmark that prints figures; nothing is asserted.
//!
//!     cargo run --release -p orderly-ocpp --example throughput

use std::hint::black_box;
use std::time::{Duration, Instant};

use orderly_ocpp::v16::{HeartbeatResponse, MeterValuesResponse};
use orderly_ocpp::{Connection, Event, Timestamp};

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn measure(name: &str, text: &str) {
    let mut conn = Connection::new(Default::default());
    let now = Instant::now();
    let reply_time: Timestamp = "2026-11-26T08:00:00Z".parse().unwrap();
    // Warm up, then run for about a second.
    for _ in 0..1_000 {
        black_box(conn.handle_text(text, now));
    }
    let mut n = 0u64;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        for _ in 0..1_000 {
            match conn.handle_text(black_box(text), now) {
                Event::Request { unique_id, request } => {
                    let reply = match request.action() {
                        orderly_ocpp::Action::Heartbeat => conn.respond(
                            &unique_id,
                            &HeartbeatResponse {
                                current_time: reply_time,
                            },
                        ),
                        _ => conn.respond(&unique_id, &MeterValuesResponse {}),
                    };
                    black_box(reply);
                }
                other => panic!("{other:?}"),
            }
        }
        n += 1_000;
    }
    let per = start.elapsed() / n as u32;
    println!(
        "{name:<34} {:>8.2} µs/message  {:>9.0} messages/s/core  ({} bytes)",
        per.as_secs_f64() * 1e6,
        1.0 / per.as_secs_f64(),
        text.len()
    );
}

fn main() {
    let before = rss_kib();
    let t = Instant::now();
    orderly_ocpp::validate::warm_up();
    let compile = t.elapsed();
    let after = rss_kib();
    println!(
        "compile 56 schemas: {:.1} ms, RSS +{} KiB (shared by all connections)",
        compile.as_secs_f64() * 1e3,
        after.zip(before).map_or(0, |(a, b)| a.saturating_sub(b))
    );
    println!(
        "size_of::<Connection>() = {} bytes (idle: no heap)",
        std::mem::size_of::<Connection>()
    );

    measure("Heartbeat", r#"[2,"19223201","Heartbeat",{}]"#);
    measure(
        "StatusNotification",
        r#"[2,"a7","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Charging","timestamp":"2026-11-26T08:00:00Z"}]"#,
    );
    measure(
        "StartTransaction",
        r#"[2,"a8","StartTransaction",{"connectorId":1,"idTag":"04A2B3C4","meterStart":1200,"timestamp":"2026-11-26T22:00:00"}]"#,
    );
    measure(
        "MeterValues (5 samples)",
        r#"[2,"a9","MeterValues",{"connectorId":1,"transactionId":7,"meterValue":[{"timestamp":"2026-11-26T22:15:00Z","sampledValue":[{"value":"1234.5","context":"Sample.Periodic","measurand":"Energy.Active.Import.Register","location":"Outlet","unit":"Wh"},{"value":"7.2","measurand":"Power.Active.Import","unit":"kW"},{"value":"230.1","measurand":"Voltage","phase":"L1-N","unit":"V"},{"value":"31.9","measurand":"Current.Import","phase":"L1","unit":"A"},{"value":"80","measurand":"SoC","location":"EV","unit":"Percent"}]}]}]"#,
    );
}
