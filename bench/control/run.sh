#!/usr/bin/env bash
# Grid-command benchmark: "grid command → new limits accepted by every charger" (issue 4 target:
# ≤ 2 s p99 at 1,000 chargers; figure reported at 10,000).
#
# For each N in SIZES: a fresh `orderly serve` (release build, fresh SQLite) with the config file
# `orderly-gridbench --write-config` writes (one community `bench` of N chargers, see
# crates/orderly-loadgen/src/gridbench.rs), then `orderly-gridbench`: N virtual OCPP 1.6J charge
# points (orderly_loadgen::virtual_cp), each with a car plugged in; once every charger is ready
# (SCENARIO=tx-profile: has accepted a TxProfile; fallback: holds its fallback profiles only)
# and profile traffic is quiet (SETTLE s), it
# POSTs /api/v1/communities/bench/grid-commands limiting the community to FRACTION of its current
# draw, and measures per charger the time from just before the POST until the charger had
# answered Accepted to the first SetChargingProfile that lowers its composite limit. Prints a
# markdown table and keeps each JSON report (n, latency p50/p90/p99/max, missing, ...) under OUT.
#
#   bash bench/control/run.sh                 # SIZES="1000 10000"
#   SIZES=1000 bash bench/control/run.sh
#
# Knobs (environment): SIZES, SCENARIO (tx-profile | fallback), RATE (charger connections/s, 500), FRACTION (0.5), SETTLE (3 s),
# READY_TIMEOUT (600 s), MEASURE_TIMEOUT (60 s), METER_INTERVAL (60 s), THREADS (1 generator
# worker), REPLAN (replan_interval_secs, 60), VALIDITY (profile_validity_secs, 300), OUT, NICE.
#
# Loopback only; one source address per 10,000 chargers (127.0.0.1, 127.0.0.2, ...). Both
# processes raise their open-file limit to the hard limit (`ulimit -Hn`, 20,000 here).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
SIZES=${SIZES:-"1000 10000"}
SCENARIO=${SCENARIO:-tx-profile}
RATE=${RATE:-500}
FRACTION=${FRACTION:-0.5}
SETTLE=${SETTLE:-3}
READY_TIMEOUT=${READY_TIMEOUT:-600}
MEASURE_TIMEOUT=${MEASURE_TIMEOUT:-60}
METER_INTERVAL=${METER_INTERVAL:-60}
THREADS=${THREADS:-1}
REPLAN=${REPLAN:-60}
VALIDITY=${VALIDITY:-300}
NICE=${NICE:-0}
OUT=${OUT:-$ROOT/target/bench-control/$(date -u +%Y%m%dT%H%M%SZ)}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
TOKEN=gridbench-$(date +%s%N)

mkdir -p "$OUT"
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
ulimit -n "$(ulimit -Hn)"
echo "open-file limit: $(ulimit -n)" >&2

cargo build --release -p orderly-server -p orderly-loadgen >&2
ORDERLY=${ORDERLY_BIN:-$CARGO_TARGET_DIR/release/orderly}
GRIDBENCH=$CARGO_TARGET_DIR/release/orderly-gridbench

SERVER_PID=""
stop_server() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}
trap stop_server EXIT

# wait_port LOGFILE → the port of the server's "listening on HOST:PORT" line.
wait_port() {
  local log=$1
  for _ in $(seq 1 600); do
    local port
    port=$(sed -n 's/^listening on \(.*:\)\{0,1\}\([0-9][0-9]*\)$/\2/p' "$log" | head -n1)
    if [[ -n "$port" ]]; then echo "$port"; return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "server exited:" >&2; cat "$log" "$log.stderr" >&2; return 1; }
    sleep 0.2
  done
  echo "server did not print 'listening on' within 120 s" >&2
  return 1
}

run_one() {
  local n=$1 dir=$OUT/n-$1 json=$OUT/gridbench-$1.json
  rm -rf "$dir"
  mkdir -p "$dir/data"
  "$GRIDBENCH" --write-config "$dir/orderly.toml" -n "$n" --scenario "$SCENARIO" \
    --replan-interval "$REPLAN" --profile-validity "$VALIDITY"
  ORDERLY_ADMIN_TOKEN=$TOKEN nice -n "$NICE" "$ORDERLY" serve --config "$dir/orderly.toml" \
    --listen 127.0.0.1:0 --data-dir "$dir/data" >"$dir/server.log" 2>"$dir/server.log.stderr" &
  SERVER_PID=$!
  PORT=$(wait_port "$dir/server.log")
  echo "== N=$n (server pid $SERVER_PID, port $PORT)" >&2
  local cmd=(nice -n "$NICE" "$GRIDBENCH" --server "127.0.0.1:$PORT" --token "$TOKEN" --community bench
    -n "$n" --no-register --scenario "$SCENARIO" --rate "$RATE" --fraction "$FRACTION" --settle "$SETTLE"
    --ready-timeout "$READY_TIMEOUT" --measure-timeout "$MEASURE_TIMEOUT"
    --meter-interval "$METER_INTERVAL" --threads "$THREADS")
  echo "${cmd[*]}" >"$json.cmd"
  cat /proc/loadavg >"$json.loadavg"
  "${cmd[@]}" >"$json" 2>"$json.log" || { echo "gridbench failed for N=$n:" >&2; tail -n 20 "$json.log" >&2; }
  stop_server
  sleep 5 # let the closed sockets leave before the next run
}

for n in $SIZES; do
  run_one "$n"
done

{
  echo "Machine: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p'), $(nproc) cores; $(date -u '+%Y-%m-%d %H:%M UTC'); load average before: $LOADAVG_START"
  echo "Server and generator share these cores. Scenario ${SCENARIO}; command: limit to ${FRACTION} × the community's draw."
  echo
  python3 - "$OUT" "$SIZES" <<'PY'
import json, os, sys
out, sizes = sys.argv[1], sys.argv[2].split()
print("| N | with TxProfile | draw before kW | limit kW | POST ms | p50 ms | p90 ms | p99 ms | max ms | missing | Σ limits ≤ command, ms | ready s |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for n in sizes:
    p = os.path.join(out, f"gridbench-{n}.json")
    if not os.path.exists(p) or os.path.getsize(p) == 0:
        print(f"| {int(n):,} | (failed: see {p}.log) ||||||||||")
        continue
    r = json.load(open(p)); l = r["latency_ms"]
    print(f"| {r['n']:,} | {r['with_tx_profile']:,} | {r['aggregate_kw_before']:,.1f} | {r['command_kw']:,.1f} | "
          f"{r['post_ms']:.1f} | {l['p50']:.1f} | {l['p90']:.1f} | {l['p99']:.1f} | {l['max']:.1f} | {r['missing']} | "
          f"{'–' if r['limits_within_command_ms'] is None else format(r['limits_within_command_ms'], '.1f')} | {r['ready_secs']:.1f} |")
PY
  echo
  echo "Reports: $OUT"
} | tee "$OUT/table.md"
