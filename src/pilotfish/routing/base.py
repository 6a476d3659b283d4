"""What every router shares: features, cross-fitted calibration of the cost knob, routing, plain-file storage.

A router predicts each model's score for a prompt and picks the model maximising
`predicted score - knob * cost / max cost`. `fit` learns the predictor and calibrates the knob on
out-of-fold predictions (every training prompt is scored by a predictor that never saw it), either
to reach a target quality (a fraction of the best single model's) or to stay within a cost budget.
A saved router is a folder: `router.json` (settings, models, costs, knob, calibration) and
`weights.npz` (arrays only, loaded with `allow_pickle=False`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pilotfish.component import Component
from pilotfish.errors import ConfigError
from pilotfish.routing.data import RoutingData
from pilotfish.routing.metrics import choose, knob_grid

FORMAT_VERSION = 1
_QUANTITY_WORDS = re.compile(r"\b(half|twice|double|triple|percent|fraction|third|quarter)\b")


@dataclass(frozen=True)
class RouteDecision:
    """Which model a prompt goes to, what the router predicted for each, and why."""

    model: str
    predicted: dict[str, float]
    knob: float
    reason: str
    alternatives: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "predicted": {k: round(v, 4) for k, v in self.predicted.items()},
                "knob": round(self.knob, 4), "reason": self.reason}


def shape_features(prompts: Sequence[str]) -> np.ndarray:
    """Cheap difficulty cues the embedding misses: length, how many numbers, sentences, quantity words."""
    rows = []
    for p in prompts:
        rows.append([len(p) / 500, len(re.findall(r"\d+(?:\.\d+)?", p)) / 10, "%" in p, p.count(".") / 10,
                     len(_QUANTITY_WORDS.findall(p.lower())) / 3])
    return np.asarray(rows, dtype=np.float32)


class BaseRouter(Component):
    """Subclasses set `kind` and implement `_fit`, `_predict`, `_arrays` and `_restore`."""

    kind: ClassVar[str] = ""

    def __init__(self, *, models: Sequence[str], costs: Sequence[float], embedder: str = "minilm-l6",
                 knob: float = 0.0, **params: Any) -> None:
        models, costs = list(models), [float(c) for c in costs]
        if len(models) < 2 or len(models) != len(costs):
            raise ConfigError(f"a router needs two or more models, each with a cost; got {models} and {costs}")
        if len(set(models)) != len(models):
            raise ConfigError(f"model names repeat in {models}")
        if any(c <= 0 for c in costs):
            raise ConfigError(f"model costs must be positive numbers, got {dict(zip(models, costs))}: give "
                              "--costs MODEL=PRICE,... or prices in pilotfish.toml")
        self.models, self.costs, self.knob = models, costs, float(knob)
        self.calibration: dict[str, Any] = {}
        self._config = {"models": models, "costs": costs, "embedder": embedder, "knob": self.knob, **params}
        self._embedder: Any = None

    # -- features -------------------------------------------------------------------------------
    def embed(self, prompts: Sequence[str]) -> np.ndarray:
        from pilotfish.models.embedding import Embedder

        if self._embedder is None:
            self._embedder = Embedder(model=self._config["embedder"])
        return np.asarray(self._embedder.encode_queries(list(prompts)), dtype=np.float32)

    # -- learning -------------------------------------------------------------------------------
    def fit(self, data: RoutingData, *, target_quality: float | None = None, budget: float | None = None,
            folds: int = 5, seed: int = 0, embeddings: np.ndarray | None = None) -> BaseRouter:
        """Learn from `data` (columns must be this router's models) and calibrate the knob."""
        if list(data.models) != self.models:
            raise ConfigError(f"the data scores {data.models}, the router routes {self.models}")
        if target_quality is not None and budget is not None:
            raise ConfigError("give a target quality or a budget, not both")
        if target_quality is not None and not 0 < target_quality <= 1:
            raise ConfigError(f"target quality is a fraction of the best model's, in (0, 1]; got {target_quality}")
        x = self.embed(data.prompts) if embeddings is None else embeddings
        x = self._with_shape(x, data.prompts)
        oof = np.zeros_like(data.scores, dtype=np.float64)
        order = np.random.default_rng(seed).permutation(len(x))
        for part in np.array_split(order, folds):
            train = np.setdiff1d(order, part)
            self._fit(x[train], data.scores[train])
            oof[part] = self._predict(x[part])
        self._fit(x, data.scores)
        self.knob, self.calibration = self._calibrate(oof, data.scores, target_quality, budget)
        self._config["knob"] = self.knob
        return self

    def _calibrate(self, predicted: np.ndarray, scores: np.ndarray, target_quality: float | None,
                   budget: float | None) -> tuple[float, dict[str, Any]]:
        costs = np.asarray(self.costs)
        rows = np.arange(len(scores))
        best_single = float(scores.mean(axis=0).max())
        goal = target_quality if target_quality is not None else (None if budget is not None else 0.95)
        options = []
        for knob in knob_grid(predicted, self.costs, points=201):
            chosen = choose(predicted, self.costs, float(knob))
            options.append((float(knob), float(scores[rows, chosen].mean()), float(costs[chosen].mean()),
                            float((chosen == int(np.argmax(costs))).mean())))
        if goal is not None:
            fits = [o for o in options if o[1] >= goal * best_single]
            knob, quality, cost, share = (max(fits, key=lambda o: (-o[2], o[0])) if fits
                                          else max(options, key=lambda o: o[1]))
            met = bool(fits)
        else:
            fits = [o for o in options if o[2] <= budget]
            knob, quality, cost, share = (max(fits, key=lambda o: (o[1], -o[2])) if fits
                                          else min(options, key=lambda o: o[2]))
            met = bool(fits)
        report = {"on": "out-of-fold predictions over the training data", "target_quality": goal,
                  "budget": budget, "met": met, "quality": round(quality, 4),
                  "quality_of_best_model": round(best_single, 4), "mean_cost": round(cost, 6),
                  "share_strongest": round(share, 4), "examples": int(len(scores))}
        return knob, report

    # -- routing --------------------------------------------------------------------------------
    def predict(self, prompts: Sequence[str], embeddings: np.ndarray | None = None) -> np.ndarray:
        """Predicted score of each model (n x m, columns in `models` order)."""
        x = self.embed(prompts) if embeddings is None else embeddings
        return np.clip(self._predict(self._with_shape(x, prompts)), 0.0, 1.0)

    def route(self, prompt: str) -> RouteDecision:
        predicted = self.predict([prompt])[0]
        chosen = int(choose(predicted[None, :], self.costs, self.knob)[0])
        best = int(np.argmax(predicted))
        if chosen == best:
            reason = f"{self.models[chosen]} has the highest predicted score ({predicted[chosen]:.2f})"
        else:
            reason = (f"{self.models[chosen]} is predicted {predicted[chosen]:.2f} against {predicted[best]:.2f} for "
                      f"{self.models[best]}, not worth {self.costs[best] / self.costs[chosen]:.1f}x the cost")
        return RouteDecision(self.models[chosen], dict(zip(self.models, map(float, predicted))), self.knob, reason)

    def route_batch(self, prompts: Sequence[str]) -> list[str]:
        return [self.models[i] for i in choose(self.predict(prompts), self.costs, self.knob)]

    # -- storage --------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "weights.npz", **self._arrays())
        meta = {"format": FORMAT_VERSION, "kind": self.kind, "config": self._config, "calibration": self.calibration}
        (folder / "router.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        return folder

    def _with_shape(self, x: np.ndarray, prompts: Sequence[str]) -> np.ndarray:
        return np.hstack([x, shape_features(prompts)]) if self._config.get("shape_features", True) else x

    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def _predict(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _arrays(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError
