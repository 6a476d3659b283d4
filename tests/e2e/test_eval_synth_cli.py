"""`pilotfish eval synth` end to end with SmolLM2-135M, and its failure modes."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilotfish.evaluation.datasets import load_dataset

from .conftest import run_cli
from .test_cli import assert_clean_error

pytestmark = pytest.mark.e2e

DOCS = {
    "kansas.md": "# University of Kansas\n\nThe University of Kansas is a public research university founded in "
                 "1865. Its main campus is in Lawrence, Kansas, on Mount Oread, the highest point in the town. "
                 "The university enrols about 28,000 students and is known for its basketball team, the Jayhawks.\n",
    "jazz.txt": "Kansas City jazz developed in the 1930s, when the city's clubs stayed open all night. The pianist "
                "Count Basie led its most famous band, and the saxophonist Charlie Parker grew up playing in it. "
                "The style is known for riffs, blues and long improvised solos.\n",
}


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    docs = tmp_path_factory.mktemp("docs")
    for name, text in DOCS.items():
        (docs / name).write_text(text)
    folder = tmp_path_factory.mktemp("kb") / "kb"
    assert run_cli("ingest", str(docs), "--kb", str(folder), "--no-dense").returncode == 0  # dedup loads MiniLM
    return folder


def test_synth_writes_a_dataset_that_eval_run_reads(kb: Path, tmp_path: Path) -> None:
    out = tmp_path / "sets" / "synth.jsonl"
    result = run_cli("eval", "synth", "--kb", str(kb), "-n", "2", "--out", str(out), "--llm", "smollm2-135m",
                     "--min-score", "-20", "--seed", "1")
    assert result.returncode == 0, result.stderr
    assert "dropped: duplicate" in result.stdout and "kept" in result.stdout
    data = load_dataset(out)
    assert 1 <= len(data) <= 2 and all(item.answers and item.answers[0] for item in data)
    assert all(item.gold_doc_ids[0].endswith(("kansas.md", "jazz.txt")) for item in data)
    assert f"wrote {len(data)} question" in result.stderr and "eval run --dataset" in result.stderr


def test_synth_failure_modes(kb: Path, tmp_path: Path) -> None:
    out = tmp_path / "synth.jsonl"
    assert_clean_error(run_cli("eval", "synth", "--kb", str(tmp_path / "nokb"), "-n", "5", "--out", str(out)),
                       "no knowledge base at", "pilotfish ingest")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_clean_error(run_cli("eval", "synth", "--kb", str(empty), "-n", "5", "--out", str(out)),
                       "holds no pilotfish knowledge base")
    assert_clean_error(run_cli("eval", "synth", "--kb", str(kb), "-n", "0", "--out", str(out)), "-n must be at least 1")
    assert_clean_error(run_cli("eval", "synth", "--kb", str(kb), "-n", "5", "--out", str(out), "--llm", "gpt-99"),
                       "unknown LLM 'gpt-99'")
    out.write_text("my labelled data\n")
    assert_clean_error(run_cli("eval", "synth", "--kb", str(kb), "-n", "5", "--out", str(out)),
                       "already exists", "--force")
    assert out.read_text() == "my labelled data\n"  # not clobbered
    assert not list(tmp_path.glob(".synth.jsonl.*"))
