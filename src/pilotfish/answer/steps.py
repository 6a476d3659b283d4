"""Answering a decomposer's plan step by step: each step is searched on its own, the earlier steps are
answered by the small LLM in the short answer format, and their answers fill the `#k` references of the
later steps. The final answer then reads the evidence of every step and the facts found.

>>> merge_evidence([["a1", "a2"], ["b1", "a1"]], limit=3, key=str)
['a1', 'b1', 'a2']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pilotfish.llms.base import LLM, Usage
from pilotfish.prompts.builder import PromptBuilder, is_abstention, strip_citations
from pilotfish.prompts.decompose import Decomposer
from pilotfish.prompts.short_answer import generate_short
from pilotfish.types import Passage

T = TypeVar("T")
_BUILDER = PromptBuilder(system_template="answer_short_system", user_template="answer_short_user",
                         max_chars_per_passage=800)


def merge_evidence(lists: Sequence[Sequence[T]], *, limit: int, key: Callable[[T], Any]) -> list[T]:
    """Round-robin over the steps' ranked lists (best of each step first), without repeats, up to `limit`."""
    merged: list[T] = []
    seen: set[Any] = set()
    for rank in range(max((len(x) for x in lists), default=0)):
        for ranking in lists:
            if rank < len(ranking) and key(ranking[rank]) not in seen and len(merged) < limit:
                seen.add(key(ranking[rank]))
                merged.append(ranking[rank])
    return merged


def short_answer(llm: LLM, question: str, passages: Sequence[Passage], max_tokens: int = 48) -> tuple[str, Usage]:
    """The LLM's short answer to `question` from `passages` (citations stripped), and what it cost."""
    text, usage, _ = generate_short(llm, _BUILDER.build(question, passages), len(passages), max_tokens=max_tokens)
    return strip_citations(text), usage


def answer_steps(question: str, steps: Sequence[str], *, search: Callable[[str], list[Passage]], llm: LLM,
                 limit: int, search_only: bool = False) -> dict[str, Any]:
    """Run a plan: the merged evidence, the facts found (one line per answered step), each step's record,
    and the usage of the step answers. The last step is searched but left to the final answer. The
    question's own search leads the merge, so a poor plan loses little of what the basic graph finds.
    `search_only` steps (a comparison split by rule: "Who is older, A?") are searched, never answered:
    their answers would only echo the name and mislead the final answer as facts."""
    answers: list[str] = []
    lists: list[list[Passage]] = [search(question)]
    records: list[dict[str, Any]] = []
    notes: list[str] = []
    usage = Usage()
    for number, step in enumerate(steps, 1):
        asked = Decomposer.substitute(step, answers)
        passages = search(asked)
        lists.append(passages)
        record: dict[str, Any] = {"step": number, "question": asked, "passages": [p.chunk_id for p in passages]}
        if number < len(steps) and not search_only:
            answer, used = short_answer(llm, asked, passages) if passages else ("", Usage())
            usage = usage + used
            known = bool(answer) and not is_abstention(answer)
            # an unknown answer keeps the step's own words in the later steps, which still search usefully
            answers.append(answer if known else asked.rstrip("?"))
            record["answer"] = answer if known else None
            if known:
                notes.append(f"{asked} {answer}")
        records.append(record)
    return {"passages": merge_evidence(lists, limit=limit, key=lambda p: p.chunk_id), "notes": notes,
            "steps": records, "usage": usage}
