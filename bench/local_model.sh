#!/usr/bin/env bash
# Local model speed, side by side in one run: Triage's embedded llama.cpp
# (llama-cpp-2) against llama.cpp's Python binding (llama-cpp-python from
# PyPI, built from source) on the same GGUF, prompt, greedy decoding and 2
# threads. Prints both summaries and the ratio last.
#   bench/local_model.sh [RUNS] [TOKENS]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
runs="${1:-5}"
tokens="${2:-200}"
export TRIAGE_MODELS_DIR="${TRIAGE_MODELS_DIR:-$root/models}"
"$root/scripts/fetch-models" >/dev/null

venv="${TRIAGE_BENCH_VENV:-$HOME/.cache/triage/bench-venv}"
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import llama_cpp' 2>/dev/null; then
  echo "bench: installing llama-cpp-python==0.3.36 into $venv (compiles llama.cpp; several minutes, once)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'llama-cpp-python==0.3.36'
fi

# TRIAGE_BENCH_BIN=target/debug/triage skips the release build: dependencies
# (llama.cpp included) are optimised in the dev profile too.
bin="${TRIAGE_BENCH_BIN:-}"
if [[ -z "$bin" ]]; then
  echo "bench: building triage (release)"
  cargo build --release --features ssr --bin triage --quiet
  bin="$root/target/release/triage"
fi
system="You are a friendly, concise customer support assistant. Answer the customer's question clearly in a few sentences."
user="My order #48213 arrived damaged and the box was open. What are my options for a refund or replacement?"

echo "== triage (llama-cpp-2, in process)"
triage_out="$("$bin" bench-local --runs "$runs" --tokens "$tokens" | tee /dev/stderr | grep '^SUMMARY')"
echo "== llama-cpp-python (reference)"
ref_out="$("$venv/bin/python" "$root/bench/llama_cpp_reference.py" "$TRIAGE_MODELS_DIR/SmolLM2-135M-Instruct.Q4_1.gguf" "$runs" "$tokens" "$system" "$user" | tee /dev/stderr | grep '^SUMMARY')"

field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$2"; }
t_rate="$(field decode_tok_s_p50 "$triage_out")"; r_rate="$(field decode_tok_s_p50 "$ref_out")"
t_ttft="$(field ttft_ms_p50 "$triage_out")"; r_ttft="$(field ttft_ms_p50 "$ref_out")"
ratio="$(python3 -c "print(f'{$t_rate / $r_rate:.2f}')")"
echo "SUMMARY local_model triage_tok_s=$t_rate llama_cpp_tok_s=$r_rate ratio=$ratio triage_ttft_ms=$t_ttft llama_cpp_ttft_ms=$r_ttft"
