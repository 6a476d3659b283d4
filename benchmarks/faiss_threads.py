"""FAISS search threads: one query at a time and batched, 1 thread against all cores, in one run.

    python benchmarks/faiss_threads.py [--no-append]

DESIGN.md measured single queries 30x slower with FAISS's default OpenMP threads on this kind of
machine; this script keeps that measurement current, since DenseRetriever defaults to threads=1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from shared import append_history, clustered, markdown_table  # noqa: E402

from pilotfish.retrievers import index as faiss_index  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((500, 384), dtype=np.float32)
    queries = clustered(300, 384, rng, centres)
    cores = os.cpu_count() or 1
    rows = []
    for n, kind in ((11_303, "flat"), (200_000, "hnsw")):
        index = faiss_index.build_index(clustered(n, 384, rng, centres), kind=kind, threads=None)
        for threads in (1, cores):
            faiss_index.search(index, queries[:10], 10, threads=threads)
            start = time.perf_counter()
            for q in queries:
                faiss_index.search(index, q[None, :], 10, threads=threads)
            single = len(queries) / (time.perf_counter() - start)
            start = time.perf_counter()
            faiss_index.search(index, queries, 10, threads=threads)
            batched = len(queries) / (time.perf_counter() - start)
            rows.append((f"{kind}, {n:,} vectors", threads, f"{single:,.0f}", f"{batched:,.0f}"))
            print(rows[-1], flush=True)
    table = markdown_table(("index", "threads", "single queries/s", "batched queries/s"), rows)
    print(table)
    if not args.no_append:
        append_history("FAISS search threads (faiss_threads.py)", table,
                       "Random clustered unit vectors, dimension 384, 300 queries, k=10.", area="Speed")


if __name__ == "__main__":
    main()
