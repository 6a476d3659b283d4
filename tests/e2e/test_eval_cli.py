"""`pilotfish eval run/list/compare` end to end with SmolLM2-135M, the LLM cache, and the failure modes."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from .conftest import run_cli
from .test_cli import assert_clean_error

pytestmark = pytest.mark.e2e

QUESTIONS = [{"id": "kansas", "question": "Where is the main campus of the University of Kansas?",
              "answers": ["Lawrence", "Lawrence, Kansas"], "doc_ids": ["kansas.md"]},
             {"id": "jazz", "question": "Who played Kansas City jazz?", "answers": ["Count Basie"],
              "doc_ids": ["jazz.txt"]},
             {"id": "oread", "question": "On which hill is the Kansas campus?", "answers": ["Mount Oread"]}]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    docs = tmp_path_factory.mktemp("docs")
    (docs / "kansas.md").write_text("# University of Kansas\n\nThe University of Kansas is a public research "
                                    "university. Its main campus is in Lawrence, Kansas, on Mount Oread.\n")
    (docs / "jazz.txt").write_text("Kansas City jazz developed in the 1930s. Count Basie and Charlie Parker "
                                   "played it.\n")
    kb = tmp_path_factory.mktemp("kb") / "kb"
    assert run_cli("ingest", str(docs), "--kb", str(kb)).returncode == 0
    data = tmp_path_factory.mktemp("data") / "qa.jsonl"
    data.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    return kb, data


def test_run_list_compare_and_a_cached_rerun(setup: tuple[Path, Path], tmp_path: Path) -> None:
    kb, data = setup
    out = tmp_path / "eval"
    args = ["eval", "run", "--dataset", str(data), "--pipeline", "basic", "--llm", "smollm2-135m", "--kb", str(kb),
            "--out", str(out)]
    first = run_cli(*args, "--name", "first")
    assert first.returncode == 0, first.stderr
    assert "f1" in first.stdout and "recall@5" in first.stdout
    cache = sqlite3.connect(out / "llm-cache.sqlite")
    calls = cache.execute("SELECT COUNT(*) FROM llm_calls").fetchone()[0]
    assert calls == 3
    second = run_cli(*args, "--name", "second")
    assert second.returncode == 0, second.stderr
    assert cache.execute("SELECT COUNT(*) FROM llm_calls").fetchone()[0] == calls  # every call came from the cache
    runs = json.loads(run_cli("eval", "list", "--out", str(out), "--json").stdout)
    assert [r["name"] for r in runs] == ["first", "second"] and all(r["status"] == "finished" for r in runs)
    assert runs[0]["summary"]["items"] == 3 and 0.0 <= runs[0]["summary"]["f1"] <= 1.0
    report = json.loads(run_cli("eval", "compare", "first", "second", "--out", str(out), "--json").stdout)
    assert report["items"] == 3 and report["metrics"]["f1"]["diff"] == 0.0 and report["changed"] == []
    human = run_cli("eval", "compare", "first", "second", "--out", str(out))
    assert human.returncode == 0 and "shared items" in human.stdout
    page, summary = tmp_path / "report.html", tmp_path / "report.md"
    report_run = run_cli("eval", "report", "first", "second", "--out", str(out), "--html", str(page), "--md",
                         str(summary))
    assert report_run.returncode == 0, report_run.stderr
    text = summary.read_text()
    assert "| first | basic |" in text and "| second | basic |" in text and "[" in text  # means with intervals
    html = page.read_text()
    assert html.count("data:image/png;base64,") >= 2 and "Lowest-F1 items" in html
    assert_clean_error(run_cli("eval", "report", "nope", "--out", str(out)), "no evaluation run named 'nope'")


def test_eval_failure_modes(setup: tuple[Path, Path], tmp_path: Path) -> None:
    kb, data = setup
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(QUESTIONS[0]) + "\n" + '{"question": "no answers"}\n')
    out = tmp_path / "eval"
    assert_clean_error(run_cli("eval", "run", "--dataset", str(bad), "--pipeline", "basic", "--kb", str(kb),
                               "--out", str(out)), "bad.jsonl:2", "answers")
    assert_clean_error(run_cli("eval", "run", "--dataset", str(data), "--pipeline", "turbo", "--kb", str(kb),
                               "--out", str(out)), "unknown pipeline")
    assert_clean_error(run_cli("eval", "run", "--dataset", str(data), "--pipeline", "basic", "--out", str(out)),
                       "no corpus", "--kb")
    assert_clean_error(run_cli("eval", "run", "--dataset", str(data), "--pipeline", "basic", "--pipeline",
                               "verified", "--name", "x", "--kb", str(kb), "--out", str(out)), "--name")
    assert_clean_error(run_cli("eval", "list", "--out", str(tmp_path / "none")), "no evaluation runs")
    assert_clean_error(run_cli("eval", "compare", "a", "b", "--out", str(out)), "no evaluation run named 'a'")
    assert_clean_error(run_cli("eval", "run", "--dataset", str(tmp_path / "missing.jsonl"), "--pipeline", "basic",
                               "--kb", str(kb), "--out", str(out)), "missing.jsonl")
