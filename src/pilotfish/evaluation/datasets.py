"""Evaluation sets: questions with gold answers and/or gold documents, read from five layouts.

* a JSONL(.gz) file of ``{"question": ..., "answers": [...]}`` lines (``"answer": "..."`` is accepted
  too; optional ``"id"``, ``"doc_ids"`` and ``"passages"``; any other key lands in ``metadata``);
* a HotpotQA-style JSONL(.gz) file (``"question"``, ``"answer"``, ``"context"``: [[title, [sentences]]],
  ``"supporting_facts"``: [[title, sentence index]]): the gold documents are the supporting titles and
  the corpus is every context paragraph, one per title;
* a 2WikiMultihopQA file: the HotpotQA layout plus ``"evidences"`` / ``"entity_ids"`` (format ``"2wiki"``);
  its sentences carry no leading space, so a paragraph's sentences are joined with one; ``"type"`` and
  ``"evidences"`` are kept in ``metadata``;
* a MuSiQue JSONL(.gz) file (``"id"``, ``"question"``, ``"answer"``, ``"answer_aliases"``,
  ``"paragraphs"``: [{"idx", "title", "paragraph_text", "is_supporting"}]): the answers are the answer and
  its aliases, the gold documents the supporting paragraphs, and the corpus every distinct paragraph of
  the file. A title can name different paragraphs in different questions, so a paragraph's doc id is its
  title when that title names one text in the file, else ``"<title> [<first 10 hex digits of the
  SHA-1 of its text>]"``, which does not depend on the order of the lines;
* a BEIR folder: ``corpus.jsonl(.gz)``, ``queries.jsonl(.gz)`` and ``qrels/<split>.tsv``.

Every bad line is reported with the file, its line number and what is wrong.

>>> import json, tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "qa.jsonl"
>>> _ = path.write_text(json.dumps({"question": "Capital of France?", "answer": "Paris"}) + "\\n")
>>> data = load_dataset(path)
>>> data.name, data.format, data.items[0].id, data.items[0].answers, data.corpus
('qa', 'qa', '1', ['Paris'], None)
>>> record = {"id": "2hop__1_2", "question": "Where was the author of Emma born?", "answer": "Steventon",
...           "answer_aliases": ["Steventon, Hampshire"], "paragraphs": [
...     {"idx": 0, "title": "Emma (novel)", "paragraph_text": "Emma is by Jane Austen.", "is_supporting": True},
...     {"idx": 1, "title": "Jane Austen", "paragraph_text": "Austen was born in Steventon.", "is_supporting": True},
...     {"idx": 2, "title": "Bath", "paragraph_text": "Bath is a city.", "is_supporting": False}]}
>>> _ = path.write_text(json.dumps(record) + "\\n")
>>> data = load_dataset(path)
>>> data.format, data.items[0].answers, data.items[0].gold_doc_ids, len(data.corpus)
('musique', ['Steventon', 'Steventon, Hampshire'], ['Emma (novel)', 'Jane Austen'], 3)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pilotfish.errors import ConfigError
from pilotfish.jsonl import read_jsonl

ACCEPTED = ('accepted formats: a JSONL(.gz) file of {"question": ..., "answers": [...]} lines (optional "id", '
            '"doc_ids", "passages"); a HotpotQA or 2WikiMultihopQA JSONL(.gz) file with "question", "answer", '
            '"context" and "supporting_facts"; a MuSiQue JSONL(.gz) file with "question", "answer" and '
            '"paragraphs"; or a BEIR folder holding corpus.jsonl(.gz), queries.jsonl(.gz) and qrels/<split>.tsv')
_QA_KEYS = {"id", "question", "answers", "answer", "doc_ids", "passages", "metadata"}


@dataclass
class EvalItem:
    """One question and what it is scored against; `answers` is empty for retrieval-only sets."""

    id: str
    question: str
    answers: list[str] = field(default_factory=list)
    gold_doc_ids: list[str] = field(default_factory=list)
    gold_passages: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalDataset:
    """Items, plus for BEIR and the multi-hop sets the corpus (``{"doc_id", "title", "text"}``) to build a KB from."""

    name: str
    items: list[EvalItem]
    corpus: list[dict[str, str]] | None = None
    format: str = "qa"  # "qa" | "hotpotqa" | "2wiki" | "musique" | "beir"

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[EvalItem]:
        return iter(self.items)


def load_dataset(path: str | Path, *, split: str = "test", name: str | None = None) -> EvalDataset:
    """Read an evaluation set; the layout is detected (see the module docstring). `split` picks BEIR qrels."""
    path = Path(path)
    if path.is_dir():
        if _first_existing(path, "corpus.jsonl") and _first_existing(path, "queries.jsonl") \
                and (path / "qrels").is_dir():
            return _load_beir(path, split, name or path.name)
        raise ConfigError(f"{path} is a folder but not a BEIR one (corpus.jsonl(.gz), queries.jsonl(.gz), "
                          f"qrels/); {ACCEPTED}")
    if not path.is_file():
        raise ConfigError(f"no evaluation data at {path}; {ACCEPTED}")
    if not path.name.endswith((".jsonl", ".jsonl.gz")):
        raise ConfigError(f"{path}: unknown layout (expected a .jsonl or .jsonl.gz file or a folder); {ACCEPTED}")
    records = list(_records(path))
    if not records:
        raise ConfigError(f"{path} holds no questions; {ACCEPTED}")
    name = name or path.name.removesuffix(".gz").removesuffix(".jsonl")
    first = records[0][1]
    if isinstance(first, dict) and "context" in first and "supporting_facts" in first:
        two_wiki = "evidences" in first or "entity_ids" in first
        return _load_hotpotqa(records, path, name, "2wiki" if two_wiki else "hotpotqa")
    if isinstance(first, dict) and "paragraphs" in first and "question" in first:
        return _load_musique(records, path, name)
    items = [_qa_item(record, number, path) for number, record in records]
    _check_unique([(item.id, number) for item, (number, _) in zip(items, records)], path)
    return EvalDataset(name, items, None, "qa")


# -- plain QA ---------------------------------------------------------------------------------------
def _qa_item(record: Any, number: int, path: Path) -> EvalItem:
    where = f"{path}:{number}"
    record = _object(record, where)
    question = _question(record, where)
    answers = _answers(record, where, required=False)
    doc_ids = _strings(record, "doc_ids", where)
    passages = _strings(record, "passages", where)
    if not answers and not doc_ids and not passages:
        raise ConfigError(f'{where}: nothing to score against; give "answers": [...] (or "answer": "..."), '
                          'or "doc_ids" / "passages" for a retrieval-only set')
    metadata = {k: v for k, v in record.items() if k not in _QA_KEYS}
    extra = record.get("metadata", {})
    if not isinstance(extra, dict):
        raise ConfigError(f'{where}: "metadata" must be a JSON object, got {type(extra).__name__}')
    metadata.update(extra)
    return EvalItem(_id(record, ("id",), where, default=str(number)), question, answers or [], doc_ids,
                    passages, metadata)


# -- HotpotQA and 2WikiMultihopQA ------------------------------------------------------------------
def _load_hotpotqa(records: list[tuple[int, Any]], path: Path, name: str, fmt: str) -> EvalDataset:
    corpus: dict[str, str] = {}  # title -> text; the first paragraph seen under a title wins
    items: list[EvalItem] = []
    joiner = " " if fmt == "2wiki" else ""  # HotpotQA sentences carry their own leading space
    kept = ("type", "evidences") if fmt == "2wiki" else ("type", "level")
    for number, record in records:
        where = f"{path}:{number}"
        record = _object(record, where)
        question = _question(record, where)
        answers = _answers(record, where, required=True) or []
        paragraphs = _context(record.get("context"), where)
        facts = _facts(record.get("supporting_facts"), where)
        for title, sentences in paragraphs:
            corpus.setdefault(title, joiner.join(sentences).strip())
        local = dict(paragraphs)
        gold = list(dict.fromkeys(title for title, _ in facts))
        metadata: dict[str, Any] = {
            "supporting_facts": [[t, i] for t, i in facts],
            "supporting_sentences": [local[t][i].strip() for t, i in facts if t in local and i < len(local[t])],
        }
        missing = [t for t in gold if t not in local]
        if missing:  # upstream quirk: some supporting paragraphs are absent from the item's context
            metadata["gold_titles_not_in_context"] = missing
        metadata.update({k: record[k] for k in kept if k in record})
        items.append(EvalItem(_id(record, ("_id", "id"), where, default=str(number)), question, answers, gold,
                              [joiner.join(local[t]).strip() for t in gold if t in local], metadata))
    _check_unique([(item.id, number) for item, (number, _) in zip(items, records)], path)
    docs = [{"doc_id": title, "title": title, "text": text} for title, text in corpus.items()]
    return EvalDataset(name, items, docs, fmt)


def _context(value: Any, where: str) -> list[tuple[str, list[str]]]:
    ok = isinstance(value, list) and all(
        isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and isinstance(p[1], list)
        and all(isinstance(s, str) for s in p[1]) for p in value)
    if not ok:
        raise ConfigError(f'{where}: "context" must be a list of [title, [sentence, ...]] pairs')
    return [(title, sentences) for title, sentences in value]


def _facts(value: Any, where: str) -> list[tuple[str, int]]:
    ok = isinstance(value, list) and all(
        isinstance(f, list) and len(f) == 2 and isinstance(f[0], str) and isinstance(f[1], int)
        and not isinstance(f[1], bool) and f[1] >= 0 for f in value)
    if not ok:
        raise ConfigError(f'{where}: "supporting_facts" must be a list of [title, sentence index] pairs')
    return [(title, index) for title, index in value]


# -- MuSiQue ---------------------------------------------------------------------------------------
def _load_musique(records: list[tuple[int, Any]], path: Path, name: str) -> EvalDataset:
    parsed: list[tuple[EvalItem, list[tuple[str, str, bool]]]] = []
    texts: dict[str, dict[str, None]] = {}  # title -> its distinct texts, in order of first appearance
    for number, record in records:
        where = f"{path}:{number}"
        record = _object(record, where)
        question = _question(record, where)
        answers = (_answers(record, where, required=True) or []) + _strings(record, "answer_aliases", where)
        paragraphs = _paragraphs(record.get("paragraphs"), where)
        for title, text, _ in paragraphs:
            texts.setdefault(title, {})[text] = None
        metadata = {k: record[k] for k in ("question_decomposition", "answerable") if k in record}
        item = EvalItem(_id(record, ("id",), where, default=str(number)), question,
                        list(dict.fromkeys(a for a in answers if a.strip())), metadata=metadata)
        parsed.append((item, paragraphs))
    _check_unique([(item.id, number) for (item, _), (number, _) in zip(parsed, records)], path)

    def doc_id(title: str, text: str) -> str:
        if len(texts[title]) == 1:
            return title
        return f"{title} [{hashlib.sha1(text.encode('utf-8')).hexdigest()[:10]}]"

    for item, paragraphs in parsed:
        supporting = [(title, text) for title, text, gold in paragraphs if gold]
        item.gold_doc_ids = list(dict.fromkeys(doc_id(t, x) for t, x in supporting))
        item.gold_passages = list(dict.fromkeys(x for _, x in supporting))
    docs = [{"doc_id": doc_id(title, text), "title": title, "text": text}
            for title, versions in texts.items() for text in versions]
    return EvalDataset(name, [item for item, _ in parsed], docs, "musique")


def _paragraphs(value: Any, where: str) -> list[tuple[str, str, bool]]:
    ok = isinstance(value, list) and all(
        isinstance(p, dict) and isinstance(p.get("title"), str) and isinstance(p.get("paragraph_text"), str)
        and isinstance(p.get("is_supporting", False), bool) for p in value)
    if not ok:
        raise ConfigError(f'{where}: "paragraphs" must be a list of {{"title": str, "paragraph_text": str, '
                          '"is_supporting": true/false}} objects')
    return [(p["title"], p["paragraph_text"].strip(), p.get("is_supporting", False)) for p in value]


# -- BEIR -------------------------------------------------------------------------------------------
def _load_beir(folder: Path, split: str, name: str) -> EvalDataset:
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        splits = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        raise ConfigError(f"{folder}: no qrels for split {split!r} ({qrels_path} is missing); "
                          f"available splits: {', '.join(splits) or 'none'}")
    corpus_path = _first_existing(folder, "corpus.jsonl")
    queries_path = _first_existing(folder, "queries.jsonl")
    assert corpus_path is not None and queries_path is not None  # load_dataset checked
    corpus: dict[str, dict[str, str]] = {}
    for number, record in _records(corpus_path):
        where = f"{corpus_path}:{number}"
        record = _object(record, where)
        doc_id = _id(record, ("_id",), where)
        body, title = record.get("text"), record.get("title", "")
        if not isinstance(body, str) or not isinstance(title, str):
            raise ConfigError(f'{where}: a corpus line needs a "text" string (and "title", if any, a string)')
        if doc_id in corpus:
            raise ConfigError(f"{where}: duplicate document id {doc_id!r}; each document needs its own _id")
        corpus[doc_id] = {"doc_id": doc_id, "title": title, "text": body}
    queries: dict[str, str] = {}
    for number, record in _records(queries_path):
        where = f"{queries_path}:{number}"
        record = _object(record, where)
        qid = _id(record, ("_id",), where)
        body = record.get("text")
        if not isinstance(body, str) or not body.strip():
            raise ConfigError(f'{where}: a query line needs a non-empty "text" string')
        if qid in queries:
            raise ConfigError(f"{where}: duplicate query id {qid!r}; each query needs its own _id")
        queries[qid] = body
    relevance = _qrels(qrels_path, queries)
    items = []
    for qid, question in queries.items():
        if qid in relevance:
            rel = relevance[qid]
            gold = [d for d, score in rel.items() if score > 0]
            items.append(EvalItem(qid, question, [], gold, [corpus[d]["text"] for d in gold if d in corpus],
                                  {"relevance": rel}))
    if not items:
        raise ConfigError(f"{qrels_path} judges no query; give query-id, corpus-id, score rows")
    return EvalDataset(name, items, list(corpus.values()), "beir")


def _qrels(path: Path, queries: dict[str, str]) -> dict[str, dict[str, int]]:
    relevance: dict[str, dict[str, int]] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    for number, line in enumerate(text.splitlines(), 1):
        row = line.split("\t") if line.strip() else []
        if not row or (number == 1 and row[0].strip().lower() in ("query-id", "query_id", "qid")):
            continue
        where = f"{path}:{number}"
        if len(row) != 3:
            raise ConfigError(f"{where}: expected 3 tab-separated columns (query-id, corpus-id, score), "
                              f"got {len(row)}")
        qid, doc_id, score = (cell.strip() for cell in row)
        try:
            value = int(score)
        except ValueError:
            raise ConfigError(f"{where}: score {score!r} is not an integer") from None
        if qid not in queries:
            raise ConfigError(f"{where}: query id {qid!r} is not in queries.jsonl")
        relevance.setdefault(qid, {})[doc_id] = value
    return relevance


# -- shared line and field checks -------------------------------------------------------------------
def _first_existing(folder: Path, stem: str) -> Path | None:
    return next((p for p in (folder / stem, folder / f"{stem}.gz") if p.is_file()), None)


def _records(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, JSON value) of each non-blank line; a bad line stops the read naming `path:line`."""
    return read_jsonl(path, error=ConfigError, on_bad_line=_stop_at(path))


def _stop_at(path: Path) -> Callable[[int, str], None]:
    def stop(number: int, reason: str) -> None:
        raise ConfigError(f"{path}:{number}: {reason}")
    return stop


def _object(record: Any, where: str) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise ConfigError(f"{where}: each line must be a JSON object, got {type(record).__name__}")
    return record


def _question(record: dict[str, Any], where: str) -> str:
    if "question" not in record:
        raise ConfigError(f'{where}: missing "question"; each line needs a "question" string')
    question = record["question"]
    if not isinstance(question, str):
        raise ConfigError(f'{where}: "question" must be a string, got {type(question).__name__}')
    if not question.strip():
        raise ConfigError(f'{where}: "question" is empty')
    return question


def _answers(record: dict[str, Any], where: str, *, required: bool) -> list[str] | None:
    """`answers` (list of strings) or `answer` (a string); None when neither is given and not required."""
    if "answers" in record and "answer" in record:
        raise ConfigError(f'{where}: give "answers" (a list) or "answer" (a string), not both')
    if "answer" in record:
        if not isinstance(record["answer"], str):
            raise ConfigError(f'{where}: "answer" must be a string (use "answers" for a list of strings)')
        return [record["answer"]]
    if "answers" in record:
        answers = record["answers"]
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise ConfigError(f'{where}: "answers" must be a list of strings, got {json.dumps(answers)[:80]}')
        return list(answers)
    if required:
        raise ConfigError(f'{where}: missing "answer"; give "answer": "..." or "answers": [...]')
    return None


def _strings(record: dict[str, Any], key: str, where: str) -> list[str]:
    value = record.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f'{where}: "{key}" must be a list of strings, got {json.dumps(value)[:80]}')
    return list(value)


def _id(record: dict[str, Any], keys: tuple[str, ...], where: str, default: str | None = None) -> str:
    key = next((k for k in keys if k in record), None)
    if key is None:
        if default is None:
            raise ConfigError(f'{where}: missing "{keys[0]}"; each line needs an id')
        return default
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise ConfigError(f'{where}: "{key}" must be a non-empty string or an integer, got {value!r}')
    return str(value)


def _check_unique(ids: list[tuple[str, int]], path: Path) -> None:
    seen: dict[str, int] = {}
    for item_id, number in ids:
        if item_id in seen:
            raise ConfigError(f"{path}:{number}: duplicate id {item_id!r} (first on line {seen[item_id]}); "
                              "give each question its own id")
        seen[item_id] = number
