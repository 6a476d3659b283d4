"""FakeLLM: scripted replies for unit tests. Never a stand-in for a real model in a feature.

>>> llm = FakeLLM(replies=["first", "second"])
>>> [llm.generate([{"role": "user", "content": "hi"}])[0].text for _ in range(3)]
['first', 'second', 'first']
>>> shout = FakeLLM(respond=lambda messages: messages[-1]["content"].upper())
>>> shout.generate([{"role": "user", "content": "a b"}])[0].text
'A B'
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Sequence
from typing import Any

from pilotfish.errors import ConfigError
from pilotfish.llms.base import Generation, Message, Usage, parse_json


class FakeLLM:
    """Replies cycle through `replies`, or come from `respond(messages)`; calls are recorded in `calls`."""

    def __init__(self, *, replies: Sequence[str] | None = None,
                 respond: Callable[[Sequence[Message]], str] | None = None, name: str = "fake") -> None:
        if (replies is None) == (respond is None):
            raise ConfigError("FakeLLM needs exactly one of replies=[...] or respond=callable")
        if replies is not None and not replies:
            raise ConfigError("FakeLLM replies must not be empty")
        self.name = name
        self._replies = list(replies or [])
        self._respond = respond
        self._next = 0
        self._lock = threading.Lock()
        self.calls: list[dict[str, Any]] = []

    def _reply(self, messages: Sequence[Message]) -> str:
        if self._respond is not None:
            return self._respond(messages)
        with self._lock:
            text = self._replies[self._next % len(self._replies)]
            self._next += 1
        return text

    def generate(self, messages: Sequence[Message], *, n: int = 1, temperature: float = 0.0, max_tokens: int = 256,
                 stop: Sequence[str] | None = None, json_schema: dict[str, Any] | None = None) -> list[Generation]:
        start = time.perf_counter()
        self.calls.append({"messages": list(messages), "n": n, "temperature": temperature,
                           "max_tokens": max_tokens, "stop": stop, "json_schema": json_schema})
        texts = [self._reply(messages) for _ in range(n)]
        prompt_tokens = sum(len(m["content"].split()) for m in messages)
        usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=sum(len(t.split()) for t in texts),
                      seconds=time.perf_counter() - start, calls=1)
        if json_schema is not None:
            for t in texts:
                parse_json(t, json_schema, usage=usage)
        return [Generation(text=t, usage=usage if i == 0 else Usage(), model=self.name) for i, t in enumerate(texts)]

    async def agenerate(self, messages: Sequence[Message], **kwargs: Any) -> list[Generation]:
        return self.generate(messages, **kwargs)

    def stream(self, messages: Sequence[Message], *, temperature: float = 0.0, max_tokens: int = 256,
               stop: Sequence[str] | None = None) -> Generator[str, None, Usage]:
        generation = self.generate(messages, temperature=temperature, max_tokens=max_tokens, stop=stop)[0]
        for i, word in enumerate(generation.text.split(" ")):
            yield word if i == 0 else " " + word
        return generation.usage
