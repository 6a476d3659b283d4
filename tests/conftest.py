"""Fixtures for every test: none writes to the user's own files."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def private_eval_registry(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`eval run` records its --out folders in a registry under PILOTFISH_HOME; point it at a file of this
    test's own (the variable reaches the CLI run in a subprocess too), so tests leave the user's list alone."""
    path = tmp_path_factory.mktemp("eval-registry") / "eval-folders.txt"
    monkeypatch.setenv("PILOTFISH_EVAL_REGISTRY", str(path))
    return path


@pytest.fixture(autouse=True)
def private_trained_registry(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Models that tests train and register by name go to a registry file of the test's own."""
    path = tmp_path_factory.mktemp("trained-registry") / "trained.json"
    monkeypatch.setenv("PILOTFISH_TRAINED_REGISTRY", str(path))
    return path
