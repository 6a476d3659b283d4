"""Confidence signals a cascade uses to accept a cheap model's answer or escalate (pluggable).

Every signal takes the model that answered, the messages it answered and its generation, and returns a
confidence in [0, 1] with the usage it spent finding out. The NLI groundedness checker plugs in the
same way once it exists.

>>> from pilotfish.llms.fake import FakeLLM
>>> from pilotfish.llms.base import Generation
>>> llm = FakeLLM(replies=["Paris", "Paris.", "Lyon", "paris"])
>>> confidence, usage = SelfConsistencySignal(samples=4).confidence(llm, [], Generation(text="Paris [1]"))
>>> confidence, usage.calls
(0.75, 1)
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from pilotfish.errors import ConfigError, OutputParseError
from pilotfish.llms.base import LLM, Generation, Message, Usage, parse_json
from pilotfish.prompts.builder import strip_citations


@runtime_checkable
class ConfidenceSignal(Protocol):
    name: str

    def confidence(self, llm: LLM, messages: Sequence[Message], generation: Generation, *, max_tokens: int = 256,
                   json_schema: dict[str, Any] | None = None) -> tuple[float, Usage]:
        """`max_tokens` and `json_schema` are those the answer was asked with."""
        ...


def normalise(text: str) -> str:
    """SQuAD-style answer normalisation, citations removed: what two answers must share to agree."""
    text = strip_citations(text).lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def agree(a: str, b: str) -> bool:
    """Same normalised answer, or one contained in the other as whole words (e.g. 'Paris' / 'Paris, France')."""
    x, y = normalise(a), normalise(b)
    if not x or not y:
        return x == y
    return x == y or f" {x} " in f" {y} " or f" {y} " in f" {x} "


class SelfConsistencySignal:
    """AutoMix-style agreement: the share of `samples` answers, sampled at `temperature`, that agree."""

    name = "self-consistency"

    def __init__(self, *, samples: int = 4, temperature: float = 0.7) -> None:
        if samples < 1:
            raise ConfigError(f"self-consistency needs at least one sample, got {samples}")
        self.samples, self.temperature = samples, temperature

    def confidence(self, llm: LLM, messages: Sequence[Message], generation: Generation, *, max_tokens: int = 256,
                   json_schema: dict[str, Any] | None = None) -> tuple[float, Usage]:
        try:
            drawn = llm.generate(messages, n=self.samples, temperature=self.temperature, max_tokens=max_tokens,
                                 json_schema=json_schema)
        except OutputParseError as err:  # a sample that broke the schema: count it as disagreeing
            return 0.0, err.usage or Usage(calls=1)
        usage = sum((g.usage for g in drawn), Usage())
        answer = answer_text(generation.text)
        return sum(agree(answer, answer_text(g.text)) for g in drawn) / len(drawn), usage


class SelfVerifySignal:
    """The model checks its own answer against the same prompt; yes/no, or P(yes) from log-probabilities."""

    name = "self-verify"
    SCHEMA = {"type": "object", "properties": {"verdict": {"type": "string", "enum": ["yes", "no"]}},
              "required": ["verdict"]}

    def confidence(self, llm: LLM, messages: Sequence[Message], generation: Generation, *, max_tokens: int = 256,
                   json_schema: dict[str, Any] | None = None) -> tuple[float, Usage]:
        question = "\n\n".join(m["content"] for m in messages if m["role"] == "user")
        check = [{"role": "system", "content": "You check whether an answer is correct and supported by the "
                                               'evidence. Reply in JSON: {"verdict": "yes"} or {"verdict": "no"}.'},
                 {"role": "user", "content": f"{question}\n\nProposed answer: {answer_text(generation.text)}\n"
                                             "Is the proposed answer correct and supported?"}]
        try:
            reply = llm.generate(check, max_tokens=16, temperature=0.0, json_schema=self.SCHEMA)[0]
            verdict = reply.json().get("verdict")
        except OutputParseError as err:
            return 0.0, err.usage or Usage(calls=1)
        return (1.0 if verdict == "yes" else 0.0), reply.usage


class LogprobSignal:
    """exp(mean token log-probability) of the answer: from the generation when the backend returned them,
    else by scoring the answer teacher-forced (llama.cpp's `score_completion`)."""

    name = "logprob"

    def confidence(self, llm: LLM, messages: Sequence[Message], generation: Generation, *, max_tokens: int = 256,
                   json_schema: dict[str, Any] | None = None) -> tuple[float, Usage]:
        usage = Usage()
        pairs = generation.token_logprobs
        if not pairs and hasattr(llm, "score_completion") and generation.text:
            scored, usage = llm.score_completion(messages, generation.text)
            pairs = tuple(scored)
        if not pairs:
            raise ConfigError(f"{getattr(llm, 'name', 'this model')} returned no token log-probabilities: use an "
                              "OpenAI-compatible endpoint with logprobs = true, or the self-consistency signal")
        values = [lp for _, lp in pairs]
        return math.exp(sum(values) / len(values)), usage


class NLISignal:
    """The NLI checker's `supported` for the answer against the evidence in the prompt: no LLM call."""

    name = "nli"

    def __init__(self, *, model: str = "nli-small") -> None:
        self.model = model
        self._checker: Any = None

    def confidence(self, llm: LLM, messages: Sequence[Message], generation: Generation, *, max_tokens: int = 256,
                   json_schema: dict[str, Any] | None = None) -> tuple[float, Usage]:
        from pilotfish.prompts.builder import parse_evidence
        from pilotfish.verification.checker import NLIGroundednessChecker

        if self._checker is None:
            self._checker = NLIGroundednessChecker.default(model=self.model)
        question, evidence = parse_evidence(messages)
        verdict = self._checker.check(answer_text(generation.text), evidence, question=question or None)
        return verdict.supported, verdict.usage


SIGNALS = {"self-consistency": SelfConsistencySignal, "self-verify": SelfVerifySignal, "logprob": LogprobSignal,
           "nli": NLISignal}


def make_signal(name: str, **options: object) -> ConfidenceSignal:
    if name not in SIGNALS:
        raise ConfigError(f"unknown confidence signal {name!r}: use one of {', '.join(SIGNALS)}")
    return SIGNALS[name](**options)  # type: ignore[arg-type]


def answer_text(text: str) -> str:
    """The answer part of a reply: a short-style JSON answer's "answer", else the text itself."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            value = parse_json(stripped)
            if isinstance(value, dict) and isinstance(value.get("answer"), str):
                return value["answer"]
        except OutputParseError:
            pass
    return stripped

