"""SciFact (BEIR test, 300 claims): nDCG@10 of hybrid retrieval with and without query rewriting.

    python benchmarks/scifact_rewrite.py [--model qwen2.5-0.5b] [--limit N] [--no-append]

Configurations, on the knowledge base the evaluation harness builds (benchmarks/out/eval/kb-scifact):
  hybrid        the claim as the query
  multi-query   the claim plus 3 paraphrases by the LLM, each searched, fused by reciprocal rank: with equal
                weights, and with the claim's list weighing as much as the paraphrases together (the default)
  hyde          a hypothetical abstract by the LLM, embedded and searched densely, fused with the claim's search
LLM replies are cached on disk (benchmarks/out/rewrite/llm-cache.sqlite), so a re-run repeats no call.
Reports nDCG@10 and Recall@100 (ranx; a document scores its best chunk) and LLM seconds per query.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from shared import append_history, beir, doc_run, markdown_table, retrieval_scores  # noqa: E402

OUT = Path(__file__).parent / "out" / "rewrite"
KB = Path(__file__).parent / "out" / "eval" / "kb-scifact"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-0.5b")
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    from pilotfish.evaluation.llm_cache import CachedLLM
    from pilotfish.knowledge.base import KnowledgeBase
    from pilotfish.llms.llamacpp import LlamaCppLLM
    from pilotfish.prompts.rewrite import QueryRewriter, Rewrite

    OUT.mkdir(parents=True, exist_ok=True)
    _, queries, qrels = beir("scifact")
    qids = sorted(queries)[: args.limit]
    qrels = {q: qrels[q] for q in qids}
    kb = KnowledgeBase.open(KB)
    if kb.store.counts()["documents"] == 0:
        raise SystemExit(f"{KB} is empty: run benchmarks/eval_harness.py first (it builds the SciFact KB)")
    llm = CachedLLM(LlamaCppLLM(model=args.model), OUT / "llm-cache.sqlite")
    rows = []
    for name, mode, weight in (("hybrid", None, None), ("multi-query (3), equal weights", "multi", 1.0),
                               ("multi-query (3), question weighted", "multi", None), ("hyde", "hyde", None)):
        rewriter = QueryRewriter(llm, mode=mode, n=3, question_weight=weight) if mode else None
        results, llm_seconds, fallbacks = [], 0.0, 0
        start = time.perf_counter()
        for n, qid in enumerate(qids, 1):
            question = queries[qid]
            rewrite = rewriter.rewrite(question) if rewriter else Rewrite([question])
            llm_seconds += rewrite.usage.seconds
            fallbacks += rewrite.fallback is not None
            searcher = rewriter or QueryRewriter(llm, mode="multi")
            results.append(searcher.search(kb, rewrite, question=question, top_k=200, depth=200))
            if n % 50 == 0:
                print(f"{name}: {n}/{len(qids)}", flush=True)
        wall = time.perf_counter() - start
        scores = retrieval_scores(qrels, doc_run(results, qids), ("ndcg@10", "recall@100"))
        rows.append((name, f"{scores['ndcg@10']:.4f}", f"{scores['recall@100']:.4f}",
                     f"{llm_seconds / len(qids):.2f}", f"{wall / len(qids):.2f}", fallbacks))
        print(rows[-1], flush=True)
    table = markdown_table(("configuration", "nDCG@10", "Recall@100", "LLM s/query", "total s/query",
                            "rewrites unused"), rows)
    print(table)
    if not args.no_append:
        append_history(f"Query rewriting on SciFact, {len(qids)} claims, {args.model} (scifact_rewrite.py)",
                       table, "Hybrid retrieval (BM25 + MiniLM, reciprocal-rank fusion) on the harness's SciFact "
                       "KB. Seconds include LLM calls unless they came from the cache of an earlier run.",
                       area="Retrieval")


if __name__ == "__main__":
    main()
