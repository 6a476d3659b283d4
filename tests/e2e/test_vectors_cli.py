"""`pilotfish ingest --vectors milvus:///...`: the choice is stored with the knowledge base, so search needs no flag;
a Milvus that does not answer fails the command with exit 1, names the URL, and loses nothing already stored."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from pilotfish.knowledge.base import DB_FILE
from pilotfish.knowledge.store import KnowledgeStore

from .conftest import run_cli

pytestmark = pytest.mark.e2e
pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _search(kb: Path, query: str) -> list[dict]:
    result = run_cli("search", query, "--kb", str(kb), "--mode", "dense", "-k", "3", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _set_vectors(kb: Path, url: str) -> str:
    """Point the knowledge base at another vector store (as if its server moved), returning the old URL."""
    store = KnowledgeStore(f"sqlite:///{(kb / DB_FILE).resolve()}")
    settings = store.get_meta("settings")
    with store.transaction() as session:
        store.set_meta(session, "settings", {**settings, "vectors": url})
    return settings["vectors"]


def test_ingest_into_milvus_lite_then_search_without_a_flag(docs: Path, tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    work = tmp_path / "work"
    work.mkdir()
    first = run_cli("ingest", str(docs), "--kb", str(kb), "--vectors", "milvus:///store/vectors.db", "--json",
                    cwd=work)
    assert first.returncode == 3, first.stderr  # the corrupt PDF failed, the rest went in
    assert json.loads(first.stdout)["documents"] == 12
    assert (work / "store" / "vectors.db").is_dir()  # the relative path was resolved where the command ran
    assert not list(kb.glob("indexes/gen-*/dense/*.faiss"))

    target = sorted(p for p in docs.iterdir() if p.suffix == ".md")[0]
    title = target.read_text().splitlines()[0].lstrip("# ")
    hits = _search(kb, title)  # run from another folder, with no --vectors
    assert hits[0]["doc_id"] == f"docs/{target.name}"
    again = json.loads(run_cli("ingest", str(docs), "--kb", str(kb), "--json").stdout)
    assert again["files_skipped"] == 12
    target.write_text(f"# {title}\n\nThe zanzibar quokka protocol replaced everything written here.\n")
    changed = run_cli("ingest", str(docs), "--kb", str(kb), "--json")  # a new process finds the collection
    assert json.loads(changed.stdout)["files_changed"] == 1, changed.stderr
    assert "Traceback" not in changed.stderr
    assert _search(kb, "zanzibar quokka protocol")[0]["doc_id"] == f"docs/{target.name}"
    hits = _search(kb, title)

    port = _free_port()
    stored = _set_vectors(kb, f"milvus://127.0.0.1:{port}/pilotfish_gone")
    (docs / "extra.txt").write_text("Volcanoes erupt molten rock through vents in the crust.")
    failed = run_cli("ingest", str(docs), "--kb", str(kb), timeout=120)
    assert failed.returncode == 1, failed.stdout
    assert f"milvus://127.0.0.1:{port}" in failed.stderr and "does not answer" in failed.stderr
    assert "Traceback" not in failed.stderr
    _set_vectors(kb, stored)
    assert _search(kb, title) == hits  # documents, chunks and vectors of the first ingest are intact
    assert all(h["doc_id"] != "docs/extra.txt" for h in _search(kb, "volcanoes erupt molten rock"))


def test_a_new_knowledge_base_on_an_unreachable_server_fails_cleanly(docs: Path, tmp_path: Path) -> None:
    url = f"milvus://127.0.0.1:{_free_port()}"
    result = run_cli("ingest", str(docs), "--kb", str(tmp_path / "kb"), "--vectors", url, timeout=120)
    assert result.returncode == 1, result.stdout
    assert url in result.stderr and "error:" in result.stderr and "Traceback" not in result.stderr
    search = run_cli("search", "anything", "--kb", str(tmp_path / "kb"))
    assert search.returncode == 1 and "is empty" in search.stderr  # nothing was committed


def test_a_bad_vectors_url_lists_the_forms(docs: Path, tmp_path: Path) -> None:
    result = run_cli("ingest", str(docs), "--kb", str(tmp_path / "kb"), "--vectors", "qdrant://x")
    assert result.returncode == 1
    assert "milvus:///relative/path.db" in result.stderr and "milvus://HOST:PORT" in result.stderr
