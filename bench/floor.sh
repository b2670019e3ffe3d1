#!/usr/bin/env bash
# Triage beside the floors under it, alternated in one run: the fake
# upstream's own nginx proxy hop (port 18082), `bare_proxy` (axum + reqwest
# as Triage builds them, forwarding bytes; bench/bare_proxy.rs) and Triage.
# What bare_proxy costs, Triage's stack costs before any of its own work.
#
#   bench/floor.sh [TRIAGE_BIN] [ROUNDS]
#   (defaults: target/release/triage, 2; builds examples/bare_proxy in the
#   same target directory; CARGO_TARGET_DIR is honoured)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
harness="${GATEWAY_HARNESS:-$root/../shared/bench/gateway_overhead.sh}"
[[ -x "$harness" ]] || { echo "floor: $harness not found (set GATEWAY_HARNESS)" >&2; exit 1; }
# shellcheck source=bench/tools.sh
source "$root/bench/tools.sh"
need_wrk_and_nginx

target="${CARGO_TARGET_DIR:-$root/target}"
triage="${1:-$target/release/triage}" rounds="${2:-2}"
cargo build --release --features ssr --example bare_proxy >&2
bare="$target/release/examples/bare_proxy"
pg_server="${TRIAGE_TEST_PG:-postgres://postgres@127.0.0.1:5432}"
export DATABASE_URL="$pg_server/triage_bench" TRIAGE_CONFIG="$root/bench/triage.bench.toml"
export DURATION="${DURATION:-5}" REPEATS="${REPEATS:-2}" WARMUP="${WARMUP:-2}" DIRECT_MODEL=bench-model

pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
"$root/../shared/bench/fake_upstream.sh" start >&2
wait_for() { for _ in $(seq 1 120); do curl -s -o /dev/null "$1" && return; sleep 0.5; done; echo "floor: $1 did not come up" >&2; exit 1; }

BARE_ADDR=127.0.0.1:3400 "$bare" >/tmp/triage-floor-bare.log 2>&1 &
bare_pid=$!; pids+=("$bare_pid")
psql "$pg_server/postgres" -qc "DROP DATABASE IF EXISTS triage_bench WITH (FORCE)" >/dev/null 2>&1
TRIAGE_ADDR=127.0.0.1:3300 "$triage" >/tmp/triage-floor-triage.log 2>&1 &
triage_pid=$!; pids+=("$triage_pid")
wait_for http://127.0.0.1:3300/healthz
wait_for http://127.0.0.1:3400/
key="$("$triage" keys create --name floor 2>/dev/null)"

summary=()
for round in $(seq 1 "$rounds"); do
  for leg in nginx bare triage; do
    case $leg in
      # the harness's own default: the nginx worker, which also serves the upstream
      nginx) url=http://127.0.0.1:18082/v1 model=bench-model env=(GATEWAY_API_KEY=) ;;
      bare) url=http://127.0.0.1:3400/v1 model=bench-model env=(GATEWAY_API_KEY= GATEWAY_PIDS="$bare_pid") ;;
      triage) url=http://127.0.0.1:3300/v1 model=bench/fake env=(GATEWAY_API_KEY="$key" GATEWAY_PIDS="$triage_pid" GATEWAY_HEADERS="X-Triage-Cache: bypass") ;;
    esac
    echo "=== round $round: $leg" >&2
    line="$(env "${env[@]}" "$harness" "$url" "$model" | grep '^SUMMARY' || true)"
    summary+=("SUMMARY floor round=$round leg=$leg ${line#SUMMARY }")
  done
done
for row in "${summary[@]}"; do echo "$row"; done
