//! The orchestration of one run: ramp (one task per connection, started at the configured rate),
//! wait until every connection has booted or failed, a warm-up (so that the ramp's backlog and
//! garbage do not count as steady state), a steady window of fixed length, a sample of
//! the server's and the generator's RSS, stop, bounded drain, report.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until, timeout};

use crate::conn::{Shared, run_connection};
use crate::plan::Plan;
use crate::stats::{
    Boot, Connections, LoadgenFacts, Messages, Report, ReportSettings, ServerMemory, Steady,
    Timing, cpu_percent, per_connection_kib,
};
use crate::sys;

/// Upper bound on the wait for the connection tasks after stop (drain + close, see [`crate::conn`]).
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Facts about the process that the report states.
#[derive(Debug, Clone, Copy)]
pub struct Environment {
    pub open_files_limit: u64,
    pub worker_threads: usize,
}

/// Runs `plan` to completion and returns its report. Bounded: ramp timeout + warm-up + steady
/// window + [`STOP_GRACE`]. Progress lines go to stderr.
pub async fn run(plan: Plan, env: Environment) -> Report {
    let n = plan.settings.connections;
    let server_pid = plan.settings.server_pid;
    let rss_before = server_pid.and_then(sys::rss_kib);
    let shared = Arc::new(Shared::new(plan));
    let plan = &shared.plan;
    let stats = &shared.stats;
    let (stop_tx, stop_rx) = watch::channel(false);

    let start = Instant::now();
    let ramp_deadline = start + plan.ramp_timeout;
    let mut tasks = JoinSet::new();
    let step = Duration::from_secs_f64(1.0 / plan.settings.rate);
    let mut last_progress = start;
    for index in 0..n {
        // Absolute slots, so a slow spawn does not lower the overall rate.
        sleep_until(start + step.mul_f64(index as f64)).await;
        tasks.spawn(run_connection(index, shared.clone(), stop_rx.clone()));
        if last_progress.elapsed() >= Duration::from_secs(5) {
            last_progress = Instant::now();
            eprintln!(
                "ramp: {} started, {} established, {} failed",
                index + 1,
                stats.established.get(),
                stats.failed.get()
            );
        }
        if Instant::now() >= ramp_deadline {
            eprintln!("ramp timeout reached after {} connections", index + 1);
            break;
        }
    }
    let all_settled = timeout(
        ramp_deadline.saturating_duration_since(Instant::now()),
        stats.wait_all_settled(),
    )
    .await
    .is_ok();
    let ramp_s = start.elapsed().as_secs_f64();
    if !plan.settings.warmup.is_zero() {
        eprintln!(
            "warm-up: {} connections open after {ramp_s:.1} s (all settled: {all_settled}); {} s before measuring",
            stats.open_now(),
            plan.settings.warmup.as_secs_f64()
        );
        sleep(plan.settings.warmup).await;
    }
    let steady_start = Instant::now();
    let held_at_steady_start = stats.open_now();
    eprintln!(
        "steady: {held_at_steady_start} connections open after {ramp_s:.1} s (all settled: {all_settled}); measuring {} s",
        plan.settings.duration.as_secs_f64()
    );
    stats.set_steady(true);
    let server_cpu_before = server_pid.and_then(sys::cpu_time);
    let own_cpu_before = sys::own_cpu_time();
    sleep(plan.settings.duration).await;
    stats.set_steady(false);
    let steady_wall = steady_start.elapsed();
    let steady_s = steady_wall.as_secs_f64();
    let server_cpu = cpu_percent(
        server_cpu_before,
        server_pid.and_then(sys::cpu_time),
        steady_wall,
    );
    let own_cpu = cpu_percent(own_cpu_before, sys::own_cpu_time(), steady_wall);
    let held = stats.open_now();
    let rss_steady = server_pid.and_then(sys::rss_kib);
    let own_rss = sys::own_rss_kib();

    let _ = stop_tx.send(true);
    let drained = timeout(STOP_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    if !drained {
        eprintln!("stop: {} tasks still closing, aborted", tasks.len());
        tasks.abort_all();
    }

    let s = &plan.settings;
    Report {
        target: plan.url_base.clone(),
        settings: ReportSettings {
            connections: n,
            rate_per_s: s.rate,
            interval_s: s.interval.as_secs_f64(),
            steady_s: s.duration.as_secs_f64(),
            source_addrs: plan.sources.iter().map(ToString::to_string).collect(),
            id_first: plan.id_for(0),
            id_last: plan.id_for(n - 1),
            basic_auth: plan.password.is_some(),
            seed: s.seed,
        },
        timing: Timing {
            ramp_s: round3(ramp_s),
            warmup_s: s.warmup.as_secs_f64(),
            all_settled,
            steady_s: round3(steady_s),
            total_s: round3(start.elapsed().as_secs_f64()),
        },
        connections: Connections {
            attempted: stats.attempted.get(),
            established: stats.established.get(),
            failed: stats.failed.get(),
            dropped: stats.dropped.get(),
            held,
            held_at_steady_start,
        },
        boot: Boot {
            accepted: stats.boot_accepted.get(),
            pending: stats.boot_pending.get(),
            rejected: stats.boot_rejected.get(),
            errors: stats.boot_errors.get(),
            rtt: stats.boot_rtt_summary(),
        },
        messages: Messages {
            sent: stats.sent.get(),
            answered: stats.answered.get(),
            call_errors: stats.call_errors.get(),
            timeouts: stats.timeouts.get(),
            bad_frames: stats.bad_frames.get(),
            server_calls: stats.server_calls.get(),
            late_sends: stats.late_sends.get(),
        },
        steady: Steady {
            sent: stats.steady_sent.get(),
            answered: stats.steady_answered.get(),
            errors: stats.steady_errors.get(),
            timeouts: stats.steady_timeouts.get(),
            messages_per_second: round3(stats.steady_answered.get() as f64 / steady_s),
            rtt: stats.rtt_summary(),
            rtt_p99_by_slice_ms: stats.slice_p99_ms(),
        },
        server: server_pid.map(|pid| ServerMemory {
            pid,
            rss_before_kib: rss_before,
            rss_steady_kib: rss_steady,
            kib_per_connection: per_connection_kib(rss_before, rss_steady, held),
            cpu_steady_percent: server_cpu,
        }),
        loadgen: LoadgenFacts {
            open_files_limit: env.open_files_limit,
            rss_steady_kib: own_rss,
            cpu_steady_percent: own_cpu,
            worker_threads: env.worker_threads,
        },
        failures: stats.failures(),
        call_error_codes: stats.error_codes(),
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
