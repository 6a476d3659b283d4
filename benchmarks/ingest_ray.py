"""Ingest on Ray workers against the single-process path, and what that projects to 10M and 100M chunks.

    python benchmarks/ingest_ray.py [--passages 3000] [--no-append]

The corpus is a prefix of the pooled benchmark passages that benchmarks/ingest_scale.py builds (every text
corpus in the benchmark data, each passage once, shuffled with a fixed seed). Each run is the whole
`pilotfish ingest` command in a fresh process, into a fresh knowledge base (MiniLM, default settings):

- single process (the default path), and the same with `--no-dense` (what the driver does alone: reading,
  chunking, SQL writes, BM25; Ray does not spread this part);
- `--ray auto --ray-workers 1` and `--ray-workers 2` (a local Ray runtime, started by the command).

Each is also run on a one-passage file, so its fixed cost (interpreter, Ray runtime start, actors loading the
model) can be taken out: the per-worker rate is chunks / (wall time - fixed cost) of the one-worker run. The
Ray knowledge base must hold exactly the single-process chunks, and the same vectors within 1e-5.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from ingest_scale import all_passages, measured, sizes  # noqa: E402
from shared import append_history, markdown_table  # noqa: E402

from pilotfish.knowledge.base import KnowledgeBase  # noqa: E402

RUNS = {"single process": [], "single process, --no-dense": ["--no-dense"],
        "Ray, 1 worker": ["--ray", "auto", "--ray-workers", "1"],
        "Ray, 2 workers": ["--ray", "auto", "--ray-workers", "2"]}


def ingest(file: Path, kb: Path, extra: list[str]) -> tuple[int, float]:
    """(chunks, wall seconds) of `pilotfish ingest FILE --kb KB EXTRA` in a fresh process."""
    out, seconds, _ = measured(["ingest", str(file), "--kb", str(kb), "--json", *extra], kb.parent)
    return json.loads(out)["total_chunks"], seconds


def same(a: Path, b: Path) -> str:
    """'yes' when knowledge bases `a` and `b` hold the same chunks and (within 1e-5) the same vectors."""
    kb_a, kb_b = KnowledgeBase.open(a), KnowledgeBase.open(b)
    rows_a, rows_b = kb_a.corpus().rows, kb_b.corpus().rows
    if [(r.chunk_id, r.text) for r in rows_a] != [(r.chunk_id, r.text) for r in rows_b]:
        return "no: different chunks"
    rows = list(range(len(rows_a)))
    gap = float(np.abs(kb_a.current_dense().vectors(rows) - kb_b.current_dense().vectors(rows)).max())
    return "yes" if gap <= 1e-5 else f"no: vectors differ by {gap:.1e}"


def projection(rate: float, driver_rate: float) -> str:
    """Hours for 10M and 100M chunks on N workers at `rate` chunks/s each, and the driver's own share."""
    lines = ["| chunks | driver alone (reading, SQL, BM25) h | 8 workers h | 64 workers h | 512 workers h |",
             "|---|---|---|---|---|"]
    for chunks in (10_000_000, 100_000_000):
        cells = [f"{chunks / driver_rate / 3600:,.1f}"]
        cells += [f"{chunks / (n * rate) / 3600:,.1f}" for n in (8, 64, 512)]
        lines.append(f"| {chunks / 1e6:.0f}M | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=3000)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    passages = all_passages()[: args.passages]
    print(f"corpus: {len(passages):,} passages ({sizes(passages)})", flush=True)
    rows, measured = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        corpus, one = Path(tmp) / "corpus.jsonl", Path(tmp) / "one.jsonl"
        corpus.write_text("".join(json.dumps(p) + "\n" for p in passages))
        one.write_text(json.dumps(passages[0]) + "\n")
        for i, (name, extra) in enumerate(RUNS.items()):
            _, fixed = ingest(one, Path(tmp) / f"fixed-{i}", extra)
            chunks, seconds = ingest(corpus, Path(tmp) / f"kb-{i}", extra)
            measured[name] = (chunks, seconds, fixed)
            print(name, chunks, f"{seconds:.1f} s", f"fixed {fixed:.1f} s", flush=True)
        base = measured["single process"][1]
        for i, (name, (chunks, seconds, fixed)) in enumerate(measured.items()):
            rate = chunks / max(seconds - fixed, 1e-9)
            check = "(reference)" if i == 0 else "-" if "no-dense" in name else same(Path(tmp) / "kb-0",
                                                                                       Path(tmp) / f"kb-{i}")
            rows.append((name, f"{chunks:,}", f"{seconds:.0f}", f"{fixed:.1f}", f"{chunks / seconds:.1f}",
                         f"{rate:.1f}", f"{seconds / base:.2f}x", check))
    chunks, seconds, fixed = measured["Ray, 1 worker"]
    worker_rate = chunks / (seconds - fixed)
    d_chunks, d_seconds, d_fixed = measured["single process, --no-dense"]
    driver_rate = d_chunks / (d_seconds - d_fixed)
    table = markdown_table(["run", "chunks", "wall s", "fixed cost s (1 passage)", "chunks/s", "chunks/s beyond the "
                            "fixed cost", "time vs single process", "same chunks and vectors"], rows)
    notes = (f"Corpus: the first {len(passages):,} pooled passages ({sizes(passages)}). Per-worker rate (1 worker, "
             f"fixed cost taken out): {worker_rate:.1f} chunks/s; the driver alone (--no-dense): "
             f"{driver_rate:.0f} chunks/s. Projection on paper, assuming workers scale linearly and each runs at "
             f"the measured per-worker rate (one CPU), with the driver's part (reading, SQL, BM25; not spread by "
             f"Ray) as its own floor:\n\n{projection(worker_rate, driver_rate)}")
    print(table)
    print(notes)
    if not args.no_append:
        append_history("Ingest on Ray workers", table, notes, area="Speed")


if __name__ == "__main__":
    main()
