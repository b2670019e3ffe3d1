#!/usr/bin/env bash
# Two Triage binaries side by side on the gateway harness, alternated, so a
# change is judged against its parent in one run on one (noisy) machine.
#
#   bench/compare.sh OLD_BIN NEW_BIN [ROUNDS]
#   MODEL=auto MODE=stream CACHE=use bench/compare.sh …
#
# Each leg: a fresh triage_bench database (the binary's own migrations),
# bench/triage.bench.toml, one key, then ../shared/bench/gateway_overhead.sh
# (direct and gateway legs back to back). Besides the harness's figures it
# reads the CPU that Postgres spent over the leg from /proc and divides it
# by the llm_calls rows written (backends that exit during the leg are
# missed, so it is a floor). Ends with one SUMMARY line per leg.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
harness="${GATEWAY_HARNESS:-$root/../shared/bench/gateway_overhead.sh}"
[[ -x "$harness" ]] || { echo "compare: $harness not found (set GATEWAY_HARNESS)" >&2; exit 1; }
[[ $# -ge 2 ]] || { echo "usage: bench/compare.sh OLD_BIN NEW_BIN [ROUNDS]" >&2; exit 2; }
# shellcheck source=bench/tools.sh
source "$root/bench/tools.sh"
need_wrk_and_nginx

old="$1" new="$2" rounds="${3:-2}"
model="${MODEL:-bench/fake}" mode="${MODE:-nostream}" cache="${CACHE:-bypass}"
pg_server="${TRIAGE_TEST_PG:-postgres://postgres@127.0.0.1:5432}"
port=3300
export DATABASE_URL="$pg_server/triage_bench" TRIAGE_CONFIG="$root/bench/triage.bench.toml"
export DURATION="${DURATION:-5}" REPEATS="${REPEATS:-2}" WARMUP="${WARMUP:-2}"
clk="$(getconf CLK_TCK)"

postgres_ticks() {  # utime+stime of every postgres process, in clock ticks
  local total=0 pid
  for pid in $(pgrep -x postgres || true); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

server=""
stop_server() { [[ -n "$server" ]] && kill -TERM "$server" 2>/dev/null && wait "$server" 2>/dev/null; server=""; }
trap stop_server EXIT

summary=()
for round in $(seq 1 "$rounds"); do
  for leg in old new; do
    bin="$old"; [[ $leg == new ]] && bin="$new"
    psql "$pg_server/postgres" -qc "DROP DATABASE IF EXISTS triage_bench WITH (FORCE)" >/dev/null 2>&1
    TRIAGE_ADDR="127.0.0.1:$port" "$bin" >"/tmp/triage-compare-$leg.log" 2>&1 &
    server=$!
    for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.5; done
    key="$("$bin" keys create --name bench 2>/dev/null)"
    stream=""; [[ $mode == stream ]] && stream=stream
    echo "=== round $round, $leg: $bin ($model, $mode, cache $cache)"
    pg0="$(postgres_ticks)"
    GATEWAY_HEADERS="X-Triage-Cache: $cache" GATEWAY_API_KEY="$key" GATEWAY_PIDS="$server" DIRECT_MODEL=bench-model \
      "$harness" "http://127.0.0.1:$port/v1" "$model" $stream | grep -v '^[0-9]' | tee /tmp/triage-compare-run.txt
    # read before the server stops: its connections' backends exit with it
    sleep 1
    pg1="$(postgres_ticks)"
    stop_server
    rows="$(psql "$DATABASE_URL" -Atqc 'SELECT count(*) FROM llm_calls')"
    pg_us="$(awk -v d=$((pg1 - pg0)) -v hz="$clk" -v n="$rows" 'BEGIN{ if (n > 0) printf "%.1f", d / hz * 1e6 / n; else print "-" }')"
    line="$(grep '^SUMMARY' /tmp/triage-compare-run.txt || true)"
    get() { echo "$line" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
    row="round=$round leg=$leg added_p50_us=$(get added_p50_us) added_p99_us=$(get added_p99_us) rps=$(get gateway_rps_c32)"
    row+=" direct_rps=$(get direct_rps_c32) ratio=$(get ratio) cpu_us=$(get gateway_cpu_us_per_req) rows=$rows postgres_cpu_us_per_row=$pg_us"
    echo "$row"
    summary+=("$row")
  done
done
echo
for row in "${summary[@]}"; do echo "SUMMARY compare $row"; done
