"""A first ingest with the packaged MiniLM: loading the tokenizer and the embedding model are stages of their
own, so the progress display names what the user waits for, and no stage is shown that has nothing to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilotfish.knowledge.base import KnowledgeBase
from pilotfish.models import embedding

pytestmark = pytest.mark.integration


def test_first_ingest_loads_the_models_in_stages_of_their_own(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(embedding, "_SHARED", {})  # no model loaded by an earlier test in this process
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "note.txt").write_text("Pilot fish\n\nSmall fish swim ahead of sharks and eat their leftovers.\n")
    stages: list[tuple[str, bool]] = []  # (stage, whether the embedding model was loaded when it began)

    class Recording:
        def stage(self, name: str, total: int | None) -> None:
            stages.append((name, bool(embedding._SHARED)))

        def advance(self, n: int = 1) -> None:
            pass

    kb = KnowledgeBase.open(tmp_path / "kb", create=True)  # MiniLM's tokenizer and embeddings
    report = kb.ingest([docs], progress=Recording())
    assert report.embedded == report.chunks == 1
    # the model loads before reading starts, so the batches are embedded as they are read; no stage is empty
    assert stages == [("Loading tokenizer minilm-l6", False), ("Loading embedding model minilm-l6", False),
                      ("Reading, chunking and embedding records", True), ("Saving to database", True),
                      ("Indexing BM25", True), ("Building vector index", True)]
