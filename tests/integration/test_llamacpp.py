"""LlamaCppLLM in process with the real SmolLM2-135M: generation, usage, JSON grammar, streaming."""

from __future__ import annotations

import asyncio

import pytest

from pilotfish.llms.base import drain_stream
from pilotfish.llms.llamacpp import LlamaCppLLM

pytestmark = pytest.mark.integration

MESSAGES = [{"role": "user", "content": "Name one colour of the rainbow."}]


@pytest.fixture(scope="module")
def llm() -> LlamaCppLLM:
    return LlamaCppLLM(model="smollm2-135m", n_ctx=1024)


def test_generate_counts_tokens_and_time(llm: LlamaCppLLM) -> None:
    gen = llm.generate(MESSAGES, max_tokens=12)[0]
    assert gen.text.strip() and gen.model == "smollm2-135m"
    assert gen.usage.prompt_tokens > 5 and 0 < gen.usage.completion_tokens <= 12 and gen.usage.seconds > 0
    assert gen.usage.cost == 0.0  # local: tokens and seconds counted, no money


def test_json_schema_is_enforced_by_grammar(llm: LlamaCppLLM) -> None:
    schema = {"type": "object", "properties": {"colour": {"type": "string"}}, "required": ["colour"]}
    gen = llm.generate(MESSAGES, json_schema=schema, max_tokens=40)[0]
    assert isinstance(gen.json()["colour"], str)


def test_n_samples_and_stream_and_async(llm: LlamaCppLLM) -> None:
    gens = llm.generate(MESSAGES, n=2, temperature=1.0, max_tokens=10)
    assert len(gens) == 2 and gens[1].usage.calls == 1
    pieces = list(llm.stream(MESSAGES, max_tokens=10))
    assert len(pieces) > 1


def test_stream_reports_the_same_usage_as_generate(llm: LlamaCppLLM) -> None:
    """llama.cpp streams no usage; the backend counts the prompt with the GGUF's chat template."""
    for max_tokens in (6, 64):  # cut at max_tokens, and (likely) stopped by the model
        expected = llm.generate(MESSAGES, max_tokens=max_tokens)[0].usage
        pieces, got = drain_stream(llm.stream(MESSAGES, max_tokens=max_tokens))
        assert "".join(pieces).strip() and got.calls == 1
        assert got.prompt_tokens == expected.prompt_tokens
        assert abs(got.completion_tokens - expected.completion_tokens) <= 1

    assert asyncio.run(llm.agenerate(MESSAGES, max_tokens=4))[0].text is not None


def test_scoring_a_completion_matches_greedy_generation(llm: LlamaCppLLM) -> None:
    text = llm.generate(MESSAGES, max_tokens=8)[0].text
    scored, usage = llm.score_completion(MESSAGES, text)
    again, _ = llm.score_completion(MESSAGES, text)  # served from the cached prefix: same numbers
    assert [t for t, _ in scored] and "".join(t for t, _ in scored) == text
    assert all(lp <= 0.0 for _, lp in scored) and usage.calls == 1 and usage.completion_tokens == 0
    assert [round(lp, 4) for _, lp in scored] == [round(lp, 4) for _, lp in again]
    odd, _ = llm.score_completion(MESSAGES, "Purple dragons eat spoons quietly.")
    greedy_mean = sum(lp for _, lp in scored) / len(scored)
    assert greedy_mean > sum(lp for _, lp in odd) / len(odd)  # its own greedy reply is the likelier one


def test_option_probabilities_sum_to_one_and_follow_the_prompt(llm: LlamaCppLLM) -> None:
    ask = [{"role": "user", "content": "Is the sky blue on a clear day? Answer Yes or No."}]
    probs, usage = llm.option_probs(ask, ["Yes", "No"])
    assert set(probs) == {"Yes", "No"} and abs(sum(probs.values()) - 1.0) < 1e-9 and usage.prompt_tokens > 5
    text = llm.generate(ask, max_tokens=2)[0].text.strip()
    if text.startswith(("Yes", "No")):  # greedy decoding takes the likelier option
        assert text.startswith(max(probs, key=probs.get))
