"""QASynthesizer: a synthetic evaluation set written by an LLM from a knowledge base and filtered by small models.

For a user with no labelled data. Chunks are sampled (seeded) from the knowledge base; for each the LLM
writes one question with a short answer (JSON schema; templates ``synth_qa`` and ``synth_qa_example``). Four
kinds of filter then drop items, in order, each reason counted (`DROP_REASONS`):

* ``invalid``, ``too_short``, ``long_answer``, ``vague``, ``answer_in_question``: the reply is not the
  JSON asked for; a field is (nearly) empty; the answer is a sentence, not a short answer (over 12
  words, or cut at the schema's 80 characters); the question points at its source ("the passage",
  "this study"), which means nothing to a retriever; the question holds its own answer;
* ``unsupported``: fewer than ``min_support`` of the answer's normalised tokens occur in the chunk;
  ``off_chunk``: the question names something (a capitalised word) the chunk never mentions, as when a
  small model carries a name over from the prompt's worked example;
* ``unanswerable``: the cross-encoder reranker scores (question, source chunk) below ``min_score``. The
  score is an absolute relevance logit (ms-marco-l12: about 0 is a coin toss, relevant pairs score
  above 0), so the test does not depend on the knowledge base's own retrievers, whose recall the set
  is meant to measure; a "source ranks in the top-k" rule would keep only the questions they find;
* ``duplicate``: the question's embedding (the knowledge base's embedding model) has cosine
  ``>= dedup`` with a question already kept.

Sampling stops once ``n`` items are kept or ``oversample * n`` chunks were tried. Items are dicts in the
QA JSONL layout that `load_dataset` reads (``id``, ``question``, ``answers``, ``doc_ids``; ``chunk_id``
and ``score`` land in its metadata), so the file feeds straight into ``pilotfish eval run``.

Here a scripted stand-in writes every question; with a real model give ``llm=resolve_llm("qwen2.5-0.5b")``.
The filters are real: "Mount Oread" is not in the Lyon chunk, so the item written from it is dropped.

>>> import pathlib, tempfile
>>> from pilotfish.knowledge.base import KnowledgeBase
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> (root / "docs").mkdir()
>>> _ = (root / "docs" / "ku.txt").write_text("The University of Kansas has its main campus on Mount Oread.")
>>> _ = (root / "docs" / "lyon.txt").write_text("Lyon lies where the Rhone and the Saone rivers meet.")
>>> kb = KnowledgeBase.open(root / "kb", create=True, settings={"dense": False})
>>> _ = kb.ingest([root / "docs"])
>>> import json
>>> from pilotfish.llms.fake import FakeLLM
>>> writer = FakeLLM(respond=lambda messages: json.dumps(
...     {"question": "On which hill is the main campus of the University of Kansas?", "answer": "Mount Oread"}))
>>> result = QASynthesizer(kb=kb, llm=writer, min_words=5).run(2, seed=0)
>>> result.report.kept, result.report.dropped["unsupported"], result.items[0]["answers"]
(1, 1, ['Mount Oread'])
"""

from __future__ import annotations

import logging
import math
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pilotfish.errors import ConfigError, OutputParseError
from pilotfish.evaluation.metrics import normalize_answer
from pilotfish.llms.base import LLM, Message, Usage
from pilotfish.models.embedding import Embedder
from pilotfish.prompts.builder import load_template
from pilotfish.retrievers.corpus import CorpusRow
from pilotfish.retrievers.rerank import CrossEncoderReranker

if TYPE_CHECKING:
    import numpy as np

    from pilotfish.knowledge.base import KnowledgeBase

logger = logging.getLogger(__name__)

DROP_REASONS = {  # why an item was dropped, in the order the filters run
    "invalid": "the reply is not the JSON object asked for",
    "too_short": "the question or the answer is (nearly) empty",
    "long_answer": "the answer is a sentence, not a short answer",
    "vague": "the question points at 'the passage' instead of naming its subject",
    "answer_in_question": "the question gives its answer away",
    "unsupported": "the answer's words are not in the chunk",
    "off_chunk": "the question names something the chunk does not mention (often copied from the prompt's example)",
    "unanswerable": "the reranker scores the source chunk below min_score",
    "duplicate": "a near-duplicate of a question already kept",
}
MAX_ANSWER_CHARS, MAX_ANSWER_WORDS = 80, 12
QA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"question": {"type": "string", "minLength": 10, "maxLength": 200},
                   "answer": {"type": "string", "minLength": 1, "maxLength": MAX_ANSWER_CHARS}},
    "required": ["question", "answer"],
    "additionalProperties": False,
}
_POINTS_AT_SOURCE = re.compile(r"\b(?:the|this|above|given) (?:passage|text|article|document|paragraph|excerpt)\b"
                               r"|\bthis (?:study|paper|abstract)\b", re.IGNORECASE)

Progress = Callable[[int, int], None]  # (items kept, chunks tried so far)


@dataclass(frozen=True)
class SynthReport:
    """What a run did: chunks eligible and tried, items kept, drops per filter, LLM usage, wall seconds."""

    requested: int
    eligible_chunks: int
    tried: int
    kept: int
    dropped: dict[str, int]
    usage: Usage
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"requested": self.requested, "eligible_chunks": self.eligible_chunks, "tried": self.tried,
                "kept": self.kept, "dropped": dict(self.dropped), "usage": self.usage.to_dict(),
                "seconds": round(self.seconds, 2)}


@dataclass(frozen=True)
class SynthResult:
    """The kept items (QA JSONL dicts, in the order they were kept) and the run's report."""

    items: list[dict[str, Any]]
    report: SynthReport
    examples: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # a few drops per reason, for a look


class QASynthesizer:
    """Writes question/answer pairs from sampled chunks with `llm` and keeps those that pass the filters.

    `reranker` and `embedder` are public so that a caller (or a test) can hand in its own objects with
    the same `score(pairs)` / `encode_queries(texts)` methods; both load their models on first use.
    """

    def __init__(self, *, kb: KnowledgeBase, llm: LLM, min_words: int = 30, oversample: float = 3.0,
                 min_score: float = 0.0, dedup: float = 0.9, min_support: float = 0.8,
                 reranker: str = "ms-marco-l12", embedding_model: str | None = None, max_tokens: int = 160,
                 temperature: float = 0.0) -> None:
        if min_words < 1:
            raise ConfigError(f"min_words must be at least 1, got {min_words}")
        if oversample < 1.0:
            raise ConfigError(f"oversample must be at least 1.0 (chunks tried per wanted item), got {oversample}")
        if not 0.0 < dedup <= 1.0:
            raise ConfigError(f"dedup is a cosine similarity in (0, 1], got {dedup}")
        if not 0.0 <= min_support <= 1.0:
            raise ConfigError(f"min_support is a fraction in [0, 1], got {min_support}")
        if max_tokens < 16:
            raise ConfigError(f"max_tokens must be at least 16, got {max_tokens}")
        self.kb, self.llm = kb, llm
        self.min_words, self.oversample, self.min_score = min_words, oversample, min_score
        self.dedup, self.min_support = dedup, min_support
        self.max_tokens, self.temperature = max_tokens, temperature
        self.reranker: Any = CrossEncoderReranker(model=reranker)
        self.embedder: Any = Embedder(model=embedding_model or kb.settings.get("embedding_model", "minilm-l6"))

    def eligible_chunks(self) -> list[CorpusRow]:
        """The knowledge base's chunks of at least `min_words` words (a KnowledgeBaseError when it is empty)."""
        return [row for row in self.kb.corpus().rows if len(row.text.split()) >= self.min_words]

    def run(self, n: int, *, seed: int = 0, progress: Progress | None = None) -> SynthResult:
        """Up to `n` filtered items from chunks sampled with `seed`; fewer when the chunks run out."""
        if n < 1:
            raise ConfigError(f"n must be at least 1 (the number of questions to write), got {n}")
        start = time.perf_counter()
        rows = self.eligible_chunks()
        if not rows:
            raise ConfigError(f"no chunk of {self.kb.directory} has {self.min_words} words or more; ingest longer "
                              "documents or lower min_words")
        candidates = random.Random(seed).sample(rows, min(len(rows), math.ceil(self.oversample * n)))
        items: list[dict[str, Any]] = []
        kept_vectors: list[np.ndarray] = []
        dropped = dict.fromkeys(DROP_REASONS, 0)
        examples: dict[str, list[dict[str, str]]] = {r: [] for r in DROP_REASONS}
        usage, tried = Usage(), 0
        for row in candidates:
            if len(items) >= n:
                break
            tried += 1
            qa, call_usage, reason, detail = self._write(row)
            usage += call_usage
            score, vector = None, None
            if reason is None:
                reason, score, vector = self._check(row, qa, kept_vectors)
            if reason is not None:
                dropped[reason] += 1
                if len(examples[reason]) < 3:
                    examples[reason].append({"chunk_id": row.chunk_id, **qa, **({"error": detail} if detail else {})})
                logger.debug("dropped (%s) %s: %s %s", reason, row.chunk_id, qa, detail)
            else:
                assert qa is not None and vector is not None and score is not None
                kept_vectors.append(vector)
                items.append({"id": f"synth-{len(items) + 1:04d}", "question": qa["question"],
                              "answers": [qa["answer"]], "doc_ids": [row.doc_id], "chunk_id": row.chunk_id,
                              "score": round(score, 3)})
            if progress is not None:
                progress(len(items), tried)
        report = SynthReport(requested=n, eligible_chunks=len(rows), tried=tried, kept=len(items), dropped=dropped,
                             usage=usage, seconds=time.perf_counter() - start)
        return SynthResult(items, report, {r: e for r, e in examples.items() if e})

    # -- one chunk ------------------------------------------------------------------------------------
    def _write(self, row: CorpusRow) -> tuple[dict[str, str], Usage, str | None, str]:
        """The LLM's question and answer for `row`, the call's usage, and the drop reason (None when the
        reply is usable) with what the parser said, if anything."""
        try:
            generation = self.llm.generate(qa_messages(row.text, row.title), temperature=self.temperature,
                                           max_tokens=self.max_tokens, json_schema=QA_SCHEMA)[0]
            value = generation.json()
        except OutputParseError as err:
            return {}, err.usage or Usage(calls=1), "invalid", str(err)[:200]
        question = value.get("question") if isinstance(value, dict) else None
        answer = value.get("answer") if isinstance(value, dict) else None
        if not isinstance(question, str) or not isinstance(answer, str):
            return {}, generation.usage, "invalid", f"not a question and answer string: {generation.text[:200]}"
        qa = {"question": " ".join(question.split()), "answer": " ".join(answer.split())}
        return qa, generation.usage, _reply_problem(qa["question"], qa["answer"]), ""

    def _check(self, row: CorpusRow, qa: dict[str, str],
               kept: Sequence[np.ndarray]) -> tuple[str | None, float | None, np.ndarray | None]:
        """(drop reason or None, reranker score, question vector), running the cheap filters first."""
        if support(qa["answer"], f"{row.title} {row.text}") < self.min_support:
            return "unsupported", None, None
        if foreign_names(qa["question"], f"{row.title} {row.text}"):
            return "off_chunk", None, None
        passage = f"{row.title}\n{row.text}" if row.title and not row.text.startswith(row.title) else row.text
        score = float(self.reranker.score([(qa["question"], passage)])[0])
        if score < self.min_score:
            return "unanswerable", score, None
        vector = self.embedder.encode_queries([qa["question"]])[0]
        if any(float(vector @ other) >= self.dedup for other in kept):
            return "duplicate", score, vector
        return None, score, vector


def _reply_problem(question: str, answer: str) -> str | None:
    """The DROP_REASONS key of what is wrong with a parsed question and answer, or None."""
    if len(question.split()) < 3 or not normalize_answer(answer):
        return "too_short"
    if len(answer) >= MAX_ANSWER_CHARS or len(answer.split()) > MAX_ANSWER_WORDS:  # a sentence, or cut short
        return "long_answer"
    if _POINTS_AT_SOURCE.search(question):
        return "vague"
    if support(answer, question) == 1.0:
        return "answer_in_question"
    return None


def qa_messages(text: str, title: str = "") -> list[Message]:
    """The chat for one chunk: the instructions on a worked example (template synth_qa_example: its
    passage, then the reply), then the same instructions on the chunk. An example given as a past turn
    is copied far less by small models than one quoted inside the instructions."""
    def ask(passage: str, heading: str) -> Message:
        return {"role": "user", "content": load_template("synth_qa").format(
            title=f' (from "{heading}")' if heading else "", text=" ".join(passage.split()))}

    example_passage, example_reply = load_template("synth_qa_example").strip().split("\n", 1)
    return [ask(example_passage, ""), {"role": "assistant", "content": example_reply.strip()}, ask(text, title)]


def support(answer: str, text: str) -> float:
    """The fraction of the answer's normalised tokens that occur in `text` (0.0 for an empty answer).

    >>> support("Mount Oread", "Its campus is on Mount Oread.")
    1.0
    >>> support("the Eiffel Tower", "The tower is in Paris.")
    0.5
    """
    tokens = normalize_answer(answer).split()
    if not tokens:
        return 0.0
    present = set(normalize_answer(text).split())
    return sum(t in present for t in tokens) / len(tokens)


def foreign_names(question: str, text: str) -> list[str]:
    """Capitalised words of the question (past its first word) that `text` never mentions.

    >>> foreign_names("What is the radius in the University of Kansas cohort?", "The distal radius of T2DM patients")
    ['University', 'Kansas']
    """
    present = set(re.findall(r"[a-z0-9]+", text.lower()))
    words = re.findall(r"[A-Za-z][A-Za-z0-9'-]*", question)[1:]
    return [w for w in words if w[0].isupper() and w.lower().strip("'") not in present]
