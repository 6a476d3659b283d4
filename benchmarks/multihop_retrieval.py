"""Multi-hop retrieval (HotpotQA, MuSiQue or 2WikiMultihopQA; all paragraphs pooled): do both hops come back?

    python benchmarks/multihop_retrieval.py [--dataset hotpotqa|musique|2wiki] [--limit N] [--no-append]

For each question, the paragraphs retrieved (a paragraph once, at its best chunk) are checked against the
gold supporting paragraphs: all-support recall@k is the share of questions whose supporting paragraphs
are all in the top k; support recall@10 the mean share found. pilotfish's BM25 (bm25s inside), dense
(MiniLM), the default hybrid, and the hybrid's first 20 reranked by the cross-encoder run over the knowledge
base the answer scripts build (out/<set>/kb). Peer, side by side: raw bm25s over the same paragraphs
(title and text, same stemmer and stopwords), one query at a time; the speed column is queries per
second of each in this run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from shared import OUT, QA_SETS, append_history, markdown_table, qa_set, write_corpus  # noqa: E402

KS = (2, 5, 10)


def first_documents(passages: Sequence, k: int) -> list[str]:
    """The first k distinct documents of a chunk ranking (a document at its best chunk)."""
    seen: list[str] = []
    for p in passages:
        if p.doc_id not in seen:
            seen.append(p.doc_id)
        if len(seen) == k:
            break
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="hotpotqa", choices=sorted(QA_SETS))
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions (default: all)")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    import bm25s
    import Stemmer

    from pilotfish.knowledge.base import KnowledgeBase

    data = qa_set(args.dataset)
    items = data.items[: args.limit] if args.limit else data.items
    folder = OUT / QA_SETS[args.dataset].out
    kb = KnowledgeBase.open(folder / "kb", create=True)
    if kb.store.counts()["documents"] == 0:
        kb.ingest([write_corpus(data, folder)])
    questions = [i.question for i in items]

    corpus = data.corpus or []
    stemmer = Stemmer.Stemmer("english")
    raw = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    raw.index(bm25s.tokenize([f"{d['title']}\n{d['text']}" for d in corpus], stopwords="en", stemmer=stemmer,
                             show_progress=False), show_progress=False)
    ids = [d["doc_id"] for d in corpus]

    def raw_bm25s(question: str) -> list[str]:
        found, _ = raw.retrieve(bm25s.tokenize([question], stopwords="en", stemmer=stemmer, show_progress=False),
                                k=max(KS), show_progress=False)
        return [ids[j] for j in found[0]]

    def searched(mode: str, rerank: bool = False) -> Callable[[str], list[str]]:
        def run(question: str) -> list[str]:
            if rerank:
                return first_documents(kb.search(question, mode=mode, top_k=max(KS), rerank=True, rerank_depth=20),
                                       max(KS))
            return first_documents(kb.search(question, mode=mode, top_k=3 * max(KS)), max(KS))
        return run

    systems = {"raw bm25s, same paragraphs (peer)": raw_bm25s, "pilotfish bm25": searched("bm25"),
               "pilotfish dense (MiniLM)": searched("dense"), "pilotfish hybrid (default)": searched("hybrid"),
               "pilotfish hybrid, first 20 reranked": searched("hybrid", rerank=True)}
    for run in systems.values():
        run("warm-up question about a film director")  # loads are not search time
    rows = []
    for name, run in systems.items():
        start = time.perf_counter()
        rankings = [run(q) for q in questions]
        seconds = time.perf_counter() - start
        gold = [set(i.gold_doc_ids) for i in items]
        complete = [statistics.mean(g <= set(r[:k]) for g, r in zip(gold, rankings)) for k in KS]
        share = statistics.mean(len(g & set(r[:10])) / len(g) for g, r in zip(gold, rankings))
        rows.append((name, *(f"{c:.3f}" for c in complete), f"{share:.3f}", f"{len(questions) / seconds:,.1f}"))
        print(rows[-1], flush=True)
    table = markdown_table(("retriever", *(f"all-support recall@{k}" for k in KS), "support recall@10",
                            "queries/s"), rows)
    notes = (f"{args.dataset}: {len(items)} questions, {len(corpus)} pooled paragraphs; a paragraph counts once, "
             "at its best chunk. Queries one at a time; raw bm25s tokenises with the same stemmer and stopwords.")
    print(table)
    print(notes)
    if not args.no_append:
        append_history(f"Multi-hop retrieval, {args.dataset}, {len(items)} questions (multihop_retrieval.py)",
                       table, notes, area="Retrieval")


if __name__ == "__main__":
    main()
