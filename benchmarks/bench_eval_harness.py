"""The evaluation harness on HotpotQA and SciFact, two configurations each, and a cached re-run.

    python benchmarks/bench_eval_harness.py [--limit 300] [--no-append]

HotpotQA (300 questions, all context paragraphs pooled into one knowledge base): qwen2.5-0.5b, short
answers from the top 3 reranked passages, `basic` against `verified` (the NLI checker drops unsupported
answers). Both share one fresh LLM call cache, so `verified` reuses `basic`'s answers and pays only for
its checks; then `basic` is run again on the warm cache to time a cached re-run against the first run.
SciFact (300 test queries, retrieval only, no LLM): hybrid against hybrid + cross-encoder rerank.
The harness's markdown summaries go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import DATA, append_markdown, markdown_table  # noqa: E402

OUT = Path(__file__).parent / "out" / "eval"
SHOWN = ("items", "answered", "em", "f1", "recall@5", "ndcg@5", "mrr@5", "citation_precision", "citation_recall",
         "prompt_tokens", "completion_tokens", "p50_seconds", "p95_seconds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    from pilotfish.agents.graph import AnswerPipeline
    from pilotfish.agents.pipelines import build_verifier
    from pilotfish.cli_eval import _knowledge_base
    from pilotfish.evaluation.datasets import load_dataset
    from pilotfish.evaluation.llm_cache import CachedLLM
    from pilotfish.evaluation.runner import RetrievalOnly, evaluate
    from pilotfish.evaluation.store import EvalStore
    from pilotfish.llms.llamacpp import LlamaCppLLM

    OUT.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    store = EvalStore(f"sqlite:///{OUT / 'runs.db'}")
    sections = []

    hotpot = load_dataset(DATA / "hotpotqa" / "dev_distractor_300.jsonl.gz")
    kb = _knowledge_base(hotpot, None, OUT)
    model = LlamaCppLLM(model="qwen2.5-0.5b")
    model.generate([{"role": "user", "content": "Say hi"}], max_tokens=4)  # load before timing
    cache_file = OUT / f"llm-cache-{stamp}.sqlite"  # a fresh cache: the first run is cold
    options = {"kb": kb, "top_k": 3, "rerank": True, "style": "short", "max_tokens": 64}
    runs, walls = {}, {}
    for label, extra in (("basic", {}), ("verified", {"verifier": build_verifier({}, "verified")}),
                         ("basic, cached re-run", {})):
        pipeline = AnswerPipeline(llm=CachedLLM(model, cache_file), **options, **extra)
        start = time.perf_counter()
        result = evaluate(pipeline, hotpot, name=f"hotpotqa-{label.split(',')[0]}-{stamp}"
                          + ("-rerun" if "re-run" in label else ""), store=store, limit=args.limit,
                          pipeline_label=label)
        walls[label], runs[label] = time.perf_counter() - start, result.summary()
        print(label, runs[label], f"{walls[label]:.1f}s", flush=True)
    ratio = walls["basic"] / walls["basic, cached re-run"]
    sections.append(("HotpotQA", runs, walls, f"cached re-run {ratio:.0f}x faster than the first run "
                                              f"({walls['basic']:.0f} s against {walls['basic, cached re-run']:.1f} s)"))

    scifact = load_dataset(DATA / "scifact")
    kb_sci = _knowledge_base(scifact, None, OUT)
    runs, walls = {}, {}
    for label, rerank in (("hybrid", False), ("hybrid + rerank", True)):
        start = time.perf_counter()
        result = evaluate(RetrievalOnly(kb_sci, mode="hybrid", top_k=10, rerank=rerank), scifact,
                          name=f"scifact-{label.replace(' ', '')}-{stamp}", store=store, limit=args.limit,
                          metrics=["retrieval"], pipeline_label=label)
        walls[label], runs[label] = time.perf_counter() - start, result.summary()
        print(label, runs[label], flush=True)
    sections.append(("SciFact (retrieval only)", runs, walls, ""))

    blocks = []
    for title, summaries, walls, extra in sections:
        rows = [[metric, *(_fmt(s.get(metric)) for s in summaries.values())] for metric in SHOWN
                if any(metric in s for s in summaries.values())]
        rows.append(["wall seconds", *(f"{walls[k]:.1f}" for k in summaries)])
        blocks.append(f"**{title}**\n\n" + markdown_table(["metric", *summaries], rows) + (f"\n\n{extra}" if extra else ""))
    text = "\n\n".join(blocks)
    print(text)
    if not args.no_append:
        append_markdown("Evaluation harness: HotpotQA and SciFact (bench_eval_harness.py)", text,
                        f"Command: `python benchmarks/bench_eval_harness.py --limit {args.limit}`. Runs are stored "
                        "in benchmarks/out/eval/runs.db; `pilotfish eval compare` reads them.")


def _fmt(value: object) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    main()
