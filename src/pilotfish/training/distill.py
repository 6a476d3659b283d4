"""The distillation loop for one component: train a student on the large model's work, measure it against
the model in use on held-back data, and promote it (re-point the registered name) only when it wins.

Components and what "the large model's work" is for each:

- ``nli``: claims about your passages labelled by an LLM teacher (`nli_distill.distill_nli`); measured by
  AUROC against the teacher on claims from held-back documents.
- ``embedder`` and ``reranker``: questions the LLM wrote about your passages (`pilotfish eval synth`), a
  scored evaluation run, or answers users rated well, each with the passage that answers it; measured by
  nDCG@10 on held-back questions (`retrieval_eval`).

The model in use is the one registered under ``name``, or the packaged default when the name is new.
The student starts from it, so each round continues the last. The gate promotes only when the student
beats it by ``margin`` on the same held-back data; a first round with no registered model promotes over
the packaged default under the same rule. Either way the report (before/after, data sizes, minutes,
decision and why) is written beside the student as ``distill-report.json``.

>>> PromotionGate(metric="auroc", margin=0.02).decide(0.60, 0.65)
(True, 'auroc 0.650 beats 0.600 by 0.050 (margin 0.020)')
>>> PromotionGate(metric="auroc", margin=0.02).decide(0.60, 0.61)[0]
False
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pilotfish.errors import ConfigError

COMPONENTS = {"nli": ("nli", "nli-small"), "embedder": ("embedding", "minilm-l6"),
              "reranker": ("reranker", "ms-marco-l12")}  # component -> (registry role, packaged default)


@dataclass(frozen=True)
class PromotionGate:
    """Promote a student only when its held-back `metric` beats the current model's by `margin` or more."""

    metric: str
    margin: float = 0.01

    def decide(self, current: float, student: float) -> tuple[bool, str]:
        gain = student - current
        if gain >= self.margin:
            return True, f"{self.metric} {student:.3f} beats {current:.3f} by {gain:.3f} (margin {self.margin:.3f})"
        return False, (f"{self.metric} {student:.3f} against {current:.3f} for the current model: a gain of "
                       f"{gain:+.3f}, under the margin of {self.margin:.3f}; the current model stays")


def current_model(component: str, name: str, default: str | None = None) -> str:
    """The model now serving under `name` (its registered folder), else `default` or the packaged default."""
    from pilotfish.models.trained import registered_models

    role, packaged = _component(component)
    entry = registered_models().get(name)
    if entry is None:
        return default or packaged
    if entry["role"] != role:
        raise ConfigError(f"{name!r} is registered as a {entry['role']} model, not a {role} model; "
                          "choose another --name")
    return str(entry["path"])


def student_folder(root: str | Path, name: str) -> Path:
    """A new folder for this round's student: ROOT/NAME/YYYYmmdd-HHMMSS."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    return Path(root) / name / stamp


def distill_nli_round(rows: Sequence[Any], teacher: Any, *, name: str, root: str | Path, gate: PromotionGate,
                      **options: Any) -> dict[str, Any]:
    """One NLI round: `nli_distill.distill_nli` from the current model, then the gate."""
    from pilotfish.training.nli_distill import distill_nli

    current = current_model("nli", name)
    out = student_folder(root, name)
    report = distill_nli(rows, teacher, out=out, base=current, **options)
    return _decide("nli", name, current, out, report, report["before"], report["after"], gate)


def distill_retrieval_round(component: str, train: Sequence[Any], held_out: Sequence[Any], *, name: str,
                            root: str | Path, gate: PromotionGate, minutes: float, threads: int | None = None,
                            device: str = "cpu", progress: Callable[[float], None] | None = None,
                            card: dict[str, Any] | None = None, default: str | None = None,
                            distractors: Sequence[str] = ()) -> dict[str, Any]:
    """One embedder or reranker round on (query, positive, negatives) pairs, then the gate on held-out nDCG@10
    (over the held-out texts and `distractors`, e.g. passages sampled from the knowledge base)."""
    from pilotfish.training.embedder import EmbedderTrainingConfig, train_embedder
    from pilotfish.training.reranker import RerankerTrainingConfig, train_reranker

    if component not in ("embedder", "reranker"):
        raise ConfigError(f"{component!r} is not a retrieval component; use embedder or reranker")
    if not held_out:
        raise ConfigError("no held-back questions to decide on: give more questions or a larger --held-out")
    current = current_model(component, name, default)
    out = student_folder(root, name)
    started = time.monotonic()
    if component == "embedder":
        report = train_embedder(train, held_out, EmbedderTrainingConfig(
            out=str(out), base=current, minutes=minutes, threads=threads, device=device), progress=progress,
            card=card, distractors=distractors)
    else:
        report = train_reranker(train, held_out, RerankerTrainingConfig(
            out=str(out), base=current, minutes=minutes, threads=threads, device=device), progress=progress,
            card=card, distractors=distractors)
    before, after = report["held_out"]["before"], report["held_out"]["after"]
    if before is None:  # a base that is not yet a reranker has no score of its own: it cannot serve as one
        before = {"ndcg@10": 0.0}
    report["minutes_total"] = round((time.monotonic() - started) / 60, 2)
    return _decide(component, name, current, out, report, before["ndcg@10"], after["ndcg@10"], gate)


def _decide(component: str, name: str, current: str, out: Path, report: dict[str, Any], before: float,
            after: float, gate: PromotionGate) -> dict[str, Any]:
    """Apply the gate, register the student when it wins, write the report beside it."""
    from pilotfish.models.trained import register_model

    role, _ = _component(component)
    promoted, why = gate.decide(before, after)
    decision = {"component": component, "name": name, "student": str(out), "current": current,
                "metric": gate.metric, "before": round(before, 4), "after": round(after, 4), "margin": gate.margin,
                "promoted": promoted, "why": why, "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    full = {"decision": decision, "report": report}
    (out / "distill-report.json").write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
    if promoted:
        register_model(name, out, role=role, card=full)
    return full


def _component(component: str) -> tuple[str, str]:
    try:
        return COMPONENTS[component]
    except KeyError:
        raise ConfigError(f"unknown component {component!r}; distil one of {', '.join(COMPONENTS)}") from None
