"""`pilotfish train nli` refuses bad input before any training starts."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from pilotfish.cli.train import EVAL_FILE, MNLI_FILES, SELECT_FILE, TRAIN_FILES

from .conftest import run_cli
from .test_cli import assert_clean_error

pytestmark = pytest.mark.e2e


def test_train_nli_bad_input(tmp_path: Path) -> None:
    assert_clean_error(run_cli("train", "nli", "--data", str(tmp_path), "--out", str(tmp_path / "m")),
                       "lacks snli_dev.jsonl.gz", "give --data the folder")
    for name in (*TRAIN_FILES, *MNLI_FILES, SELECT_FILE, EVAL_FILE):
        with gzip.open(tmp_path / name, "wt") as fh:
            pair = {"premise": "A dog runs.", "hypothesis": "An animal runs.", "label": "entailment"}
            fh.write(json.dumps(pair) + "\n")
    assert_clean_error(run_cli("train", "nli", "--data", str(tmp_path), "--out", str(tmp_path / "m"),
                               "--corpus", str(tmp_path / "none.jsonl")), "no corpus file")
    assert_clean_error(run_cli("train", "nli", "--data", str(tmp_path), "--out", str(tmp_path / "m"),
                               "--base", "smollm2-135m"), "--base smollm2-135m is not an encoder", "ms-marco-l12")
    assert_clean_error(run_cli("train", "nli", "--data", str(tmp_path), "--out", str(tmp_path / "m"),
                               "--base", "no-such-encoder"), "no-such-encoder")
    assert_clean_error(run_cli("train", "nli", "--data", str(tmp_path), "--out", str(tmp_path / "m"),
                               "--learning-rate", "0"), "--learning-rate must be positive")
    with gzip.open(tmp_path / "sick_train.jsonl.gz", "wt") as fh:
        fh.write(json.dumps({"premise": "A", "hypothesis": "B", "label": "yes"}) + "\n")
    assert_clean_error(run_cli("train", "nli", "--data", str(tmp_path), "--out", str(tmp_path / "m")),
                       "sick_train.jsonl.gz:1: label 'yes'")
    assert not (tmp_path / "m").exists()
