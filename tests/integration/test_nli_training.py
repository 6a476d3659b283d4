"""NLI training end to end on a few synthetic pairs: bounded run, best checkpoint, int8 ONNX export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pilotfish.training.nli_data import synthesize
from pilotfish.training.nli_train import NLITrainingConfig, export_onnx, train_nli
from tests.unit.test_nli_data import DOCS

pytestmark = pytest.mark.integration


def test_train_then_export_matches_torch(tmp_path: Path) -> None:
    import onnxruntime as ort
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    pairs = synthesize(DOCS * 4, per_document=2, seed=0)
    config = NLITrainingConfig(out=str(tmp_path / "nli"), minutes=1.0, epochs=1, batch_size=8, eval_every=2, threads=1)
    report = train_nli(pairs[:40], pairs[40:56], config)
    assert report["steps"] == 5 and (tmp_path / "nli" / "torch" / "config.json").exists()
    saved = json.loads((tmp_path / "nli" / "training.json").read_text())
    assert saved["best_held_out_accuracy"] == max(h["held_out_accuracy"] for h in saved["history"])
    onnx_path = export_onnx(tmp_path / "nli")
    assert 15e6 < onnx_path.stat().st_size < 30e6  # int8: about a quarter of the fp32 weights
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "nli")
    premises, hypotheses = [p.premise for p in pairs[:8]], [p.hypothesis for p in pairs[:8]]
    enc = tokenizer(premises, hypotheses, padding=True, return_tensors="np")
    got = ort.InferenceSession(str(onnx_path)).run(None, {k: enc[k].astype(np.int64) for k in
                                                          ("input_ids", "attention_mask", "token_type_ids")})[0]
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "nli" / "torch").eval()
    with torch.inference_mode():
        want = model(**tokenizer(premises, hypotheses, padding=True, return_tensors="pt")).logits.numpy()
    assert got.shape == (8, 3) and np.abs(got - want).max() < 0.25  # int8 noise, same model
