"""SciFact (BEIR test, 5,183 abstracts, 300 queries): quality and speed of pilotfish retrieval.

    python benchmarks/scifact_retrieval.py [--skip-bge] [--skip-rerank] [--speed-only] [--rerank-depth 30]
                                           [--work DIR] [--reuse] [--no-append]

Quality (nDCG@10, Recall@100 via ranx, documents scored by their best chunk) for bm25, dense (MiniLM,
bge-small), hybrid fusions and reranking; speed as ratios against peers run in this same process:
raw bm25s and LangChain's BM25Retriever (rank-bm25) for BM25, sentence-transformers `encode` for
ingest. Prints one table and appends it to benchmarks/history.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from shared import DATA, append_history, beir, doc_run, markdown_table, retrieval_scores  # noqa: E402

from pilotfish.knowledge.base import KnowledgeBase  # noqa: E402
from pilotfish.retrievers.hybrid import HybridRetriever  # noqa: E402
from pilotfish.retrievers.rerank import CrossEncoderReranker  # noqa: E402

DEPTH = 200  # chunks fetched per query so that 100 distinct documents remain for Recall@100


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-bge", action="store_true")
    parser.add_argument("--skip-rerank", action="store_true")
    parser.add_argument("--no-append", action="store_true", help="do not append to benchmarks/history.md")
    parser.add_argument("--rerank-depth", type=int, default=30)
    parser.add_argument("--speed-only", action="store_true", help="skip bge-small and reranking")
    parser.add_argument("--work", default=str(Path(__file__).parent / "out" / "scifact"),
                        help="where the knowledge bases are built (scifact_fusion.py reuses them)")
    parser.add_argument("--reuse", action="store_true", help="reuse knowledge bases already in --work")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    corpus_records, queries, qrels = beir("scifact")
    qids = list(queries)
    texts = [queries[q] for q in qids]
    rows: list[tuple] = []
    notes: list[str] = []

    def record(name: str, results, seconds: float | None, n_queries: int = len(texts)) -> dict[str, float]:
        scores = retrieval_scores(qrels, doc_run(results, qids))
        qps = f"{n_queries / seconds:,.0f}" if seconds else "-"
        rows.append((name, f"{scores['ndcg@10']:.3f}", f"{scores['recall@100']:.3f}", qps))
        print(f"{name:55s} nDCG@10 {scores['ndcg@10']:.3f}  R@100 {scores['recall@100']:.3f}  q/s {qps}", flush=True)
        return scores

    work = Path(args.work)
    if work.exists() and not args.reuse:
        import shutil

        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    corpus_file = DATA / "scifact" / "corpus.jsonl.gz"

    # -- ingest (MiniLM) against sentence-transformers encode on the same texts -------------------
    kb = KnowledgeBase.open(work / "kb-minilm", create=True)
    report, ingest_s = timed(kb.ingest, [corpus_file])
    if not report.chunks:
        raise SystemExit("--reuse found an ingested knowledge base: ingest speed needs a fresh one; drop --reuse")
    corpus = kb.corpus()
    chunk_texts = corpus.index_texts()
    from sentence_transformers import SentenceTransformer

    from pilotfish.models import model_path

    st = SentenceTransformer(str(model_path("minilm-l6")), device="cpu")
    _, st_s = timed(st.encode, chunk_texts, batch_size=32, normalize_embeddings=True)
    notes.append(f"Ingest: {report.documents} abstracts -> {report.chunks} chunks in {ingest_s:.1f}s "
                 f"({report.chunks / ingest_s:.1f} chunks/s, loading, chunking, SQL, BM25 and MiniLM embedding "
                 f"included); sentence-transformers encode alone on the same {len(chunk_texts)} texts: {st_s:.1f}s "
                 f"({len(chunk_texts) / st_s:.1f} chunks/s). Ingest / encode time ratio: {ingest_s / st_s:.2f}x.")
    print(notes[-1], flush=True)

    # -- BM25: pilotfish against raw bm25s and LangChain (rank-bm25) ------------------------------
    bm25 = kb.retriever("bm25")
    bm25.run(texts[0])  # warm up
    single, single_s = timed(lambda: [bm25.run(t, top_k=DEPTH) for t in texts])
    record("pilotfish bm25 (one query at a time)", single, single_s)
    batch, batch_s = timed(bm25.run_batch, texts, top_k=DEPTH)
    record("pilotfish bm25 (run_batch)", batch, batch_s)

    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    raw = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    raw.index(bm25s.tokenize(chunk_texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False)

    def raw_single() -> list:
        out = []
        for t in texts:
            tok = bm25s.tokenize([t], stopwords="en", stemmer=stemmer, show_progress=False)
            docs, _ = raw.retrieve(tok, k=DEPTH, show_progress=False)
            out.append(docs[0])
        return out

    raw_out, raw_s = timed(raw_single)
    _, raw_batch_s = timed(lambda: raw.retrieve(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer,
                                                              show_progress=False), k=DEPTH, show_progress=False))
    rows.append((f"raw bm25s, same chunks, k={DEPTH} (one query at a time)", "-", "-", f"{len(texts) / raw_s:,.0f}"))
    rows.append((f"raw bm25s, same chunks, k={DEPTH} (batched retrieve)", "-", "-",
                 f"{len(texts) / raw_batch_s:,.0f}"))
    # At the k a user asks for, pilotfish (Passages with text and metadata) against raw bm25s (ids).
    speed: dict[int, tuple[float, float]] = {}
    for k in (10, 100):
        best_pf = best_raw = float("inf")
        for _ in range(3):  # best of three: the machine has two cores and other work on them
            best_pf = min(best_pf, timed(lambda k=k: [bm25.run(t, top_k=k) for t in texts])[1])
            best_raw = min(best_raw, timed(lambda k=k: [raw.retrieve(
                bm25s.tokenize([t], stopwords="en", stemmer=stemmer, show_progress=False), k=k,
                show_progress=False) for t in texts])[1])
        speed[k] = (best_pf, best_raw)
        rows.append((f"pilotfish bm25, k={k}, one query at a time (best of 3)", "-", "-",
                     f"{len(texts) / best_pf:,.0f}"))
        rows.append((f"raw bm25s, k={k}, one query at a time (best of 3)", "-", "-", f"{len(texts) / best_raw:,.0f}"))

    whole = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    whole_texts = [f"{d.get('title', '')}\n{d['text']}" for d in corpus_records]
    whole.index(bm25s.tokenize(whole_texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False)
    docs, scores = whole.retrieve(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False),
                                  k=100, show_progress=False)
    whole_run = {qid: {corpus_records[int(i)]["doc_id"]: float(s) for i, s in zip(d, sc)}
                 for qid, d, sc in zip(qids, docs, scores)}
    w = retrieval_scores(qrels, whole_run)
    rows.append(("raw bm25s, whole abstracts (reference)", f"{w['ndcg@10']:.3f}", f"{w['recall@100']:.3f}", "-"))

    from langchain_community.retrievers import BM25Retriever as LCBM25

    lc = LCBM25.from_texts(chunk_texts, k=10)
    lc_queries = texts[:100]
    _, lc_s = timed(lambda: [lc.invoke(t) for t in lc_queries])
    _, pf_small_s = timed(lambda: [bm25.run(t, top_k=10) for t in lc_queries])
    rows.append(("LangChain BM25Retriever (rank-bm25), k=10, 100 queries", "-", "-", f"{len(lc_queries) / lc_s:,.1f}"))
    notes.append("BM25 speed, one query at a time: pilotfish takes "
                 + ", ".join(f"{pf / raw_t:.2f}x raw bm25s's time at k={k}" for k, (pf, raw_t) in speed.items())
                 + f"; at k=10 pilotfish answers {lc_s / pf_small_s:,.0f}x the queries per second of LangChain's "
                 "BM25Retriever (rank-bm25) on the same chunks.")
    print(notes[-1], flush=True)

    # -- dense and hybrid -----------------------------------------------------------------------
    dense = kb.retriever("dense")
    dense.run(texts[0])
    dense_out, dense_s = timed(dense.run_batch, texts, top_k=DEPTH)
    record("pilotfish dense MiniLM-L6 (flat)", dense_out, dense_s)
    one, one_s = timed(lambda: [dense.run(t, top_k=DEPTH) for t in texts[:100]])
    rows.append(("pilotfish dense MiniLM-L6, one query at a time", "-", "-", f"{100 / one_s:,.0f}"))

    fused = {}
    for name, retr in (("hybrid RRF bm25 + MiniLM", HybridRetriever(retrievers=[bm25, dense], candidate_k=DEPTH)),
                       ("hybrid weighted 0.5/0.5 bm25 + MiniLM",
                        HybridRetriever(retrievers=[bm25, dense], fusion="weighted", candidate_k=DEPTH)),
                       ("hybrid weighted 0.3/0.7 bm25 + MiniLM",
                        HybridRetriever(retrievers=[bm25, dense], fusion="weighted", weights=[0.3, 0.7],
                                        candidate_k=DEPTH))):
        out, secs = timed(retr.run_batch, texts, top_k=DEPTH)
        fused[name] = (record(name, out, secs)["ndcg@10"], out)

    if not (args.skip_bge or args.speed_only):
        kb_bge = KnowledgeBase.open(work / "kb-bge", create=True, settings={"embedding_model": "bge-small"})
        report_bge, bge_s = timed(kb_bge.ingest, [corpus_file])
        notes.append(f"bge-small (int8 ONNX) ingest of {report_bge.chunks} chunks: {bge_s:.0f}s "
                     f"({report_bge.chunks / bge_s:.1f} chunks/s).")
        print(notes[-1], flush=True)
        bge = kb_bge.retriever("dense")
        bge_out, bge_q_s = timed(bge.run_batch, texts, top_k=DEPTH)
        record("pilotfish dense bge-small (flat)", bge_out, bge_q_s)
        bm25_bge = kb_bge.retriever("bm25")
        for name, retr in (
                ("hybrid RRF bm25 + bge-small", HybridRetriever(retrievers=[bm25_bge, bge], candidate_k=DEPTH)),
                ("hybrid RRF bm25 + MiniLM + bge-small",
                 HybridRetriever(retrievers=[bm25, dense, _same_rows(bge, corpus)], candidate_k=DEPTH)),
                ("hybrid weighted 0.3/0.7 bm25 + bge-small",
                 HybridRetriever(retrievers=[bm25_bge, bge], fusion="weighted", weights=[0.3, 0.7],
                                 candidate_k=DEPTH))):
            out, secs = timed(retr.run_batch, texts, top_k=DEPTH)
            fused[name] = (record(name, out, secs)["ndcg@10"], out)

    # -- rerank the best fusion's top candidates ---------------------------------------------------
    if not (args.skip_rerank or args.speed_only):
        best_name = max(fused, key=lambda n: fused[n][0])
        best_out = fused[best_name][1]
        reranker = CrossEncoderReranker()
        depth = args.rerank_depth
        heads = [ps[:depth] for ps in best_out]
        n_pairs = sum(map(len, heads))
        ce_scores, ce_s = timed(reranker.score_batch, texts, heads)  # scored once, ordered three ways
        notes.append(f"Cross-encoder: {n_pairs} pairs in {ce_s:.0f}s ({n_pairs / ce_s:.1f} pairs/s).")
        print(notes[-1], flush=True)
        for label, rr in (("alone", CrossEncoderReranker()),
                          ("RRF with first stage", CrossEncoderReranker(fusion="rrf")),
                          ("RRF, first stage weight 2", CrossEncoderReranker(fusion="rrf", first_stage_weight=2.0))):
            out = [rr.order(list(ps), s) + list(full[depth:]) for ps, s, full in zip(heads, ce_scores, best_out)]
            record(f"{best_name} + rerank top {depth} ({label})", out, None)

    table = markdown_table(("configuration", "nDCG@10", "Recall@100", "queries/s"), rows)
    print()
    print(table)
    for n in notes:
        print(n)
    if not args.no_append:
        append_history("SciFact retrieval (scifact_retrieval.py)", table,
                       "Published: BM25 (Anserini) 0.679, bm25s 0.687, all-MiniLM-L6-v2 about 0.645.\n\n"
                       + "\n\n".join(notes), area="Retrieval")


def _same_rows(retriever, corpus):
    """bge-small's KB has the same chunking, so its rows align with the MiniLM KB's corpus."""
    assert len(retriever.corpus) == len(corpus)
    return retriever


if __name__ == "__main__":
    main()
