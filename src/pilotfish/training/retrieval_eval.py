"""Measure an embedder or a reranker on held-out pairs: does the positive come first?

`RankingSet.from_pairs` pools the held-out positives and negatives into one small corpus. An embedder
ranks the whole pool for each query (`evaluate_embedder`); a reranker ranks each query's candidates, its
positives and negatives topped up with other queries' positives (`evaluate_reranker`). Both report
nDCG@10, MRR@10 and recall@10 (ranx), so a trained model and the one it would replace compare on the
same data (`pilotfish train embedder|reranker` put both in the model's card).

>>> from pilotfish.training.retrieval_data import RetrievalPair
>>> held = RankingSet.from_pairs([
...     RetrievalPair("who wrote Hamlet?", "Shakespeare wrote Hamlet.", ("Hamlet is a village.",)),
...     RetrievalPair("capital of France", "Paris is the capital of France.")])
>>> len(held.documents), held.relevant
(3, [[0], [2]])
>>> scores = evaluate_embedder("minilm-l6", held)
>>> scores["mrr@10"], scores["queries"]
(1.0, 2)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pilotfish.errors import ConfigError
from pilotfish.training.retrieval_data import RetrievalPair

METRICS = ("ndcg@10", "mrr@10", "recall@10")


@dataclass(frozen=True)
class RankingSet:
    """Queries, a pooled corpus, each query's relevant documents and the candidates a reranker orders
    (indices into `documents`)."""

    queries: list[str]
    documents: list[str]
    relevant: list[list[int]]
    candidates: list[list[int]]

    @classmethod
    def from_pairs(cls, pairs: Sequence[RetrievalPair], *, candidates: int = 20, seed: int = 0,
                   distractors: Sequence[str] = ()) -> RankingSet:
        """Group pairs by query; a text that is one query's positive and another's negative counts as relevant
        only where it is a positive. `distractors` (e.g. passages sampled from the knowledge base, none of them
        a positive) join the pool and the rerankers' candidates, so the held-out task is not a toy."""
        index: dict[str, int] = {}
        by_query: dict[str, tuple[list[int], list[int]]] = {}

        def doc(text: str) -> int:
            return index.setdefault(text, len(index))

        for p in pairs:
            pos, neg = by_query.setdefault(p.query, ([], []))
            pos.append(doc(p.positive))
            neg += [doc(n) for n in p.negatives]
        extra = [doc(text) for text in distractors]
        rng = random.Random(seed)
        every_positive = list(dict.fromkeys([*(i for pos, _ in by_query.values() for i in pos), *extra]))
        lists = []
        for pos, neg in by_query.values():
            own = list(dict.fromkeys(pos + [n for n in neg if n not in pos]))
            others = [i for i in every_positive if i not in own]
            rng.shuffle(others)
            lists.append(own + others[:max(0, candidates - len(own))])
        return cls(list(by_query), list(index), [list(dict.fromkeys(pos)) for pos, _ in by_query.values()], lists)


def ranking_metrics(held: RankingSet, rankings: Sequence[Sequence[tuple[int, float]]]) -> dict[str, Any]:
    """nDCG@10, MRR@10 and recall@10 of each query's (document, score) ranking against `held.relevant`."""
    from pilotfish.evaluation.metrics import retrieval_metrics

    qrels = {f"q{i}": {f"d{d}": 1 for d in rel} for i, rel in enumerate(held.relevant)}
    run = {f"q{i}": {f"d{d}": float(s) for d, s in ranked} for i, ranked in enumerate(rankings)}
    scores = retrieval_metrics(qrels, run, list(METRICS))
    return {m: round(v, 4) for m, v in scores.items()} | {"queries": len(held.queries),
                                                           "documents": len(held.documents)}


def evaluate_embedder(model: str, held: RankingSet, *, batch_size: int = 32, threads: int | None = None,
                      progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Rank the whole pool for each query by cosine similarity with embedder `model` (name or folder)."""
    import numpy as np

    from pilotfish.models.embedding import Embedder

    if not held.queries:
        raise ConfigError("no held-out queries to measure on")
    embedder = Embedder(model=model, batch_size=batch_size, threads=threads)
    docs = embedder.encode_documents(held.documents, progress=progress)
    sims = embedder.encode_queries(held.queries) @ docs.T
    top = np.argsort(-sims, axis=1, kind="stable")[:, :100]
    return ranking_metrics(held, [[(int(d), float(sims[i, d])) for d in row] for i, row in enumerate(top)])


def evaluate_reranker(model: str, held: RankingSet, *, batch_size: int = 8, threads: int | None = None,
                      max_length: int = 512, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Rank each query's candidates with cross-encoder `model` (name or ONNX folder)."""
    from pilotfish.retrievers.rerank import CrossEncoderReranker

    if not held.queries:
        raise ConfigError("no held-out queries to measure on")
    reranker = CrossEncoderReranker(model=model, batch_size=batch_size, threads=threads, max_length=max_length)
    rankings = []
    for query, cands in zip(held.queries, held.candidates):
        scores = reranker.score([(query, held.documents[d]) for d in cands])
        rankings.append(sorted(zip(cands, scores), key=lambda x: -x[1]))
        if progress:
            progress(1)
    return ranking_metrics(held, rankings)
