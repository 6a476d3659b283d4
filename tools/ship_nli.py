"""Ship a model trained by `pilotfish train nli` as the package's `nli-small` (a developer step).

    python tools/ship_nli.py benchmarks/out/nli/run1

Copies model.onnx, tokenizer.json and training.json into src/pilotfish/models/data/nli-small/, calibrates
the checker's threshold on the training run's held-out MNLI mismatched pairs (entailment vs the rest; no
evaluation set is touched), writes thresholds.json, and records every file's sha256 in registry.json.
The model card (MODEL_CARD.md in the same folder) is written by hand from the benchmark figures.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "src" / "pilotfish" / "models" / "data" / "nli-small"
REGISTRY = ROOT / "src" / "pilotfish" / "models" / "registry.json"
NLI_DATA = ROOT.parent / "shared" / "benchmarks" / "nli"
CHECKED = ("model.onnx", "tokenizer.json", "thresholds.json")  # what the code reads: checked on load


def clean_report(report: dict) -> dict:
    """The training report without the training machine's paths; a run continued from an earlier run's
    checkpoint (`--base RUN/torch`) carries that run's report as `continued_from`, cleaned the same way."""
    config = report["config"]
    config["out"] = Path(config["out"]).name
    base = Path(config["base"])
    if base.is_absolute() or len(base.parts) > 1:
        earlier = base.parent / "training.json"
        if base.name == "torch" and earlier.is_file():
            report["continued_from"] = clean_report(json.loads(earlier.read_text()))
            config["base"] = f"{base.parent.name}/torch (the checkpoint of the run in continued_from)"
        else:
            config["base"] = base.name
    return report


def base_description(report: dict) -> str:
    """The original encoder, through any continued runs."""
    while "continued_from" in report:
        report = report["continued_from"]
    return report["config"]["base"]


def main(folder: Path) -> None:
    from pilotfish.cli.train import SELECT_FILE
    from pilotfish.models.nli import NLIModel
    from pilotfish.training.nli_data import load_pairs
    from pilotfish.verification.checker import NLIGroundednessChecker, calibrate_threshold

    TARGET.mkdir(parents=True, exist_ok=True)
    for name in ("model.onnx", "tokenizer.json"):
        shutil.copy(folder / name, TARGET / name)
    report = clean_report(json.loads((folder / "training.json").read_text()))
    (TARGET / "training.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    select = report["held_out_pairs"]
    pairs = load_pairs([NLI_DATA / SELECT_FILE])  # read as `pilotfish train nli` reads it, so the split is its split
    random.Random(0).shuffle(pairs)
    held = pairs[:select]
    scores = NLIModel(str(folder)).predict([(p.premise, p.hypothesis) for p in held])
    threshold, balanced = calibrate_threshold([s.entailment for s in scores],
                                              [p.label == "entailment" for p in held])
    checker = NLIGroundednessChecker(threshold=threshold)
    checker.save_thresholds(TARGET / "thresholds.json", calibrated_on=f"{select} held-out MNLI mismatched pairs",
                            balanced_accuracy=round(balanced, 4))
    if not (TARGET / "MODEL_CARD.md").exists():
        raise SystemExit(f"write {TARGET / 'MODEL_CARD.md'} first")
    registry = json.loads(REGISTRY.read_text())
    entry = {"name": "nli-small", "role": "nli", "format": "onnx-nli",
             "size_mb": round((TARGET / "model.onnx").stat().st_size / 1e6),
             "description": f"pilotfish's own NLI cross-encoder (entailment/neutral/contradiction), trained from "
                            f"{base_description(report)}, int8 ONNX, shipped inside the package",
             "packages": [],
             "layout": {"kind": "bundled", "path": "models/data/nli-small",
                        "files": {n: hashlib.sha256((TARGET / n).read_bytes()).hexdigest() for n in CHECKED}}}
    registry["models"] = [m for m in registry["models"] if m["name"] != "nli-small"] + [entry]
    REGISTRY.write_text(json.dumps(registry, indent=1, ensure_ascii=False) + "\n")
    print(f"shipped {folder} as nli-small; threshold {threshold} (balanced accuracy {balanced:.3f})")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
