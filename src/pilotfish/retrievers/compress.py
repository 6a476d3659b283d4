"""SentenceCompressor: keep only the evidence sentences the cross-encoder finds relevant to the question.

A small model steering a large one: instead of whole chunks, the LLM reads the `keep` sentences that
best answer the question (scored with the ms-marco cross-encoder), still grouped under their passage
and in their original order, so citations keep pointing at the right chunk. Prompts get several times
shorter, which costs less on an API and distracts a small LLM less.

>>> from pilotfish.types import Passage
>>> c = SentenceCompressor(keep=1)
>>> p = Passage("c1", "d1", "Paris is in France. The Seine flows through Paris. Bread is baked daily.", 1.0)
>>> [x.text for x in c.compress("Which river flows through Paris?", [p])]
['The Seine flows through Paris.']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from pilotfish.component import Component
from pilotfish.errors import ConfigError
from pilotfish.text import split_sentences
from pilotfish.types import Passage


class SentenceCompressor(Component):
    """Keeps the `keep` best sentences across all passages; passages left with none are dropped."""

    def __init__(self, *, keep: int = 6, model: str = "ms-marco-l12") -> None:
        if keep < 1:
            raise ConfigError(f"keep must be at least one sentence, got {keep}")
        self._config = {"keep": keep, "model": model}
        self._reranker: Any = None

    def scores(self, question: str, sentences: Sequence[tuple[str, str]]) -> list[float]:
        """Cross-encoder relevance of each (title, sentence) to the question."""
        from pilotfish.retrievers.rerank import CrossEncoderReranker

        if self._reranker is None:
            self._reranker = CrossEncoderReranker(model=self._config["model"])
        return self._reranker.score([(question, f"{title}\n{s}" if title else s) for title, s in sentences])

    def compress(self, question: str, passages: Sequence[Passage]) -> list[Passage]:
        split = [split_sentences(p.text) or [p.text] for p in passages]
        flat = [(i, j) for i, sentences in enumerate(split) for j in range(len(sentences))]
        if len(flat) <= self._config["keep"]:
            return list(passages)
        scores = self.scores(question, [(passages[i].title, split[i][j]) for i, j in flat])
        best = sorted(range(len(flat)), key=lambda k: -scores[k])[: self._config["keep"]]
        kept: dict[int, list[int]] = {}
        for k in best:
            i, j = flat[k]
            kept.setdefault(i, []).append(j)
        return [replace(p, text=" ".join(split[i][j] for j in sorted(kept[i])),
                        metadata={**p.metadata, "compressed_from": len(split[i])})
                for i, p in enumerate(passages) if i in kept]
