#!/usr/bin/env bash
# Interop suite: independent Python `ocpp` charge points against the real
# `orderly` binary. Usage: tests/interop/run.sh [pytest args...]
#
#   ORDERLY_BIN                 binary to test (default: ${CARGO_TARGET_DIR:-target}/debug/orderly,
#                               relative to the repo root)
#   ORDERLY_TEST_POSTGRES_URL   also run every test on PostgreSQL (a fresh database per server),
#                               e.g. postgres://postgres@127.0.0.1:5432/postgres
#   PYTHON                      interpreter for the venv (default: python3; needs >= 3.11)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"

if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    echo "interop: $python is older than 3.11 (ocpp 2.1.0 needs 3.11+)" >&2
    exit 1
fi

# (Re)install only when requirements.txt changed since the last install, so
# repeated runs cost nothing and an edited pin always takes effect.
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    echo "$want" >"$stamp"
fi

target="${CARGO_TARGET_DIR:-target}"
[[ "$target" = /* ]] || target="$repo/$target"
export ORDERLY_BIN="${ORDERLY_BIN:-$target/debug/orderly}"
if [[ ! -x "$ORDERLY_BIN" ]]; then
    echo "interop: no orderly binary at $ORDERLY_BIN (cargo build -p orderly-server, or set ORDERLY_BIN)" >&2
    exit 1
fi

if [[ -z "${ORDERLY_TEST_POSTGRES_URL:-}" ]]; then
    echo "interop: ORDERLY_TEST_POSTGRES_URL not set: PostgreSQL variants will be SKIPPED"
fi

cd "$here"
set +e
"$venv/bin/python" -m pytest "$@"
code=$?
set -e
if [[ $code -eq 5 ]]; then
    echo "interop: pytest collected no tests; that is a failure here" >&2
    exit 1
fi
exit $code
