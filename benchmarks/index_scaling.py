"""Vector index scaling: build time, memory, single-query speed and recall@10 of flat, HNSW, IVF-PQ, IVF-SQ8/6.

    python benchmarks/index_scaling.py [--sizes 100000,1000000,5000000] [--hnsw-max 1000000] [--kinds ...] [--no-append]
    python benchmarks/index_scaling.py --real [--kinds flat,hnsw,ivf,ivfpq,ivfsq8]

Vectors are synthetic, dimension 384: unit vectors around 2,000 random centres (`shared.clustered`), the shape
of sentence embeddings, since no corpus here holds a million passages. Queries (1,000) are drawn the same way;
recall@10 is against exact search (the flat index) over the same vectors. Memory is the serialized index's
size (what it takes resident once loaded). Single queries are searched one at a time on one thread, as
`DenseRetriever` does by default; builds use every core. Each IVF kind is tried at growing `nprobe` and reported
at the smallest one that reaches recall@10 >= 0.95 (or at the largest tried); HNSW at growing `efSearch`.
The target (at 1M vectors): a kind with recall@10 >= 0.95, >= 500 single queries/s on 2 cores, and at most a
quarter of the flat index's memory. HNSW is skipped above `--hnsw-max` (its build takes hours on 2 cores).

`--real` measures recall on real sentence embeddings instead: MiniLM vectors of the pooled benchmark passages
(every text corpus in the benchmark data, as benchmarks/ingest_scale.py pools them: 21,940 passages) searched
with the benchmark sets' real questions (SciFact test claims and HotpotQA, MuSiQue and 2Wiki questions),
each index built exactly as `pilotfish ingest --dense-index KIND` builds it. The embeddings are cached in
benchmarks/out/index_scaling/.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from shared import append_history, clustered, markdown_table  # noqa: E402

from pilotfish.retrievers import index as faiss_index  # noqa: E402

DIM, QUERIES, K = 384, 1000, 10
BLOCK = 250_000
NPROBES = (4, 8, 16, 32, 64, 128, 256)
EF_SEARCH = (32, 64, 128, 256)
TARGET_RECALL = 0.95


def vectors(n: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, BLOCK):
        stop = min(n, start + BLOCK)
        out[start:stop] = clustered(stop - start, DIM, rng, centres)
    return out


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found.tolist(), truth.tolist())]))


def single_queries(index: Any, xq: np.ndarray, **params: Any) -> tuple[np.ndarray, float]:
    """(ids, queries per second) searching one query at a time on one thread."""
    import faiss

    faiss_index.set_threads(1)
    if "nprobe" in params:
        faiss.extract_index_ivf(index).nprobe = params["nprobe"]
    if "ef_search" in params:
        index.hnsw.efSearch = max(params["ef_search"], K)
    index.search(xq[:20], K)  # warm-up
    start = time.perf_counter()
    ids = np.vstack([index.search(xq[i:i + 1], K)[1] for i in range(len(xq))])
    return ids, len(xq) / (time.perf_counter() - start)


def build(kind: str, xb: np.ndarray) -> tuple[Any, float]:
    import faiss

    faiss_index.set_threads(None)
    start = time.perf_counter()
    if kind in ("ivfsq8", "ivfsq6"):
        cells = faiss_index.ivf_lists(len(xb))
        bits = faiss.ScalarQuantizer.QT_8bit if kind == "ivfsq8" else faiss.ScalarQuantizer.QT_6bit
        index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(DIM), DIM, cells, bits, faiss.METRIC_INNER_PRODUCT)
        index.train(sample(xb, 64 * cells))
        for s in range(0, len(xb), BLOCK):
            index.add(xb[s:s + BLOCK])
    elif kind in ("ivfpq", "ivfpq192"):
        cells = faiss_index.ivf_lists(len(xb))
        m = 48 if kind == "ivfpq" else 192
        index = faiss.IndexIVFPQ(faiss.IndexFlatIP(DIM), DIM, cells, m, 8, faiss.METRIC_INNER_PRODUCT)
        index.train(sample(xb, 64 * cells))
        for s in range(0, len(xb), BLOCK):
            index.add(xb[s:s + BLOCK])
    else:
        index = faiss_index.build_index(xb, kind=kind, threads=None)
    return index, time.perf_counter() - start


def sample(xb: np.ndarray, n: int) -> np.ndarray:
    if len(xb) <= n:
        return xb
    return xb[np.sort(np.random.default_rng(1).choice(len(xb), n, replace=False))]


def size_mb(index: Any) -> float:
    import faiss

    return len(faiss.serialize_index(index)) / 1e6


def measure(kind: str, index: Any, xq: np.ndarray, truth: np.ndarray) -> tuple[str, float, float]:
    """(setting, recall@10, single queries/s) at the cheapest setting reaching the target recall."""
    import faiss

    if kind == "flat":
        ids, qps = single_queries(index, xq)
        return "exact", recall(ids, truth), qps
    tries = [("nprobe", p) for p in NPROBES if p <= faiss.extract_index_ivf(index).nlist] if kind != "hnsw" else \
        [("ef_search", e) for e in EF_SEARCH]
    best = ("", 0.0, 0.0)
    for name, value in tries:
        ids, qps = single_queries(index, xq, **{name: value})
        best = (f"{name.replace('_', '')}={value}", recall(ids, truth), qps)
        if best[1] >= TARGET_RECALL:
            break
    return best


def real_vectors() -> tuple[np.ndarray, np.ndarray]:
    """(passage vectors, question vectors): MiniLM embeddings, unit length, cached in benchmarks/out."""
    from ingest_scale import all_passages
    from shared import OUT, beir, qa_set

    from pilotfish.models.embedding import Embedder
    from pilotfish.retrievers.corpus import index_text_of

    cache = OUT / "index_scaling" / "minilm-pooled.npz"
    if cache.exists():
        data = np.load(cache)
        return data["passages"], data["questions"]
    passages = all_passages()
    questions = list(beir("scifact")[1].values())
    for name in ("hotpotqa", "musique", "2wiki"):
        questions += [item.question for item in qa_set(name)]
    embedder = Embedder(model="minilm-l6")
    print(f"embedding {len(passages):,} passages and {len(questions):,} questions", flush=True)
    xb = embedder.encode_documents([index_text_of(p["title"], p["text"]) for p in passages])
    xq = embedder.encode_queries(questions)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, passages=xb, questions=xq)
    return xb, xq


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000,5000000")
    parser.add_argument("--hnsw-max", type=int, default=1_000_000)
    parser.add_argument("--kinds", help="default: flat,hnsw,ivfpq,ivfpq192,ivfsq8,ivfsq6 (synthetic); "
                                        "flat,hnsw,ivf,ivfpq,ivfsq8 (--real)")
    parser.add_argument("--no-append", action="store_true")
    parser.add_argument("--real", action="store_true", help="MiniLM vectors of the pooled benchmark passages")
    args = parser.parse_args()
    if args.real:
        return real_main(args)
    args.kinds = args.kinds or "flat,hnsw,ivfpq,ivfpq192,ivfsq8,ivfsq6"
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((2000, DIM), dtype=np.float32)
    xq = clustered(QUERIES, DIM, rng, centres)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        xb = vectors(n, rng, centres)
        flat, flat_s = build("flat", xb)
        faiss_index.set_threads(None)
        _, truth = flat.search(xq, K)
        flat_mb = size_mb(flat)
        for kind in ["flat"] + [k for k in args.kinds.split(",") if k != "flat"]:
            if kind == "hnsw" and n > args.hnsw_max:
                rows.append((f"{n:,}", kind, "skipped (build too long on 2 cores)", "", "", "", ""))
                continue
            index, seconds = (flat, flat_s) if kind == "flat" else build(kind, xb)
            setting, r, qps = measure(kind, index, xq, truth)
            mb = size_mb(index)
            rows.append((f"{n:,}", kind, setting, f"{seconds:.1f}", f"{mb:,.0f} ({mb / flat_mb:.2f}x flat)",
                         f"{qps:,.0f}", f"{r:.3f}"))
            print(rows[-1], flush=True)
            if kind != "flat":
                del index
        del flat, xb
    table = markdown_table(["vectors", "index", "setting", "build s", "memory MB", "single queries/s (1 thread)",
                            f"recall@{K}"], rows)
    notes = (f"Synthetic clustered unit vectors, dimension {DIM}, {QUERIES:,} queries; IVF cells 4 sqrt(n) "
             "(`ivf_lists`), trained on 64 vectors a cell; IVF-PQ 48 (ivfpq) or 192 (ivfpq192) sub-quantizers of 8 "
             "bits; IVF-SQ 8 or 6 bits a dimension; HNSW M=32, "
             f"efConstruction=80. Target at 1M: recall@10 >= {TARGET_RECALL}, >= 500 single queries/s, <= 0.25x "
             "flat memory.")
    print(table)
    print(notes)
    if not args.no_append:
        append_history("Vector index scaling: flat, HNSW, IVF-PQ, IVF-SQ8", table, notes, area="Speed")


def real_main(args: argparse.Namespace) -> None:
    """Recall@10 of each index kind, as ingest builds it, on real MiniLM vectors and real questions."""
    import faiss

    xb, xq = real_vectors()
    xb, xq = np.ascontiguousarray(xb, dtype=np.float32), np.ascontiguousarray(xq, dtype=np.float32)
    kinds = args.kinds or "flat,hnsw,ivf,ivfpq,ivfsq8"
    flat = faiss_index.build_index(xb, kind="flat")
    faiss_index.set_threads(None)
    _, truth = flat.search(xq, K)
    flat_mb = size_mb(flat)
    rows = []
    for kind in ["flat"] + [k for k in kinds.split(",") if k != "flat"]:
        start = time.perf_counter()
        index = flat if kind == "flat" else faiss_index.build_index(xb, kind=kind)
        seconds = time.perf_counter() - start
        default = getattr(faiss.extract_index_ivf(index), "nprobe", None) if kind in faiss_index.IVF_KINDS else None
        setting, r, qps = measure(kind, index, xq, truth)
        mb = size_mb(index)
        if default is not None:
            ids, default_qps = single_queries(index, xq, nprobe=default)
            setting += f"; at the default nprobe={default}: recall {recall(ids, truth):.3f}, {default_qps:,.0f} q/s"
        rows.append((f"{len(xb):,} real", kind, setting, f"{seconds:.1f}", f"{mb:,.1f} ({mb / flat_mb:.2f}x flat)",
                     f"{qps:,.0f}", f"{r:.3f}"))
        print(rows[-1], flush=True)
    table = markdown_table(["vectors", "index", "setting", "build s", "memory MB", "single queries/s (1 thread)",
                            f"recall@{K}"], rows)
    notes = (f"MiniLM-L6 vectors of the {len(xb):,} pooled benchmark passages (title and text, as ingest embeds "
             f"them), {len(xq):,} real questions (SciFact test claims, HotpotQA-500, MuSiQue-210, 2Wiki-500); each "
             "index built by `pilotfish.retrievers.index.build_index` as ingest builds it (IVF cells 4 sqrt(n)); "
             "recall@10 against exact search.")
    print(table)
    print(notes)
    if not args.no_append:
        append_history("Vector index recall on real embeddings", table, notes, area="Speed")


if __name__ == "__main__":
    main()
