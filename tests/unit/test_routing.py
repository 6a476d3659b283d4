"""Routers, routing data and RouteLLM's metrics on data small enough to check by hand (no models loaded)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pilotfish.errors import ConfigError
from pilotfish.routing.classifier import ClassifierRouter
from pilotfish.routing.data import RoutingData, load_routing_data
from pilotfish.routing.knn import KNNRouter
from pilotfish.routing.load import load_router
from pilotfish.routing.metrics import choose, deferral_curve, random_predictions, summarise


def clusters(n: int = 120, seed: int = 0) -> tuple[RoutingData, np.ndarray]:
    """Two kinds of prompt: 'easy' ones every model gets right, 'hard' ones only the large model does."""
    rng = np.random.default_rng(seed)
    hard = rng.random(n) < 0.4
    x = rng.normal(size=(n, 8)).astype(np.float32) * 0.3
    x[:, 0] += np.where(hard, 2.0, -2.0)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    scores = np.c_[(~hard).astype(np.float32), np.ones(n, np.float32)]
    return RoutingData([f"{'hard' if h else 'easy'} {i}" for i, h in enumerate(hard)], scores, ["small", "large"]), x


@pytest.mark.parametrize("make", [lambda: KNNRouter(models=["small", "large"], costs=[1, 10], k=5),
                                  lambda: ClassifierRouter(models=["small", "large"], costs=[1, 10],
                                                           shape_features=False)])
def test_router_learns_which_prompts_need_the_large_model(make, tmp_path: Path) -> None:
    data, x = clusters()
    router = make().fit(data.subset(range(80)), embeddings=x[:80], target_quality=0.99)
    assert router.calibration["met"] and router.calibration["quality"] >= 0.99
    test = data.subset(range(80, 120))
    chosen = [router.models[i] for i in choose(router.predict(test.prompts, embeddings=x[80:]), router.costs,
                                               router.knob)]
    assert chosen == ["large" if p.startswith("hard") else "small" for p in test.prompts]
    summary = summarise(deferral_curve(router.predict(test.prompts, embeddings=x[80:]), test.scores, router.costs),
                        test.scores, router.costs)
    hard = float(np.mean([p.startswith("hard") for p in test.prompts]))
    # the best possible curve: the gap closes linearly while the hard prompts go up, then stays closed
    assert summary["apgr"] == pytest.approx(1 - hard / 2, abs=0.01)
    assert summary["cpt80"] == pytest.approx(0.8 * hard, abs=0.01)
    # saved as plain files and restored to the same predictions
    again = load_router(router.save(tmp_path / "r"))
    assert type(again) is type(router) and again.knob == router.knob
    np.testing.assert_allclose(again.predict(test.prompts, embeddings=x[80:]),
                               router.predict(test.prompts, embeddings=x[80:]), atol=1e-6)
    assert json.loads((tmp_path / "r" / "router.json").read_text())["calibration"]["met"] is True


def test_budget_calibration_stays_within_the_budget() -> None:
    data, x = clusters()
    router = ClassifierRouter(models=["small", "large"], costs=[1, 10], shape_features=False)
    router.fit(data, embeddings=x, budget=2.0)
    assert router.calibration["mean_cost"] <= 2.0 and router.calibration["met"]
    unreachable = ClassifierRouter(models=["small", "large"], costs=[1, 10], shape_features=False)
    unreachable.fit(data, embeddings=x, budget=0.5)  # below the cheapest model: says so, routes cheapest
    assert not unreachable.calibration["met"] and unreachable.calibration["share_strongest"] == 0.0


def test_three_models_route_by_cost_and_quality() -> None:
    predicted = np.array([[0.9, 0.95, 0.99], [0.1, 0.8, 0.85], [0.1, 0.2, 0.9]])
    assert choose(predicted, [1, 5, 20], knob=0.5).tolist() == [0, 1, 2]
    assert choose(predicted, [1, 5, 20], knob=0.0).tolist() == [2, 2, 2]
    assert choose(predicted, [1, 5, 20], knob=10.0).tolist() == [0, 0, 0]


def test_metrics_match_a_hand_computed_curve_and_random_is_near_half() -> None:
    scores = np.array([[1, 1], [0, 1], [1, 1], [0, 0]], dtype=float)
    perfect = np.array([[0.9, 0.9], [0.1, 0.9], [0.8, 0.8], [0.5, 0.5]])
    s = summarise(deferral_curve(perfect, scores, [1, 10]), scores, [1, 10])
    # the one prompt worth escalating comes first: full gap recovered at 25% of calls
    assert s["apgr"] == pytest.approx(0.875) and s["cpt50"] == pytest.approx(0.125)
    assert s["quality_oracle"] == pytest.approx(0.75)
    rng = np.random.default_rng(1)
    big = np.c_[rng.random(4000) < 0.6, rng.random(4000) < 0.85].astype(float)
    r = summarise(deferral_curve(random_predictions(4000, 2), big, [1, 10]), big, [1, 10])
    assert abs(r["apgr"] - 0.5) < 0.05 and abs(r["cpt50"] - 0.5) < 0.07


def write(path: Path, lines: list[object]) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def test_routing_data_errors_name_the_line_or_model(tmp_path: Path) -> None:
    good = [{"prompt": f"q{i}", "scores": {"a": 1, "b": 0.5}} for i in range(25)]
    assert load_routing_data(write(tmp_path / "ok.jsonl", good), ["b", "a"]).models == ["b", "a"]
    cases = [
        (good[:3] + [{"prompt": "x", "scores": {"a": 1}}] + good, r"bad\.jsonl:4: no score for model 'b'"),
        (good[:1] + [{"prompt": "x", "scores": {"a": 1.5, "b": 0}}] + good, r":2: score 1.5 for model 'a' is outside"),
        (good[:1] + ["{not json"] + good, r":2: not valid JSON"),
        (good[:1] + [{"question": "x", "scores": {"a": 1}}] + good, r':2: each line needs a non-empty "prompt"'),
        (good[:5], r"holds 5 examples; a router needs at least 20"),
    ]
    for lines, message in cases:
        with pytest.raises(ConfigError, match=message):
            load_routing_data(write(tmp_path / "bad.jsonl", lines), ["a", "b"])
    with pytest.raises(ConfigError, match=r"unknown model 'c': the data scores a, b"):
        load_routing_data(write(tmp_path / "ok.jsonl", good), ["a", "c"])
    with pytest.raises(ConfigError, match="no routing data"):
        load_routing_data(tmp_path / "missing.jsonl")


def test_router_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="costs must be positive"):
        ClassifierRouter(models=["a", "b"], costs=[0, 1])
    with pytest.raises(ConfigError, match="two or more models"):
        KNNRouter(models=["a"], costs=[1])
    data, x = clusters()
    with pytest.raises(ConfigError, match="the data scores"):
        KNNRouter(models=["large", "small"], costs=[1, 2]).fit(data, embeddings=x)
    with pytest.raises(ConfigError, match="not a saved router"):
        load_router(tmp_path)
