"""Shared helpers for the benchmark scripts: data paths, BEIR loading, ranx metrics, BENCHMARKS.md."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("PILOTFISH_BENCH_DATA", ROOT.parent / "shared" / "benchmarks"))
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"


def load_beir(name: str, split: str = "test") -> tuple[list[dict], dict[str, str], dict[str, dict[str, int]]]:
    """(corpus records, {query id: text} for the split, qrels {qid: {doc_id: rel}})."""
    folder = DATA / name
    with gzip.open(folder / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        corpus = [json.loads(line) for line in fh]
    qrels: dict[str, dict[str, int]] = {}
    with (folder / "qrels" / f"{split}.tsv").open() as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    queries = {}
    with (folder / "queries.jsonl").open() as fh:
        for line in fh:
            q = json.loads(line)
            if q["_id"] in qrels:
                queries[q["_id"]] = q["text"]
    return corpus, queries, qrels


def doc_run(results: Sequence[Sequence], qids: Sequence[str], depth: int = 100) -> dict[str, dict[str, float]]:
    """Chunk results -> document run: a document scores its best chunk; keep the top `depth` documents."""
    run: dict[str, dict[str, float]] = {}
    for qid, passages in zip(qids, results):
        docs: dict[str, float] = {}
        for rank, p in enumerate(passages):
            if p.doc_id not in docs:
                # Rank-derived score keeps the fused order exactly, whatever the score scale.
                docs[p.doc_id] = 1.0 / (rank + 1)
            if len(docs) == depth:
                break
        run[qid] = docs
    return run


def evaluate(qrels: dict, run: dict, metrics: Sequence[str] = ("ndcg@10", "recall@100")) -> dict[str, float]:
    from ranx import Qrels, Run
    from ranx import evaluate as ranx_evaluate

    # Queries with no results still count (as zero), as in BEIR.
    full_run = {qid: (run.get(qid) or {"__none__": 0.0}) for qid in qrels}
    scores = ranx_evaluate(Qrels(qrels), Run(full_run), list(metrics))
    return {m: float(scores[m]) for m in metrics}


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def append_markdown(title: str, table: str, notes: str = "") -> None:
    stamp = dt.date.today().isoformat()
    block = f"\n## {title} ({stamp})\n\nMachine: {machine()}.\n\n{table}\n"
    if notes:
        block += f"\n{notes}\n"
    if not BENCHMARKS_MD.exists():
        BENCHMARKS_MD.write_text("# Benchmarks\n\nEach script appends its table here with the date and machine.\n")
    with BENCHMARKS_MD.open("a") as fh:
        fh.write(block)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
