#!/usr/bin/env bash
# Load and fault runs on loopback, each bounded in time:
#   bench/faults.sh pg-restart   Postgres restarted mid-load: requests fail fast
#                                or wait briefly, the service recovers alone,
#                                and every answered request has its llm_calls row
#   bench/faults.sh soak         CLIENTS (64) clients for DURATION (600) s:
#                                no errors, memory (RSS) sampled every 10 s
#   bench/faults.sh storm        the fake upstream fails FAULT_RATE (0.3) of
#                                requests (5xx, 429, resets, hangs, streams cut
#                                or garbled): every request ends in an answer or
#                                a clean error, and every upstream attempt has
#                                exactly one llm_calls row
# Restarting Postgres needs root (pg_ctlcluster); the script starts it again
# even if interrupted. TRIAGE_BIN defaults to the release build.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
mode="${1:-pg-restart}"
bin="${TRIAGE_BIN:-$root/target/release/triage}"
pg="${TRIAGE_TEST_PG:-postgres://postgres@127.0.0.1:5432}"
db=triage_faults
port=3300
out="$root/bench/results"
mkdir -p "$out"
cluster="$(ls /etc/postgresql | head -1)"
pg_up() { pg_ctlcluster --skip-systemctl-redirect "$cluster" main start >/dev/null 2>&1 || true; }

config="$root/bench/triage.faults.toml"
fault_rate=0
if [[ $mode == storm ]]; then
  config="$root/bench/triage.storm.toml"
  fault_rate="${FAULT_RATE:-0.3}"
fi
psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
FAKE_UPSTREAM_FAULT_RATE="$fault_rate" FAKE_UPSTREAM_PORT=3299 FAKE_UPSTREAM_DELAY_MS=0 node "$root/end2end/fake-upstream.mjs" >"$out/fake.log" 2>&1 &
fake=$!
TRIAGE_ADDR="127.0.0.1:$port" DATABASE_URL="$pg/$db" TRIAGE_CONFIG="$config" \
  TRIAGE_LOG__FILTER=warn "$bin" >"$out/server-$mode.log" 2>&1 &
server=$!
trap 'pg_up; kill $server $fake 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.5; done

rss() { awk '/VmRSS/ {print $2}' "/proc/$server/status"; }
count_rows() { psql "$pg/$db" -tAc "SELECT count(*) FROM llm_calls"; }

case "$mode" in
pg-restart)
  ids="$out/answered-ids.txt"
  DURATION="${DURATION:-40}" CLIENTS="${CLIENTS:-16}" IDS_FILE="$ids" TRIAGE_URL="http://127.0.0.1:$port" \
    node "$root/bench/load.mjs" >"$out/load-$mode.json" &
  load=$!
  sleep 10
  echo "faults: restarting PostgreSQL mid-load"
  t0=$(date +%s.%N)
  pg_ctlcluster --skip-systemctl-redirect "$cluster" main restart
  echo "faults: PostgreSQL back after $(echo "$(date +%s.%N) - $t0" | bc) s"
  wait $load
  cat "$out/load-$mode.json"
  # Give the call log time to write what it queued while the database was away.
  sleep 5
  answered=$(grep -c . "$ids" || true)
  missing=$(psql "$pg/$db" -qtA -c "CREATE TEMP TABLE answered (id uuid)" -c "\\copy answered FROM '$ids'" \
    -c "SELECT count(*) FROM answered a WHERE NOT EXISTS (
        SELECT 1 FROM llm_calls c WHERE c.request_id = a.id AND c.kind = 'generate' AND c.status = 'ok')" | tail -1)
  dupes=$(psql "$pg/$db" -tAc "SELECT count(*) FROM (SELECT request_id FROM llm_calls WHERE kind = 'generate' AND status = 'ok'
      GROUP BY request_id HAVING count(*) > 1) d")
  healthy=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz")
  echo "summary: pg-restart: $answered answered, $missing without their llm_calls row, $dupes recorded twice; /healthz after: $healthy"
  ;;
soak)
  duration="${DURATION:-600}"
  DURATION="$duration" CLIENTS="${CLIENTS:-64}" TRIAGE_URL="http://127.0.0.1:$port" \
    node "$root/bench/load.mjs" >"$out/load-$mode.json" &
  load=$!
  : >"$out/rss-$mode.txt"
  while kill -0 $load 2>/dev/null; do
    echo "$(date +%s) $(rss)" >>"$out/rss-$mode.txt"
    sleep 10
  done
  wait $load || true
  cat "$out/load-$mode.json"
  first=$(sed -n 2p "$out/rss-$mode.txt" | cut -d' ' -f2)
  last=$(tail -1 "$out/rss-$mode.txt" | cut -d' ' -f2)
  sleep 3
  echo "summary: soak ${duration}s: RSS ${first} kB after 10 s, ${last} kB at the end; $(count_rows) llm_calls rows"
  ;;
storm)
  ids="$out/answered-ids.txt"
  DURATION="${DURATION:-60}" CLIENTS="${CLIENTS:-16}" STREAM_SHARE=0.5 IDS_FILE="$ids" \
    TRIAGE_URL="http://127.0.0.1:$port" node "$root/bench/load.mjs" >"$out/load-$mode.json"
  cat "$out/load-$mode.json"
  sleep 3 # the call log's last batch
  upstream=$(curl -s http://127.0.0.1:3299/stats)
  echo "fake upstream: $upstream"
  received=$(node -e 'console.log(JSON.parse(process.argv[1]).received)' "$upstream")
  rows=$(psql "$pg/$db" -tAc "SELECT count(*) FROM llm_calls WHERE kind = 'generate'")
  # a streamed answer is one 200 whose stream carried an error event
  clean=$(node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1]));
    const bad = Object.entries(r.statuses).filter(([s]) => !["200", "502", "503", "504", "stream error event"].includes(s));
    console.log(bad.length ? "unclean: " + JSON.stringify(Object.fromEntries(bad)) : "clean");' "$out/load-$mode.json")
  answered=$(grep -c . "$ids" || true)
  missing=$(psql "$pg/$db" -qtA -c "CREATE TEMP TABLE answered (id uuid)" -c "\\copy answered FROM '$ids'" \
    -c "SELECT count(*) FROM answered a WHERE (SELECT count(*) FROM llm_calls c
        WHERE c.request_id = a.id AND c.kind = 'generate' AND c.status = 'ok') <> 1" | tail -1)
  by_status=$(psql "$pg/$db" -tAc "SELECT string_agg(status || '=' || n, ' ' ORDER BY status) FROM
      (SELECT status, count(*) n FROM llm_calls WHERE kind = 'generate' GROUP BY 1) s")
  healthy=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz")
  echo "llm_calls generation rows by status: $by_status"
  echo "summary: storm: upstream received $received attempts, llm_calls has $rows generation rows; $answered answered, $missing of them without exactly one ok row; responses $clean; /healthz after: $healthy"
  ;;
*)
  echo "usage: bench/faults.sh pg-restart|soak|storm" >&2
  exit 2
  ;;
esac
