"""SciFact: choose fusion weights on the train queries, report them on the test queries.

    python benchmarks/scifact_fusion.py [--work DIR] [--rerank-depth N] [--no-append]

Reuses the knowledge bases that scifact_retrieval.py built (benchmarks/out/scifact). Every
candidate fusion of bm25, MiniLM and bge-small is scored on SciFact's 809 train queries; the best is
then reported on the 300 test queries, so the test figure is not tuned on the test set.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from shared import append_history, beir, doc_run, markdown_table, retrieval_scores  # noqa: E402

from pilotfish.knowledge.base import KnowledgeBase  # noqa: E402
from pilotfish.retrievers.hybrid import HybridRetriever  # noqa: E402

CANDIDATES: list[tuple[str, tuple[str, ...], str, tuple[float, ...]]] = [
    ("RRF bm25 + MiniLM", ("bm25", "minilm"), "rrf", (1, 1)),
    ("RRF bm25 + bge-small", ("bm25", "bge"), "rrf", (1, 1)),
    ("RRF bm25 + MiniLM + bge-small", ("bm25", "minilm", "bge"), "rrf", (1, 1, 1)),
    *[(f"weighted bm25 + MiniLM {w}", ("bm25", "minilm"), "weighted", w) for w in ((0.5, 0.5), (0.4, 0.6), (0.6, 0.4))],
    *[(f"weighted bm25 + bge-small {w}", ("bm25", "bge"), "weighted", w) for w in ((0.5, 0.5), (0.4, 0.6), (0.3, 0.7))],
    *[(f"weighted bm25 + MiniLM + bge-small {w}", ("bm25", "minilm", "bge"), "weighted", w)
      for w in ((0.34, 0.33, 0.33), (0.4, 0.2, 0.4), (0.4, 0.1, 0.5), (0.3, 0.2, 0.5), (0.5, 0.2, 0.3))],
    *[(f"z-score bm25 + bge-small {w}", ("bm25", "bge"), "zscore", w) for w in ((0.5, 0.5), (0.4, 0.6))],
    *[(f"z-score bm25 + MiniLM + bge-small {w}", ("bm25", "minilm", "bge"), "zscore", w)
      for w in ((0.34, 0.33, 0.33), (0.4, 0.2, 0.4))],
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=str(Path(__file__).parent / "out" / "scifact"))
    parser.add_argument("--no-append", action="store_true")
    parser.add_argument("--rerank-depth", type=int, default=0,
                        help="also rerank the chosen fusion's top N on test with the cross-encoder (RRF-fused)")
    args = parser.parse_args()
    work = Path(args.work)
    kb_minilm, kb_bge = KnowledgeBase.open(work / "kb-minilm"), KnowledgeBase.open(work / "kb-bge")
    retrievers = {"bm25": kb_minilm.retriever("bm25"), "minilm": kb_minilm.retriever("dense"),
                  "bge": kb_bge.retriever("dense")}
    scores: dict[str, dict[str, float]] = {}
    fused_test: dict[str, list] = {}
    for split in ("train", "test"):
        _, queries, qrels = beir("scifact", split)
        qids = list(queries)
        texts = [queries[q] for q in qids]
        lists = {name: r.run_batch(texts, top_k=200) for name, r in retrievers.items()}
        for label, names, fusion, weights in CANDIDATES:
            hybrid = HybridRetriever(retrievers=[retrievers[n] for n in names], fusion=fusion, weights=list(weights))
            fused = [hybrid.fuse([lists[n][i] for n in names], top_k=200) for i in range(len(texts))]
            scores.setdefault(label, {})[split] = retrieval_scores(qrels, doc_run(fused, qids))["ndcg@10"]
            if split == "test":
                fused_test[label] = fused
            print(f"{split:5s} {scores[label][split]:.4f} {label}", flush=True)
    best = max(scores, key=lambda label: scores[label]["train"])
    rows = [(label + (" **(chosen on train)**" if label == best else ""), f"{s['train']:.3f}", f"{s['test']:.3f}")
            for label, s in sorted(scores.items(), key=lambda kv: -kv[1]["train"])]
    if args.rerank_depth:
        rows += _rerank_rows(best, fused_test[best], qids, texts, qrels, args.rerank_depth)
    table = markdown_table(("fusion", "nDCG@10 train (809 q)", "nDCG@10 test (300 q)"), rows)
    print(table)
    if not args.no_append:
        append_history("SciFact fusion weights, chosen on train (scifact_fusion.py)", table,
                       f"Chosen on the train queries: {best}, test nDCG@10 {scores[best]['test']:.3f}.",
                       area="Retrieval")


def _rerank_rows(label: str, fused: list, qids: list, texts: list, qrels: dict, depth: int) -> list[tuple]:
    from pilotfish.retrievers.rerank import CrossEncoderReranker

    heads = [ps[:depth] for ps in fused]
    ce = CrossEncoderReranker().score_batch(texts, heads)  # scored once, ordered three ways
    rows = []
    for name, reranker in (("alone", CrossEncoderReranker()),
                           ("RRF-fused, first stage weight 1", CrossEncoderReranker(fusion="rrf")),
                           ("RRF-fused, first stage weight 1.5",
                            CrossEncoderReranker(fusion="rrf", first_stage_weight=1.5))):
        out = [reranker.order(list(ps), s) + list(full[depth:]) for ps, s, full in zip(heads, ce, fused)]
        rows.append((f"{label} + rerank top {depth}, {name}", "-",
                     f"{retrieval_scores(qrels, doc_run(out, qids))['ndcg@10']:.3f}"))
        print(rows[-1], flush=True)
    return rows


if __name__ == "__main__":
    main()
