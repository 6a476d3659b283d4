"""`kb reembed`: a new index generation with another embedding model, switched in one transaction; a kill while
it embeds leaves the old generation serving; a missing model changes nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pilotfish.errors import ConfigError
from pilotfish.knowledge.base import KnowledgeBase
from pilotfish.knowledge.reembed import PAUSE_ENV, reembed

pytestmark = pytest.mark.integration

TOPICS = ["volcano", "glacier", "desert", "reef", "forest", "tundra", "canyon", "delta", "marsh", "prairie"]


def make_kb(tmp_path: Path, docs: int = 40) -> KnowledgeBase:
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(docs):
        topic = TOPICS[i % len(TOPICS)]
        (folder / f"{topic}-{i}.txt").write_text(f"Field note {i}: the {topic} we surveyed holds species number {i}. "
                                                 f"Visitors to the {topic} should carry water.", encoding="utf-8")
    kb = KnowledgeBase.open(tmp_path / "kb", create=True)
    kb.ingest([folder])
    return kb


def test_reembed_builds_a_new_generation_that_search_uses_and_later_ingests_keep_its_model(tmp_path: Path) -> None:
    from pilotfish.models import model_path

    kb = make_kb(tmp_path, docs=12)
    assert kb.index_generation() == 1
    report = reembed(kb, "bge-small")
    assert (report.generation, report.chunks, report.previous) == (2, 12, "minilm-l6")
    again = KnowledgeBase.open(tmp_path / "kb")  # what another process sees
    assert again.settings["embedding_model"] == "bge-small" and again.index_generation() == 2
    assert again.retriever("dense").embedder.model == "bge-small"
    assert again.search("where should visitors carry water near the glacier?", mode="dense")[0].doc_id.startswith(
        "docs/glacier")
    assert [p.name for p in (tmp_path / "kb" / "indexes").iterdir()] == ["gen-000002"]

    # A folder is stored by its resolved path, with the name it was given kept for display.
    folder = model_path("minilm-l6")
    reembed(again, str(folder))
    assert again.settings["embedding_model"] == str(folder.resolve())
    (tmp_path / "docs" / "new.txt").write_text("A new note about the lagoon.", encoding="utf-8")
    added = again.ingest([tmp_path / "docs"])
    assert added.embedded == 1  # the unchanged chunks keep their vectors: same model
    assert KnowledgeBase.open(tmp_path / "kb").retriever("dense").embedder.model == str(folder.resolve())


def test_a_registered_name_is_pinned_to_its_folder_when_re_pointed_later(tmp_path: Path) -> None:
    import shutil

    from pilotfish.models import model_path
    from pilotfish.models.trained import register_model

    first = tmp_path / "emb-a"
    shutil.copytree(model_path("minilm-l6"), first)
    register_model("field-notes", first, role="embedding")
    kb = KnowledgeBase.open(tmp_path / "kb", create=True, settings={"embedding_model": "field-notes"})
    assert kb.settings["embedding_model"] == str(first.resolve()) and kb.settings["embedding_name"] == "field-notes"
    register_model("field-notes", tmp_path, role="embedding")  # re-pointed elsewhere
    assert KnowledgeBase.open(tmp_path / "kb").new_dense().embedder.model == str(first.resolve())


def test_reembed_with_a_missing_model_changes_nothing(tmp_path: Path) -> None:
    kb = make_kb(tmp_path, docs=5)
    before = (kb.index_generation(), dict(kb.settings))
    for model in (str(tmp_path / "no-such-model"), "no-such-name"):
        with pytest.raises(ConfigError, match="no-such"):
            reembed(kb, model)
    reopened = KnowledgeBase.open(tmp_path / "kb")
    assert (reopened.index_generation(), reopened.settings) == before
    assert [p.name for p in (tmp_path / "kb" / "indexes").iterdir()] == ["gen-000001"]


def test_sigkill_while_embedding_leaves_the_old_generation_serving(tmp_path: Path) -> None:
    kb = make_kb(tmp_path, docs=160)  # five ONNX batches of 32 chunks
    expected = kb.search("species number 7", mode="dense", top_k=3)
    env = {**os.environ, PAUSE_ENV: "3"}
    proc = subprocess.Popen([sys.executable, "-m", "pilotfish.cli", "kb", "reembed", "--model", "bge-small",
                             "--kb", str(tmp_path / "kb")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    new = tmp_path / "kb" / "indexes" / "gen-000002"
    deadline = time.monotonic() + 240
    while not (new / "bm25").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    time.sleep(4)  # inside the embedding stage, between paused batches
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert new.exists()  # the half-built generation is left behind ...

    after = KnowledgeBase.open(tmp_path / "kb")  # ... and the old one still serves, with the old model
    assert after.index_generation() == 1 and after.settings["embedding_model"] == "minilm-l6"
    assert [p.chunk_id for p in after.search("species number 7", mode="dense", top_k=3)] == \
        [p.chunk_id for p in expected]

    done = subprocess.run([sys.executable, "-m", "pilotfish.cli", "kb", "reembed", "--model", "bge-small", "--kb",
                           str(tmp_path / "kb")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "re-embedded 160 chunks" in done.stdout
    final = KnowledgeBase.open(tmp_path / "kb")
    assert final.index_generation() == 2 and final.settings["embedding_model"] == "bge-small"
    assert [p.name for p in (tmp_path / "kb" / "indexes").iterdir()] == ["gen-000002"]
