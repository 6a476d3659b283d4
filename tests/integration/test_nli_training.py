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
    config = NLITrainingConfig(out=str(tmp_path / "nli"), base="minilm-l6", minutes=1.0, epochs=1, batch_size=8,
                               eval_every=2, threads=1)
    report = train_nli(pairs[:40], pairs[40:56], config)
    assert report["steps"] == 5 and (tmp_path / "nli" / "torch" / "config.json").exists()
    saved = json.loads((tmp_path / "nli" / "training.json").read_text())
    assert saved["best_held_out_score"] == max(h["held_out"]["score"] for h in saved["history"])
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


def test_dequantised_reranker_reproduces_its_onnx_scores(tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort
    import torch
    from transformers import AutoTokenizer, BertModel

    from pilotfish.models import model_path
    from pilotfish.training.onnx_to_torch import _weights, dequantize_bert

    folder = dequantize_bert("ms-marco-l12", tmp_path / "base")
    pairs = [("who wrote hamlet", "Hamlet was written by Shakespeare."), ("who wrote hamlet", "Hamlet is a village."),
             ("what is python", "Python is a programming language."), ("what is python", "The cat sat on the mat.")]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    enc = tokenizer([q for q, _ in pairs], [d for _, d in pairs], padding=True, return_tensors="np")
    onnx_file = model_path("ms-marco-l12") / "model.onnx"
    want = ort.InferenceSession(str(onnx_file)).run(None, {k: enc[k].astype(np.int64) for k in
                                                          ("input_ids", "attention_mask", "token_type_ids")})[0]
    bert = BertModel.from_pretrained(folder).eval()
    assert bert.config.num_hidden_layers == 12
    with torch.inference_mode():
        pooled = bert(**{k: torch.tensor(v) for k, v in enc.items()}).pooler_output.numpy()
    head = _weights(onnx.load(str(onnx_file)).graph)  # the relevance head is not in the checkpoint; apply it by hand
    got = pooled @ head["classifier.weight"].T + head["classifier.bias"]
    assert np.abs(got - want).max() < 0.5 and (got[0] > got[1]) and (got[2] > got[3])


def test_dequantise_refuses_a_model_without_onnx(tmp_path: Path) -> None:
    from pilotfish.errors import ConfigError
    from pilotfish.training.onnx_to_torch import dequantize_bert

    with pytest.raises(ConfigError, match="no model.onnx"):
        dequantize_bert("minilm-l6", tmp_path / "base")
