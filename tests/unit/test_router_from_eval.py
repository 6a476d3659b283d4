"""Router data from two evaluation runs' records: pairing by item id, skipped items, metric choice, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pilotfish.errors import ConfigError
from pilotfish.routing.data import load_routing_data, save_routing_data
from pilotfish.routing.from_eval import router_data_from_runs, run_model, score_metrics


def records(ids: range, *, f1: float = 1.0, em: float = 1.0, **extra: Any) -> list[dict[str, Any]]:
    return [{"id": f"q{i}", "question": f"What is item {i}?", "answer": "x", "f1": f1, "em": em, "answered": True,
             "cost": 2.5, "seconds": 1.2, **extra} for i in ids]


def test_pairs_items_by_id_and_counts_the_rest() -> None:
    small = records(range(0, 30), f1=0.25, em=0.0)
    large = list(reversed(records(range(5, 40), f1=0.75)))  # order does not matter
    built = router_data_from_runs(small, large, models=("small-llm", "large-llm"))
    assert built.data.models == ["small-llm", "large-llm"]
    assert built.item_ids == [f"q{i}" for i in range(5, 30)]  # the small run's order
    assert built.data.prompts[0] == "What is item 5?"
    assert built.data.scores.shape == (25, 2) and built.data.scores[0].tolist() == [0.25, 0.75]
    assert built.counts() == {"used": 25, "only_small": 5, "only_large": 10, "different_question": 0,
                              "without_metric": 0}
    assert built.only_small == [f"q{i}" for i in range(5)]


def test_metric_choice() -> None:
    small, large = records(range(25), f1=0.5, em=0.0), records(range(25), f1=1.0, em=1.0)
    built = router_data_from_runs(small, large, models=("a", "b"), metric="em")
    assert built.metric == "em" and built.data.scores.mean(axis=0).tolist() == [0.0, 1.0]
    for r in small[:3]:  # an item a run did not score on the metric is skipped, not guessed
        r["groundedness"] = 0.5
    for r in large:
        r["groundedness"] = 1.0
    built = router_data_from_runs(small, large, models=("a", "b"), metric="groundedness", min_examples=3)
    assert built.counts()["used"] == 3 and built.counts()["without_metric"] == 22


def test_unknown_or_unusable_metric_names_the_usable_ones() -> None:
    small, large = records(range(25)), records(range(25), recall=0.5)
    with pytest.raises(ConfigError, match="no item of either run has the metric 'rouge': use one of em, f1, recall"):
        router_data_from_runs(small, large, models=("a", "b"), metric="rouge")
    with pytest.raises(ConfigError, match=r"'cost' is not a score in \[0, 1\].*use one of em, f1"):
        router_data_from_runs(small, large, models=("a", "b"), metric="cost")
    with pytest.raises(ConfigError, match="'answered' is not a score|no item of either run has the metric"):
        router_data_from_runs(small, large, models=("a", "b"), metric="answered")  # booleans are not scores
    assert score_metrics(large) == ["em", "f1", "recall"]


def test_runs_that_share_nothing() -> None:
    with pytest.raises(ConfigError, match="share no items"):
        router_data_from_runs(records(range(10)), records(range(10, 20)), models=("a", "b"))
    other = [r | {"question": "Something else?"} for r in records(range(25))]
    with pytest.raises(ConfigError, match="different datasets"):
        router_data_from_runs(records(range(25)), other, models=("a", "b"))
    with pytest.raises(ConfigError, match="share 5 scored items; a router needs at least 20"):
        router_data_from_runs(records(range(5)), records(range(5)), models=("a", "b"))
    without = [{k: v for k, v in r.items() if k != "f1"} for r in records(range(25))]
    with pytest.raises(ConfigError, match="none of the 25 items .* 'f1' score in both runs"):
        router_data_from_runs(records(range(25)), without, models=("a", "b"))


def test_two_names_for_two_models() -> None:
    with pytest.raises(ConfigError, match="two different model names"):
        router_data_from_runs(records(range(25)), records(range(25)), models=("a", "a"))


def test_model_names_come_from_the_run() -> None:
    assert run_model({"config": {"llm": "qwen2.5-0.5b"}}, records(range(2))) == "qwen2.5-0.5b"
    assert run_model({"config": {}}, records(range(2), model="smollm2-135m")) == "smollm2-135m"
    assert run_model({"config": {"metrics": ["answers"]}}, records(range(2))) is None


def test_written_data_reads_back_for_route_train(tmp_path: Path) -> None:
    built = router_data_from_runs(records(range(25), f1=1 / 3), records(range(25)), models=("a", "b"))
    save_routing_data(built.data, tmp_path / "data.jsonl")
    again = load_routing_data(tmp_path / "data.jsonl", ["a", "b"])
    assert again.prompts == built.data.prompts and again.scores[0].tolist() == pytest.approx([1 / 3, 1.0], abs=1e-5)
