"""LangChainLLM: a LangChain chat model as a pilotfish LLM, inside the answer pipeline."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from pilotfish.errors import LLMError, OutputParseError
from pilotfish.llms.base import LLM, drain_stream
from pilotfish.llms.langchain import LangChainLLM


def test_generate_stream_async_and_protocol() -> None:
    llm = LangChainLLM(model=FakeListChatModel(responses=["Paris [1].", '{"city": "Rome"}', "Oslo"]))
    assert isinstance(llm, LLM)
    briefed = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "x"}]
    assert llm.generate(briefed)[0].text == "Paris [1]."
    schema = {"type": "object", "required": ["city"]}
    assert llm.generate([{"role": "user", "content": "x"}], json_schema=schema)[0].json() == {"city": "Rome"}
    pieces, usage = drain_stream(llm.stream([{"role": "user", "content": "x"}]))
    assert "".join(pieces) == "Oslo" and usage.calls == 1 and usage.completion_tokens == len(pieces)
    assert asyncio.run(llm.agenerate([{"role": "user", "content": "x"}]))[0].text == "Paris [1]."


def test_bad_json_and_non_models() -> None:
    llm = LangChainLLM(model=FakeListChatModel(responses=["no json"]))
    with pytest.raises(OutputParseError):
        llm.generate([{"role": "user", "content": "x"}], json_schema={"type": "object"})
    with pytest.raises(LLMError, match="not a LangChain chat model"):
        LangChainLLM(model=object())
