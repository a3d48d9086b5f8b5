#!/usr/bin/env bash
# Property-based API fuzzing with schemathesis (pinned in requirements.txt) against the real
# `orderly` binary over a seeded district (`orderly seed`): every operation in the OpenAPI
# document, as the admin and as a resident, must never answer 5xx, must answer only documented
# status codes, and must answer bodies that fit the documented schemas. Fixed seed: a failure
# reproduces with the same command. Logout is left out: it would end the session under test.
#
#   ORDERLY_BIN        binary to test (default: ${CARGO_TARGET_DIR:-target}/debug/orderly)
#   FUZZ_EXAMPLES      examples per operation and phase (default 25)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"

stamp="$venv/.requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    echo "$want" >"$stamp"
fi

target="${CARGO_TARGET_DIR:-target}"
[[ "$target" = /* ]] || target="$repo/$target"
bin="${ORDERLY_BIN:-$target/debug/orderly}"
[[ -x "$bin" ]] || { echo "api-fuzz: no orderly binary at $bin" >&2; exit 1; }

work="$(mktemp -d)"
server_pid=""
cleanup() {
    [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

"$bin" seed --data-dir "$work/data" >"$work/seed.txt"
"$bin" serve --data-dir "$work/data" --listen 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.err" &
server_pid=$!
for _ in $(seq 1 100); do
    grep -q '^listening on ' "$work/serve.out" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.err" >&2; exit 1; }
    sleep 0.1
done
addr="$(sed -n 's/^listening on //p' "$work/serve.out")"
admin="$(sed -n 's/^admin token: //p' "$work/serve.out")"
[[ -n "$addr" && -n "$admin" ]] || { echo "api-fuzz: server did not start" >&2; cat "$work/serve.err" >&2; exit 1; }
base="http://$addr"

# A resident's session token (the seed prints each user's password once).
read -r res_user res_pw < <(awk '$2 == "resident" { print $1, $3; exit }' "$work/seed.txt")
resident="$(curl -sf -H 'Content-Type: application/json' \
    -d "{\"user\":\"$res_user\",\"password\":\"$res_pw\"}" "$base/api/v1/login" |
    "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["token"])')"

checks="not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance"
status=0
for who in admin resident; do
    token="$admin"; [[ $who == resident ]] && token="$resident"
    echo "== schemathesis as $who"
    "$venv/bin/schemathesis" run "$base/api/v1/openapi.json" \
        -H "Authorization: Bearer $token" \
        --checks "$checks" \
        --exclude-path /api/v1/logout \
        --max-examples "${FUZZ_EXAMPLES:-25}" --seed 20261126 --workers 2 \
        --no-color >"$work/$who.txt" 2>&1 || status=1
    # The summary, and every failure in full when there is one.
    sed -n '/^=* FAILURES =*$/,/^=* WARNINGS =*$/p' "$work/$who.txt"
    sed -n '/^=* SUMMARY =*$/,$p' "$work/$who.txt"
done
if grep -q 'panicked' "$work/serve.err"; then
    echo "api-fuzz: the server panicked:" >&2
    grep -A5 'panicked' "$work/serve.err" >&2
    status=1
fi
exit $status
