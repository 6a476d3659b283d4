"""The short answer format: `{"answer", "sources"}` filled under a JSON schema, rendered as "Paris [1][3]".
The quoted variant asks first for the evidence sentence the answer comes from (`{"quote", ...}`), which
`locate_quote` then finds in the passages, so a reader sees the exact supporting sentence.

>>> render_short_answer({"answer": "Paris", "sources": [1, 3]})
'Paris [1][3]'
>>> locate_quote("Paris is the capital.", ["Lyon is big.", "It says: Paris is the  capital. More."])
2
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pilotfish.errors import OutputParseError
from pilotfish.llms.base import LLM, Generation, Message, Usage
from pilotfish.prompts.builder import ABSTAIN_TEXT, is_abstention

SHORT_ANSWER_CHARS = 80
QUOTE_CHARS = 300


def short_answer_schema(passages: int) -> dict[str, Any]:
    """The JSON schema of a short answer citing up to three of `passages` numbered passages."""
    return {"type": "object",
            "properties": {"answer": {"type": "string", "maxLength": SHORT_ANSWER_CHARS},
                           "sources": {"type": "array", "maxItems": 3,
                                       "items": {"type": "integer", "minimum": 1, "maximum": max(1, passages)}}},
            "required": ["answer", "sources"]}


def quoted_answer_schema(passages: int) -> dict[str, Any]:
    """The short answer schema with the supporting evidence sentence asked for first."""
    schema = short_answer_schema(passages)
    return {**schema, "properties": {"quote": {"type": "string", "maxLength": QUOTE_CHARS}, **schema["properties"]},
            "required": ["quote", "answer", "sources"]}


def locate_quote(quote: str, passages: Sequence[str]) -> int | None:
    """The 1-based number of the first passage holding `quote` word for word (case, spacing and the
    quote's end punctuation ignored), or None."""
    needle = _squash(quote).strip(" .\"'")
    if len(needle) < 8:  # too short to count as a quoted sentence
        return None
    return next((i for i, text in enumerate(passages, 1) if needle in _squash(text)), None)


def find_quote(generation: Generation | None, passages: Sequence[str]) -> dict[str, Any] | None:
    """A quoted-style reply's sentence and where it stands in `passages`: `{"text", "passage", "found"}`
    (passage 1-based, None when not found word for word), or None when the reply quotes nothing."""
    try:
        reply = generation.json() if generation is not None else None
    except OutputParseError:
        return None
    quote = reply.get("quote") if isinstance(reply, dict) else None
    text = " ".join(quote.split()) if isinstance(quote, str) else ""
    if not text:
        return None
    passage = locate_quote(text, passages)
    return {"text": text, "passage": passage, "found": passage is not None}


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).lower()


def render_short_answer(reply: Any) -> str:
    """`{"answer": "Paris", "sources": [1, 3]}` -> "Paris [1][3]"; anything else is an OutputParseError."""
    if not isinstance(reply, dict) or not isinstance(reply.get("answer"), str):
        raise OutputParseError("expected an object with a string 'answer'", str(reply))
    answer = " ".join(reply["answer"].split())
    if not answer:  # an empty answer is no answer
        return ABSTAIN_TEXT
    sources = reply.get("sources") or []
    sources = sources if isinstance(sources, list) else [sources]
    numbers = (s for s in sources if isinstance(s, int) and not isinstance(s, bool))
    markers = "".join(f"[{n}]" for n in dict.fromkeys(numbers))
    if is_abstention(answer) or not markers:
        return answer
    return f"{answer} {markers}"


def generate_short(llm: LLM, messages: Sequence[Message], passages: int, *, max_tokens: int,
                   temperature: float = 0.0, quoted: bool = False) -> tuple[str, Usage, Generation | None]:
    """The LLM's short answer to `messages` rendered as "Paris [1][3]", what it cost, and its generation.
    A reply that breaks the schema is kept as plain text (generation None when the call itself failed).
    `quoted` asks for the supporting sentence first (read it from the generation's JSON "quote")."""
    schema = quoted_answer_schema(passages) if quoted else short_answer_schema(passages)
    try:
        generation = llm.generate(messages, max_tokens=max_tokens, temperature=temperature, json_schema=schema)[0]
    except OutputParseError as err:  # e.g. a server that ignores response_format
        return err.raw.strip(), err.usage or Usage(calls=1), None
    try:
        text = render_short_answer(generation.json())
    except OutputParseError:
        text = generation.text.strip()
    return text, generation.usage, generation
