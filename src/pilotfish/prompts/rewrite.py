"""QueryRewriter: a small LLM reshapes the question before retrieval.

Three modes:
- `standalone`: a follow-up in a conversation becomes one standalone search query (no call without history);
- `multi`: the LLM writes `n` paraphrases; the question and each paraphrase are searched and the ranked lists
  are fused by reciprocal rank;
- `hyde`: the LLM writes a hypothetical passage that answers the question; its embedding searches the dense
  index, fused with the search for the question itself (HyDE, Gao et al. 2022).

A reply that breaks the format leaves the question as it was, and says so in `Rewrite.fallback`.

>>> from pilotfish.llms.fake import FakeLLM
>>> rewriter = QueryRewriter(FakeLLM(replies=['{"queries": ["founder of UIW", "UIW founding year"]}']), mode="multi")
>>> rewriter.rewrite("Who founded the University of the Incarnate Word?").queries
['Who founded the University of the Incarnate Word?', 'founder of UIW', 'UIW founding year']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pilotfish.component import Component
from pilotfish.errors import ConfigError, OutputParseError
from pilotfish.llms.base import LLM, Usage
from pilotfish.prompts.builder import load_template
from pilotfish.retrievers.hybrid import rrf_fuse
from pilotfish.types import Passage

MODES = ("standalone", "multi", "hyde")


@dataclass
class Rewrite:
    """What the rewriter made of a question: the queries to search (the question or its standalone form
    first), a HyDE passage, what the LLM cost, and why its reply was not used, if it was not."""

    queries: list[str]
    passage: str | None = None
    usage: Usage = field(default_factory=Usage)
    fallback: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"queries": self.queries, "passage": self.passage, "fallback": self.fallback,
                "usage": self.usage.to_dict()}


class QueryRewriter(Component):
    """Rewrites questions for search with `llm` (None: the answer pipeline's cheapest LLM)."""

    def __init__(self, llm: LLM | None = None, *, mode: str = "multi", n: int = 3, max_tokens: int = 160,
                 question_weight: float | None = None) -> None:
        """`question_weight`: the fusion weight of the question's own results, each rewrite's being 1; by
        default the question weighs as much as all its rewrites together (see BENCHMARKS.md, SciFact)."""
        if mode not in MODES:
            raise ConfigError(f"unknown rewrite mode {mode!r}: use one of {', '.join(MODES)}")
        if not 1 <= n <= 8:
            raise ConfigError(f"n (paraphrases) must be between 1 and 8, got {n}")
        if question_weight is not None and question_weight <= 0:
            raise ConfigError(f"question_weight must be positive, got {question_weight}")
        self.llm, self.mode, self.n, self.max_tokens = llm, mode, n, max_tokens
        self.question_weight = question_weight
        self._config = {"mode": mode, "n": n, "max_tokens": max_tokens, "question_weight": question_weight}

    def rewrite(self, question: str, history: Sequence[tuple[str, str]] = ()) -> Rewrite:
        """`history` holds (role, text) turns; only the standalone mode reads it."""
        if self.llm is None:
            raise ConfigError("this QueryRewriter has no llm: give one, or use it inside an AnswerPipeline")
        if self.mode == "standalone":
            return self._standalone(question, history)
        if self.mode == "hyde":
            return self._hyde(question)
        return self._multi(question)

    def _standalone(self, question: str, history: Sequence[tuple[str, str]]) -> Rewrite:
        if not history:
            return Rewrite([question])
        turns = "\n".join(f"{role}: {text}" for role, text in history)
        prompt = load_template("rewrite_followup").format(history=turns, question=question)
        generation = self.llm.generate([{"role": "user", "content": prompt}], max_tokens=64, temperature=0.0)[0]
        line = generation.text.strip().splitlines()[0].strip().strip('"') if generation.text.strip() else ""
        if len(line) <= 3:  # a useless rewrite changes nothing
            return Rewrite([question], usage=generation.usage, fallback="the rewrite was empty")
        return Rewrite([line], usage=generation.usage)

    def _multi(self, question: str) -> Rewrite:
        schema = {"type": "object", "required": ["queries"],
                  "properties": {"queries": {"type": "array", "minItems": 1, "maxItems": self.n,
                                             "items": {"type": "string", "maxLength": 200}}}}
        prompt = load_template("rewrite_multi").format(n=self.n, question=question.strip())
        try:
            generation = self.llm.generate([{"role": "user", "content": prompt}], max_tokens=self.max_tokens,
                                           temperature=0.0, json_schema=schema)[0]
            reply = generation.json()
        except OutputParseError as err:
            return Rewrite([question], usage=err.usage or Usage(calls=1), fallback=f"reply was not valid JSON: {err}")
        found = reply.get("queries") if isinstance(reply, dict) else None
        if not isinstance(found, list):
            return Rewrite([question], usage=generation.usage, fallback="reply had no list of queries")
        queries, seen = [question], {_key(question)}
        for q in found:
            if isinstance(q, str) and q.strip() and _key(q) not in seen:
                seen.add(_key(q))
                queries.append(" ".join(q.split()))
        return Rewrite(queries[: self.n + 1], usage=generation.usage)

    def _hyde(self, question: str) -> Rewrite:
        prompt = load_template("rewrite_hyde").format(question=question.strip())
        generation = self.llm.generate([{"role": "user", "content": prompt}], max_tokens=self.max_tokens,
                                       temperature=0.0)[0]
        passage = " ".join(generation.text.split())
        if len(passage.split()) < 4:
            return Rewrite([question], usage=generation.usage, fallback="the hypothetical passage was empty")
        return Rewrite([question], passage=passage, usage=generation.usage)

    def search(self, kb: Any, rewrite: Rewrite, *, question: str, mode: str = "hybrid", top_k: int = 5,
               filters: dict[str, Any] | None = None, rerank: bool = False, depth: int = 30) -> list[Passage]:
        """Search every query (and the HyDE passage's embedding), fuse the lists by reciprocal rank, and
        rerank the fused list against the original question when `rerank`."""
        depth = max(depth, top_k)
        lists = [kb.search(q, mode=mode, top_k=depth, filters=filters) for q in rewrite.queries]
        dense = kb.current_dense() if rewrite.passage else None
        if dense is not None:
            vector = dense.embedder.encode_documents([rewrite.passage])
            lists.append(dense.search_vectors(vector, top_k=depth, filters=filters)[0])
        if len(lists) == 1 and not rerank:
            return lists[0][:top_k]
        weight = self.question_weight if self.question_weight is not None else max(1.0, len(lists) - 1.0)
        fused = rrf_fuse(lists, top_k=depth, weights=[weight] + [1.0] * (len(lists) - 1))
        return kb.rerank(question, fused, top_k=top_k) if rerank else fused[:top_k]


def _key(text: str) -> str:
    return " ".join(text.lower().strip(" ?.!").split())
