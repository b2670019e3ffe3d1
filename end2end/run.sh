#!/usr/bin/env bash
# Builds the app with cargo-leptos, serves it on a fresh database, and runs
# the browser tests (node's test runner + playwright-core + Debian chromium).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
port="${TRIAGE_E2E_PORT:-3100}"
pg_server="${TRIAGE_TEST_PG:-postgres://postgres@127.0.0.1:5432}"
db="triage_e2e"
out="$root/end2end/test-results"
mkdir -p "$out" "$root/end2end/screenshots"

echo "e2e: cargo leptos build"
cargo leptos build

psql "$pg_server/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
FAKE_UPSTREAM_PORT=3199 node "$root/end2end/fake-upstream.mjs" >"$out/fake-upstream.log" 2>&1 &
fake=$!
TRIAGE_ADDR="127.0.0.1:$port" DATABASE_URL="$pg_server/$db" \
  TRIAGE_CONFIG="$root/end2end/triage.e2e.toml" \
  TRIAGE_MODELS_DIR="${TRIAGE_MODELS_DIR:-$root/models}" \
  "$root/target/debug/triage" >"$out/server.log" 2>&1 &
server=$!
stop() {
  kill -TERM "$server" "$fake" 2>/dev/null || true
  wait "$server" "$fake" 2>/dev/null || true
}
trap stop EXIT

for _ in $(seq 1 240); do
  if curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; then break; fi
  if ! kill -0 "$server" 2>/dev/null; then
    echo "e2e: the server exited; its log:" >&2
    cat "$out/server.log" >&2
    exit 1
  fi
  sleep 0.5
done

export TRIAGE_E2E_URL="http://127.0.0.1:$port"
export TRIAGE_E2E_DATABASE_URL="$pg_server/$db"
status=0
node --test --test-concurrency=1 "$root/end2end/tests/" || status=$?
if [[ $status != 0 ]]; then
  echo "e2e: failed; server log tail:" >&2
  tail -n 50 "$out/server.log" >&2
fi
exit $status
