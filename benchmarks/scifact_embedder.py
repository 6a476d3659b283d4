"""SciFact: `pilotfish train embedder` on the train queries, then a knowledge base built with it, through the commands.

    python benchmarks/scifact_embedder.py [--hard-negatives 3] [--epochs 2] [--minutes 30] [--no-append]

Steps, each a `pilotfish` command: ingest the corpus with the packaged MiniLM (the anchor, and the BM25 that
mines hard negatives); `train embedder` on the (claim, cited abstract) pairs of SciFact's train qrels;
`ingest --embedder` into a new knowledge base; then nDCG@10 and recall@100 of the 300 test queries, dense
and with the default hybrid (weighted bm25 + dense), for both knowledge bases. Outputs under
benchmarks/out/scifact-embedder/.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from shared import DATA, OUT, append_history, beir, doc_run, markdown_table, retrieval_scores  # noqa: E402

FOLDER = OUT / "scifact-embedder"


def pilotfish(*args: str) -> float:
    """Run one `pilotfish` command; returns its wall seconds."""
    started = time.perf_counter()
    print("$ pilotfish " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "pilotfish.cli", *args], check=True)
    return time.perf_counter() - started


def write_pairs(path: Path) -> int:
    corpus, queries, qrels = beir("scifact", "train")
    docs = {d["doc_id"]: f"{d.get('title', '')}\n{d['text']}".strip() for d in corpus}
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for qid, rel in qrels.items():
            for doc_id, grade in rel.items():
                if grade > 0 and qid in queries and doc_id in docs:
                    fh.write(json.dumps({"query": queries[qid], "positive": docs[doc_id]}) + "\n")
                    n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hard-negatives", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    from pilotfish.knowledge.base import KnowledgeBase

    FOLDER.mkdir(parents=True, exist_ok=True)
    corpus_file = str(DATA / "scifact" / "corpus.jsonl.gz")
    anchor, tuned, model = FOLDER / "kb-minilm", FOLDER / "kb-tuned", FOLDER / "minilm-scifact"
    seconds: dict[str, float] = {}
    if not (anchor / "pilotfish.db").exists():
        seconds["ingest (packaged MiniLM)"] = pilotfish("ingest", corpus_file, "--kb", str(anchor))
    pairs = FOLDER / "train-pairs.jsonl"
    n_pairs = write_pairs(pairs)
    seconds["train embedder"] = pilotfish(
        "train", "embedder", "--pairs", str(pairs), "--kb", str(anchor), "--out", str(model), "--held-out", "0",
        "--hard-negatives", str(args.hard_negatives), "--epochs", str(args.epochs), "--minutes", str(args.minutes))
    if tuned.exists():
        import shutil

        shutil.rmtree(tuned)
    seconds["ingest --embedder (tuned)"] = pilotfish("ingest", corpus_file, "--kb", str(tuned), "--embedder",
                                                     str(model))

    _, queries, qrels = beir("scifact", "test")
    qids = list(queries)
    texts = [queries[q] for q in qids]
    rows = []
    for label, folder in (("MiniLM-L6 (as packaged)", anchor), ("MiniLM-L6 trained by `pilotfish train embedder`",
                                                                 tuned)):
        kb = KnowledgeBase.open(folder)
        for mode in ("dense", "hybrid"):
            score = retrieval_scores(qrels, doc_run(kb.retriever(mode).run_batch(texts, top_k=200), qids))
            rows.append((f"{label}, {mode}", f"{score['ndcg@10']:.3f}", f"{score['recall@100']:.3f}"))
            print(rows[-1], flush=True)
    card = json.loads((model / "training.json").read_text())
    usage = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    cpu_minutes = sum(u.ru_utime + u.ru_stime for u in usage) / 60
    table = markdown_table(("configuration (SciFact test, 300 queries)", "nDCG@10", "Recall@100"), rows)
    print(table)
    timing = ", ".join(f"{k} {v / 60:.1f} min" for k, v in seconds.items())
    notes = (f"Commands: `pilotfish train embedder --pairs train-pairs.jsonl --kb kb-minilm --held-out 0 "
             f"--hard-negatives {args.hard_negatives} --epochs {args.epochs} --minutes {args.minutes:g}` on "
             f"{n_pairs} (claim, cited abstract) pairs of the train qrels ({card['steps']} steps, stopped by "
             f"{card['stopped_by']}, {card['threads']} threads), then `pilotfish ingest corpus.jsonl.gz --kb kb-tuned "
             f"--embedder minilm-scifact`. Hybrid is the knowledge base's default (weighted bm25 + dense, 0.5 / 0.5). "
             f"Wall time: {timing}; {cpu_minutes:.0f} CPU minutes in all.")
    print(notes)
    if not args.no_append:
        append_history("SciFact: `pilotfish train embedder` then `ingest --embedder` (scifact_embedder.py)", table,
                       notes, area="Retrieval")


if __name__ == "__main__":
    main()
