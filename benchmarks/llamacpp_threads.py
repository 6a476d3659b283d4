"""llama.cpp thread count on this machine: idle, and with the other cores busy, in one run.

    python benchmarks/llamacpp_threads.py [--model qwen2.5-0.5b] [--no-append]

Times a RAG-sized prompt (about 700 tokens) and a 64-token answer with n_threads = 1 .. cores, first
on an idle machine, then while a busy loop occupies one core (as when the rest of the pipeline or
another request runs), and reports prefill and decode tokens/s.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from shared import append_history, markdown_table  # noqa: E402

PROMPT = " ".join(f"Passage {i}: the committee met in the city hall and discussed the budget for the year."
                  for i in range(40))


def _spin(stop: object) -> None:
    while not stop.is_set():  # type: ignore[attr-defined]
        pass


def measure(model_file: str, threads: int) -> tuple[float, float]:
    from llama_cpp import Llama

    llm = Llama(model_path=model_file, n_ctx=2048, n_threads=threads, verbose=False)
    messages = [{"role": "user", "content": PROMPT + "\nSummarise the passages in two sentences."}]
    llm.create_chat_completion(messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    llm.reset()
    start = time.perf_counter()
    first = None
    n = 0
    for chunk in llm.create_chat_completion(messages=messages, max_tokens=64, temperature=0.0, stream=True):
        if chunk["choices"][0].get("delta", {}).get("content"):
            first = first or time.perf_counter()
            n += 1
    end = time.perf_counter()
    prompt_tokens = len(llm.tokenize(PROMPT.encode()))
    return prompt_tokens / (first - start), max(n - 1, 1) / (end - first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-0.5b")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    from pilotfish.models import model_path

    model_file = str(model_path(args.model))
    cores = os.cpu_count() or 1
    rows = []
    for load in ("idle", "one core busy"):
        stop = mp.Event()
        spinner = mp.Process(target=_spin, args=(stop,)) if load != "idle" else None
        if spinner:
            spinner.start()
        for threads in range(1, cores + 1):
            prefill, decode = measure(model_file, threads)
            rows.append((load, threads, f"{prefill:.0f}", f"{decode:.1f}"))
            print(rows[-1], flush=True)
        if spinner:
            stop.set()
            spinner.join()
    table = markdown_table(("machine", "n_threads", "prefill tokens/s", "decode tokens/s"), rows)
    print(table)
    if not args.no_append:
        append_history(f"llama.cpp threads, {args.model} (llamacpp_threads.py)", table, area="Speed")


if __name__ == "__main__":
    main()
