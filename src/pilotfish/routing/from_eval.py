"""Router data from two evaluation runs: the same questions answered by a small and a large model.

Records are paired by item id, as `eval compare` pairs them. Each item both runs answered becomes one
routing example: the question is the prompt, and each run's score on it (F1 by default, or any
numeric per-item metric in [0, 1]) is that model's score. Items only one run holds, items whose
question differs between the runs and items a run did not score on the metric are skipped and counted.

>>> small = [{"id": f"q{i}", "question": f"question {i}", "f1": i % 2} for i in range(5)]
>>> large = [{"id": f"q{i}", "question": f"question {i}", "f1": 1.0} for i in range(1, 6)]
>>> built = router_data_from_runs(small, large, models=("tiny", "big"), min_examples=1)
>>> built.data.models, built.data.prompts[0], built.data.scores[0].tolist()
(['tiny', 'big'], 'question 1', [1.0, 1.0])
>>> built.counts()
{'used': 4, 'only_small': 1, 'only_large': 1, 'different_question': 0, 'without_metric': 0}
>>> router_data_from_runs(small, large, models=("tiny", "big"), metric="rouge")
Traceback (most recent call last):
    ...
pilotfish.errors.ConfigError: no item of either run has the metric 'rouge': use one of f1
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pilotfish.errors import ConfigError
from pilotfish.routing.data import MIN_EXAMPLES, RoutingData

NOT_METRICS = frozenset({"id", "seconds", "llm_calls", "prompt_tokens", "completion_tokens", "cost"})


@dataclass(frozen=True)
class EvalRouterData:
    """The routing examples built from two runs, their item ids, and what was skipped (item ids per reason)."""

    data: RoutingData
    item_ids: list[str]
    metric: str
    only_small: list[str]
    only_large: list[str]
    different_question: list[str]
    without_metric: list[str]

    def counts(self) -> dict[str, int]:
        """How many items were used and how many were skipped, per reason."""
        return {"used": len(self.item_ids), "only_small": len(self.only_small), "only_large": len(self.only_large),
                "different_question": len(self.different_question), "without_metric": len(self.without_metric)}


def score_metrics(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Names of the per-item numeric scores in `records` whose values all lie in [0, 1], sorted.

    >>> score_metrics([{"id": "1", "f1": 0.5, "em": 0.0, "cost": 3.0, "answered": True, "answer": "x"}])
    ['em', 'f1']
    """
    names = {k for r in records for k, v in r.items() if _is_number(v) and k not in NOT_METRICS}
    return sorted(n for n in names if all(0.0 <= r[n] <= 1.0 for r in records if _is_number(r.get(n))))


def run_model(run: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> str | None:
    """The LLM that answered a run: its config's "llm", else the "model" every record names; None if unknown.

    >>> run_model({"config": {"llm": "qwen2.5-0.5b"}}, []), run_model({"config": {}}, [{"model": "m"}] * 2)
    ('qwen2.5-0.5b', 'm')
    >>> run_model({"config": {}}, [{"model": "a"}, {"model": "b"}]) is None
    True
    """
    llm = (run.get("config") or {}).get("llm")
    if isinstance(llm, str) and llm.strip():
        return llm.strip()
    named = {r.get("model") for r in records}
    if len(named) == 1:
        (model,) = named
        if isinstance(model, str) and model.strip():
            return model.strip()
    return None


def router_data_from_runs(small: Sequence[Mapping[str, Any]], large: Sequence[Mapping[str, Any]], *,
                          models: tuple[str, str], metric: str = "f1",
                          min_examples: int = MIN_EXAMPLES) -> EvalRouterData:
    """Pair the records of a small model's run and a large model's run (each with "id" and "question") by
    item id; see the module docstring. Columns follow `models` (small, large)."""
    if len(models) != 2 or models[0] == models[1]:
        raise ConfigError(f"give two different model names, small then large; got {list(models)}")
    _check_metric(metric, small, large)
    large_by_id = {str(r["id"]): r for r in large}
    small_ids = {str(r["id"]) for r in small}
    prompts: list[str] = []
    rows: list[list[float]] = []
    used: list[str] = []
    only_small: list[str] = []
    different: list[str] = []
    without: list[str] = []
    for a in small:
        item = str(a["id"])
        b = large_by_id.get(item)
        if b is None:
            only_small.append(item)
        elif str(a.get("question", "")).strip() != str(b.get("question", "")).strip() \
                or not str(a.get("question", "")).strip():
            different.append(item)
        elif not (_is_number(a.get(metric)) and _is_number(b.get(metric))):
            without.append(item)
        else:
            prompts.append(str(a["question"]))
            rows.append([float(a[metric]), float(b[metric])])
            used.append(item)
    only_large = [str(r["id"]) for r in large if str(r["id"]) not in small_ids]
    if not rows:
        raise ConfigError(_nothing_shared(len(small), len(large), len(different), len(without), metric))
    if len(rows) < min_examples:
        raise ConfigError(f"the two runs share {len(rows)} scored items; a router needs at least {min_examples} "
                          "to learn anything: evaluate both models on more questions (eval run --limit)")
    data = RoutingData(prompts, np.asarray(rows, dtype=np.float32), list(models))
    return EvalRouterData(data, used, metric, only_small, only_large, different, without)


def _check_metric(metric: str, small: Sequence[Mapping[str, Any]], large: Sequence[Mapping[str, Any]]) -> None:
    """Refuse a metric neither run scored, or one that is not a score in [0, 1], naming the usable ones."""
    usable = ", ".join(sorted(set(score_metrics(small)) | set(score_metrics(large)))) or "none"
    for records in (small, large):
        for r in records:
            value = r.get(metric)
            if _is_number(value) and (metric in NOT_METRICS or not 0.0 <= value <= 1.0):
                raise ConfigError(f"metric {metric!r} is not a score in [0, 1] (item {r.get('id')!r} has "
                                  f"{value!r}): use one of {usable}")
    if not any(_is_number(r.get(metric)) for records in (small, large) for r in records):
        raise ConfigError(f"no item of either run has the metric {metric!r}: use one of {usable}")


def _nothing_shared(n_small: int, n_large: int, different: int, without: int, metric: str) -> str:
    if different:
        return (f"the runs share {different} item ids but not their questions: they were run on different "
                "datasets; evaluate both models on the same dataset")
    if without:
        return (f"none of the {without} items the runs share has a {metric!r} score in both runs: choose another "
                "--metric")
    return (f"the two runs share no items ({n_small} and {n_large} items): evaluate both models on the same "
            "dataset")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)
