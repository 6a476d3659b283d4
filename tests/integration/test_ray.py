"""Ingest and evaluation on a local Ray runtime (`pilotfish[ray]`) give what the single-process path gives: the same
chunks in the same order, the same vectors (MiniLM, within 1e-5), the same search results, and the same stored
evaluation records (SmolLM2-135M). One Ray runtime (2 CPUs) serves the whole module."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pilotfish.knowledge.base import KnowledgeBase

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.integration

TOPICS = ("sharks hunt near the reef", "pilot fish follow large sharks", "remoras attach to whales",
          "coral reefs need warm water", "tuna migrate across oceans", "rays glide over sand")
QUERIES = ["Which fish follow sharks?", "warm water coral", "what do remoras attach to", "tuna migration"]


@pytest.fixture(scope="module")
def ray_runtime() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _write_corpus(docs: Path, changed: bool = False) -> None:
    docs.mkdir(exist_ok=True)
    with (docs / "notes.jsonl").open("w") as fh:
        for i in range(200):
            text = f"Note {i}: {TOPICS[i % len(TOPICS)]}, seen on day {i}. " * (1 + i % 4)
            if changed and i % 50 == 0:
                text = f"Note {i} was rewritten: a whale shark passed by on day {i}."
            fh.write(json.dumps({"_id": f"n{i}", "title": f"Note {i}", "text": text}) + "\n")
    (docs / "guide.md").write_text("# Reef guide\n\n" + "".join(
        f"Pilot fish swim ahead of shark number {i}, and the shark leaves them alone. " for i in range(120)))


@pytest.fixture(scope="module")
def kbs(ray_runtime: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The corpus ingested without Ray and with `ray="auto"` (2 workers), into two knowledge bases."""
    root = tmp_path_factory.mktemp("ray")
    _write_corpus(root / "docs")
    out: dict[str, Any] = {"root": root}
    for name, address in (("local", None), ("ray", "auto")):
        kb = KnowledgeBase.open(root / f"kb-{name}", create=True, settings={"embedding_model": "minilm-l6"})
        out[name] = (kb, kb.ingest([root / "docs"], ray=address, ray_workers=2 if address else None))
    return out


def _assert_same(a: KnowledgeBase, b: KnowledgeBase) -> None:
    rows_a, rows_b = a.corpus().rows, b.corpus().rows
    assert [(r.chunk_id, r.doc_id, r.text) for r in rows_a] == [(r.chunk_id, r.doc_id, r.text) for r in rows_b]
    dense_a, dense_b = a.current_dense(), b.current_dense()
    assert dense_a is not None and dense_b is not None
    rows = list(range(len(rows_a)))
    np.testing.assert_allclose(dense_a.vectors(rows), dense_b.vectors(rows), atol=1e-5)
    for mode in ("bm25", "dense", "hybrid"):
        for got, want in zip(b.search_batch(QUERIES, mode=mode, top_k=5), a.search_batch(QUERIES, mode=mode, top_k=5)):
            assert [p.chunk_id for p in got] == [p.chunk_id for p in want]
            np.testing.assert_allclose([p.score for p in got], [p.score for p in want], atol=1e-5)


def test_ray_ingest_equals_the_single_process_ingest(kbs: dict[str, Any]) -> None:
    (local, report_local), (remote, report_ray) = kbs["local"], kbs["ray"]
    assert report_ray.failed == [] and report_ray.chunks == report_local.chunks > 200
    assert report_ray.embedded == report_local.embedded == report_local.chunks
    _assert_same(local, remote)


def test_ray_reingest_of_a_changed_file_reuses_known_vectors(kbs: dict[str, Any]) -> None:
    """A changed file: the workers chunk, the driver fills the vectors the index holds, the workers embed the rest."""
    root = kbs["root"]
    _write_corpus(root / "docs", changed=True)
    local, remote = kbs["local"][0], kbs["ray"][0]
    again_local = local.ingest([root / "docs"])
    again_ray = remote.ingest([root / "docs"], ray="auto", ray_workers=2)
    assert again_ray.files_changed == again_local.files_changed == 1
    assert again_ray.embedded == again_local.embedded < again_local.chunks  # only the new texts were embedded
    _assert_same(local, remote)


QUESTIONS = [{"id": f"q{i}", "question": q, "answers": [a], "doc_ids": [d]} for i, (q, a, d) in enumerate([
    ("What do pilot fish swim ahead of?", "sharks", "docs/guide.md"),
    ("What do remoras attach to?", "whales", "n2"),
    ("What needs warm water?", "coral reefs", "n3"),
    ("What migrates across oceans?", "tuna", "n4"),
    ("What glides over sand?", "rays", "n5")])]


def test_ray_eval_run_stores_what_the_single_process_run_stores(kbs: dict[str, Any], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pilotfish.cli import app
    from pilotfish.evaluation.store import EvalStore

    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    kb = kbs["local"][0].directory
    stored = {}
    for name, extra in (("local", []), ("ray", ["--ray", "auto", "--ray-workers", "2"])):
        out = tmp_path / f"eval-{name}"
        result = CliRunner().invoke(app, ["eval", "run", "--dataset", str(data), "--pipeline", "basic", "--llm",
                                          "smollm2-135m", "--kb", str(kb), "--out", str(out), "--name", name, *extra])
        assert result.exit_code == 0, result.output
        store = EvalStore(f"sqlite:///{out / 'runs.db'}")
        run = store.run(name)
        assert run["status"] == "finished"
        stored[name] = [{k: v for k, v in r.items() if k != "seconds"} for r in store.records(run["id"])]
    assert [r["id"] for r in stored["ray"]] == [q["id"] for q in QUESTIONS]
    assert stored["ray"] == stored["local"]
    assert any(r["answer"] for r in stored["ray"])
