"""The answer log from the command line and the server: `ask --log`, `chat --log` and a pipeline's `[log]` table
write it, `pilotfish log export` / `stats` / `prune` read and trim it, and a served answer with its feedback
lands in it. The LLM is the fake one (no model loads), the knowledge base BM25 only; the error paths run
`pilotfish` in a fresh process as a user would."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pilotfish.cli import app
from pilotfish.knowledge.base import KnowledgeBase
from pilotfish.llms.fake import FakeLLM

from .conftest import run_cli
from .test_cli import assert_clean_error

pytestmark = pytest.mark.e2e
QUESTION = "Where is the main campus of the University of Kansas?"
REPLY = "The main campus is in Lawrence [1]."


@pytest.fixture()
def kb(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "kansas.md").write_text("# University of Kansas\n\nThe University of Kansas is a public research "
                                    "university. Its main campus is in Lawrence, Kansas, on Mount Oread.\n")
    KnowledgeBase.open(tmp_path / "kb", create=True, settings={"tokenizer": "words", "dense": False}).ingest([docs])
    return tmp_path / "kb"


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeLLM]:
    llm = FakeLLM(replies=[REPLY], name="fake")
    monkeypatch.setattr("pilotfish.llms.resolve_llm", lambda spec, **_: llm)
    monkeypatch.delenv("PILOTFISH_DB", raising=False)
    monkeypatch.delenv("PILOTFISH_KB", raising=False)
    yield llm


def _pipeline(tmp_path: Path, log: str = "") -> str:
    path = tmp_path / "plain.toml"
    path.write_text('[pipeline]\nname = "plain"\n[answer]\n[retrieve]\nmode = "bm25"\n' + log)
    return str(path)


def _invoke(*args: str, input: str | None = None) -> Any:
    result = CliRunner().invoke(app, list(args), input=input)
    assert result.exit_code == 0, result.output
    return result


def _export(kb: Path, *args: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _invoke("log", "export", "--kb", str(kb), *args).stdout.splitlines()]


def test_ask_log_then_export_writes_jsonl(kb: Path, tmp_path: Path, fake: FakeLLM) -> None:
    plain = _pipeline(tmp_path)
    _invoke("ask", QUESTION, "--kb", str(kb), "--llm", "fake", "--pipeline", plain)  # off by default
    _invoke("ask", QUESTION, "--kb", str(kb), "--llm", "fake", "--pipeline", plain, "--log")
    _invoke("ask", QUESTION, "--kb", str(kb), "--llm", "fake", "--pipeline", plain, "--log", "--stream")
    records = _export(kb)
    assert [r["kind"] for r in records] == ["answer", "llm_call"] * 2
    answer, call = records[0], records[1]
    assert answer["question"] == QUESTION and answer["answer"] == REPLY and answer["pipeline"] == "plain"
    assert answer["evidence"][0]["doc_id"].endswith("kansas.md") and answer["usage"]["prompt_tokens"] > 0
    assert call["answer_id"] == answer["id"] and call["model"] == "fake" and call["outputs"] == [REPLY]
    assert call["prompt_tokens"] > 0 and call["completion_tokens"] > 0 and call["seconds"] >= 0
    out = tmp_path / "calls.jsonl"
    result = _invoke("log", "export", "--kb", str(kb), "--kind", "calls", "--since", "1d", "--out", str(out))
    assert "wrote 2 LLM calls" in result.stderr
    assert [json.loads(line)["method"] for line in out.read_text().splitlines()] == ["generate", "stream"]
    result = _invoke("log", "export", "--kb", str(kb), "--since", "2999-01-01")
    assert result.stdout == "" and "no records since 2999-01-01" in result.stderr
    stats = json.loads(_invoke("log", "stats", "--kb", str(kb), "--json").stdout)
    assert stats["answers"]["count"] == 2 and stats["models"][0]["model"] == "fake"
    assert "deleted 0 answers, 0 LLM calls" in _invoke("log", "prune", "--kb", str(kb)).stdout
    assert "deleted 2 answers, 2 LLM calls" in _invoke("log", "prune", "--kb", str(kb), "--older-than", "0").stdout


def test_a_pipeline_log_table_turns_it_on_and_no_log_wins(kb: Path, tmp_path: Path, fake: FakeLLM) -> None:
    logged = _pipeline(tmp_path, "[log]\nenabled = true\nllm_calls = false\n")
    _invoke("ask", QUESTION, "--kb", str(kb), "--llm", "fake", "--pipeline", logged, "--no-log")
    _invoke("ask", QUESTION, "--kb", str(kb), "--llm", "fake", "--pipeline", logged)
    _invoke("chat", "--kb", str(kb), "--llm", "fake", "--pipeline", logged, input=QUESTION + "\n")
    assert [r["kind"] for r in _export(kb)] == ["answer", "answer"]  # answers only, and none from --no-log


def test_a_served_answer_and_its_feedback_are_logged(kb: Path, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from pilotfish.serve.app import create_app
    from pilotfish.serve.config import ServeConfig
    from pilotfish.serve.service import Service

    config = ServeConfig(kb=str(kb), pipelines=(_pipeline(tmp_path),), llm="fake", log=True)
    service = Service(config, llms={"fake": FakeLLM(replies=[REPLY])})
    with TestClient(create_app(config, service=service)) as client:
        answer = client.post("/api/ask", json={"question": QUESTION}).json()
        assert answer["answer"] == REPLY
        posted = client.post("/api/feedback", json={"question": QUESTION, "answer": REPLY, "rating": 1})
        assert posted.status_code == 200, posted.text
    records = _export(kb)
    assert [r["kind"] for r in records] == ["answer", "llm_call", "feedback"]
    assert records[2]["answer_id"] == records[0]["id"] and records[2]["rating"] == 1


def test_export_from_a_knowledge_base_without_a_log_says_so(kb: Path) -> None:
    result = run_cli("log", "export", "--kb", str(kb))
    assert_clean_error(result, "holds no answer log", "[log] enabled = true", "--log")
    assert result.stdout == ""
    result = run_cli("log", "export", "--kb", str(kb), "--kind", "feedback")
    assert result.returncode == 0 and "no feedback items" in result.stderr
    result = run_cli("log", "stats", "--kb", str(kb))
    assert result.returncode == 0 and "holds no answer log" in result.stdout


def test_bad_options_give_clear_errors(kb: Path, tmp_path: Path) -> None:
    assert_clean_error(run_cli("log", "export", "--kb", str(kb), "--since", "last week"),
                       "cannot read 'last week' as a time", "2025-05-01", "7d")
    assert_clean_error(run_cli("log", "export", "--kb", str(kb), "--kind", "verdicts"),
                       "unknown --kind 'verdicts'", "calls, answers, feedback, all")
    assert_clean_error(run_cli("log", "prune", "--kb", str(kb), "--older-than", "-1"), "--older-than must be 0")
    assert_clean_error(run_cli("log", "export", "--kb", str(tmp_path / "nowhere")), "no knowledge base at")
    bad = tmp_path / "bad.toml"
    bad.write_text("[answer]\n[log]\nenable = true\n")
    assert_clean_error(run_cli("ask", QUESTION, "--kb", str(kb), "--pipeline", str(bad)),
                       "unknown key enable in [log]; known: answers, enabled, llm_calls, max_chars, retention_days")
    table = tmp_path / "t.csv"
    table.write_text("a,b\n1,2\n")
    assert_clean_error(run_cli("ask", "what is a?", "--table", str(table), "--log"), "no knowledge base", "--no-log")
