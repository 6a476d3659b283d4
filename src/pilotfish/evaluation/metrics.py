"""Scores for answers, retrieval and citations.

* answers: SQuAD v1.1 exact match and token F1 (the official script's normalisation), best over gold
  answers, and embedding cosine similarity to a reference;
* retrieval: nDCG, recall, MRR ... computed by ranx, mean and per query;
* citations: precision and recall of the cited document ids against the gold ones.

>>> best_exact_match("The Eiffel Tower!", ["eiffel tower", "Paris"]), best_f1("in Paris, France", ["Paris"])
(1.0, 0.5)
>>> best_f1("anything", []) is None  # no gold answers: not scored
True
>>> citation_scores(["d1", "d3"], ["d1", "d2"])
(0.5, 0.5)
>>> retrieval_metrics({"q1": {"d1": 1}}, {"q1": {"d2": 2.0, "d1": 1.0}}, ["mrr@10", "recall@1"])
{'mrr@10': 0.5, 'recall@1': 0.0}
"""

from __future__ import annotations

import collections
import re
import string
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from pilotfish.errors import ConfigError

DEFAULT_RETRIEVAL_METRICS = ("ndcg@10", "recall@10", "mrr@10")
_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


# -- answers: SQuAD v1.1 ------------------------------------------------------------------------------
def normalize_answer(text: str) -> str:
    """Lower-case, drop ASCII punctuation, drop the articles a/an/the, collapse whitespace (SQuAD v1.1)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalised strings are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    """Harmonic mean of token precision and recall over the normalised token bags.

    As in the official v1.1 script, no shared token gives 0.0, so an answer that normalises to
    nothing (e.g. "the") scores 0.0 even against a gold answer that also normalises to nothing.
    """
    pred, truth = normalize_answer(prediction).split(), normalize_answer(gold).split()
    same = sum((collections.Counter(pred) & collections.Counter(truth)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(truth)
    return 2 * precision * recall / (precision + recall)


def best_exact_match(prediction: str, golds: Sequence[str]) -> float | None:
    """Max exact match over the gold answers; None when there are none (the item is not scored)."""
    return max((exact_match(prediction, g) for g in _golds(golds)), default=None)


def best_f1(prediction: str, golds: Sequence[str]) -> float | None:
    """Max F1 over the gold answers; None when there are none (the item is not scored)."""
    return max((f1(prediction, g) for g in _golds(golds)), default=None)


def _golds(golds: Sequence[str]) -> Sequence[str]:
    if isinstance(golds, str):
        raise ConfigError(f"gold answers must be a list of strings, got the string {golds[:60]!r}; wrap it: [answer]")
    return golds


# -- retrieval: ranx ----------------------------------------------------------------------------------
def retrieval_metrics(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]],
                      metrics: Sequence[str] = DEFAULT_RETRIEVAL_METRICS) -> dict[str, float]:
    """Mean of each ranx metric over the queries in `qrels`.

    A query of `qrels` missing from `run` (or with no results) counts as zero, as in BEIR; queries of
    `run` that `qrels` does not judge are ignored. Metric names are ranx's: ``ndcg@10``, ``recall@100``,
    ``mrr@10``, ``map@100``, ``precision@5``, ``hit_rate@5`` ...
    """
    scores = _ranx_scores(qrels, run, metrics)
    return {m: float(np.mean(list(scores[m].values()))) for m in metrics}


def per_query_retrieval(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]],
                        metrics: Sequence[str] = DEFAULT_RETRIEVAL_METRICS) -> dict[str, dict[str, float]]:
    """``{query id: {metric: value}}`` for every query in `qrels` (in its order), zero where not retrieved.

    >>> per_query_retrieval({"a": {"d1": 1}, "b": {"d2": 1}}, {"a": {"d1": 1.0}}, ["recall@10"])
    {'a': {'recall@10': 1.0}, 'b': {'recall@10': 0.0}}
    """
    scores = _ranx_scores(qrels, run, metrics)
    return {qid: {m: float(scores[m][qid]) for m in metrics} for qid in qrels}


def _ranx_scores(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]],
                 metrics: Sequence[str]) -> dict[str, dict[str, float]]:
    """{metric: {query id: value}} from ranx, over exactly the queries of `qrels`."""
    if isinstance(metrics, str):
        metrics = [metrics]
    if not metrics:
        raise ConfigError(f"no retrieval metrics asked for; give names such as {list(DEFAULT_RETRIEVAL_METRICS)}")
    if not qrels:
        raise ConfigError("qrels is empty: give {query id: {doc id: relevance}} for at least one query")
    unjudged = [qid for qid, docs in qrels.items() if not docs]
    if unjudged:
        raise ConfigError(f"query {unjudged[0]!r} has no relevance judgments in qrels; drop it or judge a document")
    from ranx import Qrels, Run, evaluate  # heavy (numba, pandas): imported on first use

    ranx_qrels = Qrels({str(q): {str(d): int(r) for d, r in docs.items()} for q, docs in qrels.items()})
    kept = {str(q): {str(d): float(s) for d, s in docs.items()} for q, docs in run.items() if q in qrels and docs}
    ranx_run = Run(kept) if kept else Run()
    try:
        with warnings.catch_warnings():
            _quiet_numba()
            evaluate(ranx_qrels, ranx_run, list(metrics), make_comparable=True)
    except (ValueError, IndexError) as err:
        raise ConfigError(f"cannot compute retrieval metrics {list(metrics)}: {err} "
                          "(use ranx names such as ndcg@10, recall@100, mrr@10, map@100, precision@5)") from err
    return {m: dict(ranx_run.scores[m]) for m in metrics}


def _quiet_numba() -> None:
    try:  # ranx's reciprocal rank trips a harmless numba cast warning on first compile
        from numba.core.errors import NumbaTypeSafetyWarning
    except ImportError:  # pragma: no cover - numba comes with ranx
        return
    warnings.simplefilter("ignore", NumbaTypeSafetyWarning)


# -- citations ----------------------------------------------------------------------------------------
def citation_scores(cited_doc_ids: Sequence[str], gold_doc_ids: Sequence[str]) -> tuple[float, float]:
    """(precision, recall) of the distinct cited ids against the distinct gold ids.

    Empty lists: nothing cited and no gold gives (1.0, 1.0); nothing cited with gold gives (0.0, 0.0);
    citations with no gold give (0.0, 1.0). No gold ids usually means the set does not know them, so a
    caller should skip citation scoring for such items rather than average these in.

    >>> citation_scores([], []), citation_scores([], ["d1"]), citation_scores(["d1"], [])
    ((1.0, 1.0), (0.0, 0.0), (0.0, 1.0))
    """
    cited, gold = set(cited_doc_ids), set(gold_doc_ids)
    if not cited:
        return (1.0, 1.0) if not gold else (0.0, 0.0)
    if not gold:
        return 0.0, 1.0
    hits = len(cited & gold)
    return hits / len(cited), hits / len(gold)


# -- semantic similarity ------------------------------------------------------------------------------
def answer_similarity(predictions: Sequence[str], references: Sequence[str],
                      embed: Callable[[list[str]], Any]) -> list[float]:
    """Cosine similarity of each prediction to its reference, from one `embed` call over both lists.

    `embed` maps a list of texts to an (n, dim) array, e.g. pilotfish's embedder; vectors are
    re-normalised here, and a zero vector scores 0.0.

    >>> fake = lambda texts: np.array([[1.0, 0.0] if "cat" in t else [0.6, 0.8] for t in texts])
    >>> [round(s, 2) for s in answer_similarity(["a cat", "a dog"], ["the cat", "a cat"], fake)]
    [1.0, 0.6]
    """
    predictions, references = list(predictions), list(references)
    if len(predictions) != len(references):
        raise ConfigError(f"answer_similarity needs one reference per prediction, got {len(predictions)} "
                          f"predictions and {len(references)} references")
    if not predictions:
        return []
    n = len(predictions)
    vectors = np.asarray(embed(predictions + references), dtype=np.float64)
    if vectors.ndim != 2 or vectors.shape[0] != 2 * n:
        raise ConfigError(f"embed returned an array of shape {vectors.shape} for {2 * n} texts; it must "
                          "return one row per text, shape (n, dim)")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    cosine = np.einsum("ij,ij->i", unit[:n], unit[n:])
    return [float(c) for c in np.clip(cosine, -1.0, 1.0)]
