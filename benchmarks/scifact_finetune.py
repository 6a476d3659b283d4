"""SciFact: fine-tune MiniLM on the train queries (in-domain), then measure it alone and fused, on test.

    python benchmarks/scifact_finetune.py [--epochs 2] [--batch-size 32] [--lr 3e-5] [--seed 0] [--no-append]

The survey's point that a small model trained on in-domain data can beat a general one, measured:
all-MiniLM-L6-v2 is trained with in-batch negatives (multiple-negatives ranking loss; the library's
`pilotfish.training.embedder.train_embedder`, as `pilotfish train embedder` runs it) on SciFact's
train (claim, cited abstract) pairs only, saved to benchmarks/out/minilm-scifact, used as a pilotfish
knowledge base's embedding model (a local path works as a model name), and evaluated on the 300 test
queries, alone and fused with BM25 and bge-small (knowledge bases from scifact_retrieval.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from shared import DATA, append_history, beir, doc_run, markdown_table, retrieval_scores  # noqa: E402

OUT = Path(__file__).parent / "out"


def train(epochs: int, batch_size: int, lr: float, seed: int) -> Path:
    """The library's `train_embedder` (what `pilotfish train embedder` runs) on SciFact's train pairs."""
    from pilotfish.training.embedder import EmbedderTrainingConfig, train_embedder
    from pilotfish.training.retrieval_data import RetrievalPair

    corpus, queries, qrels = beir("scifact", "train")
    docs = {d["doc_id"]: f"{d.get('title', '')}\n{d['text']}" for d in corpus}
    pairs = [RetrievalPair(queries[q], docs[d]) for q, rel in qrels.items() for d in rel if q in queries and d in docs]
    target = OUT / "minilm-scifact"
    report = train_embedder(pairs, [], EmbedderTrainingConfig(out=str(target), epochs=epochs, batch_size=batch_size,
                                                              learning_rate=lr, seed=seed, minutes=120.0))
    print(f"trained on {len(pairs)} pairs in {report['minutes'] * 60:.0f}s -> {target}", flush=True)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    from pilotfish.knowledge.base import KnowledgeBase
    from pilotfish.retrievers.hybrid import HybridRetriever

    started = time.perf_counter()
    model_dir = train(args.epochs, args.batch_size, args.lr, args.seed)
    train_s = time.perf_counter() - started
    kb_dir = OUT / "scifact" / "kb-minilm-scifact"
    import shutil

    shutil.rmtree(kb_dir, ignore_errors=True)
    kb = KnowledgeBase.open(kb_dir, create=True, settings={"embedding_model": str(model_dir)})
    kb.ingest([DATA / "scifact" / "corpus.jsonl.gz"])
    base = KnowledgeBase.open(OUT / "scifact" / "kb-minilm")
    bge = KnowledgeBase.open(OUT / "scifact" / "kb-bge").retriever("dense")
    tuned, bm25, minilm = kb.retriever("dense"), base.retriever("bm25"), base.retriever("dense")

    _, queries, qrels = beir("scifact", "test")
    qids = list(queries)
    texts = [queries[q] for q in qids]
    lists = {"bm25": bm25.run_batch(texts, top_k=200), "minilm": minilm.run_batch(texts, top_k=200),
             "tuned": tuned.run_batch(texts, top_k=200), "bge": bge.run_batch(texts, top_k=200)}
    rows = []
    configs = [("MiniLM-L6 (as packaged)", ("minilm",), "weighted", (1.0,)),
               ("MiniLM-L6 fine-tuned on SciFact train", ("tuned",), "weighted", (1.0,)),
               ("weighted bm25 + fine-tuned MiniLM (0.5, 0.5)", ("bm25", "tuned"), "weighted", (0.5, 0.5)),
               ("weighted bm25 + fine-tuned MiniLM + bge-small (0.34, 0.33, 0.33)", ("bm25", "tuned", "bge"),
                "weighted", (0.34, 0.33, 0.33)),
               ("z-score bm25 + fine-tuned MiniLM + bge-small (0.34, 0.33, 0.33)", ("bm25", "tuned", "bge"),
                "zscore", (0.34, 0.33, 0.33))]
    for label, names, fusion, weights in configs:
        hybrid = HybridRetriever(retrievers=[bm25] * len(names), fusion=fusion, weights=list(weights))
        fused = [hybrid.fuse([lists[n][i] for n in names], top_k=200) for i in range(len(texts))]
        score = retrieval_scores(qrels, doc_run(fused, qids))
        rows.append((label, f"{score['ndcg@10']:.3f}", f"{score['recall@100']:.3f}"))
        print(rows[-1], flush=True)
    table = markdown_table(("configuration (SciFact test, 300 queries)", "nDCG@10", "Recall@100"), rows)
    print(table)
    if not args.no_append:
        append_history("SciFact with MiniLM fine-tuned on the train split (scifact_finetune.py)", table,
                       f"Training: {args.epochs} epochs, batch {args.batch_size}, lr {args.lr}, in-batch negatives, "
                       f"on SciFact train pairs only; {train_s:.0f}s on this CPU. Fusion weights were fixed "
                       "before looking at test (equal weights).", area="Retrieval")


if __name__ == "__main__":
    main()
