#!/usr/bin/env bash
# Quality of every policy on every Norway location with >= 100 sessions in the week, at capacity
# fractions 0.15, 0.25 and 0.40, with the offline optimum as yardstick; prints a markdown table.
# Usage: bench/simulate/quality.sh [--from 2019-11-04] [--days 7] [--fractions 0.15 0.25 0.40]
#        [--min-sessions 100] [--v2g-share 0.3]
set -euo pipefail
cd "$(dirname "$0")/../.."
dirty=$(git status --porcelain -- crates/orderly-schedule crates/orderly-sim | wc -l)
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%Y-%m-%dT%H:%MZ); commit $(git rev-parse --short HEAD) ($dirty uncommitted files in the engine and simulator)"
echo
cargo run --quiet --release -p orderly-sim --example quality -- "$@"
