"""FAISS index build and search on GPU against CPU, 1M+ vectors, through pilotfish's index factory.

For a GPU machine with no network (it needs numpy, faiss and the pilotfish source only): see
benchmarks/faiss_gpu.sh, which installs faiss's GPU build from carried wheels and runs this script once
(target: under 10 minutes). It prints JSON and writes --out; nothing goes to benchmarks/history.md.

    PYTHONPATH=src python benchmarks/faiss_gpu.py [--n 1000000] [--dim 384] [--queries 10000] [--k 10]
                                                  [--out results.json] [--skip-cpu-flat]

Vectors are random unit vectors with cluster structure (a mixture of 2,000 Gaussians), like sentence
embeddings; queries are drawn the same way. Reports build seconds, queries/s (10k queries, k=10,
batched) and recall@10 against exact search, for flat and IVF, CPU and GPU, and checks that an index
built on the GPU and saved loads and answers on CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from shared import clustered  # noqa: E402

from pilotfish.retrievers import index as faiss_index  # noqa: E402


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("faiss_gpu_results.json"))
    parser.add_argument("--skip-cpu-flat", action="store_true", help="exact CPU search of all queries is slow")
    args = parser.parse_args()

    import faiss

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((2000, args.dim), dtype=np.float32)
    xb = clustered(args.n, args.dim, rng, centres)
    xq = clustered(args.queries, args.dim, rng, centres)
    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    results: dict = {"n": args.n, "dim": args.dim, "queries": args.queries, "k": args.k, "gpus": gpus,
                     "faiss": faiss.__version__, "cpu_threads": os.cpu_count(), "runs": []}
    print(json.dumps({k: v for k, v in results.items() if k != "runs"}), flush=True)

    truth = None
    for device in ("cuda", "cpu") if gpus else ("cpu",):
        for kind in ("flat", "ivf"):
            if device == "cpu" and kind == "flat" and args.skip_cpu_flat and truth is not None:
                continue
            start = time.perf_counter()
            index = faiss_index.build_index(xb, kind=kind, device=device, threads=None)
            build_s = time.perf_counter() - start
            searchable = index
            if device == "cuda":
                resources = faiss.StandardGpuResources()
                searchable = faiss.index_cpu_to_gpu(resources, 0, index)
                if kind == "ivf":
                    searchable.nprobe = index.nprobe
            faiss_index.set_threads(None)
            searchable.search(xq[:100], args.k)  # warm-up
            start = time.perf_counter()
            _, ids = searchable.search(xq, args.k)
            search_s = time.perf_counter() - start
            if kind == "flat" and truth is None:
                truth = ids
            run = {"device": device, "kind": kind, "build_s": round(build_s, 2),
                   "queries_per_s": round(args.queries / search_s, 1),
                   "recall_at_k": round(recall_at_k(ids, truth), 4) if truth is not None else None,
                   "nprobe": getattr(index, "nprobe", None)}
            if device == "cuda":
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / "index.faiss"
                    faiss_index.save_index(index, path)
                    cpu_index = faiss_index.load_index(path)
                    _, cpu_ids = faiss_index.search(cpu_index, xq[:200], args.k, threads=None)
                    run["saved_index_loads_on_cpu"] = bool(recall_at_k(cpu_ids, ids[:200]) > 0.95)
            results["runs"].append(run)
            print(json.dumps(run), flush=True)
    by = {(r["device"], r["kind"]): r for r in results["runs"]}
    for kind in ("flat", "ivf"):
        if ("cuda", kind) in by and ("cpu", kind) in by:
            results[f"{kind}_build_speedup_gpu_over_cpu"] = round(
                by[("cpu", kind)]["build_s"] / by[("cuda", kind)]["build_s"], 1)
            results[f"{kind}_search_speedup_gpu_over_cpu"] = round(
                by[("cuda", kind)]["queries_per_s"] / by[("cpu", kind)]["queries_per_s"], 1)
    args.out.write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
