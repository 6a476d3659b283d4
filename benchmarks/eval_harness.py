"""The evaluation harness on HotpotQA and SciFact, two configurations each, and a cached re-run.

    python benchmarks/eval_harness.py [--limit 500] [--no-append]
    python benchmarks/eval_harness.py --rerun-of STAMP [--limit 500] [--no-append]

HotpotQA (the 500 dev-distractor questions, all context paragraphs pooled into one knowledge base, built
in benchmarks/out/eval/kb-dev_distractor_v1_sample500): qwen2.5-0.5b, short
answers from the top 3 reranked passages, `basic` against `verified` (the NLI checker drops unsupported
answers). Both share one fresh LLM call cache, so `verified` reuses `basic`'s answers and pays only for
its checks; then `basic` is run again on the warm cache to time a cached re-run against the first run.
SciFact (300 test queries, retrieval only, no LLM): hybrid against hybrid + cross-encoder rerank.
The harness's markdown summaries go to benchmarks/history.md. Searches are cached too (CachedKB), so the
cached re-run repeats neither LLM calls nor retrieval.

`--rerun-of STAMP` times re-runs of an earlier invocation's `basic` run against its stored cold wall
time: once with its warm LLM cache only, then with the searches cached as well.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from shared import DATA, QA_SETS, append_history, markdown_table  # noqa: E402

OUT = Path(__file__).parent / "out" / "eval"
SHOWN = ("items", "answered", "em", "f1", "recall@5", "ndcg@5", "mrr@5", "citation_precision", "citation_recall",
         "prompt_tokens", "completion_tokens", "p50_seconds", "p95_seconds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--no-append", action="store_true")
    parser.add_argument("--rerun-of", help="STAMP of an earlier run whose LLM cache to reuse")
    args = parser.parse_args()
    if args.rerun_of:
        rerun_of(args.rerun_of, args.limit, not args.no_append)
        return

    from pilotfish.answer import build
    from pilotfish.cli.eval import _knowledge_base
    from pilotfish.evaluation.datasets import load_dataset
    from pilotfish.evaluation.llm_cache import CachedKB, CachedLLM
    from pilotfish.evaluation.runner import RetrievalOnly, evaluate
    from pilotfish.evaluation.store import EvalStore
    from pilotfish.llms.llamacpp import LlamaCppLLM

    OUT.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    store = EvalStore(f"sqlite:///{OUT / 'runs.db'}")
    sections = []

    hotpot = load_dataset(DATA / QA_SETS["hotpotqa"].path)
    kb = CachedKB(_knowledge_base(hotpot, None, OUT), OUT / f"search-cache-{stamp}.sqlite")
    model = LlamaCppLLM(model="qwen2.5-0.5b")
    model.generate([{"role": "user", "content": "Say hi"}], max_tokens=4)  # load before timing
    cache_file = OUT / f"llm-cache-{stamp}.sqlite"  # a fresh cache: the first run is cold
    spec = {"answer": {"llm": "qwen2.5-0.5b", "style": "short", "max_tokens": 64},
            "retrieve": {"top_k": 3, "rerank": True}}
    runs, walls = {}, {}
    for label, extra in (("basic", {}), ("verified", {"verify": {}}), ("basic, cached re-run", {})):
        pipeline = build(spec | extra, kb, llms={"qwen2.5-0.5b": model},
                         wrap_llm=lambda llm: CachedLLM(llm, cache_file))
        start = time.perf_counter()
        result = evaluate(pipeline, hotpot, name=f"hotpotqa-{label.split(',')[0]}-{stamp}"
                          + ("-rerun" if "re-run" in label else ""), store=store, limit=args.limit,
                          pipeline_label=label)
        walls[label], runs[label] = time.perf_counter() - start, result.summary()
        print(label, runs[label], f"{walls[label]:.1f}s", flush=True)
    ratio = walls["basic"] / walls["basic, cached re-run"]
    sections.append(("HotpotQA", runs, walls,
                     f"cached re-run {ratio:.0f}x faster than the first run "
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
        blocks.append(f"**{title}**\n\n" + markdown_table(["metric", *summaries], rows)
                      + (f"\n\n{extra}" if extra else ""))
    text = "\n\n".join(blocks)
    print(text)
    if not args.no_append:
        append_history("Evaluation harness: HotpotQA and SciFact (eval_harness.py)", text,
                       f"Command: `python benchmarks/eval_harness.py --limit {args.limit}`. Runs are stored "
                       "in benchmarks/out/eval/runs.db; `pilotfish eval compare` reads them.", area="Evaluation")


def rerun_of(stamp: str, limit: int, append: bool) -> None:
    """Re-run `basic` of run STAMP: with its LLM cache only, then with searches cached too."""
    from pilotfish.answer import build
    from pilotfish.cli.eval import _knowledge_base
    from pilotfish.evaluation.datasets import load_dataset
    from pilotfish.evaluation.llm_cache import CachedKB, CachedLLM
    from pilotfish.evaluation.runner import evaluate
    from pilotfish.evaluation.store import EvalStore
    from pilotfish.llms.llamacpp import LlamaCppLLM

    store = EvalStore(f"sqlite:///{OUT / 'runs.db'}")
    cold = store.run(f"hotpotqa-basic-{stamp}")
    cold_seconds = (dt.datetime.fromisoformat(cold["finished_at"]) - dt.datetime.fromisoformat(cold["started_at"]))
    hotpot = load_dataset(DATA / QA_SETS["hotpotqa"].path)
    plain = _knowledge_base(hotpot, None, OUT)
    llm = CachedLLM(LlamaCppLLM(model="qwen2.5-0.5b"), OUT / f"llm-cache-{stamp}.sqlite")
    searches = OUT / f"search-cache-rerun-{stamp}.sqlite"
    searches.unlink(missing_ok=True)
    walls, f1 = {}, {}
    for label in ("LLM cache only", "LLM and search caches"):
        kb = CachedKB(plain, searches)
        pipeline = build({"answer": {"llm": "qwen2.5-0.5b", "style": "short", "max_tokens": 64},
                          "retrieve": {"top_k": 3, "rerank": True}}, kb, llms={"qwen2.5-0.5b": llm})
        start = time.perf_counter()
        result = evaluate(pipeline, hotpot, name=f"hotpotqa-basic-{stamp}-{label.split()[0].lower()}-"
                          f"{dt.datetime.now():%H%M%S}", store=store, limit=limit, pipeline_label="basic")
        walls[label], f1[label] = time.perf_counter() - start, result.summary()["f1"]
        print(label, f"{walls[label]:.1f}s", f1[label], flush=True)
    total = cold_seconds.total_seconds()
    rows = [["first run (cold)", f"{total:.0f}", "1x", f"{cold['summary']['f1']:.4f}"]]
    rows += [[label, f"{walls[label]:.1f}", f"{total / walls[label]:.0f}x", f"{f1[label]:.4f}"] for label in walls]
    table = markdown_table([f"HotpotQA basic, {cold['summary']['items']} questions", "wall s", "faster than first",
                            "F1"], rows)
    print(table)
    if append:
        append_history("Evaluation harness: cached re-runs (eval_harness.py --rerun-of)", table,
                       f"Command: `python benchmarks/eval_harness.py --rerun-of {stamp}`. The first run's "
                       "time is its stored start-to-finish; the re-runs reuse its LLM call cache.", area="Evaluation")


def _fmt(value: object) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    main()
