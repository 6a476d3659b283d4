"""Service: what every request handler of `pilotfish serve` shares in one worker process.

The knowledge base, the served pipelines (built once; a variant without the table path for keys limited to
collections, because tables belong to no collection), the key store, the answer queues, the rate limiter
and the metrics. Answers run in worker threads; `stream_answer` bridges a pipeline's stream to asyncio and
cancels the generation when the consumer stops early (a client that went away).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from pilotfish.answer.build import build
from pilotfish.answer.graph import AnswerPipeline
from pilotfish.errors import ConfigError, GenerationCancelled
from pilotfish.knowledge.base import KnowledgeBase
from pilotfish.llms.base import LLM
from pilotfish.serve.batcher import SearchBatcher
from pilotfish.serve.config import ServeConfig
from pilotfish.serve.keys import ApiKey, KeyStore
from pilotfish.serve.limits import RateLimiter
from pilotfish.serve.metrics import ServerMetrics
from pilotfish.serve.queue import AnswerQueue
from pilotfish.serve.views import error_body, sse
from pilotfish.types import Answer


class RequestError(Exception):
    """A request the server refuses: HTTP status, a message that says what to do, and an OpenAI error type."""

    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error", code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.headers = status, message, kind, code, headers or {}


class Service:
    def __init__(self, config: ServeConfig, *, kb: KnowledgeBase | None = None,
                 llms: Mapping[str, LLM] | None = None) -> None:
        self.config = config
        self.kb = kb if kb is not None else KnowledgeBase.open(config.kb, db=config.db)
        self.keys = KeyStore(self.kb.store)
        self.metrics = ServerMetrics()
        self.limiter = RateLimiter(per_minute=config.rate_per_minute, burst=config.burst)
        self._llms = dict(llms or {})
        self.pipelines: dict[str, AnswerPipeline] = {}
        for source in config.pipelines:
            pipeline = build(source, self.kb, llm=config.llm, llms=self._llms, log=config.log)
            name = pipeline.spec.name
            if name in self.pipelines:
                raise ConfigError(f"two served pipelines are named {name!r}: rename one in its file ([pipeline] name)")
            self.pipelines[name] = pipeline
        self.default = next(iter(self.pipelines))
        self._text_only: dict[str, AnswerPipeline] = {}
        self._local: dict[int, bool] = {}  # id of a served pipeline -> does it run a llama.cpp model
        self._build_lock = threading.Lock()
        self.local = AnswerQueue(concurrency=config.local_concurrency, size=config.queue_size,
                                 max_wait=config.queue_wait_seconds)
        self.api = AnswerQueue(concurrency=config.api_concurrency, size=config.queue_size,
                               max_wait=config.queue_wait_seconds)
        self.ingest_lock = asyncio.Lock()
        self.executor = ThreadPoolExecutor(max_workers=config.local_concurrency + config.api_concurrency + 2,
                                           thread_name_prefix="pilotfish-answer")
        self.searches = SearchBatcher(self.kb)

    # -- pipelines -----------------------------------------------------------------------------
    def pipeline(self, name: str | None, key: ApiKey | None) -> AnswerPipeline:
        """The served pipeline called `name` (the default when empty), as this key may use it."""
        chosen = name or self.default
        if chosen not in self.pipelines:
            raise RequestError(404, f"no pipeline named {chosen!r} is served here; GET /v1/models lists "
                                    f"{', '.join(self.pipelines)}", code="model_not_found")
        pipeline = self.pipelines[chosen]
        if key is None or key.collections is None or pipeline.spec.tables is None:
            return pipeline
        with self._build_lock:  # tables belong to no collection: a limited key reads documents only
            if chosen not in self._text_only:
                spec = replace(pipeline.spec, tables=replace(pipeline.spec.tables, route="text"))
                self._text_only[chosen] = build(spec, self.kb, llm=self.config.llm, llms=self._llms,
                                                log=self.config.log)
            return self._text_only[chosen]

    def queue_for(self, pipeline: AnswerPipeline) -> AnswerQueue:
        local = self._local.get(id(pipeline))
        if local is None:  # walked once per served pipeline, not per request
            local = self._local[id(pipeline)] = uses_local_model(pipeline)
        return self.local if local else self.api

    def check_question(self, question: str) -> None:
        if len(question) > self.config.max_question_chars:
            raise RequestError(413, f"the question has {len(question)} characters; the limit is "
                                    f"{self.config.max_question_chars}", code="question_too_long")

    # -- access --------------------------------------------------------------------------------
    @staticmethod
    def filters(key: ApiKey | None, requested: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The filters a request runs with: the client's, narrowed to the key's collections (enforced here,
        never left to the client)."""
        wanted = dict(requested or {})
        if key is None or key.collections is None:
            return wanted or None
        asked = wanted.get("collection")
        if asked is None:
            wanted["collection"] = list(key.collections)
            return wanted
        asked_set = {str(a) for a in (asked if isinstance(asked, (list, tuple)) else [asked])}
        allowed = sorted(asked_set & set(key.collections))
        if not allowed:
            raise RequestError(403, f"this key may read only the collections {', '.join(key.collections)}",
                               kind="permission_error", code="collection_forbidden")
        wanted["collection"] = allowed
        return wanted

    # -- running answers -------------------------------------------------------------------------
    async def stream_answer(self, pipeline: AnswerPipeline, make: Callable[[threading.Event], Iterator[Any]]
                            ) -> AsyncIterator[Any]:
        """The items of `make(cancel)` (a pipeline or chat stream) as they come, run in a worker thread while
        holding an answer slot. If the consumer stops early, `cancel` is set, and the slot is held until the
        thread has stopped, so a local model never runs two generations at once."""
        queue = self.queue_for(pipeline)
        self.metrics.queue_depth.inc()
        entered = False
        try:
            async with queue.slot() as waited:
                entered = True
                self.metrics.queue_depth.dec()
                self.metrics.queue_wait.observe(waited)
                self.metrics.running.inc()
                try:
                    async for item in self._in_thread(make):
                        yield item
                finally:
                    self.metrics.running.dec()
        finally:
            if not entered:
                self.metrics.queue_depth.dec()

    async def _in_thread(self, make: Callable[[threading.Event], Iterator[Any]]) -> AsyncIterator[Any]:
        loop = asyncio.get_running_loop()
        items: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        cancel = threading.Event()

        def work() -> None:
            try:
                for item in make(cancel):
                    loop.call_soon_threadsafe(items.put_nowait, ("item", item))
            except BaseException as err:  # handed to the consumer, which re-raises it
                loop.call_soon_threadsafe(items.put_nowait, ("error", err))
            else:
                loop.call_soon_threadsafe(items.put_nowait, ("done", None))

        future = loop.run_in_executor(self.executor, work)
        finished = False
        try:
            while True:
                kind, value = await items.get()
                if kind == "item":
                    yield value
                elif kind == "error":
                    finished = True
                    raise value
                else:
                    finished = True
                    return
        finally:
            if not finished:
                cancel.set()
                self.metrics.cancelled.inc()
            try:
                await asyncio.shield(future)
            except (GenerationCancelled, asyncio.CancelledError):
                pass

    async def events(self, pipeline: AnswerPipeline, make: Callable[[threading.Event], Iterator[Any]], *,
                     piece: Callable[[str], str], done: Callable[[Answer], str], error_event: str | None = None,
                     head: str = "", tail: str = "") -> AsyncIterator[str]:
        """The server-sent events of one streamed answer: `head`, `piece(text)` per piece, `done(answer)`, `tail`.
        A failure mid-answer becomes an OpenAI-shaped error event instead of `done`. Awaiting this waits for the
        answer slot and the first item, so a full queue is still a 429, not a broken stream."""
        stream = self.stream_answer(pipeline, make)
        first = await anext(stream)

        async def relay() -> AsyncIterator[str]:
            if head:
                yield head
            try:
                item = first
                while not isinstance(item, Answer):
                    yield piece(item)
                    item = await anext(stream)
                yield done(item)
                async for _ in stream:  # the Answer is the last item: let the worker thread end normally
                    pass
            except Exception as err:  # the model failed mid-answer
                yield sse(error_body(f"the answer failed: {err}", "server_error", "generation_failed"), error_event)
            finally:
                await stream.aclose()
            if tail:
                yield tail

        return relay()

    async def answer(self, pipeline: AnswerPipeline, make: Callable[[threading.Event], Iterator[Any]]) -> Answer:
        """The finished Answer (the stream's last item)."""
        last = None
        async for item in self.stream_answer(pipeline, make):
            last = item
        if not isinstance(last, Answer):
            raise RuntimeError(f"the answer stream ended without an Answer (last item: {type(last).__name__})")
        return last

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def uses_local_model(pipeline: AnswerPipeline) -> bool:
    """True when any LLM of the pipeline runs in this process through llama.cpp (one generation at a time)."""
    seen: set[int] = set()

    def walk(obj: Any, depth: int) -> bool:
        if obj is None or id(obj) in seen or depth > 3:
            return False
        seen.add(id(obj))
        if type(obj).__name__ == "LlamaCppLLM":
            return True
        if type(obj).__name__ == "LoggingLLM":  # the answer log's wrapper is no step deeper than the model it wraps
            return walk(obj.llm, depth)
        if isinstance(obj, Mapping):
            return any(walk(v, depth + 1) for v in obj.values())
        if isinstance(obj, (list, tuple)):
            return any(walk(v, depth + 1) for v in obj)
        fields = getattr(obj, "__dict__", None)
        return isinstance(fields, dict) and any(walk(v, depth + 1) for k, v in fields.items() if k != "kb")

    return walk(pipeline.parts, 0)
