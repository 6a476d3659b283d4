"""Helpers for the server tests: a real knowledge base, a served app on a free loopback port, scripted LLMs."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from pilotfish.knowledge.base import KnowledgeBase
from pilotfish.llms.base import Message
from pilotfish.llms.fake import FakeLLM
from pilotfish.serve.app import create_app
from pilotfish.serve.config import ServeConfig
from pilotfish.serve.service import Service

PLAIN = """[pipeline]
name = "plain"
description = "retrieve and answer, streamed token by token"
[answer]
llm = "fake"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_kb(root: Path, collections: dict[str, dict[str, str]]) -> KnowledgeBase:
    """A BM25 knowledge base (no model loads) with files per collection."""
    kb = KnowledgeBase.open(root / "kb", create=True, settings={"tokenizer": "words", "dense": False})
    for collection, files in collections.items():
        folder = root / "docs" / collection
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (folder / name).write_text(text)
        kb.ingest([folder], collection=collection)
    return kb


def plain_pipeline(root: Path) -> str:
    path = root / "plain.toml"
    path.write_text(PLAIN)
    return str(path)


class SlowLLM(FakeLLM):
    """Streams its reply word by word with a pause, and records how many words it produced and whether its
    stream was closed early (a cancelled generation)."""

    def __init__(self, reply: str, pause: float = 0.05, fail_after: int | None = None) -> None:
        super().__init__(replies=[reply], name="fake")
        self.pause, self.fail_after = pause, fail_after
        self.produced = 0
        self.closed_early = False
        self.finished = threading.Event()

    def stream(self, messages: Sequence[Message], **kw: Any):  # type: ignore[override]
        words = self._reply(messages).split(" ")
        try:
            for i, word in enumerate(words):
                if self.fail_after is not None and i == self.fail_after:
                    from pilotfish.errors import LLMError

                    raise LLMError("the model crashed mid-answer (scripted)")
                time.sleep(self.pause)
                self.produced += 1
                yield word if i == 0 else " " + word
        except GeneratorExit:
            self.closed_early = True
            raise
        finally:
            self.finished.set()
        from pilotfish.llms.base import Usage

        return Usage(calls=1, completion_tokens=len(words))

    def generate(self, messages: Sequence[Message], **kw: Any):  # type: ignore[override]
        time.sleep(self.pause * 4)
        return super().generate(messages, **kw)


@contextmanager
def serving(config: ServeConfig, service: Service) -> Iterator[str]:
    """Run the app with uvicorn in a thread; yields its base URL."""
    app = create_app(config, service=service)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=config.port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{config.port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=15)
