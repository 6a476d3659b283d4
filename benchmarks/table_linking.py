"""Linking a question to its table among 2,000 WikiTableQuestions tables: speed and accuracy, next to a plain scan.

    python benchmarks/table_linking.py [--tables 2000] [--questions 500] [--no-append]

Loads the first `--tables` WTQ tables (sorted by path) into one SQLite file through `TableCatalog.for_files`
(the loader and cards `ask --table` and ingest use), then links the WTQ sample questions whose table is
among them with `TableLinker` (BM25 over schema cards, cell values matched exactly, fuzzily and by initials
in the best tables). The peer is a plain scan: every question's words looked up in every table's cells,
tables ranked by how many words they hold. Reported: hit@1 and hit@3 of the question's own table, and
p50/p95 milliseconds per question, cold (first pass: value lists read from SQL on first use) and warm
(second pass), on this machine.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from shared import append_history, markdown_table  # noqa: E402
from table_sets import wtq_items, wtq_tables  # noqa: E402

from pilotfish.tables.catalog import TableCatalog  # noqa: E402
from pilotfish.tables.linker import TableLinker, normalise  # noqa: E402

WORD = re.compile(r"[a-z0-9]+")


def load_catalog(paths: list[Path], folder: Path) -> tuple[TableCatalog, dict[str, str], float]:
    """The tables in one catalog, a map from each file to its table name, and the seconds it took."""
    start = time.perf_counter()
    catalog = TableCatalog.for_files(paths, folder=folder, skip_bad=True)
    names = {c.source: c.name for c in catalog.cards}
    return catalog, names, time.perf_counter() - start


class PlainScan:
    """Every table's cells and column names as a set of words; a question's tables ranked by shared words."""

    def __init__(self, catalog: TableCatalog) -> None:
        self.words: dict[str, set[str]] = {}
        for card in catalog.cards:
            columns, rows = catalog.rows(card.name, limit=100_000)
            text = " ".join(columns) + " " + " ".join(str(v) for row in rows for v in row if v is not None)
            self.words[card.name] = set(WORD.findall(normalise(text)))

    def link(self, question: str) -> list[str]:
        asked = set(WORD.findall(normalise(question)))
        scores = {name: len(asked & words) for name, words in self.words.items()}
        return sorted(scores, key=lambda n: -scores[n])[:3]


def timed(fn: Any, questions: list[str]) -> tuple[list[list[str]], list[float]]:
    found, ms = [], []
    for q in questions:
        start = time.perf_counter()
        found.append(fn(q))
        ms.append((time.perf_counter() - start) * 1000)
    return found, ms


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", type=int, default=2000)
    parser.add_argument("--questions", type=int, default=500, help="WTQ sample size to draw questions from")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    root = wtq_tables()
    paths = sorted(root.glob("csv/*-csv/*.csv"))[:args.tables]
    with tempfile.TemporaryDirectory() as tmp:
        catalog, names, load_s = load_catalog(paths, Path(tmp))
        items = [i for i in wtq_items(args.questions) if str(Path(i.table_path)) in names]
        questions = [i.question for i in items]
        gold = [names[str(Path(i.table_path))] for i in items]
        print(f"{len(catalog)} tables loaded in {load_s:.0f}s; {len(questions)} questions", flush=True)
        linker = TableLinker(depth=3)
        _, cold = timed(lambda q: linker.link(q, catalog).table_names, questions)
        linked, warm = timed(lambda q: linker.link(q, catalog).table_names, questions)
        dense = TableLinker(depth=3, dense="minilm-l6")
        start = time.perf_counter()
        dense.link(questions[0], catalog)  # embeds every card once
        embed_s = time.perf_counter() - start
        with_dense, dense_ms = timed(lambda q: dense.link(q, catalog).table_names, questions)
        scan = PlainScan(catalog)
        scanned, scan_ms = timed(scan.link, questions)
    rows = []
    for name, found, times in (("TableLinker, cold", linked, cold), ("TableLinker, warm", linked, warm),
                               ("TableLinker + MiniLM card similarity, warm", with_dense, dense_ms),
                               ("plain scan of every cell", scanned, scan_ms)):
        hit1 = sum(f[:1] == [g] for f, g in zip(found, gold)) / len(gold)
        hit3 = sum(g in f[:3] for f, g in zip(found, gold)) / len(gold)
        rows.append((name, str(len(gold)), f"{hit1:.3f}", f"{hit3:.3f}", f"{pct(times, 50):.1f}",
                     f"{pct(times, 95):.1f}"))
    table = markdown_table(("linker", "questions", "hit@1", "hit@3", "p50 ms", "p95 ms"), rows)
    print(table)
    if not args.no_append:
        append_history(f"Table linking among {len(catalog)} WikiTableQuestions tables (table_linking.py)", table,
                       f"`python benchmarks/table_linking.py --tables {args.tables}`; the question's own table is the "
                       f"gold; loading the tables took {load_s:.0f}s, embedding their cards {embed_s:.0f}s.",
                       area="Tables")


if __name__ == "__main__":
    main()
