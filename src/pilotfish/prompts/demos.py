"""DemoRetriever and PseudoLabeler: few-shot demonstrations chosen, and labelled, by small models.

`DemoRetriever` picks the `k` pool items most similar to the question by embedding, with maximal marginal
relevance so the demonstrations are not near-copies of each other (Uprise-style retrieved prompts).
`PseudoLabeler` fills unlabelled pool items: `knn` votes among the nearest labelled items (for label sets
such as classes or yes/no), `llm` samples the small LLM several times and takes the majority answer; the
share of agreeing votes is the confidence, and only items at or above `min_confidence` are kept.

>>> from pilotfish.prompts.demos import Demo, DemoRetriever
>>> pool = [Demo("Is Paris in France?", "yes"), Demo("Who wrote Hamlet?", "William Shakespeare")]
>>> [d.answer for d in DemoRetriever(pool, k=1).select("Is Lyon in France?")]
['yes']
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pilotfish.component import Component
from pilotfish.errors import ConfigError, OutputParseError
from pilotfish.jsonl import read_jsonl
from pilotfish.llms.base import LLM

METHODS = ("knn", "llm")


@dataclass(frozen=True)
class Demo:
    """One demonstration: a question, its answer, and where the answer came from."""

    question: str
    answer: str
    confidence: float = 1.0
    source: str = "gold"  # or "pseudo"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_pool(path: str | Path) -> tuple[list[Demo], list[str]]:
    """Labelled demos and unlabelled questions from a JSONL file of `{"question", "answer"?}` lines."""
    labelled, unlabelled = [], []

    def bad_line(number: int, reason: str) -> None:
        raise ConfigError(f'{path}:{number}: {reason}; each line is {{"question", "answer"}}')

    for number, item in read_jsonl(path, error=ConfigError, on_bad_line=bad_line):
        question = item.get("question") if isinstance(item, dict) else None
        if not isinstance(question, str) or not question.strip():
            raise ConfigError(f"{path}:{number}: needs a non-empty \"question\"")
        answer = item.get("answer")
        if answer is None or (isinstance(answer, str) and not answer.strip()):
            unlabelled.append(question)
        else:
            labelled.append(Demo(question, str(answer)))
    return labelled, unlabelled


class DemoRetriever(Component):
    """Chooses `k` demonstrations for a question by similarity and diversity (MMR, weight `diversity`)."""

    def __init__(self, pool: Sequence[Demo], *, k: int = 2, diversity: float = 0.3, model: str = "minilm-l6") -> None:
        from pilotfish.models.embedding import Embedder

        if not pool:
            raise ConfigError("the demonstration pool is empty: give labelled {\"question\", \"answer\"} items")
        if k < 1 or not 0.0 <= diversity < 1.0:
            raise ConfigError(f"need k >= 1 and 0 <= diversity < 1, got k={k}, diversity={diversity}")
        self.pool, self.k, self.diversity = list(pool), k, diversity
        self.embedder = Embedder(model=model)
        self._vectors: Any = None
        self._config = {"k": k, "diversity": diversity, "model": model, "pool_size": len(self.pool)}

    def select(self, question: str) -> list[Demo]:
        import numpy as np

        if self._vectors is None:
            self._vectors = self.embedder.encode_queries([d.question for d in self.pool])
        relevance = self._vectors @ self.embedder.encode_queries([question])[0]
        chosen: list[int] = []
        candidates = list(range(len(self.pool)))
        while candidates and len(chosen) < self.k:
            redundancy = (np.max(self._vectors[candidates] @ self._vectors[chosen].T, axis=1) if chosen
                          else np.zeros(len(candidates)))
            scores = (1 - self.diversity) * relevance[candidates] - self.diversity * redundancy
            best = candidates[int(np.argmax(scores))]
            chosen.append(best)
            candidates.remove(best)
        return [self.pool[i] for i in chosen]


class PseudoLabeler(Component):
    """Labels unlabelled questions with a small model, keeping only confident labels."""

    def __init__(self, *, method: str = "knn", k: int = 5, min_confidence: float = 0.6, llm: LLM | None = None,
                 samples: int = 5, temperature: float = 0.7, model: str = "minilm-l6") -> None:
        if method not in METHODS:
            raise ConfigError(f"unknown pseudo-labelling method {method!r}: use one of {', '.join(METHODS)}")
        if method == "llm" and llm is None:
            raise ConfigError("method='llm' needs an llm to label with")
        if k < 1 or samples < 2 or not 0.0 < min_confidence <= 1.0:
            raise ConfigError(f"need k >= 1, samples >= 2 and 0 < min_confidence <= 1; got {k}, {samples}, "
                              f"{min_confidence}")
        self.method, self.k, self.min_confidence, self.llm = method, k, min_confidence, llm
        self.samples, self.temperature, self.model = samples, temperature, model
        self._config = {"method": method, "k": k, "min_confidence": min_confidence, "samples": samples,
                        "temperature": temperature, "model": model}

    def label(self, unlabelled: Sequence[str], labelled: Sequence[Demo] = ()) -> list[Demo]:
        """Confident pseudo-labelled demos for `unlabelled` (knn needs `labelled` items to vote)."""
        votes = self._knn_votes(unlabelled, labelled) if self.method == "knn" else self._llm_votes(unlabelled)
        kept = []
        for question, counter in zip(unlabelled, votes):
            if not counter:
                continue
            answer, count = counter.most_common(1)[0]
            confidence = count / sum(counter.values())
            if confidence >= self.min_confidence:
                kept.append(Demo(question, answer, round(confidence, 4), "pseudo"))
        return kept

    def _knn_votes(self, unlabelled: Sequence[str], labelled: Sequence[Demo]) -> list[collections.Counter[str]]:
        import numpy as np

        from pilotfish.models.embedding import Embedder

        if not labelled:
            raise ConfigError("knn pseudo-labelling needs labelled items to vote; give some or use method='llm'")
        if not unlabelled:
            return []
        embedder = Embedder(model=self.model)
        known = embedder.encode_queries([d.question for d in labelled])
        sims = embedder.encode_queries(list(unlabelled)) @ known.T
        votes = []
        for row in sims:
            nearest = np.argsort(-row)[: self.k]
            votes.append(collections.Counter(labelled[i].answer for i in nearest))
        return votes

    def _llm_votes(self, unlabelled: Sequence[str]) -> list[collections.Counter[str]]:
        assert self.llm is not None
        schema = {"type": "object", "properties": {"answer": {"type": "string", "maxLength": 80}},
                  "required": ["answer"]}
        votes = []
        for question in unlabelled:
            messages = [{"role": "user", "content": 'Answer in JSON {"answer": "..."} with the shortest possible '
                                                    f"answer: a name, a date, a number, yes or no.\n\n{question}"}]
            counter: collections.Counter[str] = collections.Counter()
            for _ in range(self.samples):  # one call per sample, so one broken sample loses only its vote
                try:
                    generation = self.llm.generate(messages, temperature=self.temperature, max_tokens=48,
                                                   json_schema=schema)[0]
                    answer = " ".join(str(generation.json()["answer"]).split())
                except (OutputParseError, KeyError, TypeError):
                    continue
                if answer:
                    counter[answer.lower().rstrip(".")] += 1
            votes.append(counter)
        return votes
