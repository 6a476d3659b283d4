"""The LLM protocol every backend follows, and the usage record that travels with each generation.

>>> from pilotfish.llms.fake import FakeLLM
>>> llm = FakeLLM(replies=["Paris [1]."])
>>> llm.generate([{"role": "user", "content": "Capital of France?"}])[0].text
'Paris [1].'
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pilotfish.errors import OutputParseError

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}


@dataclass(frozen=True)
class Usage:
    """Tokens, seconds and money spent; adds up across calls (`a + b`)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    cost: float = 0.0
    calls: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens,
                     self.seconds + other.seconds, self.cost + other.cost, self.calls + other.calls)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens, "seconds": round(self.seconds, 4), "cost": self.cost,
                "calls": self.calls}


@dataclass(frozen=True)
class Generation:
    """One completion: its text, why it stopped, and what it cost (usage is per call, shared by n)."""

    text: str
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    token_logprobs: tuple[tuple[str, float], ...] | None = None
    details: dict[str, Any] | None = None  # e.g. a cascade's steps: which model answered and why

    def json(self) -> Any:
        """The text parsed as JSON, or `OutputParseError` carrying the raw text."""
        return parse_json(self.text)


@runtime_checkable
class LLM(Protocol):
    """What pilotfish needs from a language model. Backends: llamacpp, openai_compat, langchain, fake."""

    name: str

    def generate(self, messages: Sequence[Message], *, n: int = 1, temperature: float = 0.0, max_tokens: int = 256,
                 stop: Sequence[str] | None = None, json_schema: dict[str, Any] | None = None) -> list[Generation]: ...

    async def agenerate(self, messages: Sequence[Message], *, n: int = 1, temperature: float = 0.0,
                        max_tokens: int = 256, stop: Sequence[str] | None = None,
                        json_schema: dict[str, Any] | None = None) -> list[Generation]: ...

    def stream(self, messages: Sequence[Message], *, temperature: float = 0.0, max_tokens: int = 256,
               stop: Sequence[str] | None = None) -> Generator[str, None, Usage]:
        """Yield text pieces; the generator's return value is the call's `Usage`
        (`usage = yield from llm.stream(...)`, or see `collect_stream`)."""
        ...


def collect_stream(pieces: Generator[str, None, Usage | None], sink: list[str]) -> Generator[str, None, Usage]:
    """Re-yield a backend's stream, appending each piece to `sink`; return its usage (never None)."""
    usage = yield from _tee(pieces, sink)
    return usage or Usage(calls=1, completion_tokens=len(sink))


def drain_stream(stream: Generator[str, None, Usage | None]) -> tuple[list[str], Usage]:
    """All pieces of a backend's stream and the usage it returns, for callers that do not print as it comes."""
    pieces: list[str] = []
    gen = collect_stream(stream, pieces)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return pieces, stop.value


def _tee(pieces: Generator[str, None, Usage | None], sink: list[str]) -> Generator[str, None, Usage | None]:
    while True:
        try:
            piece = next(pieces)
        except StopIteration as stop:
            return stop.value
        sink.append(piece)
        yield piece


def parse_json(text: str, schema: dict[str, Any] | None = None, *, usage: Usage | None = None) -> Any:
    """Parse a model's JSON reply (tolerating a ```json fence); check required keys of an object schema.
    A failure raises `OutputParseError` carrying the raw text and the call's `usage`."""
    raw = text.strip()
    if raw.startswith("```"):
        raw = raw.strip("`")
        raw = raw[raw.find("\n") + 1:] if raw.lower().startswith("json") else raw
    start = min((i for i in (raw.find("{"), raw.find("[")) if i >= 0), default=-1)
    if start < 0:
        raise OutputParseError("the reply holds no JSON", text, usage)
    try:
        # strict=False: small models put raw newlines inside JSON strings, which is harmless to read
        value, _ = json.JSONDecoder(strict=False).raw_decode(raw[start:])
    except json.JSONDecodeError as err:
        raise OutputParseError(f"the reply is not valid JSON ({err.msg})", text, usage) from err
    if schema and schema.get("type") == "object":
        if not isinstance(value, dict):
            raise OutputParseError("expected a JSON object", text, usage)
        missing = [k for k in schema.get("required", []) if k not in value]
        if missing:
            raise OutputParseError(f"the JSON object lacks required keys {missing}", text, usage)
    return value


async def to_async_iterator(items: Iterator[str]) -> AsyncIterator[str]:
    for item in items:
        yield item
