#!/usr/bin/env bash
# Dashboard queries on a million calls: seeds a fresh database with
# `triage demo-seed`, then times every view (`triage bench-dashboard`).
#   CALLS=1000000 RUNS=5 TRIAGE_BIN=target/release/triage bench/dashboard.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
calls="${CALLS:-1000000}"
runs="${RUNS:-5}"
bin="${TRIAGE_BIN:-$root/target/release/triage}"
pg="${TRIAGE_TEST_PG:-postgres://postgres@127.0.0.1:5432}"
db="triage_bench_dashboard"
if [[ ! -x "$bin" ]]; then
  echo "bench/dashboard.sh: build first (cargo build --release --features ssr) or set TRIAGE_BIN" >&2
  exit 1
fi
psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
export DATABASE_URL="$pg/$db"
"$bin" demo-seed --calls "$calls" --days 30
"$bin" bench-dashboard --runs "$runs"
