"""Shared plumbing for the packaged int8 ONNX BERT models: tokenizer + onnxruntime session."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def load_tokenizer(model_dir: Path, max_length: int) -> Any:
    """A fast `tokenizers` tokenizer from `tokenizer.json`, truncating and padding to the batch."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    return tokenizer


def load_session(model_dir: Path, threads: int | None, *, spinning: bool = False) -> Any:
    """An onnxruntime CPU session with a deliberate thread count (default: all cores). Worker threads
    sleep rather than spin between runs unless `spinning`: 8% slower on an idle machine, 1.68x faster
    when another process (a local LLM) holds a core (benchmarks/rerank_threads.py)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(model_dir / "model.onnx"), sess_options=options,
                                providers=["CPUExecutionProvider"])


def load_model(name: str, max_length: int, threads: int | None, *, spinning: bool = False) -> tuple[Any, Any]:
    """(tokenizer, session) of a registry name or folder holding `model.onnx` and `tokenizer.json`."""
    from pilotfish.errors import ConfigError
    from pilotfish.models import model_path

    path = Path(model_path(name))
    if not (path / "model.onnx").is_file():
        raise ConfigError(f"{path} has no model.onnx: give a folder with model.onnx and tokenizer.json")
    return load_tokenizer(path, max_length), load_session(path, threads, spinning=spinning)


def encode_batch(tokenizer: Any, texts: list[str] | list[tuple[str, str]]) -> dict[str, Any]:
    """Token ids, attention mask and token type ids as int64 arrays for onnxruntime."""
    import numpy as np

    encodings = tokenizer.encode_batch(texts)
    return {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }
