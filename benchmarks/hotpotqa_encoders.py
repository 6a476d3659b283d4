"""HotpotQA: `pilotfish train embedder` and `pilotfish train reranker` on 400 questions, measured on the other 100.

    python benchmarks/hotpotqa_encoders.py [--embedder-minutes 15] [--reranker-minutes 15] [--epochs 2] [--no-append]

Each of the 500 dev-distractor questions has 10 paragraphs, 2 of them supporting. The first 400 questions
give the training pairs: (question, supporting paragraph) with the question's 8 distractor paragraphs as
hard negatives. The last 100 are the test: over the pooled corpus of all paragraphs (one knowledge base
per embedder), all-support recall@10 (both supporting paragraphs in the top 10) and nDCG@10 of dense
search with the packaged MiniLM and the trained one; then the default hybrid's first 20 documents
(packaged MiniLM knowledge base) reordered by the packaged ms-marco reranker and by the trained reranker.
Everything runs through the commands; outputs under benchmarks/out/hotpotqa-encoders/.
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from shared import (  # noqa: E402
    DATA,
    HOTPOT_OUT,
    QA_SETS,
    append_history,
    markdown_table,
    qa_set,
    retrieval_scores,
    write_corpus,
)

FOLDER = Path(__file__).parent / "out" / "hotpotqa-encoders"
TRAIN, DEPTH = 400, 20


def pilotfish(*args: str) -> float:
    started = time.perf_counter()
    print("$ pilotfish " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "pilotfish.cli", *args], check=True)
    return time.perf_counter() - started


def write_pairs(path: Path, records: list[dict], texts: dict[str, str]) -> int:
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for record in records:
            gold = list(dict.fromkeys(t for t, _ in record["supporting_facts"]))
            context = [t for t, _ in record["context"]]
            negatives = [texts[t] for t in context if t not in gold and t in texts]
            for title in gold:
                if title in texts:
                    fh.write(json.dumps({"query": record["question"], "positive": texts[title],
                                         "negatives": negatives}) + "\n")
                    n += 1
    return n


def scores(qids: list[str], ranked: list[list[str]], gold: list[list[str]]) -> tuple[float, float]:
    """(all-support recall@10, nDCG@10) of document rankings."""
    qrels = {q: {d: 1 for d in g} for q, g in zip(qids, gold)}
    run = {q: {d: 1.0 / (i + 1) for i, d in enumerate(r)} for q, r in zip(qids, ranked)}
    ndcg = retrieval_scores(qrels, run, ("ndcg@10",))["ndcg@10"]
    recall = sum(set(g) <= set(r[:10]) for g, r in zip(gold, ranked)) / len(gold)
    return recall, ndcg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embedder-minutes", type=float, default=15.0)
    parser.add_argument("--reranker-minutes", type=float, default=15.0)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    from pilotfish.knowledge.base import KnowledgeBase
    from pilotfish.retrievers.rerank import CrossEncoderReranker

    data = qa_set("hotpotqa")
    with gzip.open(DATA / QA_SETS["hotpotqa"].path, "rt", encoding="utf-8") as fh:
        records = [json.loads(line) for line in fh if line.strip()]
    texts = {d["doc_id"]: f"{d['title']}\n{d['text']}" for d in data.corpus or []}
    FOLDER.mkdir(parents=True, exist_ok=True)
    pairs = FOLDER / "train-pairs.jsonl"
    n_pairs = write_pairs(pairs, records[:TRAIN], texts)
    corpus = write_corpus(data, FOLDER)
    seconds: dict[str, float] = {}
    # The packaged-MiniLM knowledge base of the same pooled paragraphs that the answer scripts build, when there.
    anchor = HOTPOT_OUT / "kb" if (HOTPOT_OUT / "kb" / "pilotfish.db").exists() else FOLDER / "kb-minilm"
    tuned = FOLDER / "kb-tuned"
    embedder, reranker = FOLDER / "minilm-hotpotqa", FOLDER / "reranker-hotpotqa"
    if not (anchor / "pilotfish.db").exists():
        seconds["ingest (packaged MiniLM)"] = pilotfish("ingest", str(corpus), "--kb", str(anchor))
    seconds["train embedder"] = pilotfish(
        "train", "embedder", "--pairs", str(pairs), "--out", str(embedder), "--held-out", "0", "--hard-negatives",
        "0", "--epochs", str(args.epochs), "--minutes", str(args.embedder_minutes))
    shutil.rmtree(tuned, ignore_errors=True)
    seconds["ingest --embedder"] = pilotfish("ingest", str(corpus), "--kb", str(tuned), "--embedder", str(embedder))
    seconds["train reranker"] = pilotfish(
        "train", "reranker", "--pairs", str(pairs), "--out", str(reranker), "--held-out", "0", "--hard-negatives",
        "0", "--epochs", str(args.epochs), "--minutes", str(args.reranker_minutes))

    test = data.items[TRAIN:]
    qids, questions, gold = [i.id for i in test], [i.question for i in test], [i.gold_doc_ids for i in test]
    rows = []
    for label, folder in (("dense, packaged MiniLM", anchor), ("dense, trained MiniLM", tuned)):
        found = KnowledgeBase.open(folder).search_documents_batch(questions, mode="dense", top_k=10)
        rows.append((label, *scores(qids, [[p.doc_id for p in ps] for ps in found], gold)))
        print(rows[-1], flush=True)
    first = KnowledgeBase.open(anchor).search_documents_batch(questions, mode="hybrid", top_k=DEPTH)
    rows.append((f"hybrid first stage (packaged MiniLM), top {DEPTH}", *scores(
        qids, [[p.doc_id for p in ps] for ps in first], gold)))
    for label, model in (("packaged ms-marco-l12", "ms-marco-l12"), ("trained reranker", str(reranker))):
        started = time.perf_counter()
        rr = CrossEncoderReranker(model=model, batch_size=8)
        ranked = []
        for q, ps in zip(questions, first):
            s = rr.score([(q, texts.get(p.doc_id, p.text)) for p in ps])
            ranked.append([p.doc_id for p, _ in sorted(zip(ps, s), key=lambda x: -x[1])])
        seconds[f"rerank with {label}"] = time.perf_counter() - started
        rows.append((f"hybrid top {DEPTH} reranked by the {label}", *scores(qids, ranked, gold)))
        print(rows[-1], flush=True)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    cpu_minutes = sum(u.ru_utime + u.ru_stime for u in usage) / 60
    table = markdown_table(("HotpotQA dev-distractor, last 100 questions, pooled paragraphs", "all-support recall@10",
                            "nDCG@10"), [(r[0], f"{r[1]:.3f}", f"{r[2]:.3f}") for r in rows])
    print(table)
    cards = {k: json.loads((f / "training.json").read_text()) for k, f in (("e", embedder), ("r", reranker))}
    timing = ", ".join(f"{k} {v / 60:.1f} min" for k, v in seconds.items())
    e, r = cards["e"], cards["r"]
    notes = (f"Training data: {n_pairs} (question, supporting paragraph) pairs of the first {TRAIN} questions, "
             "their 8 distractor paragraphs as hard negatives. Commands: `pilotfish train embedder --pairs "
             f"train-pairs.jsonl --held-out 0 --hard-negatives 0 --epochs {args.epochs} "
             f"--minutes {args.embedder_minutes:g}` ({e['steps']} steps, stopped by {e['stopped_by']}), "
             "`pilotfish ingest paragraphs.jsonl --embedder minilm-hotpotqa`, `pilotfish train reranker --pairs "
             f"train-pairs.jsonl --held-out 0 --hard-negatives 0 --epochs {args.epochs} "
             f"--minutes {args.reranker_minutes:g}` (from ms-marco-l12, {r['steps']} steps, stopped by "
             f"{r['stopped_by']}). Wall time: {timing}; {cpu_minutes:.0f} CPU minutes in all.")
    print(notes)
    if not args.no_append:
        append_history("HotpotQA: trained embedder and reranker on 400 questions, tested on 100 "
                       "(hotpotqa_encoders.py)", table, notes, area="Retrieval")


if __name__ == "__main__":
    main()
