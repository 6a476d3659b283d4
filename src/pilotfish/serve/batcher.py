"""SearchBatcher: concurrent /api/search requests share one batched search.

A query's embedding is most of a hybrid search's time, and the embedding model encodes a batch of queries
far faster per query than one at a time (MiniLM on 2 cores: about 4x at 8 queries; see BENCHMARKS.md). So
requests that arrive while a search runs wait for it to finish and then go together, grouped by mode,
depth and filters, through the knowledge base's batch-first `search_documents_batch`. A lone request goes
at once: batching adds no wait, it only uses the time a busy server would queue anyway.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import Executor
from functools import partial
from typing import Any

from pilotfish.types import Passage

Key = tuple[str, int, str, bool]  # mode, top_k, filters as canonical JSON, chunk-level results


class SearchBatcher:
    def __init__(self, kb: Any, *, max_batch: int = 32, executor: Executor | None = None) -> None:
        self.kb, self.max_batch, self.executor = kb, max_batch, executor
        self._pending: dict[Key, list[tuple[str, asyncio.Future[list[Passage]]]]] = {}
        self._task: asyncio.Task[None] | None = None
        self.batches: list[int] = []  # sizes of the batches run, for the benchmark

    async def search(self, query: str, *, mode: str, top_k: int, filters: dict[str, Any] | None,
                     chunks: bool = False) -> list[Passage]:
        future: asyncio.Future[list[Passage]] = asyncio.get_running_loop().create_future()
        key = (mode, top_k, json.dumps(filters or {}, sort_keys=True, default=str), chunks)
        self._pending.setdefault(key, []).append((query, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            key, waiting = next(iter(self._pending.items()))
            batch, rest = waiting[:self.max_batch], waiting[self.max_batch:]
            if rest:
                self._pending[key] = rest
            else:
                del self._pending[key]
            batch = [(q, f) for q, f in batch if not f.done()]  # a client that left needs no answer
            if not batch:
                continue
            self.batches.append(len(batch))
            try:
                results = await loop.run_in_executor(self.executor, partial(self._run, key, [q for q, _ in batch]))
            except Exception:
                if len(batch) == 1:
                    _fail(batch[0][1])
                    continue
                for query, future in batch:  # one bad query must not fail the others: run each alone
                    try:
                        found = await loop.run_in_executor(self.executor, partial(self._run, key, [query]))
                        _settle(future, found[0])
                    except Exception:
                        _fail(future)
                continue
            for (_, future), found in zip(batch, results):
                _settle(future, found)

    def _run(self, key: Key, queries: list[str]) -> list[list[Passage]]:
        mode, top_k, filters, chunks = key
        search = self.kb.search_batch if chunks else self.kb.search_documents_batch
        return search(queries, mode=mode, top_k=top_k, filters=json.loads(filters) or None)


def _settle(future: asyncio.Future[list[Passage]], value: list[Passage]) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future[list[Passage]]) -> None:
    import sys

    if not future.done():
        future.set_exception(sys.exc_info()[1] or RuntimeError("search failed"))
