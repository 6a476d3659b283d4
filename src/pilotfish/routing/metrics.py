"""Deferral curves and RouteLLM's summary metrics (APGR, CPT) for routers over N models.

A router's knob trades quality for cost. Sweeping it gives the deferral curve: quality against the
normalised cost `(cost - cheapest) / (strongest - cheapest)`, which for two models is exactly the share
of calls to the strong one. PGR (performance gap recovered) rescales quality so that the cheapest model
alone is 0 and the strongest alone is 1. APGR is the area under PGR over normalised cost (trapezoids,
as RouteLLM computes it); CPT(x) is the least normalised cost at which PGR reaches x. A random router
scores about APGR 0.5, CPT(50%) 0.5 and CPT(80%) 0.8.

>>> import numpy as np
>>> scores = np.array([[1, 1], [0, 1], [1, 1], [0, 0]], dtype=float)
>>> predicted = np.array([[0.9, 0.9], [0.2, 0.9], [0.8, 0.9], [0.5, 0.6]])
>>> curve = deferral_curve(predicted, scores, costs=[1.0, 10.0])
>>> round(summarise(curve, scores)["apgr"], 3), round(summarise(curve, scores)["cpt50"], 3)
(0.875, 0.125)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CurvePoint:
    knob: float            # the router's cost weight; 0 = the best predicted model, < 0 favours dearer ones
    quality: float         # mean score of the chosen models
    cost: float            # mean cost per prompt
    share_strongest: float  # share of prompts sent to the most expensive model
    normalised_cost: float


def choose(predicted: np.ndarray, costs: Sequence[float], knob: float) -> np.ndarray:
    """Per prompt, the model maximising predicted quality - knob * cost / max cost (ties: the cheaper)."""
    c = np.asarray(costs, dtype=float)
    utility = predicted - knob * (c / c.max())[None, :]
    order = np.argsort(c, kind="stable")  # scan cheapest first so ties go to the cheaper model
    best = order[np.argmax(utility[:, order], axis=1)]
    return best


def knob_grid(predicted: np.ndarray, costs: Sequence[float], points: int = 101) -> np.ndarray:
    """Knob values at which choices change, thinned to `points` quantiles, spanning all-strongest
    (a negative knob pays for cost) to all-cheapest."""
    c = np.asarray(costs, dtype=float) / max(costs)
    switches = []
    for a in range(len(c)):
        for b in range(len(c)):
            if c[b] > c[a]:  # b is dearer: it stops being worth it above this knob
                switches.append((predicted[:, b] - predicted[:, a]) / (c[b] - c[a]))
    values = np.concatenate(switches) if switches else np.zeros(1)
    inner = np.quantile(values, np.linspace(0, 1, points))
    return np.unique(np.concatenate([[values.min() - 1.0, 0.0], inner, [values.max() + 1.0]]))


def deferral_curve(predicted: np.ndarray, scores: np.ndarray, costs: Sequence[float],
                   knobs: np.ndarray | None = None) -> list[CurvePoint]:
    """The router's curve on labelled data, sorted by normalised cost."""
    c = np.asarray(costs, dtype=float)
    cheapest, strongest = int(np.argmin(c)), int(np.argmax(c))
    span = c[strongest] - c[cheapest]
    rows = np.arange(len(scores))
    points = []
    for knob in knob_grid(predicted, costs) if knobs is None else knobs:
        chosen = choose(predicted, costs, float(knob))
        cost = float(c[chosen].mean())
        points.append(CurvePoint(float(knob), float(scores[rows, chosen].mean()), cost,
                                 float((chosen == strongest).mean()),
                                 (cost - c[cheapest]) / span if span > 0 else 0.0))
    return sorted(points, key=lambda p: (p.normalised_cost, p.quality))


def summarise(curve: Sequence[CurvePoint], scores: np.ndarray,
              costs: Sequence[float] | None = None) -> dict[str, float]:
    """APGR, CPT(50%), CPT(80%) and the single models' qualities (cheapest and strongest by cost)."""
    c = np.asarray(costs if costs is not None else range(1, scores.shape[1] + 1), dtype=float)
    weak, strong = float(scores[:, np.argmin(c)].mean()), float(scores[:, np.argmax(c)].mean())
    x = np.array([0.0] + [p.normalised_cost for p in curve] + [1.0])
    q = np.array([weak] + [p.quality for p in curve] + [strong])
    gap = strong - weak
    pgr = (q - weak) / gap if gap > 0 else np.ones_like(q)
    return {"apgr": float(np.trapezoid(pgr, x)), "cpt50": cost_to_reach(x, pgr, 0.5),
            "cpt80": cost_to_reach(x, pgr, 0.8), "quality_cheapest": weak, "quality_strongest": strong,
            "quality_oracle": float(scores.max(axis=1).mean())}


def cost_to_reach(x: np.ndarray, pgr: np.ndarray, target: float) -> float:
    """The least x where the piecewise-linear PGR curve reaches `target` (1.0 if it never does)."""
    if pgr[0] >= target:
        return float(x[0])
    for i in range(1, len(x)):
        if pgr[i] >= target:
            x0, x1, y0, y1 = x[i - 1], x[i], pgr[i - 1], pgr[i]
            return float(x0 + (target - y0) / (y1 - y0) * (x1 - x0)) if y1 > y0 else float(x1)
    return 1.0


def random_predictions(n: int, m: int, seed: int = 0) -> np.ndarray:
    """A random router's predictions, the baseline every router is reported beside."""
    return np.random.default_rng(seed).random((n, m))
