"""CrossEncoderReranker: re-score (query, passage) pairs with the packaged ms-marco cross-encoder.

A reranker trained on web queries does not help everywhere (alone, its order lowers SciFact: BENCHMARKS.md),
so `fusion="rrf"` can blend its ranking with the first stage's instead of trusting it alone.

>>> from pilotfish.retrievers.rerank import CrossEncoderReranker
>>> from pilotfish.types import Passage
>>> rr = CrossEncoderReranker()                               # loads nothing yet
>>> first_stage = [Passage("v", "v", "Hamlet is a village in Ontario.", 2.0),
...                Passage("s", "s", "Shakespeare wrote Hamlet.", 1.0)]
>>> [p.chunk_id for p in rr.run("who wrote Hamlet?", first_stage)]
['s', 'v']
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from pilotfish.component import Component
from pilotfish.errors import ConfigError
from pilotfish.types import Passage

logger = logging.getLogger(__name__)

FUSIONS = ("none", "rrf")


class CrossEncoderReranker(Component):
    """Rerank passages by cross-encoder relevance; `fusion="rrf"` mixes in the incoming order."""

    def __init__(self, *, model: str = "ms-marco-l12", batch_size: int = 4, threads: int | None = None,
                 max_length: int = 512, top_k: int | None = None, fusion: str = "none",
                 first_stage_weight: float = 1.0, rrf_k: int = 60) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if fusion not in FUSIONS:
            raise ConfigError(f"unknown rerank fusion {fusion!r}; choose one of {', '.join(FUSIONS)}")
        if not 8 <= max_length <= 512:
            raise ConfigError(f"max_length must be between 8 and 512 tokens, got {max_length}")
        self._config = {"model": model, "batch_size": batch_size, "threads": threads, "max_length": max_length,
                        "top_k": top_k, "fusion": fusion, "first_stage_weight": first_stage_weight, "rrf_k": rrf_k}
        self.batch_size, self.top_k = batch_size, top_k
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any] | None = None

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            with self._lock:
                if self._loaded is None:
                    from pilotfish.models.onnx_runtime import load_model

                    self._loaded = load_model(self._config["model"], self._config["max_length"],
                                              self._config["threads"])
        return self._loaded

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Relevance logits for (query, passage) pairs, in small batches sorted by length: padding costs more
        than the batching saves (batch 4 ran 1.98x faster than 32 on HotpotQA, benchmarks/rerank_threads.py)."""
        from pilotfish.models.onnx_runtime import encode_batch

        tokenizer, session = self._load()
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][1]))
        out = [0.0] * len(pairs)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            logits = session.run(None, encode_batch(tokenizer, [pairs[i] for i in idx]))[0]
            for i, value in zip(idx, logits[:, 0]):
                out[i] = float(value)
        return out

    def run(self, query: str, passages: Sequence[Passage], *, top_k: int | None = None) -> list[Passage]:
        return self.run_batch([query], [passages], top_k=top_k)[0]

    def run_batch(self, queries: Sequence[str], passages: Sequence[Sequence[Passage]], *,
                  top_k: int | None = None) -> list[list[Passage]]:
        k = top_k or self.top_k
        return [self.order(list(ps), scores)[:k] if k else self.order(list(ps), scores)
                for ps, scores in zip(passages, self.score_batch(queries, passages))]

    def score_batch(self, queries: Sequence[str], passages: Sequence[Sequence[Passage]]) -> list[list[float]]:
        """Relevance logits of each query's passages, all pairs scored in one batched pass."""
        if len(queries) != len(passages):
            raise ValueError(f"{len(queries)} queries but {len(passages)} passage lists")
        pairs = [(q, pair_text(p)) for q, ps in zip(queries, passages) for p in ps]
        flat = self.score(pairs) if pairs else []
        out, pos = [], 0
        for ps in passages:
            out.append(flat[pos:pos + len(ps)])
            pos += len(ps)
        return out

    def order(self, passages: list[Passage], scores: list[float]) -> list[Passage]:
        """Sort `passages` (given in first-stage order) by `scores`, fused per `fusion`."""
        if self._config["fusion"] == "rrf":
            rrf_k, w = self._config["rrf_k"], self._config["first_stage_weight"]
            by_ce = sorted(range(len(passages)), key=lambda i: -scores[i])
            fused = [0.0] * len(passages)
            for rank, i in enumerate(by_ce, 1):
                fused[i] += 1.0 / (rrf_k + rank)
            for rank in range(1, len(passages) + 1):
                fused[rank - 1] += w / (rrf_k + rank)  # passages arrive in first-stage order
            scores = fused
        order = sorted(range(len(passages)), key=lambda i: -scores[i])
        return [_rescored(passages[i], scores[i]) for i in order]


def pair_text(p: Passage) -> str:
    """The passage side of a cross-encoder pair: title and text."""
    return f"{p.title}\n{p.text}" if p.title and not p.text.startswith(p.title) else p.text


def _rescored(p: Passage, score: float) -> Passage:
    return Passage(chunk_id=p.chunk_id, doc_id=p.doc_id, text=p.text, score=score, source=p.source, title=p.title,
                   metadata=p.metadata, retriever=f"{p.retriever}+rerank" if p.retriever else "rerank")
