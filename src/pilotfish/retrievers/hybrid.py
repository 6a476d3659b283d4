"""HybridRetriever: fuse the rankings of any retrievers by reciprocal rank or weighted scores.

>>> from pilotfish.retrievers.bm25 import BM25Retriever
>>> from pilotfish.retrievers.corpus import ChunkCorpus
>>> corpus = ChunkCorpus.from_texts(["cats purr", "dogs bark", "dogs and cats"])
>>> a, b = BM25Retriever(), BM25Retriever(stemmer=None, stopwords=None)
>>> a.index(corpus); b.index(corpus)
>>> [p.doc_id for p in HybridRetriever(retrievers=[a, b]).run("dogs")]
['1', '2']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from pilotfish.component import Component
from pilotfish.errors import ConfigError
from pilotfish.retrievers.corpus import Filters
from pilotfish.types import Passage

FUSIONS = ("rrf", "weighted", "zscore")


class Retriever(Protocol):
    def run_batch(self, queries: Sequence[str], *, top_k: int | None = None,
                  filters: Filters | None = None) -> list[list[Passage]]: ...

    def to_config(self) -> dict[str, Any]: ...


class HybridRetriever(Component):
    """Fuse several retrievers' result lists.

    `fusion="rrf"`: score = sum_i w_i / (rrf_k + rank_i) (Cormack et al. 2009).
    `fusion="weighted"`: each list's scores are min-max normalised per query, then summed with weights.
    `fusion="zscore"`: the same with z-scores (mean 0, unit spread per list and query).
    Each retriever contributes its top `candidate_k`.
    """

    def __init__(self, *, retrievers: Sequence[Retriever | dict[str, Any]], fusion: str = "rrf",
                 weights: Sequence[float] | None = None, rrf_k: int = 60, candidate_k: int = 100,
                 top_k: int = 10) -> None:
        if not retrievers:
            raise ConfigError("HybridRetriever needs at least one retriever")
        # Config dicts (as to_config() writes them) are built here, so the generic
        # Component.from_config, which calls __init__ directly, round-trips too.
        retrievers = [Component.from_config(r) if isinstance(r, dict) else r for r in retrievers]
        if fusion not in FUSIONS:
            raise ConfigError(f"unknown fusion {fusion!r}; choose one of {', '.join(FUSIONS)}")
        weights = list(weights) if weights is not None else [1.0] * len(retrievers)
        if len(weights) != len(retrievers):
            raise ConfigError(f"{len(weights)} weights for {len(retrievers)} retrievers")
        if rrf_k < 0 or candidate_k < 1 or top_k < 1:
            raise ConfigError(f"need rrf_k >= 0, candidate_k >= 1, top_k >= 1; got {rrf_k}, {candidate_k}, {top_k}")
        self.retrievers = list(retrievers)
        self.fusion, self.weights, self.rrf_k = fusion, weights, rrf_k
        self.candidate_k, self.top_k = candidate_k, top_k
        self._config = {"retrievers": [r.to_config() for r in self.retrievers], "fusion": fusion,
                        "weights": weights, "rrf_k": rrf_k, "candidate_k": candidate_k, "top_k": top_k}

    def run(self, query: str, *, top_k: int | None = None, filters: Filters | None = None) -> list[Passage]:
        return self.run_batch([query], top_k=top_k, filters=filters)[0]

    def run_batch(self, queries: Sequence[str], *, top_k: int | None = None,
                  filters: Filters | None = None) -> list[list[Passage]]:
        per_retriever = [r.run_batch(queries, top_k=max(self.candidate_k, top_k or 0), filters=filters)
                         for r in self.retrievers]
        return [self.fuse([lists[q] for lists in per_retriever], top_k=top_k or self.top_k)
                for q in range(len(queries))]

    def fuse(self, ranked_lists: Sequence[Sequence[Passage]], *, top_k: int) -> list[Passage]:
        """Fuse one query's result lists (one per retriever) into one ranking."""
        return self.fuse_lists(ranked_lists, weights=self.weights, fusion=self.fusion, rrf_k=self.rrf_k, top_k=top_k)

    @staticmethod
    def fuse_lists(ranked_lists: Sequence[Sequence[Passage]], *, weights: Sequence[float], fusion: str, rrf_k: int,
                   top_k: int) -> list[Passage]:
        fused: dict[str, float] = {}
        first_seen: dict[str, Passage] = {}
        for weight, ranking in zip(weights, ranked_lists):
            if fusion == "rrf":
                contributions = {p.chunk_id: weight / (rrf_k + rank) for rank, p in enumerate(ranking, 1)}
            else:
                normalise = _minmax if fusion == "weighted" else _zscore
                contributions = {p.chunk_id: weight * s for p, s in zip(ranking, normalise([p.score for p in ranking]))}
            for p in ranking:
                first_seen.setdefault(p.chunk_id, p)
            for chunk_id, value in contributions.items():
                fused[chunk_id] = fused.get(chunk_id, 0.0) + value
        order = sorted(fused, key=lambda c: -fused[c])[:top_k]
        return [_with_score(first_seen[c], fused[c]) for c in order]


def _minmax(scores: Sequence[float]) -> list[float]:
    if not scores:
        return []
    lo, hi = min(scores), max(scores)
    return [1.0 if hi == lo else (s - lo) / (hi - lo) for s in scores]


def _zscore(scores: Sequence[float]) -> list[float]:
    if not scores:
        return []
    mean = sum(scores) / len(scores)
    spread = (sum((s - mean) ** 2 for s in scores) / len(scores)) ** 0.5
    return [0.0 if spread == 0 else (s - mean) / spread for s in scores]


def _with_score(p: Passage, score: float) -> Passage:
    return Passage(chunk_id=p.chunk_id, doc_id=p.doc_id, text=p.text, score=score, source=p.source, title=p.title,
                   metadata=p.metadata, retriever="hybrid")


def rrf_fuse(ranked_lists: Sequence[Sequence[Passage]], *, top_k: int, rrf_k: int = 60,
             weights: Sequence[float] | None = None) -> list[Passage]:
    """Reciprocal-rank fusion of several ranked lists (e.g. one per query paraphrase); equal weights by default."""
    return HybridRetriever.fuse_lists(ranked_lists, weights=list(weights or [1.0] * len(ranked_lists)), fusion="rrf",
                                      rrf_k=rrf_k, top_k=top_k)
