"""Reference for bench/local_model.sh: the same GGUF, prompt and settings
through llama.cpp's own Python binding (llama-cpp-python), 2 threads, greedy.
Prints one line per run and a SUMMARY line like the Triage side."""
import statistics
import sys
import time

from llama_cpp import Llama

gguf, runs, tokens, system, user = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
llm = Llama(model_path=gguf, n_ctx=2048, n_threads=2, n_threads_batch=2, verbose=False)
ttfts, rates = [], []
for run in range(runs):
    # a different question each run, as on the Triage side: both engines
    # reuse only the cached system-prompt prefix
    prompt = f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user} Reference {run + 1}.<|im_end|>\n<|im_start|>assistant\n"
    start = time.perf_counter()
    first = None
    n = 0
    for _ in llm.create_completion(prompt, max_tokens=tokens, temperature=0.0, top_k=1, repeat_penalty=1.15, stream=True):
        n += 1
        if first is None:
            first = time.perf_counter() - start
    total = time.perf_counter() - start
    rate = (n - 1) / max(total - first, 1e-9)
    print(f"run {run + 1}: ttft {first * 1000:.0f} ms, {n} tokens, decode {rate:.1f} tok/s")
    ttfts.append(first * 1000)
    rates.append(rate)
print(f"SUMMARY engine=llama-cpp-python ttft_ms_p50={statistics.median(ttfts):.0f} decode_tok_s_p50={statistics.median(rates):.1f}")
