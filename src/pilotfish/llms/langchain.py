"""LangChainLLM: any LangChain chat model serves as a pilotfish LLM.

>>> from langchain_core.language_models.fake_chat_models import FakeListChatModel
>>> llm = LangChainLLM(model=FakeListChatModel(responses=["Paris [1]."]))
>>> llm.generate([{"role": "user", "content": "Capital of France?"}])[0].text
'Paris [1].'
"""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence
from typing import Any

from pilotfish.errors import LLMError
from pilotfish.llms.base import Generation, Message, Usage, parse_json

_ROLES = {"system": "system", "user": "human", "assistant": "ai"}


class LangChainLLM:
    """Wraps a `langchain_core` chat model; usage comes from its `usage_metadata` when it reports one."""

    def __init__(self, *, model: Any, name: str | None = None) -> None:
        if not hasattr(model, "invoke"):
            raise LLMError(f"{type(model).__name__} is not a LangChain chat model (it has no invoke method)")
        self.model = model
        self.name = name or getattr(model, "model_name", None) or getattr(model, "model", None) or type(model).__name__

    @staticmethod
    def _messages(messages: Sequence[Message]) -> list[tuple[str, str]]:
        return [(_ROLES.get(m["role"], m["role"]), m["content"]) for m in messages]

    def _bound(self, temperature: float, max_tokens: int, stop: Sequence[str] | None) -> Any:
        kwargs: dict[str, Any] = {}
        if stop:
            kwargs["stop"] = list(stop)
        # Not every chat model accepts these at call time; bind only what its class declares.
        fields = getattr(type(self.model), "model_fields", {})
        if "temperature" in fields:
            kwargs["temperature"] = temperature
        if "max_tokens" in fields:
            kwargs["max_tokens"] = max_tokens
        return self.model.bind(**kwargs) if kwargs else self.model

    def _generation(self, reply: Any, seconds: float, json_schema: dict[str, Any] | None) -> Generation:
        text = reply.content if isinstance(reply.content, str) else str(reply.content)
        if json_schema is not None:
            parse_json(text, json_schema)
        meta = getattr(reply, "usage_metadata", None) or {}
        usage = Usage(prompt_tokens=meta.get("input_tokens", 0), completion_tokens=meta.get("output_tokens", 0),
                      seconds=seconds, calls=1)
        return Generation(text=text, usage=usage, model=self.name)

    def generate(self, messages: Sequence[Message], *, n: int = 1, temperature: float = 0.0, max_tokens: int = 256,
                 stop: Sequence[str] | None = None, json_schema: dict[str, Any] | None = None) -> list[Generation]:
        out = []
        for _ in range(n):
            start = time.perf_counter()
            try:
                reply = self._bound(temperature, max_tokens, stop).invoke(self._messages(messages))
            except Exception as err:  # a LangChain model can raise anything; say which model failed
                raise LLMError(f"LangChain model {self.name} failed: {err}") from err
            out.append(self._generation(reply, time.perf_counter() - start, json_schema))
        return out

    async def agenerate(self, messages: Sequence[Message], *, n: int = 1, temperature: float = 0.0,
                        max_tokens: int = 256, stop: Sequence[str] | None = None,
                        json_schema: dict[str, Any] | None = None) -> list[Generation]:
        out = []
        for _ in range(n):
            start = time.perf_counter()
            try:
                reply = await self._bound(temperature, max_tokens, stop).ainvoke(self._messages(messages))
            except Exception as err:
                raise LLMError(f"LangChain model {self.name} failed: {err}") from err
            out.append(self._generation(reply, time.perf_counter() - start, json_schema))
        return out

    def stream(self, messages: Sequence[Message], *, temperature: float = 0.0, max_tokens: int = 256,
               stop: Sequence[str] | None = None) -> Generator[str, None, Usage]:
        start, pieces, meta = time.perf_counter(), 0, {}
        for chunk in self._bound(temperature, max_tokens, stop).stream(self._messages(messages)):
            meta = getattr(chunk, "usage_metadata", None) or meta  # models that report it do so on a chunk
            if isinstance(chunk.content, str) and chunk.content:
                pieces += 1
                yield chunk.content
        return Usage(prompt_tokens=meta.get("input_tokens", 0), completion_tokens=meta.get("output_tokens", pieces),
                     seconds=time.perf_counter() - start, calls=1)
