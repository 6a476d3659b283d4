"""Shared fixtures for the unit tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pilotfish.knowledge.base import KnowledgeBase


@pytest.fixture()
def text_kb(tmp_path: Path) -> Callable[..., KnowledgeBase]:
    """`text_kb(name=text, ...)`: a BM25-only knowledge base over small text files (no model loads)."""
    def make(**files: str) -> KnowledgeBase:
        docs = tmp_path / "docs"
        docs.mkdir(exist_ok=True)
        for name, text in files.items():
            (docs / name.replace("_", ".")).write_text(text)
        kb = KnowledgeBase.open(tmp_path / "kb", create=True, settings={"tokenizer": "words", "dense": False})
        kb.ingest([docs])
        return kb

    return make
