"""Path scorers: how well a relation path matches a question whose entity is masked.

- `EmbeddingPathScorer`: MiniLM cosine between the question and the path in words (no training).
- `CrossEncoderPathScorer`: the ms-marco cross-encoder on (question, path in words).
- `TrainedPathScorer`: a logistic regression over MiniLM question vectors whose classes are the paths seen
  in the user's labelled questions (`pilotfish train paths`). Its scores are probabilities; a path it never
  saw scores a hundredth of its embedding cosine, so unseen paths still rank among themselves.

>>> verbalise(("~starred_actors", "directed_by"))
'starred actors of, then directed by'
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pilotfish.errors import ConfigError

__all__ = ["PATH_SCORERS", "CrossEncoderPathScorer", "EmbeddingPathScorer", "TrainedPathScorer", "load_scorer",
           "verbalise"]

PATH_SCORERS = ("embedding", "cross-encoder")


def verbalise(steps: Sequence[str]) -> str:
    """A path in words: forward steps as the relation, backward ones as "<relation> of"."""
    words = [s.lstrip("~").replace("_", " ") + (" of" if s.startswith("~") else "") for s in steps]
    return ", then ".join(words)


class EmbeddingPathScorer:
    """Cosine of the question and the path in words (MiniLM); path vectors are cached."""

    def __init__(self, model: str = "minilm-l6") -> None:
        from pilotfish.models.embedding import Embedder

        self.embedder = Embedder(model=model)
        self._cache: dict[tuple[str, ...], Any] = {}
        self._last: tuple[str, Any] | None = None
        self._lock = threading.Lock()

    def score(self, question: str, paths: Sequence[tuple[str, ...]], *, prefix: bool = False) -> list[float]:
        if not paths:
            return []
        import numpy as np

        with self._lock:
            missing = list(dict.fromkeys(tuple(p) for p in paths if tuple(p) not in self._cache))
            if missing:
                for p, v in zip(missing, self.embedder.encode_documents([verbalise(p) for p in missing])):
                    self._cache[p] = v
            matrix = np.stack([self._cache[tuple(p)] for p in paths])
        return (matrix @ self.question_vector(question)).astype(float).tolist()

    def question_vector(self, question: str) -> Any:
        """The question's vector; the last one is kept, since a retrieval scores each hop's paths in turn."""
        last = self._last
        if last is not None and last[0] == question:
            return last[1]
        vector = self.embedder.encode_queries([question])[0]
        self._last = (question, vector)
        return vector


class CrossEncoderPathScorer:
    """The ms-marco cross-encoder's score of (question, path in words)."""

    def __init__(self, model: str = "ms-marco-l12") -> None:
        from pilotfish.retrievers.rerank import CrossEncoderReranker

        self.reranker = CrossEncoderReranker(model=model, batch_size=32)

    def score(self, question: str, paths: Sequence[tuple[str, ...]], *, prefix: bool = False) -> list[float]:
        return self.reranker.score([(question, verbalise(p)) for p in paths]) if paths else []


class TrainedPathScorer:
    """Path probabilities from a classifier over question vectors; `fit` on (masked question, path) pairs."""

    def __init__(self, classes: Sequence[tuple[str, ...]], coef: Any, intercept: Any, *, model: str = "minilm-l6",
                 card: dict[str, Any] | None = None) -> None:
        import numpy as np

        self.classes = [tuple(c) for c in classes]
        self.coef, self.intercept = np.asarray(coef, dtype=np.float32), np.asarray(intercept, dtype=np.float32)
        self.card = card or {}
        self.model = model
        self._index = {c: i for i, c in enumerate(self.classes)}
        self._fallback = EmbeddingPathScorer(model)
        self._last: tuple[str, Any] | None = None

    @classmethod
    def fit(cls, questions: Sequence[str], paths: Sequence[tuple[str, ...]], *, model: str = "minilm-l6",
            c: float = 4.0, progress: Any = None) -> TrainedPathScorer:
        """Train on masked questions and their paths (a path needs two examples to become a class)."""
        import numpy as np
        from sklearn.linear_model import LogisticRegression

        from pilotfish.models.embedding import Embedder

        counts: dict[tuple[str, ...], int] = {}
        for p in paths:
            counts[tuple(p)] = counts.get(tuple(p), 0) + 1
        keep = [i for i, p in enumerate(paths) if counts[tuple(p)] >= 2]
        classes = sorted({tuple(paths[i]) for i in keep})
        if len(classes) < 2:
            raise ConfigError(f"training needs at least two paths with two questions each; found {len(classes)}")
        vectors = Embedder(model=model).encode_documents([questions[i] for i in keep], progress=progress)
        labels = np.array([classes.index(tuple(paths[i])) for i in keep])
        classifier = LogisticRegression(C=c, max_iter=2000)
        classifier.fit(vectors, labels)
        return cls(classes, classifier.coef_, classifier.intercept_, model=model,
                   card={"questions": len(keep), "classes": len(classes), "dropped": len(paths) - len(keep)})

    def probabilities(self, questions: Sequence[str]) -> Any:
        """Each question's probability of each class (rows: questions)."""
        import numpy as np

        vectors = self._fallback.embedder.encode_queries(list(questions))
        logits = vectors @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        return weights / weights.sum(axis=1, keepdims=True)

    def score(self, question: str, paths: Sequence[tuple[str, ...]], *, prefix: bool = False) -> list[float]:
        if not paths:
            return []
        last = self._last
        probs = last[1] if last is not None and last[0] == question else self.probabilities([question])[0]
        self._last = (question, probs)
        out = []
        unseen = []
        for i, p in enumerate(paths):
            p = tuple(p)
            if prefix:
                out.append(float(sum(probs[j] for c, j in self._index.items() if c[:len(p)] == p)))
            else:
                out.append(float(probs[self._index[p]]) if p in self._index else 0.0)
            if out[-1] == 0.0:
                unseen.append(i)
        if unseen:
            cosines = self._fallback.score(question, [paths[i] for i in unseen])
            for i, cos in zip(unseen, cosines):
                out[i] = 0.01 * max(cos, 0.0)
        return out

    def save(self, directory: str | Path) -> None:
        import numpy as np

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(directory / "weights.npz", coef=self.coef, intercept=self.intercept)
        (directory / "paths.json").write_text(json.dumps(
            {"kind": "pilotfish-path-scorer", "model": self.model, "classes": [list(c) for c in self.classes],
             "card": self.card}, indent=1) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> TrainedPathScorer:
        import numpy as np

        directory = Path(directory)
        meta_file = directory / "paths.json"
        if not meta_file.is_file() or not (directory / "weights.npz").is_file():
            raise ConfigError(f"{directory} holds no trained path scorer (paths.json and weights.npz); train one "
                              "with `pilotfish train paths --questions FILE.jsonl --kb DIR --out DIR`")
        meta = json.loads(meta_file.read_text())
        weights = np.load(directory / "weights.npz")
        return cls([tuple(c) for c in meta["classes"]], weights["coef"], weights["intercept"],
                    model=meta.get("model", "minilm-l6"), card=meta.get("card"))


def load_scorer(name: str) -> Any:
    """`embedding`, `cross-encoder`, or the folder of a trained scorer."""
    if name == "embedding":
        return EmbeddingPathScorer()
    if name == "cross-encoder":
        return CrossEncoderPathScorer()
    if Path(name).is_dir():
        return TrainedPathScorer.load(name)
    raise ConfigError(f"unknown path scorer {name!r}: use {', '.join(PATH_SCORERS)} or the folder of one trained with "
                      "`pilotfish train paths`")
