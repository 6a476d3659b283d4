"""Routing data: prompts with a score in [0, 1] per model, checked line by line.

Each JSONL line is `{"prompt": "...", "scores": {"small": 0.0, "large": 1.0}}`. A bad line is
reported with its number and what is wrong, and nothing is trained on a half-read file.

>>> import json, tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "d.jsonl"
>>> _ = path.write_text("".join(json.dumps({"prompt": f"q{i}", "scores": {"a": i % 2, "b": 1}}) + "\\n"
...                             for i in range(4)))
>>> data = load_routing_data(path, ["a", "b"], min_examples=4)
>>> data.models, data.scores.shape, data.scores.mean(axis=0).tolist()
(['a', 'b'], (4, 2), [0.5, 1.0])
>>> save_routing_data(data, path.with_name("copy.jsonl"))
>>> load_routing_data(path.with_name("copy.jsonl"), min_examples=4).prompts == data.prompts
True
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pilotfish.errors import ConfigError
from pilotfish.jsonl import read_jsonl

MIN_EXAMPLES = 20


@dataclass(frozen=True)
class RoutingData:
    """Prompts, their per-model scores (n x m, columns in `models` order) and the source lines."""

    prompts: list[str]
    scores: np.ndarray
    models: list[str]

    def subset(self, index: Sequence[int] | np.ndarray) -> RoutingData:
        index = np.asarray(index, dtype=int)
        return RoutingData([self.prompts[i] for i in index], self.scores[index], list(self.models))


def load_routing_data(path: str | Path, models: Sequence[str] | None = None, *,
                      min_examples: int = MIN_EXAMPLES) -> RoutingData:
    """Read a routing JSONL file. `models` picks and orders the columns (default: the first line's keys)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no routing data at {path}: give a JSONL file of "
                          '{"prompt": ..., "scores": {"MODEL": 0.0-1.0, ...}} lines')
    prompts: list[str] = []
    rows: list[list[float]] = []
    wanted = list(models) if models else None

    def bad_line(number: int, reason: str) -> None:
        raise ConfigError(f"{path}:{number}: {reason}")

    for number, record in read_jsonl(path, error=ConfigError, on_bad_line=bad_line):
        _check_record(record, number, path)
        scores = record["scores"]
        if not rows and wanted is not None:
            check_models(list(scores), wanted)  # a name the data does not score at all
        if wanted is None:
            wanted = list(scores)
            if len(wanted) < 2:
                raise ConfigError(f"{path}:{number}: routing needs scores for at least two models, got {wanted}")
        missing = [m for m in wanted if m not in scores]
        if missing:
            raise ConfigError(f"{path}:{number}: no score for model {', '.join(map(repr, missing))}; every "
                              f"line needs a score for each of {', '.join(wanted)}")
        rows.append([_score(scores[m], m, number, path) for m in wanted])
        prompts.append(record["prompt"])
    if wanted is None or not rows:
        raise ConfigError(f"{path} holds no routing examples")
    if len(rows) < min_examples:
        raise ConfigError(f"{path} holds {len(rows)} examples; a router needs at least {min_examples} "
                          "to learn anything")
    return RoutingData(prompts, np.asarray(rows, dtype=np.float32), wanted)


def save_routing_data(data: RoutingData, path: str | Path) -> None:
    """Write `data` as the JSONL `load_routing_data` reads (scores rounded to 6 places)."""
    lines = [json.dumps({"prompt": p, "scores": {m: round(float(v), 6) for m, v in zip(data.models, row)}},
                        ensure_ascii=False) + "\n" for p, row in zip(data.prompts, data.scores.tolist())]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines), encoding="utf-8")


def check_models(data_models: Sequence[str], wanted: Sequence[str]) -> None:
    """Refuse model names the data does not score, naming what it does score."""
    unknown = [m for m in wanted if m not in data_models]
    if unknown:
        raise ConfigError(f"unknown model {', '.join(map(repr, unknown))}: the data scores "
                          f"{', '.join(data_models)}")


def _check_record(record: object, number: int, path: Path) -> None:
    if not isinstance(record, dict) or not isinstance(record.get("prompt"), str) or not record["prompt"].strip():
        raise ConfigError(f'{path}:{number}: each line needs a non-empty "prompt" string')
    if not isinstance(record.get("scores"), dict) or not record["scores"]:
        raise ConfigError(f'{path}:{number}: each line needs "scores": {{"MODEL": 0.0-1.0, ...}}')


def _score(value: object, model: str, number: int, path: Path) -> float:
    if isinstance(value, bool):
        return float(value)
    if not isinstance(value, (int, float)) or math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{path}:{number}: score {value!r} for model {model!r} is outside [0, 1]")
    return float(value)
