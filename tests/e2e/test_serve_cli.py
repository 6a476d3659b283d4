"""`pilotfish serve` and `pilotfish keys` as a user runs them: a real server process answering with the smallest
real LLM (SmolLM2-135M) over the example articles. The official `openai` client and LangChain's `ChatOpenAI`
talk to it unchanged; keys are created, listed and revoked from the command line; an open address without a key
is refused; SIGTERM lets a streaming answer finish; two workers share keys, sessions and feedback through
PostgreSQL when PILOTFISH_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest

from pilotfish.knowledge.base import KnowledgeBase
from tests.e2e.conftest import run_cli
from tests.integration.serve_support import free_port

pytestmark = pytest.mark.e2e
QUESTION = "Who founded the University of the Incarnate Word?"
PIPELINE = """[pipeline]
name = "small"
description = "SmolLM2-135M answers from the retrieved evidence"
[answer]
llm = "smollm2-135m"
max_tokens = {max_tokens}
"""


def _kb(tmp_path: Path, docs: Path, db: str | None = None) -> Path:
    kb = KnowledgeBase.open(tmp_path / "kb", db=db, create=True, settings={"tokenizer": "words", "dense": False})
    kb.ingest([docs])
    return tmp_path / "kb"


def _pipeline(tmp_path: Path, max_tokens: int = 48) -> str:
    path = tmp_path / "small.toml"
    path.write_text(PIPELINE.format(max_tokens=max_tokens))
    return str(path)


@contextmanager
def server(*args: str, port: int) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    proc = subprocess.Popen([sys.executable, "-m", "pilotfish.cli", "serve", "--port", str(port), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"the server stopped: {proc.stdout.read() if proc.stdout else ''}")
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_keys_cli_and_openai_and_langchain_clients_against_a_live_server(tmp_path: Path, docs: Path) -> None:
    from langchain_openai import ChatOpenAI

    kb = _kb(tmp_path, docs)
    made = run_cli("keys", "create", "--name", "app", "--kb", str(kb))
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("pf_") and "shown only now" in made.stderr
    again = run_cli("keys", "create", "--name", "app", "--kb", str(kb))
    assert again.returncode != 0 and "exists" in again.stderr
    bad_scope = run_cli("keys", "create", "--name", "x", "--scope", "root", "--kb", str(kb))
    assert bad_scope.returncode != 0 and "unknown scope" in bad_scope.stderr
    listed = run_cli("keys", "list", "--kb", str(kb), "--json")
    assert '"name": "app"' in listed.stdout and token not in listed.stdout
    port = free_port()
    with server("--kb", str(kb), "--pipeline", _pipeline(tmp_path), port=port) as (url, _):
        client = openai.OpenAI(base_url=url + "/v1", api_key=token, max_retries=0, timeout=120)
        assert [m.id for m in client.models.list()] == ["small"]
        reply = client.chat.completions.create(model="small", messages=[{"role": "user", "content": QUESTION}])
        assert reply.choices[0].message.content.strip()
        assert reply.usage.completion_tokens > 0 and reply.model_extra["pilotfish"]["evidence"]
        chunks = list(client.chat.completions.create(model="small", stream=True,
                                                     messages=[{"role": "user", "content": QUESTION}]))
        assert len(chunks) > 3 and "".join(c.choices[0].delta.content or "" for c in chunks).strip()
        vectors = client.embeddings.create(model="minilm-l6", input=["a brass boiler", "a steam engine"])
        assert len(vectors.data) == 2 and len(vectors.data[0].embedding) == 384
        chat = ChatOpenAI(base_url=url + "/v1", api_key=token, model="small", max_retries=0, timeout=120)
        assert chat.invoke(QUESTION).content.strip()
        assert "".join(str(piece.content) for piece in chat.stream(QUESTION)).strip()
        curl = subprocess.run(["curl", "-s", url + "/v1/chat/completions", "-H", f"Authorization: Bearer {token}",
                               "-H", "Content-Type: application/json", "-d",
                               '{"model": "small", "messages": [{"role": "user", "content": "Who founded it?"}]}'],
                              capture_output=True, text=True, timeout=120)
        assert '"chat.completion"' in curl.stdout
        revoked = run_cli("keys", "revoke", "app", "--kb", str(kb))
        assert revoked.returncode == 0
        with pytest.raises(openai.AuthenticationError):
            client.models.list()
    missing = run_cli("keys", "revoke", "nobody", "--kb", str(kb))
    assert missing.returncode != 0 and "keys list" in missing.stderr


def test_an_open_address_needs_a_key_unless_no_auth_is_explicit(tmp_path: Path, docs: Path) -> None:
    kb = _kb(tmp_path, docs)
    refused = run_cli("serve", "--kb", str(kb), "--host", "0.0.0.0", "--port", str(free_port()), timeout=60)
    assert refused.returncode != 0 and "without an API key" in refused.stderr and "--no-auth" in refused.stderr
    missing = run_cli("serve", "--kb", str(tmp_path / "nothing"), "--port", str(free_port()), timeout=60)
    assert missing.returncode != 0 and "no knowledge base" in missing.stderr
    unknown = run_cli("serve", "--kb", str(kb), "--pipeline", "nope", "--port", str(free_port()), timeout=60)
    assert unknown.returncode != 0 and "unknown pipeline" in unknown.stderr
    port = free_port()
    with server("--kb", str(kb), "--host", "0.0.0.0", "--no-auth", "--pipeline", _pipeline(tmp_path),
                port=port) as (url, proc):
        assert httpx.get(url + "/v1/models").status_code == 200
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=30)[0]
    assert "AUTH IS OFF" in output


def test_sigterm_lets_a_streaming_answer_finish(tmp_path: Path, docs: Path) -> None:
    kb = _kb(tmp_path, docs)
    port = free_port()
    with server("--kb", str(kb), "--pipeline", _pipeline(tmp_path, max_tokens=160), "--drain", "60",
                port=port) as (url, proc):
        lines: list[str] = []
        started = threading.Event()

        def read() -> None:
            body = {"model": "small", "stream": True, "messages": [{"role": "user", "content": QUESTION}]}
            with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=120) as r:
                for line in r.iter_lines():
                    lines.append(line)
                    if line.startswith("data:") and '"content"' in line:
                        started.set()

        reader = threading.Thread(target=read)
        reader.start()
        assert started.wait(90)
        proc.send_signal(signal.SIGTERM)
        at_signal = len(lines)
        reader.join(120)
        # uvicorn drains, then re-raises the signal, so the exit status says SIGTERM ended it
        assert proc.wait(90) in (0, -signal.SIGTERM)
    assert any('"content"' in line for line in lines[at_signal:])  # still streaming at the signal
    assert [line for line in lines if line][-1] == "data: [DONE]"
    assert any('"finish_reason": "stop"' in line for line in lines)


POSTGRES = os.environ.get("PILOTFISH_TEST_POSTGRES_URL", "")


@pytest.mark.skipif(not POSTGRES, reason="set PILOTFISH_TEST_POSTGRES_URL to run two workers on PostgreSQL")
def test_two_workers_share_keys_sessions_and_feedback_through_postgres(tmp_path: Path, docs: Path) -> None:
    from pilotfish.knowledge.store import Base, KnowledgeStore

    store = KnowledgeStore(POSTGRES)
    Base.metadata.drop_all(store.engine)
    store.engine.dispose()
    kb = _kb(tmp_path, docs, db=POSTGRES)
    token = run_cli("keys", "create", "--name", "shared", "--kb", str(kb), "--db", POSTGRES).stdout.strip()
    head = {"Authorization": f"Bearer {token}"}
    port = free_port()
    with server("--kb", str(kb), "--db", POSTGRES, "--workers", "2", "--pipeline", _pipeline(tmp_path, 24),
                port=port) as (url, _):
        workers = set()
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline:
            workers.add(httpx.get(url + "/healthz").json()["worker"])  # a new connection each time
        assert len(workers) == 2
        session = httpx.post(url + "/api/sessions", json={"title": "shared"}, headers=head).json()
        asked = httpx.post(url + "/api/ask", json={"question": QUESTION, "session_id": session["id"]},
                           headers=head, timeout=120).json()
        seen = {httpx.get(url + "/healthz").json()["worker"]: httpx.get(url + f"/api/sessions/{session['id']}",
                                                                         headers=head).status_code
                for _ in range(12)}
        feedback = httpx.post(url + "/api/feedback", json={"message_id": asked["message_id"], "rating": 1},
                              headers=head)
        metrics = httpx.get(url + "/metrics").text
    assert set(seen.values()) == {200} and feedback.status_code == 200
    assert 'pilotfish_answers_total{pipeline="small"} 1.0' in metrics  # summed over both workers' files
