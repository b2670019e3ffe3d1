#!/usr/bin/env bash
# Triage's added latency, throughput and CPU per request against a fast fake
# upstream, measured side by side with calling that upstream directly, using
# ../shared/bench/gateway_overhead.sh (nginx fake upstream + wrk).
#
#   bench/gateway.sh            concrete model and `auto`, non-streaming and streaming
#   MODES="nostream" bench/gateway.sh
#
# Builds the release binary, starts Triage on 127.0.0.1:3300 with its own
# database (triage_bench) and bench/triage.bench.toml, creates a key, runs
# the harness, stops everything it started.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
harness="${GATEWAY_HARNESS:-$root/../shared/bench/gateway_overhead.sh}"
[[ -x "$harness" ]] || { echo "bench: $harness not found (set GATEWAY_HARNESS)" >&2; exit 1; }
# shellcheck source=bench/tools.sh
source "$root/bench/tools.sh"
need_wrk_and_nginx

pg_server="${TRIAGE_TEST_PG:-postgres://postgres@127.0.0.1:5432}"
port=3300
cd "$root"
bin="${TRIAGE_BIN:-}"
if [[ -z "$bin" ]]; then
  cargo build --release --features ssr --bin triage
  bin="$root/target/release/triage"
fi
psql "$pg_server/postgres" -qc "DROP DATABASE IF EXISTS triage_bench WITH (FORCE)" >/dev/null
export DATABASE_URL="$pg_server/triage_bench" TRIAGE_CONFIG="$root/bench/triage.bench.toml"
TRIAGE_ADDR="127.0.0.1:$port" "$bin" >/tmp/triage-bench.log 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null' EXIT
for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.5; done
key="$("$bin" keys create --name bench 2>/dev/null)"

summary=""
# The harness repeats one temperature-0 request: without a bypass every
# request after the first would be a cache hit. Measured both ways.
for mode in ${MODES:-nostream stream}; do
  for model in bench/fake auto; do
    for cache in bypass use; do
      echo
      echo "=== Triage, model=$model, $mode, cache $cache"
      stream=""; [[ $mode == stream ]] && stream=stream
      GATEWAY_HEADERS="X-Triage-Cache: $cache" GATEWAY_API_KEY="$key" GATEWAY_PIDS="$server" \
        DIRECT_MODEL=bench-model "$harness" "http://127.0.0.1:$port/v1" "$model" $stream | grep -v '^[0-9]' \
        | tee /tmp/triage-gateway-run.txt || true
      line=$(grep '^SUMMARY' /tmp/triage-gateway-run.txt || true)
      get() { echo "$line" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
      summary+=" $mode/$model/cache-$cache:added_p50_us=$(get added_p50_us),cpu_us=$(get gateway_cpu_us_per_req),ratio=$(get ratio)"
    done
  done
done
echo
echo "rows written to llm_calls: $(psql "$DATABASE_URL" -Atqc 'SELECT count(*) FROM llm_calls')"
echo "SUMMARY gateway$summary"
