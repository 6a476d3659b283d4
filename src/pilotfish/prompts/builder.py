"""PromptBuilder: numbered evidence and the question, from the templates in prompts/templates/.

>>> from pilotfish.types import Passage
>>> b = PromptBuilder()
>>> msgs = b.build("Who?", [Passage("c1", "d1", "Ada wrote it.", 1.0, title="Notes")])
>>> msgs[1]["content"].splitlines()[1:4]
['<documents>', '[1] Notes: Ada wrote it.', '</documents>']
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

from pilotfish.component import Component
from pilotfish.errors import ConfigError
from pilotfish.llms.base import Message
from pilotfish.prompts.injection import defang
from pilotfish.types import Citation, Passage

ABSTAIN_TEXT = "I cannot answer this from the documents."
ORDERS = ("best_first", "best_last")
_CITATION = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")


@cache
def load_template(name: str) -> str:
    """The text of prompts/templates/NAME.txt (or NAME.json, for structured examples)."""
    try:
        folder = resources.files("pilotfish.prompts") / "templates"
        file = folder / f"{name}.txt"
        return (file if file.is_file() else folder / f"{name}.json").read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ConfigError(f"no prompt template named {name!r}") from err


class PromptBuilder(Component):
    """Builds the chat messages for a grounded answer; `max_chars_per_passage` bounds the prompt.

    Passages keep their rank as their number ([1] is the best); `order="best_last"` lists them from
    the weakest to the best, so the best passage sits next to the question (a per-model preference:
    measure it, as BENCHMARKS.md does for the local models on HotpotQA)."""

    def __init__(self, *, system_template: str = "answer_system", user_template: str = "answer_user",
                 max_chars_per_passage: int = 1200, order: str = "best_first") -> None:
        if max_chars_per_passage < 100:
            raise ConfigError(f"max_chars_per_passage must be >= 100, got {max_chars_per_passage}")
        if order not in ORDERS:
            raise ConfigError(f"unknown passage order {order!r}: use one of {', '.join(ORDERS)}")
        self._config = {"system_template": system_template, "user_template": user_template,
                        "max_chars_per_passage": max_chars_per_passage, "order": order}

    def format_evidence(self, passages: Sequence[Passage]) -> str:
        """The numbered passages, one per line, fenced between `<documents>` tags as data (see
        `prompts.injection`): a passage cannot start a line of its own, close the fence or open a chat turn."""
        limit = self._config["max_chars_per_passage"]
        lines = []
        for i, p in enumerate(passages, 1):
            text = defang(" ".join(p.text.split()))
            text = text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " ..."
            titled = p.title and not p.text.startswith(p.title)
            lines.append(f"[{i}] {defang(p.title)}: {text}" if titled else f"[{i}] {text}")
        ordered = list(reversed(lines)) if self._config["order"] == "best_last" else lines
        return "\n".join(["<documents>", *ordered, "</documents>"])

    def build(self, question: str, passages: Sequence[Passage], *, demos: Sequence[Any] = (),
              notes: Sequence[str] = ()) -> list[Message]:
        """`demos` (question/answer pairs, e.g. from `DemoRetriever`) go before the evidence; `notes` (e.g. the
        answers a decomposer's steps found) after it, before the question."""
        user = load_template(self._config["user_template"]).format(evidence=self.format_evidence(passages),
                                                                   question=question.strip())
        if notes:
            found = "\n".join(f"- {n}" for n in notes)
            user = user.replace("Question:", f"Facts found so far:\n{found}\n\nQuestion:", 1)
        if demos:
            shown = "\n\n".join(f"Question: {d.question}\nAnswer: {d.answer}" for d in demos)
            user = f"Examples of questions and answers:\n{shown}\n\n{user}"
        return [{"role": "system", "content": load_template(self._config["system_template"]).strip()},
                {"role": "user", "content": user}]


_EVIDENCE_LINE = re.compile(r"^\[(\d+)\] (.+)$")


def parse_evidence(messages: Sequence[Message]) -> tuple[str, list[str]]:
    """(question, evidence texts in number order) back out of a prompt `PromptBuilder.build` made: what a
    confidence signal that only sees the messages checks an answer against."""
    user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    numbered = sorted((int(m.group(1)), m.group(2)) for m in map(_EVIDENCE_LINE.match, user.splitlines()) if m)
    evidence = [text for _, text in numbered]
    question = next((line[len("Question:"):].strip() for line in reversed(user.splitlines())
                     if line.startswith("Question:")), "")
    return question, evidence


def parse_citations(text: str, passages: Sequence[Passage]) -> list[Citation]:
    """Citations `[n]` / `[n, m]` in `text`, in order of first use, mapped to `passages` (1-based)."""
    seen: dict[int, Citation] = {}
    for match in _CITATION.finditer(text):
        for number in re.split(r"\s*[,;]\s*", match.group(1)):
            n = int(number)
            if n in seen:
                continue
            if 1 <= n <= len(passages):
                p = passages[n - 1]
                seen[n] = Citation(marker=n, chunk_id=p.chunk_id, doc_id=p.doc_id, source=p.source)
            else:
                seen[n] = Citation(marker=n, known=False)
    return list(seen.values())


def strip_citations(text: str) -> str:
    """The text without its `[n]` / `[n, m]` markers (and the space they leave before punctuation)."""
    return re.sub(r"\s+([.,;:!?])", r"\1", _CITATION.sub("", text)).strip()


def is_abstention(text: str) -> bool:
    return "cannot answer" in text.lower() and len(text) < 200
