"""Answer uncertainty from sampled answers, scored by the NLI model.

`SelfConsistencyChecker` (SelfCheckGPT-NLI, Manakul et al. 2023): each sentence of the main answer is
checked against n sampled answers; its score is the mean probability that the samples contradict it
(contradiction renormalised against entailment). High = likely made up.

`SemanticEntropy` (Farquhar et al., Nature 2024): sampled answers are clustered by bidirectional
entailment (with the question as context, so "1969" and "in 1969" agree) and the entropy of the
cluster sizes is returned. High = the model does not know.

>>> from pilotfish.verification.uncertainty import SemanticEntropy
>>> round(SemanticEntropy().measure(["Paris", "Paris.", "Lyon"], question="Capital of France?").entropy, 4)
0.6365
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from pilotfish.errors import ConfigError
from pilotfish.llms.base import LLM, Message, Usage
from pilotfish.models.nli import NLIModel
from pilotfish.prompts.builder import strip_citations
from pilotfish.verification.checker import split_claims


@dataclass
class SelfConsistency:
    """Per-sentence contradiction scores against the samples, and their mean (`score`)."""

    sentences: list[str]
    scores: list[float]
    samples: list[str]
    usage: Usage = field(default_factory=Usage)

    @property
    def score(self) -> float:
        return sum(self.scores) / len(self.scores) if self.scores else 0.0


@dataclass
class SemanticClusters:
    """Answers grouped by meaning; `entropy` in nats over cluster frequencies."""

    answers: list[str]
    clusters: list[list[int]]
    usage: Usage = field(default_factory=Usage)

    @property
    def entropy(self) -> float:
        n = sum(len(c) for c in self.clusters)
        return -sum(len(c) / n * math.log(len(c) / n) for c in self.clusters) if n else 0.0


def sample_answers(llm: LLM, messages: Sequence[Message], n: int, temperature: float,
                   max_tokens: int) -> tuple[list[str], Usage]:
    """n answers sampled at `temperature`, their summed usage."""
    generations = llm.generate(messages, n=n, temperature=temperature, max_tokens=max_tokens)
    usage = Usage()
    for g in generations:
        usage = usage + g.usage
    return [g.text for g in generations], usage


class SelfConsistencyChecker:
    """SelfCheckGPT-NLI over n samples; `measure` takes samples you already have, `check` draws them."""

    def __init__(self, *, model: str | NLIModel = "nli-small", n: int = 5, temperature: float = 1.0,
                 max_tokens: int = 128) -> None:
        if n < 1:
            raise ConfigError(f"n must be >= 1 sample, got {n}")
        self.nli = NLIModel(model) if isinstance(model, str) else model
        self.n, self.temperature, self.max_tokens = n, temperature, max_tokens

    def measure(self, answer: str, samples: Sequence[str]) -> SelfConsistency:
        sentences = split_claims(answer)
        usable = [strip_citations(s) for s in samples if strip_citations(s)]
        if not sentences or not usable:
            return SelfConsistency(sentences, [0.0] * len(sentences), list(samples))
        pairs = [(sample, sentence) for sentence in sentences for sample in usable]
        scores = self.nli.predict(pairs)
        per_sentence = []
        for k in range(len(sentences)):
            row = scores[k * len(usable):(k + 1) * len(usable)]
            per_sentence.append(sum(s.contradiction / max(1e-9, s.contradiction + s.entailment) for s in row)
                                / len(row))
        return SelfConsistency(sentences, per_sentence, list(samples))

    def check(self, llm: LLM, messages: Sequence[Message], answer: str) -> SelfConsistency:
        samples, usage = sample_answers(llm, messages, self.n, self.temperature, self.max_tokens)
        result = self.measure(answer, samples)
        result.usage = usage
        return result


def _normalise(text: str) -> str:
    text = re.sub(r"\b(a|an|the)\b", " ", strip_citations(text).lower())
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


class SemanticEntropy:
    """Discrete semantic entropy: cluster answers by two-way entailment, entropy of the cluster sizes."""

    def __init__(self, *, model: str | NLIModel = "nli-small", n: int = 5, temperature: float = 1.0,
                 max_tokens: int = 64, strict: bool = False) -> None:
        if n < 2:
            raise ConfigError(f"semantic entropy needs n >= 2 samples, got {n}")
        self.nli = NLIModel(model) if isinstance(model, str) else model
        self.n, self.temperature, self.max_tokens, self.strict = n, temperature, max_tokens, strict

    def equivalent(self, a: str, b: str, question: str | None) -> bool:
        """Two-way entailment; `strict=False` (the paper's default) accepts entailment one way and neutral
        the other, as long as neither direction is a contradiction."""
        if _normalise(a) == _normalise(b):
            return True
        prefix = f"{question.strip()} " if question else ""
        forward, backward = self.nli.predict([(prefix + a, prefix + b), (prefix + b, prefix + a)])
        labels = {forward.label, backward.label}
        if self.strict:
            return labels == {"entailment"}
        return "contradiction" not in labels and labels != {"neutral"}

    def measure(self, answers: Sequence[str], *, question: str | None = None) -> SemanticClusters:
        clusters: list[list[int]] = []
        for i, answer in enumerate(answers):
            for cluster in clusters:
                if self.equivalent(answers[cluster[0]], answer, question):
                    cluster.append(i)
                    break
            else:
                clusters.append([i])
        return SemanticClusters(list(answers), clusters)

    def check(self, llm: LLM, messages: Sequence[Message], *, question: str | None = None) -> SemanticClusters:
        samples, usage = sample_answers(llm, messages, self.n, self.temperature, self.max_tokens)
        result = self.measure(samples, question=question)
        result.usage = usage
        return result
