#!/usr/bin/env bash
# Gateway benchmark: N OCPP 1.6J charge points (orderly-loadgen) against the ocpp-rpc reference
# CSMS and, when ORDERLY_BIN is given, against the orderly server, for each N in SIZES. Prints a
# markdown table (connections held, msg/s, p50/p99 round trip, server RSS per connection) and
# keeps every JSON report under OUT.
#
#   bash bench/gateway/run.sh                                   # ocpp-rpc peer only
#   ORDERLY_BIN=target/release/orderly bash bench/gateway/run.sh  # both, side by side
#
# Knobs (environment): SIZES ("1000 10000 19000"), STEADY (60 s measured per run), WARMUP (10 s
# between ramp and measuring), RATE (500
# connections/s ramp), INTERVAL (10 s per connection between messages), THREADS (1 loadgen worker),
# TARGETS ("ocpp-rpc orderly"), ORDERLY_PASSWORD (unset: chargers without Basic auth), OUT,
# NICE (0; e.g. -5 runs server and generator ahead of other work on a shared machine).
#
# Everything runs on loopback (127.0.0.1 and 127.0.0.2 as source addresses) and every run stops
# by itself: ramp (N/RATE + 60 s at most) + WARMUP + STEADY + a 10 s drain. A process may hold at most
# `ulimit -Hn` open files (20,000 on the benchmark machine): both sides raise their soft limit to it,
# so N up to ~19,900 fits. The load generator shares the machine's cores with the server under test.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
SIZES=${SIZES:-"1000 10000 19000"}
STEADY=${STEADY:-60}
WARMUP=${WARMUP:-10}
RATE=${RATE:-500}
INTERVAL=${INTERVAL:-10}
THREADS=${THREADS:-1}
NICE=${NICE:-0}
TARGETS=${TARGETS:-"ocpp-rpc orderly"}
OUT=${OUT:-$ROOT/target/bench-gateway/$(date -u +%Y%m%dT%H%M%SZ)}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PEER_DIR=$ROOT/bench/gateway/ocpp-rpc-peer

mkdir -p "$OUT"
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
ulimit -n "$(ulimit -Hn)"
echo "open-file limit: $(ulimit -n) (hard $(ulimit -Hn))" >&2

cargo build --release -p orderly-loadgen >&2
LOADGEN=$CARGO_TARGET_DIR/release/orderly-loadgen
(cd "$PEER_DIR" && npm ci --no-audit --no-fund --silent) >&2

SERVER_PID=""
stop_server() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}
trap stop_server EXIT

# wait_port LOGFILE → prints the port from the server's "listening on [HOST:]PORT" line.
wait_port() {
  local log=$1
  for _ in $(seq 1 300); do
    local port
    port=$(sed -n 's/^listening on \(.*:\)\{0,1\}\([0-9][0-9]*\)$/\2/p' "$log" | head -n1)
    if [[ -n "$port" ]]; then echo "$port"; return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "server exited:" >&2; cat "$log" >&2; return 1; }
    sleep 0.2
  done
  echo "server did not print 'listening on' within 60 s" >&2
  return 1
}

start_peer() {
  local log=$OUT/ocpp-rpc-$1.server.log
  nice -n "$NICE" node "$PEER_DIR/server.js" 0 127.0.0.1 >"$log" 2>&1 &
  SERVER_PID=$!
  PORT=$(wait_port "$log")
}

start_orderly() {
  local n=$1 dir=$OUT/orderly-$1.data log=$OUT/orderly-$1.server.log
  rm -rf "$dir"
  mkdir -p "$dir"
  local pw=()
  [[ -n "${ORDERLY_PASSWORD:-}" ]] && pw=(--password "$ORDERLY_PASSWORD")
  if "$ORDERLY_BIN" charger add-bulk --help >/dev/null 2>&1; then
    "$ORDERLY_BIN" charger add-bulk --pattern 'LG%05d' --first 1 --count "$n" "${pw[@]}" \
      --data-dir "$dir" >&2
  else
    echo "orderly has no 'charger add-bulk': registering $n chargers one by one" >&2
    for i in $(seq 1 "$n"); do
      "$ORDERLY_BIN" charger add "$(printf 'LG%05d' "$i")" "${pw[@]}" --data-dir "$dir" >/dev/null
    done
  fi
  nice -n "$NICE" "$ORDERLY_BIN" serve --listen 127.0.0.1:0 --data-dir "$dir" >"$log" 2>"$log.stderr" &
  SERVER_PID=$!
  PORT=$(wait_port "$log")
}

run_one() {
  local target=$1 n=$2 json=$OUT/$1-$2.json
  local auth=()
  case "$target" in
    ocpp-rpc) start_peer "$n" ;;
    orderly)
      start_orderly "$n"
      [[ -n "${ORDERLY_PASSWORD:-}" ]] && auth=(--password "$ORDERLY_PASSWORD")
      ;;
  esac
  echo "== $target N=$n (pid $SERVER_PID, port $PORT)" >&2
  local cmd=(nice -n "$NICE" "$LOADGEN" --url "ws://127.0.0.1:$PORT/ocpp/" -n "$n" --rate "$RATE"
    --interval "$INTERVAL" --warmup "$WARMUP" --duration "$STEADY" --threads "$THREADS"
    --server-pid "$SERVER_PID" "${auth[@]}")
  echo "${cmd[*]}" >"$json.cmd"
  cat /proc/loadavg >"$json.loadavg"
  "${cmd[@]}" >"$json" 2>"$json.log" || echo "loadgen failed for $target N=$n" >&2
  if [[ "$target" == orderly ]]; then
    # The server's own view (handling-time histogram by action), to split RTT into server and rest.
    curl -sf "http://127.0.0.1:$PORT/metrics" >"$OUT/orderly-$n.metrics" || true
  fi
  stop_server
  sleep 5 # let the closed sockets leave the server side before the next run
}

for n in $SIZES; do
  for target in $TARGETS; do
    if [[ "$target" == orderly && -z "${ORDERLY_BIN:-}" ]]; then continue; fi
    run_one "$target" "$n"
  done
done

{
  echo "Machine: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p'), $(nproc) cores; $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "Machine load average before the runs: $LOADAVG_START (other work shares these cores)."
  echo "Load: one message per connection every ${INTERVAL} s after boot, ramp ${RATE}/s, ${WARMUP} s warm-up, ${STEADY} s steady window; load generator on the same cores."
  echo
  python3 - "$OUT" "$SIZES" "$TARGETS" "$INTERVAL" <<'PY'
import json, os, sys
out, sizes, targets = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
interval = sys.argv[4]
pct = lambda v: "–" if v is None else f"{v:.0f}"
print(f"| N | CSMS | held | failed / dropped | msg/s | p50 RTT ms | p99 RTT ms | p99 per {interval}-s slice, min–max | max RTT ms | timeouts + errors | server RSS KiB/conn | server CPU % | loadgen CPU % |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for n in sizes:
    for t in targets:
        path = os.path.join(out, f"{t}-{n}.json")
        if not os.path.exists(path) or os.path.getsize(path) == 0:
            continue
        r = json.load(open(path))
        c, s, srv = r["connections"], r["steady"], r.get("server") or {}
        sl = s.get("rtt_p99_by_slice_ms") or [0.0]
        kib = srv.get("kib_per_connection")
        print(f"| {int(n):,} | {t} | {c['held']:,} | {c['failed']} / {c['dropped']} | "
              f"{s['messages_per_second']:,.0f} | {s['rtt']['p50_ms']:.2f} | {s['rtt']['p99_ms']:.2f} | "
              f"{min(sl):.1f}–{max(sl):.1f} | {s['rtt']['max_ms']:.1f} | {s['timeouts'] + s['errors']} | "
              f"{'–' if kib is None else f'{kib:.1f}'} | {pct(srv.get('cpu_steady_percent'))} | "
              f"{pct(r['loadgen'].get('cpu_steady_percent'))} |")
PY
  echo
  echo "Reports: $OUT"
} | tee "$OUT/table.md"
