#!/usr/bin/env bash
# Triage beside the gateways people would pick instead, in one run, with one
# harness (../shared/bench/gateway_overhead.sh: nginx fake upstream, wrk):
# a bare nginx proxy hop (calibration), Triage (a concrete model and `auto`,
# cache bypassed: the full path with its call-log row), LiteLLM proxy (PyPI,
# one worker) and Portkey gateway (npm). Non-streaming and streaming.
#
#   bench/peers.sh                      everything (about 25 minutes at the defaults)
#   STEPS="triage portkey" MODES=nostream DURATION=5 REPEATS=1 bench/peers.sh
#
# Installs the peers under /tmp/peers on first use (the shared scripts), runs
# one gateway at a time on an otherwise idle machine, and prints a markdown
# table plus a summary line with Triage's ratios to each peer.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
shared="${GATEWAY_BENCH_DIR:-$root/../shared/bench}"
harness="$shared/gateway_overhead.sh"
[[ -x "$harness" ]] || { echo "bench: $harness not found (set GATEWAY_BENCH_DIR)" >&2; exit 1; }
# shellcheck source=bench/tools.sh
source "$root/bench/tools.sh"
need_wrk_and_nginx
export PEERS="${PEERS:-/tmp/peers}"
steps="${STEPS:-nginx triage litellm portkey}"
[[ " $steps " == *" litellm "* && ! -x "$PEERS/litellm-venv/bin/litellm" ]] && "$shared/peers/litellm.sh" install
[[ " $steps " == *" portkey "* && ! -d "$PEERS/portkey" ]] && "$shared/peers/portkey.sh" install
export DURATION="${DURATION:-10}" REPEATS="${REPEATS:-3}" WARMUP="${WARMUP:-3}"
results="${RESULTS:-$root/bench/results/peers-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$results"

pg_server="${TRIAGE_TEST_PG:-postgres://postgres@127.0.0.1:5432}"
bin="${TRIAGE_BIN:-}"
if [[ " $steps " == *" triage "* && -z "$bin" ]]; then
  (cd "$root" && cargo build --release --features ssr --bin triage)
  bin="$root/target/release/triage"
fi

"$shared/fake_upstream.sh" start >/dev/null
server=""
cleanup() {
  [[ -n "$server" ]] && { kill -TERM "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; }
  "$shared/peers/litellm.sh" stop >/dev/null 2>&1 || true
  "$shared/peers/portkey.sh" stop >/dev/null 2>&1 || true
  "$shared/fake_upstream.sh" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

run() { # name, then gateway_overhead.sh's arguments (environment set by the caller)
  local name="$1"; shift
  echo "=== $name ($(date +%T))" >&2
  if OUT_DIR="$results/raw-$name" "$harness" "$@" >"$results/$name.log" 2>&1; then
    grep '^SUMMARY' "$results/$name.log" >&2 || true
  else
    echo "FAILED: $results/$name.log" >&2; tail -5 "$results/$name.log" >&2
  fi
}

pk_headers='x-portkey-provider: openai|x-portkey-custom-host: http://127.0.0.1:18080/v1'
for step in $steps; do
  case "$step" in
  nginx)
    for mode in ${MODES:-nostream stream}; do
      GATEWAY_API_KEY="" run "nginx-hop-$mode" http://127.0.0.1:18082/v1 fake-model ${mode/nostream/}
    done ;;
  triage)
    psql "$pg_server/postgres" -qc "DROP DATABASE IF EXISTS triage_bench WITH (FORCE)" >/dev/null
    export DATABASE_URL="$pg_server/triage_bench"
    TRIAGE_CONFIG="$root/bench/triage.bench.toml" TRIAGE_ADDR=127.0.0.1:3300 "$bin" >"$results/triage-server.txt" 2>&1 &
    server=$!
    for _ in $(seq 1 120); do curl -sf http://127.0.0.1:3300/healthz >/dev/null && break; sleep 0.5; done
    key="$(TRIAGE_CONFIG="$root/bench/triage.bench.toml" "$bin" keys create --name peers-bench 2>/dev/null)"
    for mode in ${MODES:-nostream stream}; do
      for model in bench/fake auto; do
        GATEWAY_HEADERS="X-Triage-Cache: bypass" GATEWAY_API_KEY="$key" GATEWAY_PIDS="$server" DIRECT_MODEL=bench-model \
          run "triage-${model/bench\//}-$mode" http://127.0.0.1:3300/v1 "$model" ${mode/nostream/}
      done
    done
    echo "triage: $(psql "$DATABASE_URL" -Atc 'SELECT count(*) FROM llm_calls') llm_calls rows written" >&2
    kill -TERM "$server"; wait "$server" 2>/dev/null || true; server="" ;;
  litellm)
    "$shared/peers/litellm.sh" start 1 >/dev/null
    for mode in ${MODES:-nostream stream}; do
      run "litellm-$mode" http://127.0.0.1:4000/v1 fake ${mode/nostream/}
    done
    "$shared/peers/litellm.sh" stop >/dev/null ;;
  portkey)
    "$shared/peers/portkey.sh" start >/dev/null
    for mode in ${MODES:-nostream stream}; do
      GATEWAY_API_KEY=sk-fake-upstream GATEWAY_HEADERS="$pk_headers" run "portkey-$mode" http://127.0.0.1:8787/v1 fake-model ${mode/nostream/}
    done
    "$shared/peers/portkey.sh" stop >/dev/null ;;
  *) echo "bench: unknown step $step" >&2; exit 2 ;;
  esac
done

"$shared/peers/summarize.sh" "$results"
# Triage's full path (concrete model) against each peer, same mode.
summary="SUMMARY peers"
for mode in ${MODES:-nostream stream}; do
  f="$results/triage-fake-$mode.log"
  [[ -f $f ]] || continue
  get() { grep '^SUMMARY' "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p"; }
  t_cpu=$(get "$f" gateway_cpu_us_per_req); t_add=$(get "$f" added_p50_us)
  summary+=" $mode:triage_added_p50_us=$t_add,triage_cpu_us=$t_cpu"
  for peer in litellm portkey; do
    p="$results/$peer-$mode.log"
    [[ -f $p ]] || continue
    p_cpu=$(get "$p" gateway_cpu_us_per_req); p_add=$(get "$p" added_p50_us)
    summary+=",${peer}_added_p50_us=$p_add,${peer}_cpu_us=$p_cpu"
    [[ -n $t_cpu && -n $p_cpu ]] && summary+=",${peer}_cpu_ratio=$(echo "scale=1; $p_cpu / $t_cpu" | bc)"
  done
done
echo "$summary"
