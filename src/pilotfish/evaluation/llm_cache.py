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


class _DiskTable:
    """One key -> JSON text table in a SQLite file, safe across threads; counts hits and misses."""

    def __init__(self, path: str | Path, table: str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.table, self.hits, self.misses = table, 0, 0
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.execute(f"CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY, value TEXT)")
        self._db.commit()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        with self._lock:
            row = self._db.execute(f"SELECT value FROM {self.table} WHERE key = ?", (key,)).fetchone()
            if row is not None:
                self.hits += 1
        return None if row is None else json.loads(row[0])

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self.misses += 1
            self._db.execute(f"INSERT OR REPLACE INTO {self.table} VALUES (?, ?)", (key, json.dumps(value)))
            self._db.commit()

    def close(self) -> None:
        self._db.close()


class _Cached:
    """What both caching wrappers share: their table, and how often it answered."""

    _cache: _DiskTable

    @property
    def hits(self) -> int:
        return self._cache.hits

    @property
    def misses(self) -> int:
        return self._cache.misses

    def close(self) -> None:
        self._cache.close()


def _key(**parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode("utf-8")).hexdigest()


class CachedLLM(_Cached):
    """Wraps any pilotfish LLM; `generate`/`agenerate` go through the cache, the rest passes through."""

    def __init__(self, llm: LLM, path: str | Path) -> None:
        self.llm, self.name = llm, llm.name
        self._cache = _DiskTable(path, "llm_calls")

    def __getattr__(self, name: str) -> Any:  # option_probs, score_completion, models, answers_whole, ...
        return getattr(self.llm, name)

    def generate(self, messages: Sequence[Message], *, n: int = 1, temperature: float = 0.0, max_tokens: int = 256,
                 stop: Sequence[str] | None = None, json_schema: dict[str, Any] | None = None) -> list[Generation]:
        key = _key(model=self.name, messages=list(messages), n=n, temperature=temperature, max_tokens=max_tokens,
                   stop=list(stop or []), json_schema=json_schema)
        stored = self._cache.get(key)
        if stored is not None:
            return [_generation(g) for g in stored]
        generations = self.llm.generate(messages, n=n, temperature=temperature, max_tokens=max_tokens, stop=stop,
                                        json_schema=json_schema)
        self._cache.put(key, [asdict(g) for g in generations])
        return generations

    async def agenerate(self, messages: Sequence[Message], **kwargs: Any) -> list[Generation]:
        import asyncio

        return await asyncio.to_thread(self.generate, messages, **kwargs)

    def stream(self, messages: Sequence[Message], *, temperature: float = 0.0, max_tokens: int = 256,
               stop: Sequence[str] | None = None) -> Generator[str, None, Usage]:
        return (yield from self.llm.stream(messages, temperature=temperature, max_tokens=max_tokens, stop=stop))

def _generation(data: dict[str, Any]) -> Generation:
    usage = Usage(**data.pop("usage"))
    logprobs = data.pop("token_logprobs")
    return Generation(**data, usage=usage, token_logprobs=tuple(map(tuple, logprobs)) if logprobs else None)


class CachedKB(_Cached):
    """Wraps a KnowledgeBase so `search` results are cached on disk too: with `CachedLLM`, a re-run of an
    evaluation neither calls the LLM nor re-runs retrieval and reranking. The key includes the KB's
    folder and index generation, so re-ingesting invalidates it; everything else passes through."""

    def __init__(self, kb: Any, path: str | Path) -> None:
        self.kb = kb
        self._cache = _DiskTable(path, "searches")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.kb, name)

    def search(self, query: str, **options: Any) -> list[Any]:
        from pilotfish.types import Passage

        where = str(getattr(self.kb, "directory", "")) + f"@{self.kb.index_generation()}"
        key = _key(kb=where, query=query, **options)
        stored = self._cache.get(key)
        if stored is not None:
            return [Passage(**p) for p in stored]
        passages = self.kb.search(query, **options)
        self._cache.put(key, [p.to_dict() for p in passages])
        return passages
