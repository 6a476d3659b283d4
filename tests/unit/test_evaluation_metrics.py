"""SQuAD EM/F1 on hand cases, citation edge cases, ranx wrappers on a tiny run, similarity with a fake embed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pilotfish.errors import ConfigError
from pilotfish.evaluation import (
    answer_similarity,
    best_exact_match,
    best_f1,
    citation_scores,
    exact_match,
    f1,
    normalize_answer,
    per_query_retrieval,
    retrieval_metrics,
)


@pytest.mark.parametrize(("text", "normalised"), [
    ("The Eiffel Tower!", "eiffel tower"),
    ("  An   apple,  a day ", "apple day"),
    ("theatre anthem", "theatre anthem"),      # articles only as whole words
    ("U.S.A.", "usa"),                         # punctuation removed, not replaced by spaces
    ("rock-and-roll", "rockandroll"),
    ("A", ""),
    ("café — naïve", "café — naïve"),          # only ASCII punctuation, as in the official script
])
def test_normalize_answer(text: str, normalised: str) -> None:
    assert normalize_answer(text) == normalised


@pytest.mark.parametrize(("prediction", "gold", "em", "f1_value"), [
    ("Paris", "paris", 1.0, 1.0),
    ("the Paris", "Paris.", 1.0, 1.0),
    ("Paris, France", "Paris", 0.0, 2 * (1 / 2) * 1 / (1 / 2 + 1)),
    ("in the city of Paris", "city of Paris France", 0.0, 2 * (3 / 4) * (3 / 4) / (3 / 4 + 3 / 4)),
    ("London", "Paris", 0.0, 0.0),
    ("the", "a", 1.0, 0.0),                    # both normalise to "": equal, but no shared token (v1.1)
    ("", "Paris", 0.0, 0.0),
    ("a a b", "a b b", 0.0, 2 / 3),            # articles dropped: "b" vs "b b" -> P 1, R 1/2
])
def test_exact_match_and_f1(prediction: str, gold: str, em: float, f1_value: float) -> None:
    assert exact_match(prediction, gold) == em
    assert f1(prediction, gold) == pytest.approx(f1_value)


def test_f1_counts_repeated_tokens_as_a_bag() -> None:
    # pred: paris paris paris; gold: paris france -> 1 common token: P 1/3, R 1/2
    assert f1("Paris Paris Paris", "Paris France") == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))


def test_best_over_golds_and_no_golds() -> None:
    assert best_exact_match("Shakespeare", ["William Shakespeare", "shakespeare"]) == 1.0
    assert best_f1("William", ["William Shakespeare", "Bill"]) == pytest.approx(2 / 3)
    assert best_exact_match("x", []) is None and best_f1("x", []) is None
    with pytest.raises(ConfigError, match="list of strings"):
        best_f1("Paris", "Paris")  # type: ignore[arg-type]


@pytest.mark.parametrize(("cited", "gold", "expected"), [
    (["d1", "d2"], ["d1", "d2"], (1.0, 1.0)),
    (["d1", "d3", "d4", "d1"], ["d1", "d2"], (1 / 3, 1 / 2)),  # duplicates counted once
    ([], [], (1.0, 1.0)),
    ([], ["d1"], (0.0, 0.0)),
    (["d1"], [], (0.0, 1.0)),
    (["x"], ["d1"], (0.0, 0.0)),
])
def test_citation_scores(cited: list[str], gold: list[str], expected: tuple[float, float]) -> None:
    assert citation_scores(cited, gold) == pytest.approx(expected)


def test_retrieval_metrics_by_hand() -> None:
    qrels = {"q1": {"d1": 1, "d2": 1}, "q2": {"d3": 1}, "q3": {"d9": 1}}
    run = {"q1": {"d2": 3.0, "x": 2.0, "d1": 1.0}, "q2": {"x": 2.0, "d3": 1.0}, "q3": {},
           "unjudged": {"d1": 1.0}}
    per = per_query_retrieval(qrels, run, ["mrr@10", "recall@1", "ndcg@10"])
    assert list(per) == ["q1", "q2", "q3"]
    assert per["q1"]["mrr@10"] == 1.0 and per["q2"]["mrr@10"] == 0.5 and per["q3"]["mrr@10"] == 0.0
    assert per["q1"]["recall@1"] == 0.5
    ideal = 1 + 1 / math.log2(3)
    assert per["q1"]["ndcg@10"] == pytest.approx((1 + 1 / math.log2(4)) / ideal)
    mean = retrieval_metrics(qrels, {k: v for k, v in run.items() if k != "q3"}, ["mrr@10", "recall@1"])
    assert mean == pytest.approx({"mrr@10": 1.5 / 3, "recall@1": 0.5 / 3})  # missing q3 counts as zero
    assert retrieval_metrics(qrels, {}, ["recall@10"]) == {"recall@10": 0.0}


def test_retrieval_metrics_errors() -> None:
    with pytest.raises(ConfigError, match="qrels is empty"):
        retrieval_metrics({}, {"q": {"d": 1.0}})
    with pytest.raises(ConfigError, match="query 'q' has no relevance judgments"):
        retrieval_metrics({"q": {}}, {"q": {"d": 1.0}})
    with pytest.raises(ConfigError, match="cannot compute retrieval metrics.*ranx names"):
        retrieval_metrics({"q": {"d": 1}}, {"q": {"d": 1.0}}, ["nonsense@10"])


def fake_embed(texts: list[str]) -> np.ndarray:
    """Bag of three keywords, normalised; texts with none of them get a zero vector."""
    rows = np.array([[t.count("cat"), t.count("dog"), t.count("fish")] for t in texts], dtype=float)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)


def test_answer_similarity_with_fake_embed() -> None:
    calls: list[list[str]] = []

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        return fake_embed(texts)

    scores = answer_similarity(["a cat", "a cat and a dog", "a fish", "nothing"],
                               ["the cat", "a dog", "a dog", "a cat"], embed)
    assert scores == pytest.approx([1.0, 1 / math.sqrt(2), 0.0, 0.0])
    assert len(calls) == 1 and len(calls[0]) == 8  # one embed call over both lists
    assert answer_similarity([], [], embed) == []
    # unnormalised vectors are normalised here
    assert answer_similarity(["x"], ["y"], lambda t: np.array([[3.0, 0.0], [5.0, 0.0]])) == pytest.approx([1.0])


def test_answer_similarity_errors() -> None:
    with pytest.raises(ConfigError, match="one reference per prediction, got 2 predictions and 1 references"):
        answer_similarity(["a", "b"], ["c"], fake_embed)
    with pytest.raises(ConfigError, match=r"shape \(3,\) for 2 texts"):
        answer_similarity(["a"], ["b"], lambda texts: np.zeros(3))
