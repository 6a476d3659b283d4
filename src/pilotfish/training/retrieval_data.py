"""Training data for the retrieval models: (query, positive, negatives) pairs from a file, an evaluation
run or liked answers, hard negatives mined from a knowledge base, and a held-out split by query.

A pairs file has one JSON object a line: ``{"query": "...", "positive": "...", "negatives": ["...", ...]}``
(``negatives`` optional). A bad line stops the read with its number and what to write instead.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "pairs.jsonl"
>>> _ = path.write_text('{"query": "who wrote Hamlet?", "positive": "Shakespeare wrote Hamlet."}\\n'
...                     '{"query": "capital of France", "positive": "Paris", "negatives": ["Lyon"]}\\n')
>>> [(p.query, p.negatives) for p in read_pairs(path)]
[('who wrote Hamlet?', ()), ('capital of France', ('Lyon',))]
>>> _ = path.write_text('{"query": "q", "positive": ""}\\n')
>>> read_pairs(path)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
pilotfish.errors.ConfigError: ...pairs.jsonl line 1: "positive" must be a non-empty string; write ...
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pilotfish.errors import ConfigError
from pilotfish.jsonl import read_jsonl

EXAMPLE = '{"query": "...", "positive": "...", "negatives": ["...", ...]}'


@dataclass(frozen=True)
class RetrievalPair:
    """A query, a text that answers it, and texts that do not (hard negatives); `line` is where it was read."""

    query: str
    positive: str
    negatives: tuple[str, ...] = ()
    line: int = 0


def read_pairs(path: str | Path) -> list[RetrievalPair]:
    """The pairs of a JSONL(.gz) file; ConfigError naming the line for a bad line, an empty or missing file."""
    path = Path(path)
    pairs = []
    for n, record in read_jsonl(path, error=ConfigError):
        where = f"{path} line {n}"
        if not isinstance(record, dict):
            raise ConfigError(f"{where}: expected a JSON object; write {EXAMPLE}")
        for key in ("query", "positive"):
            value = record.get(key)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f'{where}: "{key}" must be a non-empty string; write {EXAMPLE}')
        negatives = record.get("negatives", [])
        if isinstance(negatives, str):
            negatives = [negatives]
        if not isinstance(negatives, list) or not all(isinstance(x, str) and x.strip() for x in negatives):
            raise ConfigError(f'{where}: "negatives" must be a list of non-empty strings; write {EXAMPLE}')
        unknown = sorted(set(record) - {"query", "positive", "negatives"})
        if unknown:
            raise ConfigError(f'{where}: unknown field {unknown[0]!r}; write {EXAMPLE}')
        pairs.append(RetrievalPair(record["query"], record["positive"], tuple(negatives), n))
    if not pairs:
        raise ConfigError(f"{path} holds no pairs; write one {EXAMPLE} a line")
    return pairs


def write_pairs(pairs: Iterable[RetrievalPair], path: str | Path) -> int:
    """Write `pairs` as a pairs file (the format `read_pairs` reads); returns how many."""
    n = 0
    with Path(path).open("w", encoding="utf-8") as fh:
        for p in pairs:
            record: dict[str, Any] = {"query": p.query, "positive": p.positive}
            if p.negatives:
                record["negatives"] = list(p.negatives)
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
    return n


def pairs_from_eval(records: Sequence[Mapping[str, Any]], gold: Mapping[str, Sequence[str]],
                    texts: Mapping[str, str]) -> list[RetrievalPair]:
    """Pairs from an evaluation run: each record's question with each gold document's text (`gold`: item id ->
    gold doc ids; `texts`: doc id -> text); the documents it retrieved that are not gold are its negatives."""
    pairs = []
    for record in records:
        gold_ids = [d for d in gold.get(str(record.get("id")), []) if d in texts]
        question = record.get("question")
        if not gold_ids or not isinstance(question, str) or not question.strip():
            continue
        negatives = tuple(texts[d] for d in record.get("retrieved", []) if d in texts and d not in gold_ids)
        pairs += [RetrievalPair(question, texts[d], negatives) for d in gold_ids]
    return pairs


def pairs_from_feedback(store: Any, *, max_evidence: int = 3) -> list[RetrievalPair]:
    """Pairs from answers rated thumbs-up in a knowledge base's feedback table: the question with each of the
    first `max_evidence` evidence chunks it was answered from that still exist."""
    from sqlalchemy import select

    from pilotfish.knowledge.store import ChunkRow, DocumentRow, FeedbackRow

    with store.reading() as session:
        liked = [(row.question, list(row.evidence or [])[:max_evidence])
                 for row in session.scalars(select(FeedbackRow).where(FeedbackRow.rating > 0).order_by(FeedbackRow.id))]
        wanted = {c for _, ids in liked for c in ids}
        found = session.execute(select(ChunkRow.chunk_id, ChunkRow.text, DocumentRow.title)
                                .join(DocumentRow, ChunkRow.document_id == DocumentRow.id)
                                .where(ChunkRow.chunk_id.in_(wanted))) if wanted else []
        text = {c: (f"{title}\n{body}" if title and not body.startswith(title) else body) for c, body, title in found}
    return [RetrievalPair(q, text[c]) for q, ids in liked if q and q.strip() for c in ids if c in text]


def document_texts(store: Any, doc_ids: Iterable[str]) -> dict[str, str]:
    """Doc id -> "title\\ntext" of the documents of a knowledge base's store that exist."""
    from sqlalchemy import select

    from pilotfish.knowledge.store import DocumentRow

    ids = list(dict.fromkeys(doc_ids))
    out: dict[str, str] = {}
    with store.reading() as session:
        for start in range(0, len(ids), 500):
            rows = session.execute(select(DocumentRow.doc_id, DocumentRow.title, DocumentRow.text)
                                   .where(DocumentRow.doc_id.in_(ids[start:start + 500])))
            out |= {d: (f"{t}\n{x}" if t and not x.startswith(t) else x) for d, t, x in rows}
    return out


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def same_text(passage: str, positive: str) -> bool:
    """Whether a retrieved chunk is (part of) a positive text, or the positive part of it, ignoring case and
    spacing: such a hit is not a negative.

    >>> same_text("Paris is the capital.", "Title\\nParis is  the capital. It is large.")
    True
    """
    a, b = _norm(passage), _norm(positive)
    return bool(a) and bool(b) and (a in b or b in a)


def mine_hard_negatives(pairs: Sequence[RetrievalPair], search: Callable[[list[str], int], list[list[Any]]], *,
                        per_query: int = 3, progress: Callable[[int], None] | None = None,
                        batch: int = 64) -> list[RetrievalPair]:
    """Each pair with up to `per_query` more negatives: the top hits of `search(queries, k)` (passages with
    `.text` and `.title`, e.g. a knowledge base's BM25) that are none of the query's positives."""
    if per_query <= 0 or not pairs:
        return list(pairs)
    positives: dict[str, list[str]] = {}
    for p in pairs:
        positives.setdefault(p.query, []).append(p.positive)
    queries = list(positives)
    deepest = max(len(v) for v in positives.values())
    mined: dict[str, list[str]] = {}
    for start in range(0, len(queries), batch):
        chunk = queries[start:start + batch]
        for query, hits in zip(chunk, search(chunk, per_query + deepest + 5)):
            found: list[str] = []
            for hit in hits:
                text = f"{hit.title}\n{hit.text}" if hit.title and not hit.text.startswith(hit.title) else hit.text
                if any(same_text(hit.text, pos) for pos in positives[query]) or text in found:
                    continue
                found.append(text)
                if len(found) == per_query:
                    break
            mined[query] = found
        if progress:
            progress(len(chunk))
    return [replace(p, negatives=tuple(dict.fromkeys((*p.negatives, *mined.get(p.query, []))))) for p in pairs]


def split_held_out(pairs: Sequence[RetrievalPair], share: float, *, seed: int = 0
                   ) -> tuple[list[RetrievalPair], list[RetrievalPair]]:
    """(train, held out): about `share` of the queries, with all their pairs, kept back.

    >>> train, held = split_held_out([RetrievalPair(f"q{i}", "p") for i in range(10)], 0.2)
    >>> len(train), len(held)
    (8, 2)
    """
    if not 0 <= share < 1:
        raise ConfigError(f"--held-out must be at least 0 and under 1, got {share:g}")
    queries = list(dict.fromkeys(p.query for p in pairs))
    random.Random(seed).shuffle(queries)
    held = set(queries[:round(len(queries) * share)])
    return [p for p in pairs if p.query not in held], [p for p in pairs if p.query in held]
