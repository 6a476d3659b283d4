"""Cross-encoder reranking cost: batch size, onnxruntime threads and thread spinning, idle and busy.

    python benchmarks/rerank_threads.py [--questions 30] [--depth 30] [--no-append]

Reranks the hybrid top --depth of HotpotQA questions (the KB built by hotpotqa_answers.py) with
ms-marco-l12, one question at a time as the answer pipeline does, pairs sorted by length. First the
batch size (all cores, no spinning, idle machine), then each (threads, spinning) setting at batch 8.
"Busy" runs the same while another process keeps one core fully loaded, as a local LLM answering
another request does. Reports seconds per question and the ratio to the first row of each part.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from shared import HOTPOT_OUT, append_history, hotpotqa_items, markdown_table  # noqa: E402


def burn(stop: multiprocessing.Event) -> None:
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=30)
    parser.add_argument("--depth", type=int, default=30)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    from pilotfish.knowledge.base import KnowledgeBase
    from pilotfish.models.onnx_runtime import encode_batch, load_model
    from pilotfish.retrievers.rerank import pair_text

    kb = KnowledgeBase.open(HOTPOT_OUT / "kb")
    items = hotpotqa_items()[:args.questions]
    batches = [[(it.question, pair_text(p)) for p in kb.search(it.question, mode="hybrid", top_k=args.depth)]
               for it in items]
    cores = os.cpu_count() or 1
    settings = [(t, s) for t in sorted({1, cores}) for s in (True, False)]
    sessions = {key: load_model("ms-marco-l12", 512, key[0], spinning=key[1]) for key in settings}

    def seconds(key: tuple[int, bool], batch: int = 8) -> float:
        tokenizer, session = sessions[key]
        session.run(None, encode_batch(tokenizer, batches[0]))  # warm
        times = []
        for pairs in batches:
            start = time.perf_counter()
            ordered = sorted(pairs, key=lambda p: len(p[1]))
            for i in range(0, len(ordered), batch):
                session.run(None, encode_batch(tokenizer, ordered[i:i + batch]))
            times.append(time.perf_counter() - start)
        return statistics.mean(times)

    by_batch = {batch: seconds((cores, False), batch) for batch in (32, 16, 8, 4)}
    batch_rows = [(batch, f"{value:.3f}", f"{by_batch[32] / value:.2f}x") for batch, value in by_batch.items()]
    print(by_batch, flush=True)

    results: dict[tuple[str, int, bool], float] = {}
    for load in ("idle", "busy"):
        stop = multiprocessing.Event()
        burner = multiprocessing.Process(target=burn, args=(stop,)) if load == "busy" else None
        if burner:
            burner.start()
        for key in settings:
            results[(load, *key)] = seconds(key)
            print(load, key, f"{results[(load, *key)]:.3f}s", flush=True)
        if burner:
            stop.set()
            burner.join()
    rows = []
    for load in ("idle", "busy"):
        base = results[(load, cores, True)]
        for threads, spinning in settings:
            value = results[(load, threads, spinning)]
            rows.append((load, threads, "on" if spinning else "off", f"{value:.3f}", f"{base / value:.2f}x"))
    table = (markdown_table(("batch size", "s per question", "speed vs batch 32"), batch_rows) + "\n\n"
             + markdown_table(("machine", "threads", "spinning", "s per question",
                               f"speed vs {cores} threads spinning"), rows))
    print(table)
    if not args.no_append:
        append_history("Cross-encoder reranking threads (rerank_threads.py)", table,
                       f"{args.questions} HotpotQA questions, hybrid top {args.depth} reranked by ms-marco-l12 "
                       "(int8 ONNX), one question at a time. Busy: another process loads one core. "
                       "Second table at batch 8.", area="Speed")


if __name__ == "__main__":
    main()
