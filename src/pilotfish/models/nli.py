"""NLIModel: entailment / neutral / contradiction probabilities from pilotfish's own small cross-encoder.

The model is `nli-small` (trained by `pilotfish train nli`, shipped inside the package as int8 ONNX);
any folder with a `model.onnx` whose logits follow LABELS and a `tokenizer.json` works too.

A premise longer than the window is cut into overlapping windows of whole sentences; each window is
scored and the caller gets all of them (`predict_windows`) or the window that best supports the
hypothesis (`predict`).

>>> from pilotfish.models.nli import NLIModel
>>> nli = NLIModel()
>>> nli.predict([("A man is eating pizza.", "Someone eats food.")])[0].label
'entailment'
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pilotfish.errors import ConfigError

LABELS = ("entailment", "neutral", "contradiction")


@dataclass(frozen=True)
class NLIScores:
    """Probabilities of one (premise, hypothesis) pair, in LABELS order; `window` is the premise part used."""

    entailment: float
    neutral: float
    contradiction: float
    window: str = ""

    @property
    def label(self) -> str:
        values = (self.entailment, self.neutral, self.contradiction)
        return LABELS[max(range(3), key=values.__getitem__)]

    def as_dict(self) -> dict[str, float]:
        return {"entailment": round(self.entailment, 4), "neutral": round(self.neutral, 4),
                "contradiction": round(self.contradiction, 4)}


class NLIModel:
    """Batched int8 ONNX NLI cross-encoder with sentence windows for long premises.

    Pairs are sorted by length and scored `batch_size` at a time; 16 scores bulk input 1.15x faster
    than 32 on CPU (benchmarks/nli_batch.py).
    """

    def __init__(self, model: str = "nli-small", *, max_length: int = 256, batch_size: int = 16,
                 threads: int | None = None) -> None:
        if not 32 <= max_length <= 512:
            raise ConfigError(f"max_length must be between 32 and 512 tokens, got {max_length}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.model, self.max_length, self.batch_size, self.threads = model, max_length, batch_size, threads
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any] | None = None
        self._counter: Any = None  # an untruncated copy of the tokenizer, for sizing windows

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            with self._lock:
                if self._loaded is None:
                    from pilotfish.models.onnx_runtime import load_model

                    tokenizer, session = load_model(self.model, self.max_length, self.threads)
                    self._counter = copy.deepcopy(tokenizer)
                    self._counter.no_truncation()
                    self._counter.no_padding()
                    self._loaded = (tokenizer, session)
        return self._loaded

    def token_count(self, text: str) -> int:
        self._load()
        return len(self._counter.encode(text).ids)

    def scores(self, pairs: Sequence[tuple[str, str]]) -> list[NLIScores]:
        """Probabilities for each (premise, hypothesis) pair as given (truncated to the window)."""
        import numpy as np

        from pilotfish.models.onnx_runtime import encode_batch

        tokenizer, session = self._load()
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        out: list[NLIScores | None] = [None] * len(pairs)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            logits = session.run(None, encode_batch(tokenizer, [pairs[i] for i in idx]))[0].astype(np.float64)
            probs = np.exp(logits - logits.max(axis=1, keepdims=True))
            probs /= probs.sum(axis=1, keepdims=True)
            for i, row in zip(idx, probs):
                out[i] = NLIScores(float(row[0]), float(row[1]), float(row[2]), pairs[i][0])
        return [s for s in out if s is not None]

    def windows(self, premise: str, hypothesis: str, *, focus: int = 0) -> list[str]:
        """The premise as one window if it fits beside the hypothesis, else overlapping sentence windows;
        with `focus`, also windows around the `focus` sentences that share the most words with the
        hypothesis (the sentence alone, and with its neighbours).

        A fact in one line of a longer passage can score low against the whole passage (0.08 against
        0.90 for a release date after a licence paragraph) while its own sentences entail it."""
        from pilotfish.text import split_sentences

        budget = self.max_length - self.token_count(hypothesis) - 3
        if budget < 16:
            raise ConfigError(f"the claim is too long to check ({self.token_count(hypothesis)} tokens; the model "
                              f"reads {self.max_length}): split it into shorter sentences")
        fixed = self._fixed_windows(premise, budget)
        if focus <= 0:
            return fixed
        sentences = split_sentences(premise)
        if len(sentences) < 2:
            return fixed
        extra = [w for w in _focus_windows(sentences, hypothesis, focus)
                 if w not in fixed and self.token_count(w) <= budget]
        return fixed + list(dict.fromkeys(extra))

    def _fixed_windows(self, premise: str, budget: int) -> list[str]:
        from pilotfish.text import split_sentences

        if self.token_count(premise) <= budget:
            return [premise]
        sentences = split_sentences(premise) or [premise]
        sizes = [self.token_count(s) for s in sentences]
        windows, start = [], 0
        while start < len(sentences):
            end, used = start, 0
            while end < len(sentences) and (end == start or used + sizes[end] <= budget):
                used += sizes[end]
                end += 1
            windows.append(" ".join(sentences[start:end]))
            if end >= len(sentences):
                break
            start = end - 1 if end - 1 > start else end  # one sentence of overlap keeps cross-sentence facts
        return windows

    def predict_windows(self, pairs: Sequence[tuple[str, str]], *, focus: int = 0) -> list[list[NLIScores]]:
        """For each pair, the scores of every window of its premise (see `windows` for `focus`)."""
        jobs = [(i, w, h) for i, (p, h) in enumerate(pairs) for w in self.windows(p, h, focus=focus)]
        flat = self.scores([(w, h) for _, w, h in jobs])
        grouped: list[list[NLIScores]] = [[] for _ in pairs]
        for (i, _, _), score in zip(jobs, flat):
            grouped[i].append(score)
        return grouped

    def predict(self, pairs: Sequence[tuple[str, str]]) -> list[NLIScores]:
        """For each pair, the scores of the window that most entails the hypothesis."""
        return [max(group, key=lambda s: s.entailment) for group in self.predict_windows(pairs)]


_WORD = re.compile(r"\w+")
_FUNCTION_WORDS = frozenset("a an the of and or to in on at by for with from as is are was were be been it its this "
                            "that which who what when where how did does do has have had not no".split())


def word_overlap(sentences: Sequence[str], hypothesis: str) -> list[int]:
    """How many of the hypothesis's content words each sentence holds."""
    wanted = {w for w in _WORD.findall(hypothesis.lower()) if w not in _FUNCTION_WORDS}
    return [len(wanted & set(_WORD.findall(s.lower()))) for s in sentences]


def _focus_windows(sentences: list[str], hypothesis: str, focus: int) -> list[str]:
    """The `focus` sentences sharing the most content words with the hypothesis, each alone and with
    the sentences on either side."""
    overlap = word_overlap(sentences, hypothesis)
    best = sorted((i for i in range(len(sentences)) if overlap[i]), key=lambda i: -overlap[i])[:focus]
    windows = []
    for i in best:
        windows.append(sentences[i])
        windows.append(" ".join(sentences[max(0, i - 1):i + 2]))
    return windows
