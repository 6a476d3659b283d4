"""`pilotfish train embedder|reranker`, `ingest --embedder` and `kb reembed` as a user runs them, on tiny data;
bad inputs give one clear error line and exit code 1 before any model loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import run_cli
from .test_cli import assert_clean_error

pytestmark = pytest.mark.e2e

SHADES = ["red", "blue", "green", "yellow", "black", "white", "pink", "grey", "brown", "orange"]


@pytest.fixture()
def tiny(tmp_path: Path) -> tuple[Path, Path]:
    """A docs folder of 20 one-line notes and a pairs file asking about each."""
    docs = tmp_path / "docs"
    docs.mkdir()
    with (tmp_path / "pairs.jsonl").open("w", encoding="utf-8") as fh:
        for i in range(20):
            text = f"Crate {i} in the harbour store is painted {SHADES[i % 10]}."
            (docs / f"crate{i}.txt").write_text(text, encoding="utf-8")
            fh.write(json.dumps({"query": f"what colour is crate {i}?", "positive": text}) + "\n")
    return docs, tmp_path / "pairs.jsonl"


def test_train_embedder_then_ingest_with_it_and_reembed(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    docs, pairs = tiny
    kb = tmp_path / "kb"
    assert run_cli("ingest", str(docs), "--kb", str(kb), "--dense").returncode == 0
    model = tmp_path / "emb"
    trained = run_cli("train", "embedder", "--pairs", str(pairs), "--kb", str(kb), "--out", str(model), "--minutes",
                      "0.2", "--held-out", "0.2", "--batch-size", "8", "--max-length", "32", "--name", "crates")
    assert trained.returncode == 0, trained.stderr
    assert "held-out nDCG@10" in trained.stdout and "registered as crates" in trained.stdout
    card = json.loads((model / "training.json").read_text())
    assert card["command"].startswith("pilotfish train embedder --out")
    assert card["data"]["sources"]["pairs"]["pairs"] == 20
    assert card["held_out"]["before"]["queries"] == card["held_out"]["after"]["queries"] == 4
    assert card["hard_negatives"] > 0  # mined from --kb

    new_kb = tmp_path / "kb-new"
    built = run_cli("ingest", str(docs), "--kb", str(new_kb), "--embedder", str(model))
    assert built.returncode == 0, built.stderr
    found = run_cli("search", "what colour is crate 4?", "--kb", str(new_kb), "--mode", "dense", "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)[0]["doc_id"] == "docs/crate4.txt"

    switched = run_cli("kb", "reembed", "--model", "crates", "--kb", str(kb))
    assert switched.returncode == 0, switched.stderr
    assert "re-embedded 20 chunks" in switched.stdout and "was minilm-l6" in switched.stdout
    old_spelling = run_cli("ingest", str(docs), "--kb", str(tmp_path / "kb-old"), "--embedding-model", str(model))
    assert old_spelling.returncode == 0, old_spelling.stderr


def test_train_reranker_exports_a_model_the_reranker_reads(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    _, pairs = tiny
    out = tmp_path / "rr"
    trained = run_cli("train", "reranker", "--pairs", str(pairs), "--out", str(out), "--base", "minilm-l6",
                      "--minutes", "0.2", "--held-out", "0.2", "--batch-size", "8", "--group", "2",
                      "--max-length", "32")
    assert trained.returncode == 0, trained.stderr
    assert (out / "model.onnx").is_file() and "CrossEncoderReranker" in trained.stdout
    assert "Traceback" not in trained.stderr and "TracerWarning" not in trained.stderr


def test_bad_inputs_give_clear_errors(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    _, pairs = tiny
    out = str(tmp_path / "m")
    for command in ("embedder", "reranker"):
        assert_clean_error(run_cli("train", command, "--out", out), "no training data", "--pairs")
    assert_clean_error(run_cli("train", "embedder", "--pairs", str(tmp_path / "none.jsonl"), "--out", out),
                       "does not exist")
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    assert_clean_error(run_cli("train", "embedder", "--pairs", str(tmp_path / "empty.jsonl"), "--out", out),
                       "holds no pairs")
    (tmp_path / "bad.jsonl").write_text(pairs.read_text().splitlines()[0] + '\n{"query": "q"}\n', encoding="utf-8")
    assert_clean_error(run_cli("train", "reranker", "--pairs", str(tmp_path / "bad.jsonl"), "--out", out),
                       "bad.jsonl line 2", '"positive" must be a non-empty string')
    assert_clean_error(run_cli("train", "embedder", "--pairs", str(pairs), "--out", out, "--base", "no-such-base"),
                       "--base no-such-base")
    assert_clean_error(run_cli("train", "embedder", "--pairs", str(pairs), "--out", out, "--device", "tpu"),
                       "unknown --device 'tpu'")
    assert_clean_error(run_cli("train", "embedder", "--pairs", str(pairs), "--out", out, "--name", "minilm-l6"),
                       "packaged model's name")
    assert_clean_error(run_cli("train", "embedder", "--from-log", "--out", out), "--from-log", "--kb")
    assert_clean_error(run_cli("train", "embedder", "--from-eval", "run-1", "--out", out), "--dataset")
    assert_clean_error(run_cli("kb", "reembed", "--model", "minilm-l6", "--kb", str(tmp_path / "nokb")),
                       "no knowledge base")
    assert not (tmp_path / "m").exists()
