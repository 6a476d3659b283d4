"""Distil an LLM teacher's yes/no judgements on your own passages into the small NLI model.

`distill_nli` samples passages from a knowledge base, makes claims about them (`nli_teacher.claim_pairs`),
has the teacher label each pair with P("Yes"), holds a share back, and fine-tunes the current NLI model
(by default the shipped `nli-small`, keeping its 3-way head) on the rest as soft targets, mixed with
hard-labelled NLI pairs when given so that it does not forget general inference. The student and the
model it started from are then scored on the held-back pairs (AUROC against the teacher's verdicts, with
the exported int8 model, the one that ships), and the student's `supported` threshold is calibrated there.

    from pilotfish.training.nli_distill import distill_nli
    report = distill_nli(kb.corpus().rows, llm, out="support-nli", passages=300, minutes=20)
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pilotfish.errors import ConfigError
from pilotfish.training.nli_data import NLIPair
from pilotfish.training.nli_teacher import ClaimPair, claim_pairs, sample_passages, teacher_label

Progress = Callable[[str, float | None, float], None]  # (stage, total, advance)


def teacher_auroc(model: str, pairs: Sequence[ClaimPair], *, threads: int | None = None) -> float:
    """AUROC of `model`'s `supported` score (the checker's, windows included) against the teacher's verdicts."""
    from sklearn.metrics import roc_auc_score

    from pilotfish.verification.checker import NLIGroundednessChecker

    verdicts = [p.teacher is not None and p.teacher >= 0.5 for p in pairs]
    if not 0 < sum(verdicts) < len(verdicts):
        raise ConfigError("the held-out pairs need both claims the teacher supports and claims it does not; "
                          "label more passages (--passages)")
    checker = NLIGroundednessChecker(model=model, threads=threads)
    scored, _ = checker.check_claims([([p.premise], p.hypothesis, None) for p in pairs])
    return float(roc_auc_score(verdicts, [v.supported for v in scored]))


def distill_nli(rows: Sequence[Any], llm: Any, *, out: str | Path, passages: int = 300, base: str = "nli-small",
                mix: Sequence[NLIPair] = (), held_out: float = 0.2, minutes: float = 20.0, epochs: int = 2,
                batch_size: int = 16, learning_rate: float = 2e-5, max_length: int = 256, seed: int = 0,
                labels: str | Path | None = None, threads: int | None = None, device: str = "cpu",
                label_minutes: float | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Label, train, export and measure; returns the report also written to OUT/distill.json.

    `rows` are corpus rows (doc_id, text) to sample `passages` from; `labels` is the JSONL cache of teacher
    labels (default OUT/teacher-labels.jsonl), so a second run labels only what is new.
    """
    from pilotfish.training.nli_train import NLITrainingConfig, export_onnx, free_cores, train_nli
    from pilotfish.verification.checker import NLIGroundednessChecker, calibrate_threshold

    if not 0 < held_out < 1:
        raise ConfigError(f"held_out must be between 0 and 1, got {held_out:g}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    tick = progress or (lambda *_: None)
    pairs = claim_pairs(sample_passages(rows, passages, seed=seed), per_passage=1, seed=seed)
    tick("Teacher labelling claims", len(pairs), 0)
    deadline = started + label_minutes * 60 if label_minutes is not None else None
    labelled = teacher_label(pairs, llm, cache=labels or out / "teacher-labels.jsonl", deadline=deadline,
                             progress=lambda n: tick("Teacher labelling claims", len(pairs), n))
    label_seconds = time.monotonic() - started
    if len(labelled) < 20:
        raise ConfigError(f"only {len(labelled)} claims were labelled; give the teacher more time or passages")
    # Hold out whole documents, so no held-out claim's passage was seen in training.
    docs = sorted({p.doc_id for p in labelled})
    random.Random(seed).shuffle(docs)
    test_docs = set(docs[: max(1, round(len(docs) * held_out))])
    test = [p for p in labelled if p.doc_id in test_docs]
    supported = sum(p.teacher is not None and p.teacher >= 0.5 for p in test)
    if not 0 < supported < len(test):
        scores = sorted(p.teacher or 0.0 for p in labelled)
        raise ConfigError(f"the teacher calls {'every' if supported else 'no'} held-out claim supported (its P(Yes) "
                          f"runs from {scores[0]:.2f} to {scores[-1]:.2f} over {len(labelled)} claims), so nothing "
                          "can be measured against it; use a stronger teacher (e.g. qwen2.5-1.5b) or more --passages")
    train = [NLIPair(p.premise, p.hypothesis, p.kind, "teacher", target=p.teacher)
             for p in labelled if p.doc_id not in test_docs]
    selection = [NLIPair(p.premise, p.hypothesis, p.kind, "teacher", target=p.teacher) for p in test]
    threads = threads or free_cores()
    config = NLITrainingConfig(out=str(out), base=base, minutes=minutes, epochs=epochs, batch_size=batch_size,
                               learning_rate=learning_rate, max_length=max_length, seed=seed, threads=threads,
                               device=device, keep_head=True, eval_every=10**9,
                               extra={"passages": passages, "teacher": getattr(llm, "model", str(llm))})
    spent = [0.0]

    def trained(share: float) -> None:
        tick("Training the student", 1.0, share - spent[0])
        spent[0] = share

    training = train_nli(train + list(mix), selection, config, step_progress=trained)
    tick("Exporting and measuring", None, 0)
    export_onnx(out)
    before, after = teacher_auroc(base, test, threads=threads), teacher_auroc(str(out), test, threads=threads)
    checker = NLIGroundednessChecker(model=str(out), threads=threads)
    scored, _ = checker.check_claims([([p.premise], p.hypothesis, None) for p in test])
    threshold, balanced = calibrate_threshold([v.supported for v in scored],
                                              [p.teacher is not None and p.teacher >= 0.5 for p in test])
    NLIGroundednessChecker(model=str(out), threshold=threshold).save_thresholds(
        out / "thresholds.json", calibrated_on=f"{len(test)} held-out teacher-labelled claims",
        balanced_accuracy=round(balanced, 4))
    report = {"component": "nli", "base": base, "teacher": config.extra["teacher"], "passages": passages,
              "claims_labelled": len(labelled), "claims_train": len(train), "claims_held_out": len(test),
              "mixed_nli_pairs": len(mix), "held_out_documents": len(test_docs),
              "metric": "AUROC against the teacher on held-out claims",
              "before": round(before, 4), "after": round(after, 4), "threshold": threshold,
              "label_minutes": round(label_seconds / 60, 2), "train_minutes": training["minutes"],
              "minutes": round((time.monotonic() - started) / 60, 2), "threads": threads,
              "training": {k: training[k] for k in ("steps", "pairs_per_second", "best_step")}}
    (out / "distill.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report
