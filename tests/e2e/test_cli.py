"""The CLI as a user runs it: ingest a folder with a corrupt file, search, re-ingest, prune, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import run_cli

pytestmark = pytest.mark.e2e


def assert_clean_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    assert "error:" in result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def test_ingest_search_reingest_prune(docs: Path, tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    first = run_cli("ingest", str(docs), "--kb", str(kb), "--json")
    assert first.returncode == 3, first.stderr  # the corrupt PDF failed, the rest went in
    report = json.loads(first.stdout)
    assert report["files_new"] == 12 and report["documents"] == 12
    assert report["chunks"] >= 12 and report["embedded"] == report["chunks"]
    assert [Path(p).name for p, _ in report["failed"]] == ["broken.pdf"]
    assert "PDF" in report["failed"][0][1]

    # The first article, searched by its own title, ranks first in every mode.
    target = sorted(p for p in docs.iterdir() if p.suffix == ".md")[0]
    title = target.read_text().splitlines()[0].lstrip("# ")
    for mode in ("bm25", "dense", "hybrid"):
        hit = run_cli("search", title, "--kb", str(kb), "--mode", mode, "-k", "3", "--json")
        assert hit.returncode == 0, hit.stderr
        passages = json.loads(hit.stdout)
        assert passages and passages[0]["doc_id"] == f"docs/{target.name}", (mode, passages[:2])
        assert passages[0]["source"] == str(target.resolve())

    human = run_cli("search", title, "--kb", str(kb), "-k", "2")
    assert human.returncode == 0 and f"docs/{target.name}" in human.stdout

    again = json.loads(run_cli("ingest", str(docs), "--kb", str(kb), "--json").stdout)
    assert again["files_skipped"] == 12 and again["files_new"] == 0 and again["embedded"] == 0

    target.write_text(f"# {title}\n\nThe zanzibar quokka protocol replaced everything written here.\n")
    changed = json.loads(run_cli("ingest", str(docs), "--kb", str(kb), "--json").stdout)
    assert changed["files_changed"] == 1 and changed["files_skipped"] == 11
    assert changed["embedded"] <= 2  # only the new chunk is embedded; the rest reuse their vectors
    hit = json.loads(run_cli("search", "zanzibar quokka", "--kb", str(kb), "--mode", "bm25", "--json").stdout)
    assert hit[0]["doc_id"] == f"docs/{target.name}" and "quokka" in hit[0]["text"]

    target.unlink()
    pruned = json.loads(run_cli("ingest", str(docs), "--kb", str(kb), "--prune", "--json").stdout)
    assert pruned["files_pruned"] == 1 and pruned["total_documents"] == 11
    gone = json.loads(run_cli("search", "zanzibar quokka", "--kb", str(kb), "--mode", "bm25", "--json").stdout)
    assert all(p["doc_id"] != f"docs/{target.name}" for p in gone)


def test_filters_collections_and_batch_queries(docs: Path, tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    md_files = [p for p in docs.iterdir() if p.suffix == ".md"]
    assert run_cli("ingest", *map(str, md_files), "--kb", str(kb), "--collection", "md").returncode == 0
    others = [p for p in docs.iterdir() if p.suffix in (".txt", ".html")]
    assert run_cli("ingest", *map(str, others), "--kb", str(kb), "--collection", "rest").returncode == 0

    res = json.loads(run_cli("search", "university city history", "--kb", str(kb), "--filter", "collection=md",
                             "-k", "20", "--json").stdout)
    assert res and all(p["metadata"]["collection"] == "md" for p in res)
    res = json.loads(run_cli("search", "university city history", "--kb", str(kb), "--filter", "file_type=html",
                             "--mode", "dense", "-k", "20", "--json").stdout)
    assert res and all(p["metadata"]["file_type"] == "html" for p in res)

    queries = tmp_path / "queries.jsonl"
    queries.write_text('{"id": "q1", "text": "university"}\n\n{"id": 2, "text": "music history"}\n')
    out = tmp_path / "results.jsonl"
    batch = run_cli("search", "--queries", str(queries), "--kb", str(kb), "-k", "4", "--out", str(out))
    assert batch.returncode == 0, batch.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["id"] for line in lines] == ["q1", "2"]
    assert all(len(line["results"]) == 4 for line in lines)
    assert set(lines[0]["results"][0]) == {"doc_id", "chunk_id", "score"}

    rerank = run_cli("search", "university", "--kb", str(kb), "--rerank", "-k", "3", "--json")
    assert rerank.returncode == 0, rerank.stderr
    ranked = json.loads(rerank.stdout)
    assert len(ranked) == 3 and ranked[0]["score"] >= ranked[1]["score"] >= ranked[2]["score"]
    assert ranked[0]["retriever"].endswith("rerank")


def test_bad_input_gives_one_clear_line(docs: Path, tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    assert_clean_error(run_cli("search", "anything", "--kb", str(tmp_path / "nowhere")), "pilotfish ingest")
    assert run_cli("ingest", str(docs), "--kb", str(kb)).returncode == 3  # all but the corrupt PDF
    assert_clean_error(run_cli("search", "  ", "--kb", str(kb)), "empty query")
    assert_clean_error(run_cli("search", "x", "--kb", str(kb), "--mode", "fuzzy"), "unknown search mode")
    assert_clean_error(run_cli("search", "x", "--kb", str(kb), "--filter", "novalue"), "key=value")
    assert_clean_error(run_cli("search", "--kb", str(kb)), "QUERY or --queries")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "text": "fine"}\nnot json\n')
    assert_clean_error(run_cli("search", "--queries", str(bad), "--kb", str(kb)), "line 2")
    assert_clean_error(run_cli("ingest", str(tmp_path / "missing-folder"), "--kb", str(tmp_path / "kb2")),
                       "no such file")
    only_bad = tmp_path / "only"
    only_bad.mkdir()
    (only_bad / "x.pdf").write_bytes(b"garbage")
    result = run_cli("ingest", str(only_bad), "--kb", str(tmp_path / "kb3"))
    assert result.returncode != 0 and "x.pdf" in result.stderr


def test_missing_model_names_the_pull_command(docs: Path, tmp_path: Path) -> None:
    result = run_cli("ingest", str(docs), "--kb", str(tmp_path / "kb"),
                     env={"PILOTFISH_HOME": str(tmp_path / "empty-home")})
    assert_clean_error(result, "pilotfish models pull minilm-l6")


def test_models_list_shows_every_model() -> None:
    result = run_cli("models", "list", "--json")
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert {"minilm-l6", "bge-small", "ms-marco-l12", "smollm2-135m", "qwen2.5-0.5b"} <= set(rows)
    assert rows["minilm-l6"]["present"] is True and rows["minilm-l6"]["role"] == "embedding"
    assert_clean_error(run_cli("models", "pull", "no-such-model"), "unknown model")


def test_killed_ingest_leaves_previous_content(docs: Path, tmp_path: Path) -> None:
    """SIGKILL an ingest while it embeds: the knowledge base still opens with its previous content."""
    kb = tmp_path / "kb"
    assert run_cli("ingest", str(docs), "--kb", str(kb)).returncode == 3  # all but the corrupt PDF
    before = json.loads(run_cli("search", "university", "--kb", str(kb), "--json", "-k", "5").stdout)

    big = tmp_path / "big.jsonl"
    sentences = [line for f in sorted(docs.iterdir()) if f.suffix == ".txt"
                 for line in f.read_text().split(". ") if line.strip()]
    with big.open("w") as fh:
        for i in range(4000):
            fh.write(json.dumps({"_id": f"big-{i}", "text": f"{sentences[i % len(sentences)]} variant {i}."}) + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "pilotfish.cli", "ingest", str(big), "--kb", str(kb)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
    new_generation = kb / "indexes" / "gen-000002"
    deadline = time.time() + 240
    while not (new_generation / "bm25").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "ingest finished before it could be killed; make the corpus bigger"
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    after = run_cli("search", "university", "--kb", str(kb), "--json", "-k", "5")
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout) == before
    stats = run_cli("search", "variant", "--kb", str(kb), "--mode", "bm25", "--json", "-k", "50")
    assert all(not p["doc_id"].startswith("big-") for p in json.loads(stats.stdout))
    # The next ingest completes and cleans up the abandoned generation.
    resumed = json.loads(run_cli("ingest", str(big), "--kb", str(kb), "--json").stdout)
    assert resumed["files_new"] == 1 and resumed["total_documents"] == 12 + 4000
    assert sorted(p.name for p in (kb / "indexes").iterdir()) == ["gen-000002"]
