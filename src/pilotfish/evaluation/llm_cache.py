"""CachedLLM: a disk cache of LLM calls, so re-running an evaluation costs nothing.

A call is keyed by the model's name and every argument that shapes the reply (messages, n,
temperature, max_tokens, stop, json_schema); a hit returns the stored generations with their original
usage (the evaluation reports what the answers cost when made) and counts in `hits`. Local backends
are seeded per call, so a cached sample is the one the model would give again. The cache is one
SQLite file; writes are atomic per call, so an interrupted run keeps every finished call.

>>> from pilotfish.llms.fake import FakeLLM
>>> llm = CachedLLM(FakeLLM(replies=["a", "b"]), ":memory:")
>>> [llm.generate([{"role": "user", "content": "hi"}])[0].text for _ in range(2)], llm.hits
(['a', 'a'], 1)
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Generator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pilotfish.llms.base import LLM, Generation, Message, Usage


class CachedLLM:
    """Wraps any pilotfish LLM; `generate`/`agenerate` go through the cache, the rest passes through."""

    def __init__(self, llm: LLM, path: str | Path) -> None:
        self.llm, self.name = llm, llm.name
        self.hits = self.misses = 0
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, model TEXT, reply TEXT)")
        self._db.commit()
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:  # option_probs, score_completion, models, answers_whole, ...
        return getattr(self.llm, name)

    @staticmethod
    def key(model: str, messages: Sequence[Message], **params: Any) -> str:
        blob = json.dumps({"model": model, "messages": list(messages), **params}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def generate(self, messages: Sequence[Message], *, n: int = 1, temperature: float = 0.0, max_tokens: int = 256,
                 stop: Sequence[str] | None = None, json_schema: dict[str, Any] | None = None) -> list[Generation]:
        key = self.key(self.name, messages, n=n, temperature=temperature, max_tokens=max_tokens,
                       stop=list(stop or []), json_schema=json_schema)
        with self._lock:
            row = self._db.execute("SELECT reply FROM calls WHERE key = ?", (key,)).fetchone()
        if row is not None:
            self.hits += 1
            return [_generation(g) for g in json.loads(row[0])]
        generations = self.llm.generate(messages, n=n, temperature=temperature, max_tokens=max_tokens, stop=stop,
                                        json_schema=json_schema)
        with self._lock:
            self.misses += 1
            self._db.execute("INSERT OR REPLACE INTO calls VALUES (?, ?, ?)",
                             (key, self.name, json.dumps([asdict(g) for g in generations])))
            self._db.commit()
        return generations

    async def agenerate(self, messages: Sequence[Message], **kwargs: Any) -> list[Generation]:
        import asyncio

        return await asyncio.to_thread(self.generate, messages, **kwargs)

    def stream(self, messages: Sequence[Message], *, temperature: float = 0.0, max_tokens: int = 256,
               stop: Sequence[str] | None = None) -> Generator[str, None, Usage]:
        return (yield from self.llm.stream(messages, temperature=temperature, max_tokens=max_tokens, stop=stop))

    def close(self) -> None:
        self._db.close()


def _generation(data: dict[str, Any]) -> Generation:
    usage = Usage(**data.pop("usage"))
    logprobs = data.pop("token_logprobs")
    return Generation(**data, usage=usage, token_logprobs=tuple(map(tuple, logprobs)) if logprobs else None)


class CachedKB:
    """Wraps a KnowledgeBase so `search` results are cached on disk too: with `CachedLLM`, a re-run of an
    evaluation neither calls the LLM nor re-runs retrieval and reranking. The key includes the KB's
    folder and index generation, so re-ingesting invalidates it; everything else passes through."""

    def __init__(self, kb: Any, path: str | Path) -> None:
        self.kb = kb
        self.hits = self.misses = 0
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS searches (key TEXT PRIMARY KEY, passages TEXT)")
        self._db.commit()
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.kb, name)

    def search(self, query: str, **options: Any) -> list[Any]:
        from pilotfish.types import Passage

        where = str(getattr(self.kb, "directory", "")) + f"@{self.kb.index_generation()}"
        key = hashlib.sha256(json.dumps({"kb": where, "query": query, **options}, sort_keys=True,
                                        default=str).encode("utf-8")).hexdigest()
        with self._lock:
            row = self._db.execute("SELECT passages FROM searches WHERE key = ?", (key,)).fetchone()
        if row is not None:
            self.hits += 1
            return [Passage(**p) for p in json.loads(row[0])]
        passages = self.kb.search(query, **options)
        with self._lock:
            self.misses += 1
            self._db.execute("INSERT OR REPLACE INTO searches VALUES (?, ?)",
                             (key, json.dumps([p.to_dict() for p in passages])))
            self._db.commit()
        return passages
