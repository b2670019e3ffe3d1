#!/usr/bin/env bash
# Builds the app with cargo-leptos, serves it on a fresh database, and runs
# the browser tests (node's test runner + playwright-core + Debian chromium),
# then the API tests: the official `openai` Python client against /v1, and
# a second instance on the same database to check shared rate limits.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
port="${TRIAGE_E2E_PORT:-3100}"
pg_server="${TRIAGE_TEST_PG:-postgres://postgres@127.0.0.1:5432}"
db="triage_e2e"
out="$root/end2end/test-results"
mkdir -p "$out" "$root/end2end/screenshots"

# The browser bundle comes from cargo-leptos. The server is the debug binary:
# scripts/test passes the one `cargo test` has just built (TRIAGE_BIN), as
# a second cargo-leptos server build would recompile every dependency
# (its RUSTFLAGS differ); run alone, this builds it.
echo "e2e: cargo leptos build --frontend-only"
cargo leptos build --frontend-only
bin="${TRIAGE_BIN:-}"
if [[ -z "$bin" ]]; then
  echo "e2e: cargo build --features ssr --bin triage"
  RUSTFLAGS="${RUSTFLAGS:---cfg erase_components}" cargo build --features ssr --bin triage
  bin="$root/target/debug/triage"
fi

psql "$pg_server/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
# The dashboard's "retrain" writes classifier-head.json: give the server a
# models directory of its own (links to the real files) so it cannot
# overwrite the real head.
models_src="${TRIAGE_MODELS_DIR:-$root/models}"
models="$out/models"
rm -rf "$models" && mkdir -p "$models"
for f in "$models_src"/*; do
  [[ "$(basename "$f")" == classifier-head.json ]] || ln -s "$f" "$models/"
done
FAKE_UPSTREAM_PORT=3199 node "$root/end2end/fake-upstream.mjs" >"$out/fake-upstream.log" 2>&1 &
fake=$!
TRIAGE_ADDR="127.0.0.1:$port" DATABASE_URL="$pg_server/$db" \
  TRIAGE_CONFIG="$root/end2end/triage.e2e.toml" \
  TRIAGE_MODELS_DIR="$models" \
  "$bin" >"$out/server.log" 2>&1 &
server=$!
second=""
stop() {
  kill -TERM "$server" "$fake" $second 2>/dev/null || true
  wait "$server" "$fake" $second 2>/dev/null || true
}
trap stop EXIT

wait_up() { # port pid log
  for _ in $(seq 1 240); do
    if curl -sf "http://127.0.0.1:$1/healthz" >/dev/null; then return 0; fi
    if ! kill -0 "$2" 2>/dev/null; then
      echo "e2e: the server exited; its log:" >&2
      cat "$3" >&2
      exit 1
    fi
    sleep 0.5
  done
}
wait_up "$port" "$server" "$out/server.log"
triage_cli() { DATABASE_URL="$pg_server/$db" TRIAGE_CONFIG="$root/end2end/triage.e2e.toml" "$bin" "$@"; }
echo "e2e admin password" | triage_cli admin create --username admin

export TRIAGE_E2E_URL="http://127.0.0.1:$port"
export TRIAGE_E2E_DATABASE_URL="$pg_server/$db"
status=0
node --test --test-concurrency=1 "$root/end2end/tests/" || status=$?

if [[ $status == 0 ]]; then
  echo "e2e: the openai Python client against /v1"
  venv="${TRIAGE_PY_VENV:-$HOME/.cache/triage/openai-venv}"
  if ! "$venv/bin/python" -c 'import openai, sys; sys.exit(openai.__version__ != "3.54.0")' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "openai==3.54.0"
  fi
  TRIAGE_E2E_KEY="$(triage_cli keys create --name e2e-python 2>/dev/null)" \
    "$venv/bin/python" "$root/end2end/api/test_openai_client.py" || status=$?
fi
if [[ $status == 0 ]]; then
  echo "e2e: two instances, one database, one rate-limited key"
  port2=$((port + 1))
  TRIAGE_ADDR="127.0.0.1:$port2" DATABASE_URL="$pg_server/$db" \
    TRIAGE_CONFIG="$root/end2end/triage.e2e.toml" TRIAGE_LOCAL__ENABLED=false \
    "$bin" >"$out/server2.log" 2>&1 &
  second=$!
  wait_up "$port2" "$second" "$out/server2.log"
  rpm=120
  TRIAGE_E2E_URLS="http://127.0.0.1:$port http://127.0.0.1:$port2" RPM=$rpm \
    TRIAGE_E2E_LIMIT_KEY="$(triage_cli keys create --name e2e-limits --rpm $rpm 2>/dev/null)" \
    node "$root/end2end/api/limits.mjs" || status=$?
fi
if [[ $status != 0 ]]; then
  echo "e2e: failed; server log tail:" >&2
  tail -n 50 "$out/server.log" >&2
fi
exit $status
