"""compare_runs(): did run B change the scores of run A, beyond chance? Paired bootstrap over shared items.

>>> a = [{"id": str(i), "f1": 0.5, "question": "q"} for i in range(20)]
>>> b = [{"id": str(i), "f1": 0.5 + (i % 2) * 0.5, "question": "q"} for i in range(20)]
>>> report = compare_runs(a, b)
>>> report["metrics"]["f1"]["diff"], report["metrics"]["f1"]["p"] < 0.05
(0.25, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pilotfish.errors import ConfigError

METRICS = ("em", "f1", "recall@5", "ndcg@5", "mrr@5", "citation_precision", "citation_recall", "groundedness",
           "prompt_tokens", "completion_tokens", "cost", "seconds")


def compare_runs(a: list[dict[str, Any]], b: list[dict[str, Any]], *, resamples: int = 10_000, seed: int = 0,
                 changed: int = 5) -> dict[str, Any]:
    """Means of A and B, B - A, and a two-sided paired bootstrap p-value per metric; the items whose F1
    changed most."""
    by_id = {r["id"]: r for r in a}
    pairs = [(by_id[r["id"]], r) for r in b if r["id"] in by_id]
    if not pairs:
        raise ConfigError("the two runs share no items: compare runs over the same dataset")
    rng = np.random.default_rng(seed)
    report: dict[str, Any] = {"items": len(pairs), "metrics": {}, "changed": []}
    for metric in METRICS:
        both = [(x[metric], y[metric]) for x, y in pairs if isinstance(x.get(metric), (int, float))
                and isinstance(y.get(metric), (int, float))]
        if not both:
            continue
        diffs = np.array([y - x for x, y in both], dtype=float)
        means = diffs[rng.integers(0, len(diffs), size=(resamples, len(diffs)))].mean(axis=1)
        centred = means - diffs.mean()  # the null: no difference, same spread
        p = float((np.abs(centred) >= abs(diffs.mean())).mean())
        report["metrics"][metric] = {"a": float(np.mean([x for x, _ in both])),
                                     "b": float(np.mean([y for _, y in both])),
                                     "diff": round(float(diffs.mean()), 6), "p": p, "n": len(both)}
    moved = sorted((p for p in pairs if "f1" in p[0] and "f1" in p[1]),
                   key=lambda p: abs(p[1]["f1"] - p[0]["f1"]), reverse=True)
    report["changed"] = [{"id": y["id"], "question": y.get("question", ""), "a": x["f1"], "b": y["f1"],
                          "answer_a": x.get("answer"), "answer_b": y.get("answer")}
                         for x, y in moved[:changed] if x["f1"] != y["f1"]]
    return report
