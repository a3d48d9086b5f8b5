//! Prometheus metrics: names, labels and the process-wide recorder.
//!
//! The `metrics` facade has one global recorder per process, so several servers started in one
//! process (the integration tests do that) share counters; the connected-chargers gauge is set
//! from each server's own registry at scrape time, so it is always that server's figure.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

pub const CONNECTED_CHARGERS: &str = "orderly_connected_chargers";
pub const MESSAGES_TOTAL: &str = "orderly_ocpp_messages_total";
pub const HANDLING_SECONDS: &str = "orderly_ocpp_handling_seconds";
pub const ERRORS_TOTAL: &str = "orderly_ocpp_errors_total";
pub const STORE_BATCHES: &str = "orderly_store_write_batches_total";
pub const STORE_OPERATIONS: &str = "orderly_store_write_operations_total";
pub const STORE_FALLBACKS: &str = "orderly_store_write_fallbacks_total";
pub const STORE_BUSY: &str = "orderly_store_writer_busy_microseconds_total";

/// Message direction label values.
pub const INBOUND: &str = "in";
pub const OUTBOUND: &str = "out";

/// Buckets for the handling latency, from sub-millisecond (memory-only answers) to seconds
/// (a stalled database), so p50/p99 stay readable on a dashboard.
const HANDLING_BUCKETS: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The process-wide Prometheus handle, installing the recorder on first use.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(HANDLING_SECONDS.to_owned()),
                &HANDLING_BUCKETS,
            )
            .expect("bucket list is non-empty")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (e.g. by an embedding program); then our
        // handle still renders what this crate records through `handle`-less paths, which is
        // nothing, so say so loudly instead of failing the server.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        describe();
        handle
    })
}

fn describe() {
    metrics::describe_gauge!(CONNECTED_CHARGERS, "Chargers with an open OCPP WebSocket.");
    metrics::describe_counter!(
        MESSAGES_TOTAL,
        "OCPP messages by action and direction (in = from chargers, out = to chargers)."
    );
    metrics::describe_histogram!(
        HANDLING_SECONDS,
        metrics::Unit::Seconds,
        "Time from receiving a charger's CALL to sending the answer (persistence included)."
    );
    metrics::describe_counter!(
        ERRORS_TOTAL,
        "OCPP CALLERRORs sent or received, by error code."
    );
}

/// Count one OCPP message. Labels are `&'static str` so counting allocates nothing.
pub fn message(action: &'static str, direction: &'static str) {
    metrics::counter!(MESSAGES_TOTAL, "action" => action, "direction" => direction).increment(1);
}

/// Count one CALLERROR (or failed call) by code.
pub fn error(code: &'static str) {
    metrics::counter!(ERRORS_TOTAL, "code" => code).increment(1);
}

/// Record how long answering a charger's CALL took.
pub fn handling_time(elapsed: Duration) {
    metrics::histogram!(HANDLING_SECONDS).record(elapsed.as_secs_f64());
}

/// Render the Prometheus text exposition, with the connected-chargers gauge set to `connected`
/// and the store's writer counters to `writer`.
pub fn render(connected: usize, writer: orderly_store::WriterStats) -> String {
    let handle = handle();
    metrics::gauge!(CONNECTED_CHARGERS).set(connected as f64);
    metrics::counter!(STORE_BATCHES).absolute(writer.batches);
    metrics::counter!(STORE_OPERATIONS).absolute(writer.operations);
    metrics::counter!(STORE_FALLBACKS).absolute(writer.fallbacks);
    metrics::counter!(STORE_BUSY).absolute(writer.busy_micros);
    handle.run_upkeep();
    handle.render()
}
