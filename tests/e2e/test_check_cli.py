"""`pilotfish check` end to end with the shipped NLI model, and its failure modes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import run_cli
from .test_cli import assert_clean_error

pytestmark = pytest.mark.e2e

EIFFEL = ("The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It was "
          "designed by Gustave Eiffel's company and opened in 1889 as the entrance to the World's Fair.")


def write_lines(path: Path, records: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_check_pairs_writes_one_line_per_pair(tmp_path: Path) -> None:
    pairs = write_lines(tmp_path / "pairs.jsonl", [
        {"id": "same", "evidence": EIFFEL, "claim": "The Eiffel Tower is in Paris."},
        {"id": "list", "evidence": ["Berlin is in Germany.", EIFFEL], "claim": "The Eiffel Tower opened in 1889."},
        {"id": "none", "evidence": [], "claim": "The Eiffel Tower is in Paris."},
        {"id": "short", "evidence": EIFFEL, "claim": "1889", "question": "When did the Eiffel Tower open?"},
    ])
    result = run_cli("check", "--pairs", str(pairs), "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["id"] for line in lines] == ["same", "list", "none", "short"]
    for line in lines:
        assert set(line) >= {"id", "label", "supported", "scores"} and 0.0 <= line["supported"] <= 1.0
    assert lines[0]["label"] == "supported" and lines[1]["label"] == "supported"
    assert set(lines[0]["scores"]) == {"entailment", "neutral", "contradiction"}
    assert lines[2]["label"] == "unverifiable" and lines[2]["supported"] == 0.0 and "no evidence" in lines[2]["reason"]


def test_check_answer_against_a_file_claim_by_claim(tmp_path: Path) -> None:
    evidence = tmp_path / "eiffel.txt"
    evidence.write_text(EIFFEL)
    result = run_cli("check", "--answer", "The Eiffel Tower is in Paris [1]. It is made of solid gold.",
                     "--evidence", str(evidence), "--json")
    assert result.returncode == 0, result.stderr
    verdict = json.loads(result.stdout)
    assert [c["claim"] for c in verdict["claims"]] == ["The Eiffel Tower is in Paris.", "It is made of solid gold."]
    assert verdict["claims"][0]["label"] == "supported" and verdict["claims"][1]["label"] != "supported"
    assert verdict["label"] != "supported"
    text = run_cli("check", "--answer", "The Eiffel Tower is in Paris.", "--evidence", str(evidence))
    assert text.returncode == 0 and "supported" in text.stdout and "answer:" in text.stdout


def test_calibrate_saves_thresholds_the_checker_reads(tmp_path: Path) -> None:
    records = []
    for i in range(6):
        records.append({"id": f"y{i}", "evidence": EIFFEL, "claim": "The Eiffel Tower is in Paris.", "supported": True})
        records.append({"id": f"n{i}", "evidence": EIFFEL, "claim": "The Eiffel Tower is in Rome.", "supported": False})
    pairs = write_lines(tmp_path / "labelled.jsonl", records)
    saved = tmp_path / "thresholds.json"
    result = run_cli("check", "--pairs", str(pairs), "--calibrate", str(saved), "--out", str(tmp_path / "o.jsonl"))
    assert result.returncode == 0, result.stderr
    data = json.loads(saved.read_text())
    assert 0.0 <= data["threshold"] <= 1.0 and data["auroc"] == 1.0 and data["calibrated_on"] == 12
    again = run_cli("check", "--pairs", str(pairs), "--thresholds", str(saved), "--json")
    assert again.returncode == 0, again.stderr


def test_check_failure_modes(tmp_path: Path) -> None:
    bad_json = write_lines(tmp_path / "bad.jsonl", [{"id": 1, "evidence": "x", "claim": "y"}, "{not json"])
    assert_clean_error(run_cli("check", "--pairs", str(bad_json)), "line 2", "not valid JSON")
    no_claim = write_lines(tmp_path / "noclaim.jsonl", [{"id": 1, "evidence": "x", "claim": "  "}])
    assert_clean_error(run_cli("check", "--pairs", str(no_claim)), "line 1", "claim")
    bad_evidence = write_lines(tmp_path / "ev.jsonl", [{"id": 1, "evidence": 3, "claim": "y"}])
    assert_clean_error(run_cli("check", "--pairs", str(bad_evidence)), "evidence")
    unlabelled = write_lines(tmp_path / "u.jsonl", [{"id": 1, "evidence": "x", "claim": "y"}])
    assert_clean_error(run_cli("check", "--pairs", str(unlabelled), "--calibrate", str(tmp_path / "t.json")),
                       "supported")
    assert_clean_error(run_cli("check"), "--pairs")
    assert_clean_error(run_cli("check", "--answer", "Paris."), "--evidence")
    assert_clean_error(run_cli("check", "--answer", "Paris.", "--evidence", "where is paris", "--kb",
                               str(tmp_path / "nokb")), "not a file", "knowledge base")
    assert_clean_error(run_cli("check", "--pairs", str(tmp_path / "missing.jsonl")), "does not exist")
    assert_clean_error(run_cli("check", "--answer", "x", "--evidence", "y", "--band", "high"), "--band")
    assert_clean_error(run_cli("check", "--answer", "x", "--evidence", "y", "--thresholds",
                               str(tmp_path / "none.json")), "thresholds")
