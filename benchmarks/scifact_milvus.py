"""SciFact (BEIR test, 5,183 abstracts, 300 queries): the same MiniLM vectors searched in FAISS and in Milvus Lite.

    python benchmarks/scifact_milvus.py [--work DIR] [--reuse] [--no-append]

The abstracts are chunked as a knowledge base chunks them (200 tokens, 30 overlap) and embedded ONCE with
MiniLM-L6; the one matrix is indexed by `DenseRetriever(vectors="faiss")` and by
`DenseRetriever(vectors="milvus:///...db")` (FLAT, exact, in this process), and also by Milvus Lite's HNSW.
Queries are embedded once too, so the timings compare the vector search alone (passages with text and
metadata included): one query at a time (median latency) and the 300 queries in one call. Quality is dense
nDCG@10 / Recall@100 via ranx, documents scored by their best chunk, as in scifact_retrieval.py. Prints
one table and appends it to benchmarks/history.md.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from shared import OUT, append_history, beir, doc_run, markdown_table, retrieval_scores  # noqa: E402

from pilotfish.knowledge.chunking import SentenceChunker  # noqa: E402
from pilotfish.models import model_path  # noqa: E402
from pilotfish.retrievers.corpus import ChunkCorpus  # noqa: E402
from pilotfish.retrievers.dense import DenseRetriever  # noqa: E402
from pilotfish.types import Document  # noqa: E402

DEPTH = 200  # chunks per query, so that 100 distinct documents remain for Recall@100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=str(OUT / "scifact_milvus"))
    parser.add_argument("--reuse", action="store_true", help="reuse the embeddings already in --work")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    records, queries, qrels = beir("scifact")
    qids = list(queries)
    chunker = SentenceChunker(chunk_tokens=200, overlap_tokens=30, tokenizer=str(model_path("minilm-l6")))
    docs = [Document(doc_id=r["doc_id"], text=r["text"], title=r.get("title", "")) for r in records]
    chunks = [c for cs in chunker.run_batch(docs) for c in cs]
    corpus = ChunkCorpus.from_chunks(chunks, titles={d.doc_id: d.title for d in docs})

    faiss = DenseRetriever(model="minilm-l6")
    cached = work / "embeddings.npy"
    started = time.perf_counter()
    reused = args.reuse and cached.exists() and np.load(cached, mmap_mode="r").shape[0] == len(corpus)
    if not reused:
        np.save(cached, faiss.embedder.encode_documents(corpus.index_texts()))
    matrix = np.load(cached, mmap_mode="r")  # the one matrix both backends index, read from disk
    embedded = "reused from --work" if reused else f"{time.perf_counter() - started:.0f}s"
    query_vectors = faiss.embedder.encode_queries([queries[q] for q in qids])

    rows: list[tuple] = []
    notes = [f"{len(records)} abstracts -> {len(corpus)} chunks, embedded once with MiniLM-L6 ({embedded}); "
             f"{len(qids)} queries embedded once. Vector search alone is timed; the index build includes "
             "inserting into Milvus Lite (in batches of 2,000)."]
    results = {}
    for name, url in (("FAISS flat (default backend)", "faiss"),
                      ("Milvus Lite FLAT (in process)", f"milvus:///{work / 'flat.db'}"),
                      ("Milvus Lite HNSW (in process)", f"milvus:///{work / 'hnsw.db'}?index=HNSW")):
        if url != "faiss":
            shutil.rmtree(work / url.split("/")[-1].split("?")[0], ignore_errors=True)
        retriever = faiss if url == "faiss" else DenseRetriever(model="minilm-l6", vectors=url)
        _, build_s = _timed(retriever.index, corpus, embeddings=matrix)
        retriever.search_vectors(query_vectors[:1], top_k=DEPTH)  # warm up (Milvus connects, loads)
        results[name], batch_s = _timed(retriever.search_vectors, query_vectors, top_k=DEPTH)
        single = [_timed(retriever.search_vectors, v[None, :], top_k=10)[1] for v in query_vectors]
        scores = retrieval_scores(qrels, doc_run(results[name], qids))
        rows.append((name, f"{scores['ndcg@10']:.4f}", f"{scores['recall@100']:.4f}", f"{build_s:.1f}",
                     f"{1000 * statistics.median(single):.2f}", f"{len(qids) / batch_s:,.0f}"))
        print(" | ".join(map(str, rows[-1])), flush=True)
    same = _agreement(results["FAISS flat (default backend)"], results["Milvus Lite FLAT (in process)"])
    notes.append(f"FAISS flat and Milvus Lite FLAT return the same top-10 chunk ids for {same:.1%} of queries "
                 "(ties may order differently). Single-query latency is the median over 300 queries at k=10; "
                 f"batched is 300 queries in one call at k={DEPTH}.")
    table = markdown_table(("backend", "dense nDCG@10", "Recall@100", "build s", "single query ms (median)",
                            "batched queries/s"), rows)
    print()
    print(table)
    for note in notes:
        print(note)
    if not args.no_append:
        append_history("SciFact dense search, FAISS against Milvus Lite (scifact_milvus.py)", table,
                       "Published all-MiniLM-L6-v2 about 0.645.\n\n" + "\n\n".join(notes), area="Retrieval")


def _timed(fn, *args, **kwargs) -> tuple[object, float]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def _agreement(a: list, b: list) -> float:
    return sum([p.chunk_id for p in x[:10]] == [p.chunk_id for p in y[:10]] for x, y in zip(a, b)) / len(a)


if __name__ == "__main__":
    main()
