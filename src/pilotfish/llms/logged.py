"""LoggingLLM: any LLM, with every call handed to a sink as a plain record (the answer log's source).

The wrapper changes nothing a caller sees: replies, usage and errors pass through, and every other attribute
(`passage_order`, `models`, a backend's own settings) is the wrapped model's. Besides `generate`, `agenerate`
and `stream`, the scoring calls `option_probs` and `score_completion` are recorded when the model has them.
A sink that fails is logged and ignored: recording never breaks an answer.

>>> from pilotfish.llms.fake import FakeLLM
>>> calls = []
>>> llm = LoggingLLM(FakeLLM(replies=["Paris [1]."]), calls.append)
>>> llm.generate([{"role": "user", "content": "Capital of France?"}])[0].text
'Paris [1].'
>>> record = calls[0]
>>> record["model"], record["method"], record["outputs"], record["prompt_tokens"], record["completion_tokens"]
('fake', 'generate', ['Paris [1].'], 3, 2)
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Generator, Sequence
from typing import Any

from pilotfish.llms.base import LLM, Generation, Message, Usage

log = logging.getLogger(__name__)

CallSink = Callable[[dict[str, Any]], None]
SCORING = ("option_probs", "score_completion")  # calls that return (result, usage) instead of generations


class LoggingLLM:
    """Wraps `llm`; each call becomes one record for `sink`: `created_at` (UTC), `model`, `method`, `messages`,
    `params`, `outputs`, `prompt_tokens`, `completion_tokens`, `seconds` (wall clock), `cost` and `error`."""

    def __init__(self, llm: LLM, sink: CallSink) -> None:
        self.llm, self.name, self._sink = llm, llm.name, sink

    def __getattr__(self, name: str) -> Any:  # passage_order, models, answers_whole, _config, ...
        if name.startswith("__") or name in ("llm", "_sink"):  # copy/pickle probes, a half-built instance
            raise AttributeError(name)
        value = getattr(self.llm, name)
        if name in SCORING and callable(value):
            return self._scoring(name, value)
        return value

    def generate(self, messages: Sequence[Message], *, n: int = 1, temperature: float = 0.0, max_tokens: int = 256,
                 stop: Sequence[str] | None = None, json_schema: dict[str, Any] | None = None) -> list[Generation]:
        params = _params(n=n, temperature=temperature, max_tokens=max_tokens, stop=stop, json_schema=json_schema)
        started, start = _now(), time.perf_counter()
        try:
            generations = self.llm.generate(messages, n=n, temperature=temperature, max_tokens=max_tokens, stop=stop,
                                            json_schema=json_schema)
        except Exception as err:
            self._failed("generate", messages, params, started, start, err)
            raise
        self._generated("generate", messages, params, started, start, generations)
        return generations

    async def agenerate(self, messages: Sequence[Message], *, n: int = 1, temperature: float = 0.0,
                        max_tokens: int = 256, stop: Sequence[str] | None = None,
                        json_schema: dict[str, Any] | None = None) -> list[Generation]:
        params = _params(n=n, temperature=temperature, max_tokens=max_tokens, stop=stop, json_schema=json_schema)
        started, start = _now(), time.perf_counter()
        try:
            generations = await self.llm.agenerate(messages, n=n, temperature=temperature, max_tokens=max_tokens,
                                                   stop=stop, json_schema=json_schema)
        except Exception as err:
            self._failed("agenerate", messages, params, started, start, err)
            raise
        self._generated("agenerate", messages, params, started, start, generations)
        return generations

    def stream(self, messages: Sequence[Message], *, temperature: float = 0.0, max_tokens: int = 256,
               stop: Sequence[str] | None = None) -> Generator[str, None, Usage]:
        """The wrapped stream, piece by piece; recorded once it ends (a stream stopped early is recorded with
        the text so far and `error` "stopped")."""
        params = _params(temperature=temperature, max_tokens=max_tokens, stop=stop)
        started, start = _now(), time.perf_counter()
        pieces: list[str] = []
        usage: Usage | None = None
        error: str | None = "stopped"
        inner = self.llm.stream(messages, temperature=temperature, max_tokens=max_tokens, stop=stop)
        try:
            while True:
                try:
                    piece = next(inner)
                except StopIteration as done:
                    usage, error = done.value, None
                    break
                pieces.append(piece)
                yield piece
        except Exception as err:
            error = _describe(err)
            raise
        finally:
            inner.close()
            used = usage or Usage(calls=1)
            self._emit({"created_at": started, "method": "stream", "messages": list(messages), "params": params,
                        "outputs": ["".join(pieces)], "seconds": time.perf_counter() - start, "error": error,
                        **_usage(used)})
        return usage if usage is not None else Usage(calls=1, completion_tokens=len(pieces))

    # -- recording --------------------------------------------------------------------------------
    def _scoring(self, method: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(messages: Sequence[Message], second: Any, *args: Any, **kwargs: Any) -> Any:
            params = {"options": list(second)} if method == "option_probs" else {"completion": str(second)}
            started, start = _now(), time.perf_counter()
            try:
                result, usage = fn(messages, second, *args, **kwargs)
            except Exception as err:
                self._failed(method, messages, params, started, start, err)
                raise
            self._emit({"created_at": started, "method": method, "messages": list(messages), "params": params,
                        "outputs": [_plain(result)], "seconds": time.perf_counter() - start, "error": None,
                        **_usage(usage)})
            return result, usage

        return call

    def _generated(self, method: str, messages: Sequence[Message], params: dict[str, Any], started: dt.datetime,
                   start: float, generations: list[Generation]) -> None:
        usage = sum((g.usage for g in generations), Usage())
        model = next((g.model for g in generations if g.model), "")
        self._emit({"created_at": started, "method": method, "messages": list(messages), "params": params,
                    "outputs": [g.text for g in generations], "seconds": time.perf_counter() - start, "error": None,
                    **_usage(usage), **({"model": model} if model else {})})

    def _failed(self, method: str, messages: Sequence[Message], params: dict[str, Any], started: dt.datetime,
                start: float, err: Exception) -> None:
        raw, usage = getattr(err, "raw", None), getattr(err, "usage", None)  # an OutputParseError keeps both
        self._emit({"created_at": started, "method": method, "messages": list(messages), "params": params,
                    "outputs": [raw] if isinstance(raw, str) else [], "seconds": time.perf_counter() - start,
                    "error": _describe(err), **_usage(usage if isinstance(usage, Usage) else Usage(calls=1))})

    def _emit(self, record: dict[str, Any]) -> None:
        record.setdefault("model", self.name)
        try:
            self._sink(record)
        except Exception as err:  # the log must never cost an answer
            log.warning("could not record an LLM call of %s: %s", self.name, err)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _params(**values: Any) -> dict[str, Any]:
    return {k: list(v) if k == "stop" else v for k, v in values.items() if v is not None}


def _usage(usage: Usage) -> dict[str, Any]:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens, "cost": usage.cost}


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def _plain(value: Any) -> Any:
    """A scoring result as JSON types: probabilities stay a dict, token log-probabilities become lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
