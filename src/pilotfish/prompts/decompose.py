"""Decomposer: a small LLM splits a multi-hop question into ordered steps; a rule gate decides whether to.

Steps may refer to earlier answers as `#1`, `#2`; `substitute` fills them in once those answers are known.
The answer graph (a pipeline spec with a `[decompose]` table) answers the steps in order, each from its own
search, and hands the evidence of all steps and the step answers to the final answer.

The gate is a rule set, cheap enough to run on every question: comparisons (`both`, `which ... or ...`,
`older`, `first`), nested descriptions (`the X that ...`, `the father of the director of ...`) and long
questions naming several entities are decomposed; short single-fact questions are not
(benchmarks/multihop_pipelines.py --gate-only measures it).

>>> from pilotfish.llms.fake import FakeLLM
>>> d = Decomposer(FakeLLM(replies=['{"steps": ["Who directed Jaws?", "When was #1 born?"]}']))
>>> plan = d.plan("When was the director who made Jaws born?")
>>> plan.steps, Decomposer.substitute(plan.steps[1], ["Steven Spielberg"])
(['Who directed Jaws?', 'When was #1 born?'], 'When was Steven Spielberg born?')
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pilotfish.component import Component
from pilotfish.errors import ConfigError, OutputParseError
from pilotfish.llms.base import LLM, Usage
from pilotfish.prompts.builder import load_template

GATES = ("rules", "always")
_REF = re.compile(r"#(\d+)")
_COMPARATIVE = re.compile(r"\b(older|younger|earlier|later|first|last|longer|shorter|larger|smaller|bigger|"
                          r"taller|higher|lower|more|fewer|less|closer|farther|further)\b", re.I)
_BOTH = re.compile(r"\b(both|in common|share|same)\b", re.I)
_CHOICE = re.compile(r"\b(which|who|what)\b[^?]*\bor\b", re.I)
_RELATIVE = re.compile(r"(?<=\w)[,]?\s+(for |in |of |with |by )?(who|which|whose|whom|that|where)\s+\w+", re.I)
_DESCRIBED = re.compile(r"(?<!\bis )(?<!\bwas )(?<!\bare )(?<!\bwere )\bthe\s+\w+(\s+\w+)?\s+(of|for|behind)\s+"
                        r"(the\s+)?[A-Z]")
_POSSESSIVE = re.compile(r"\b[A-Z][\w.-]*'s\s+\w+")
_ENTITY = re.compile(r"(?<![.?!]\s)(?<!^)\b[A-Z][\w'&-]*(?:\s+(?:of|the|and|de|la|[A-Z][\w'&-]*))*")


_STOP = {"the", "and", "was", "were", "are", "is", "what", "which", "who", "whom", "whose", "when", "where", "how",
         "did", "does", "for", "from", "with", "that", "this", "than", "its", "his", "her", "their", "has", "have",
         "had", "been", "name", "many", "much", "one", "also", "both", "into", "of", "in", "on", "by", "an", "a"}


def _content(text: str) -> set[str]:
    """Content words of `text`, cut to five letters so that "performer" and "performed" agree."""
    return {w[:5] for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2 and w not in _STOP}


def gate_reasons(question: str) -> list[str]:
    """Why a question looks multi-hop (empty: it looks like one fact). Rules, no model."""
    words = question.split()
    if len(words) < 6:
        return []
    entities = len(_ENTITY.findall(question))
    reasons = []
    if _CHOICE.search(question) or _BOTH.search(question) or (_COMPARATIVE.search(question) and entities >= 2):
        reasons.append("compares two things")
    if _RELATIVE.search(question):
        reasons.append("describes an entity by another fact")
    if _DESCRIBED.search(question) or _POSSESSIVE.search(question):
        reasons.append("names an entity by its relation to another")
    if len(words) >= 14 and entities >= 2:
        reasons.append("long, with several names")
    return reasons


_NAME = r"[A-Z0-9\"'][\w.'&:\"-]*(?:\s+(?:[A-Z0-9\"'(][\w.'&:\")-]*|of|the|de|la|von|van|and the))*"
_FUNCTION_WORDS = {"are", "is", "were", "was", "do", "does", "did", "which", "what", "who", "whom", "whose", "when",
                   "where", "in", "between", "of", "the", "how", "why"}
_LEAD = r"(?:(?:Are|Is|Were|Was|Do|Does|Did|Which|What|Who|Whom|Whose|When|Where|In|Between|Of)\s+)?"
_PAIR_AND = re.compile(rf"\b{_LEAD}(?:both\s+)?(?:the\s+)?(?P<a>{_NAME})\s+and\s+(?:the\s+)?(?P<b>{_NAME})")
_PAIR_OR = re.compile(rf"(?:^|,\s*|\b(?:the|between)\s+)(?P<a>{_NAME})\s*,?\s+or\s+(?:the\s+)?(?P<b>{_NAME})")


def split_comparison(question: str) -> list[str] | None:
    """Steps for a comparison of two named things, by rule: the question asked of each, then the question
    itself ("Are both A and B in Ohio?" -> "Are A in Ohio?", "Are B in Ohio?", the question). None when
    the question does not compare two names."""
    for pattern in (_PAIR_OR, _PAIR_AND):
        matches = list(pattern.finditer(question))
        match = matches[-1] if matches else None  # the last pair: the options usually close the question
        if match is None or match.group("a").split()[0].lower() in _FUNCTION_WORDS:
            continue
        a, b = match.group("a").strip(" ,"), match.group("b").strip(" ,")
        if a.lower() == b.lower() or len(a) < 3 or len(b) < 3:
            continue
        steps = []
        for name in (a, b):
            step = question[: match.start()] + (match.group(0)[: match.start("a") - match.start()]) + name + \
                question[match.end():]
            steps.append(" ".join(re.sub(r"\bboth\s+", "", step, flags=re.I).split()))
        return [*steps, question]
    return None


@dataclass
class Plan:
    """The steps to answer (one step: the question itself), why, what planning cost, and the LLM's own
    steps when they were refused (`proposed`)."""

    steps: list[str]
    reason: str
    usage: Usage = field(default_factory=Usage)
    fallback: str | None = None
    proposed: list[str] | None = None
    search_only: bool = False  # the steps are searches (a rule split), not questions worth answering

    @property
    def multi_step(self) -> bool:
        return len(self.steps) > 1

    def to_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "reason": self.reason, "fallback": self.fallback, "proposed": self.proposed,
                "search_only": self.search_only, "usage": self.usage.to_dict()}


class Decomposer(Component):
    """Plans multi-hop questions with `llm` (None: the answer pipeline's cheapest LLM); the JSON schema is
    enforced where the backend can."""

    def __init__(self, llm: LLM | None = None, *, gate: str = "rules", max_steps: int = 4, max_tokens: int = 160,
                 answer_split_steps: bool = True) -> None:
        """`answer_split_steps`: answer the per-name steps of a comparison split by rule and give the final
        answer those answers as facts (True; helped qwen2.5-0.5b, misled qwen2.5-1.5b, see BENCHMARKS.md),
        or only search them (False)."""
        if gate not in GATES:
            raise ConfigError(f"unknown decomposition gate {gate!r}: use one of {', '.join(GATES)}")
        if not 2 <= max_steps <= 6:
            raise ConfigError(f"max_steps must be between 2 and 6, got {max_steps}")
        self.llm, self.gate, self.max_steps, self.max_tokens = llm, gate, max_steps, max_tokens
        self.answer_split_steps = answer_split_steps
        self._config = {"gate": gate, "max_steps": max_steps, "max_tokens": max_tokens,
                        "answer_split_steps": answer_split_steps}

    def plan(self, question: str) -> Plan:
        """The question's steps; a reply that is not valid JSON or refers forward falls back to one step."""
        if self.gate == "rules":
            reasons = gate_reasons(question)
            if not reasons:
                return Plan([question], "the gate found a single-fact question")
            reason = "; ".join(reasons)
            split = split_comparison(question) if "compares two things" in reasons else None
            if split is not None:  # a comparison of two names needs no LLM to plan
                return Plan(split, f"{reason}; split by rule", search_only=not self.answer_split_steps)
        else:
            reason = "always decompose"
        if self.llm is None:
            raise ConfigError("this Decomposer has no llm: give one, or use it inside an AnswerPipeline")
        schema = {"type": "object", "required": ["steps"],
                  "properties": {"steps": {"type": "array", "minItems": 2, "maxItems": self.max_steps,
                                           "items": {"type": "string", "maxLength": 200}}}}
        try:
            generation = self.llm.generate(self.messages(question), max_tokens=self.max_tokens, temperature=0.0,
                                           json_schema=schema)[0]
        except OutputParseError as err:
            return Plan([question], reason, usage=err.usage or Usage(calls=1),
                        fallback=f"answered as one step: the plan was not valid JSON ({err})")
        try:
            steps = self.validate(generation.json())
        except OutputParseError as err:
            return Plan([question], reason, usage=generation.usage,
                        fallback=f"answered as one step: the plan was unusable ({err})")
        problem = "the plan had one step" if len(steps) < 2 else self.plan_problem(question, steps)
        if problem is not None:
            return Plan([question], reason, usage=generation.usage, fallback=f"answered as one step: {problem}",
                        proposed=steps)
        return Plan(steps, reason, usage=generation.usage)

    @staticmethod
    def messages(question: str) -> list[dict[str, str]]:
        """The planning prompt: instructions, worked examples as earlier turns, then the question."""
        messages = [{"role": "system", "content": load_template("decompose").strip()}]
        for example, plan in json.loads(load_template("decompose_examples")):
            messages += [{"role": "user", "content": f"Question: {example}"},
                         {"role": "assistant", "content": json.dumps(plan)}]
        return messages + [{"role": "user", "content": f"Question: {question.strip()}"}]

    def validate(self, reply: Any) -> list[str]:
        """The steps of a reply `{"steps": [...]}`; OutputParseError when they are missing, too many, or a
        step refers to its own or a later answer."""
        steps = reply.get("steps") if isinstance(reply, dict) else None
        if not isinstance(steps, list) or not steps or not all(isinstance(s, str) and s.strip() for s in steps):
            raise OutputParseError("expected {\"steps\": [non-empty strings]}", str(reply))
        if len(steps) > self.max_steps:
            raise OutputParseError(f"{len(steps)} steps, more than max_steps={self.max_steps}", str(reply))
        for i, step in enumerate(steps, 1):
            bad = [int(n) for n in _REF.findall(step) if not 1 <= int(n) < i]
            if bad:
                raise OutputParseError(f"step {i} refers to #{bad[0]}, which is not an earlier step", str(reply))
        unique = list(dict.fromkeys(" ".join(s.split()) for s in steps))  # a repeated step adds nothing
        return unique

    @staticmethod
    def plan_problem(question: str, steps: Sequence[str]) -> str | None:
        """Why a syntactically valid plan is still no plan, or None. Small models copy the worked examples
        ("What is the nationality of #1?") or restate the whole question as the first step; a step must
        stay within the question's words (give or take one), and an early step must not be the question."""
        asked = _content(question)
        example_words = _content(load_template("decompose_examples"))
        for number, step in enumerate(steps, 1):
            words = _content(_REF.sub(" ", step))
            new = sorted(words - asked)
            if len(new) > 1 or set(new) & example_words:
                return f"step {number} brings words the question does not have ({', '.join(new)})"
            if number < len(steps) and len(steps) > 1 and asked and len(words & asked) >= 0.8 * len(asked):
                return f"step {number} repeats the whole question"
        return None

    @staticmethod
    def substitute(step: str, answers: Sequence[str]) -> str:
        """`step` with `#k` replaced by the k-th answer (1-based)."""
        return _REF.sub(lambda m: answers[int(m.group(1)) - 1] if int(m.group(1)) <= len(answers) else m.group(0),
                        step)
