"""What the benchmark scripts share: where data and outputs live, the evaluation sets they read, a few
scoring glue functions, and the writer that files each run's dated table in benchmarks/history.md.

Scores come from the package itself: exact match and F1 (SQuAD v1.1 rules, best over the gold answers)
and the ranx retrieval metrics from `pilotfish.evaluation.metrics`. Datasets (BEIR folders, HotpotQA,
2WikiMultihopQA and MuSiQue files) are read by `pilotfish.evaluation.datasets.load_dataset`.

The data folder is ../shared/benchmarks next to the repository, or $PILOTFISH_BENCH_DATA.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import platform
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pilotfish.evaluation.datasets import EvalDataset, EvalItem, load_dataset
from pilotfish.evaluation.metrics import best_exact_match, best_f1, normalize_answer, retrieval_metrics
from pilotfish.prompts.builder import strip_citations

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
DATA = Path(os.environ.get("PILOTFISH_BENCH_DATA", ROOT.parent / "shared" / "benchmarks"))
OUT = BENCH / "out"
HISTORY_MD = BENCH / "history.md"

__all__ = ["DATA", "OUT", "HOTPOT_OUT", "QA_SETS", "beir", "doc_run", "retrieval_scores", "qa_set", "write_corpus",
           "hotpotqa_items", "load_answers", "answer_scores", "holds_gold", "support_recall", "strip_citations",
           "EXAMPLES_DOCS", "ExampleQuestion", "examples_questions", "clustered",
           "nli_pairs", "markdown_table", "append_history"]


# -- retrieval sets (BEIR) ----------------------------------------------------------------------------
def beir(name: str, split: str = "test") -> tuple[list[dict[str, str]], dict[str, str], dict[str, dict[str, int]]]:
    """(corpus records {"doc_id", "title", "text"}, {query id: text} of the judged queries, qrels)."""
    data = load_dataset(DATA / name, split=split)
    return (data.corpus or [], {item.id: item.question for item in data},
            {item.id: item.metadata["relevance"] for item in data})


def doc_run(results: Sequence[Sequence[Any]], qids: Sequence[str], depth: int = 100) -> dict[str, dict[str, float]]:
    """Chunk results -> document run: a document scores its best chunk; keep the top `depth` documents."""
    run: dict[str, dict[str, float]] = {}
    for qid, passages in zip(qids, results):
        docs: dict[str, float] = {}
        for rank, p in enumerate(passages):
            if p.doc_id not in docs:
                # Rank-derived score keeps the fused order exactly, whatever the score scale.
                docs[p.doc_id] = 1.0 / (rank + 1)
            if len(docs) == depth:
                break
        run[qid] = docs
    return run


def retrieval_scores(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]],
                     metrics: Sequence[str] = ("ndcg@10", "recall@100")) -> dict[str, float]:
    """The package's ranx metrics; a judged query missing from the run counts as zero, as in BEIR."""
    return retrieval_metrics(qrels, run, list(metrics))


# -- question answering sets --------------------------------------------------------------------------
@dataclass(frozen=True)
class QASet:
    """A multi-hop QA file under DATA and the folder under benchmarks/out/ that holds its pooled corpus and KB."""

    name: str
    path: str
    out: str


QA_SETS = {
    # Every item holds both supporting paragraphs (the earlier 300-item file held both for only 97).
    "hotpotqa": QASet("hotpotqa", "hotpotqa/dev_distractor_v1_sample500.jsonl.gz", "hotpotqa500"),
    "musique": QASet("musique", "musique/musique_ans_dev_with_paragraphs_210.jsonl.gz", "musique210"),
    "2wiki": QASet("2wiki", "2wiki/dev_sample500.jsonl.gz", "2wiki500"),
}
HOTPOT_OUT = OUT / QA_SETS["hotpotqa"].out


def qa_set(name: str) -> EvalDataset:
    """Items (answers = every gold answer, gold_doc_ids = the supporting paragraphs' ids) and pooled corpus,
    read by `load_dataset`: a paragraph's id is its title (MuSiQue: title plus a hash of the text where
    one title names several paragraphs)."""
    if name not in QA_SETS:
        raise SystemExit(f"unknown dataset {name!r}; choose one of {', '.join(QA_SETS)}")
    data = load_dataset(DATA / QA_SETS[name].path, name=name)
    if data.format != name:
        raise SystemExit(f"pilotfish.evaluation.datasets read {QA_SETS[name].path} as {data.format!r}, not "
                         f"{name!r}: this version of load_dataset does not know the {name} layout")
    return data


def write_corpus(data: EvalDataset, folder: Path) -> Path:
    """The pooled corpus as folder/paragraphs.jsonl ({"_id", "title", "text"} lines), ready to ingest."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "paragraphs.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for doc in data.corpus or []:
            fh.write(json.dumps({"_id": doc["doc_id"], "title": doc["title"], "text": doc["text"]}) + "\n")
    return path


def hotpotqa_items() -> list[EvalItem]:
    """The 500 HotpotQA dev-distractor questions, in file order."""
    return qa_set("hotpotqa").items


def load_answers(config: str, items: Sequence[EvalItem]) -> list[dict]:
    """The answers hotpotqa_answers.py saved for `config` (out/hotpotqa500/answers-CONFIG.jsonl), one per item,
    in order; exits with what to run when that run did not cover these questions."""
    path = HOTPOT_OUT / f"answers-{config}.jsonl"
    answers = [json.loads(line) for line in path.open()][: len(items)] if path.is_file() else []
    if len(answers) < len(items) or any(a["question"] != i.question for a, i in zip(answers, items)):
        raise SystemExit(f"{path.name} does not hold these {len(items)} questions in order: run "
                         f"hotpotqa_answers.py --configs {config} on at least as many questions first")
    return answers


def answer_scores(text: str, golds: Sequence[str]) -> tuple[float, float]:
    """(EM, F1) of an answer, citations stripped, best over the gold answers (the package's SQuAD rules)."""
    prediction = strip_citations(text)
    return best_exact_match(prediction, golds) or 0.0, best_f1(prediction, golds) or 0.0


def holds_gold(text: str, golds: Sequence[str], word_share: float | None = None) -> bool:
    """Whether a gold answer, SQuAD-normalised, stands in the answer as whole words (citations stripped);
    with `word_share`, also when at least that share of a gold answer's words is in the answer
    ("Robert Erskine Childers" for "Robert Erskine Childers DSC" at 0.75)."""
    answer = f" {normalize_answer(strip_citations(text))} "
    words = set(answer.split())
    for gold in filter(None, map(normalize_answer, golds)):
        if f" {gold} " in answer:
            return True
        wanted = gold.split()
        if word_share is not None and sum(w in words for w in wanted) >= word_share * len(wanted):
            return True
    return False


# -- the hand-checked questions over examples/docs ----------------------------------------------------
EXAMPLES_DOCS = ROOT / "examples" / "docs"
EXAMPLES_QUESTIONS = BENCH / "data" / "examples_docs_questions.jsonl"


@dataclass(frozen=True)
class ExampleQuestion:
    id: str
    question: str
    answers: list[str]
    gold_docs: list[str]  # file names under examples/docs


def examples_questions() -> list[ExampleQuestion]:
    """The hand-checked examples/docs questions; each gold answer must still occur in its document."""
    questions = []
    for line in EXAMPLES_QUESTIONS.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        doc = EXAMPLES_DOCS / record["doc"]
        if not doc.is_file():
            raise SystemExit(f"{EXAMPLES_QUESTIONS.name} {record['id']}: no document {doc.name} in examples/docs")
        text = html.unescape(re.sub(r"<[^>]+>", " ", doc.read_text(encoding="utf-8")))
        if record["answers"][0].lower() not in text.lower():
            raise SystemExit(f"{EXAMPLES_QUESTIONS.name} {record['id']}: gold answer {record['answers'][0]!r} "
                             f"not found in {doc.name}")
        questions.append(ExampleQuestion(record["id"], record["question"], record["answers"], [record["doc"]]))
    return questions


def support_recall(gold_ids: Iterable[str], evidence_ids: Iterable[str]) -> float:
    """Share of the gold supporting paragraphs found among the evidence ids."""
    gold = set(gold_ids)
    return len(gold & set(evidence_ids)) / len(gold) if gold else 0.0


# -- other inputs -------------------------------------------------------------------------------------
def nli_pairs(name: str) -> list[dict]:
    """A pair file of DATA/nli ({"premise", "hypothesis", "label"} lines)."""
    from pilotfish.jsonl import read_jsonl

    return [record for _, record in read_jsonl(DATA / "nli" / name)]


def clustered(n: int, dim: int, rng: Any, centres: Any) -> Any:
    """n random unit vectors around `centres` (like sentence embeddings), float32."""
    import numpy as np

    x = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.standard_normal((n, dim), dtype=np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


# -- reporting ----------------------------------------------------------------------------------------
def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def append_history(title: str, table: str, notes: str = "", *, area: str) -> None:
    """Append a dated section to benchmarks/history.md (oldest first) and say which current figures to update.

    BENCHMARKS.md's "Current figures" tables are edited by hand: a run does not always supersede the
    row it touches (a smaller --limit, a busy machine), and the person who ran it decides.
    """
    stamp = dt.date.today().isoformat()
    block = f"\n## {title} ({stamp})\n\nMachine: {machine()}.\n\n{table}\n"
    if notes:
        block += f"\n{notes}\n"
    if not HISTORY_MD.exists():
        HISTORY_MD.write_text("# Benchmark history\n\nEach run's dated table, oldest first.\n")
    with HISTORY_MD.open("a", encoding="utf-8") as fh:
        fh.write(block)
    print(f"\nAppended \"{title}\" to benchmarks/history.md. If this run supersedes a current figure, update "
          f"its row in BENCHMARKS.md's \"{area}\" table by hand (figure, date, command).", flush=True)


# the closed-book baseline's prompt: the same short JSON answer the pipelines give, without evidence
CLOSED_BOOK_PROMPT = ('Answer the question. Reply in JSON with one key, "answer": the shortest possible answer, '
                      "a name, a date, a number, yes or no, or a short phrase. No full sentence, no explanation.")
CLOSED_BOOK_SCHEMA = {"type": "object", "properties": {"answer": {"type": "string", "maxLength": 80}},
                      "required": ["answer"]}


def closed_book(llm: object) -> object:
    """`answer(question) -> (text, evidence ids, usage)` of `llm` with no evidence, asked for a JSON short answer."""
    def answer(question: str) -> tuple[str, list[str], object]:
        from pilotfish.errors import OutputParseError

        try:
            gen = llm.generate([{"role": "system", "content": CLOSED_BOOK_PROMPT},
                                {"role": "user", "content": question}],
                               max_tokens=64, json_schema=CLOSED_BOOK_SCHEMA)[0]
        except OutputParseError as err:  # kept as plain text, as the pipeline does
            return err.raw, [], err.usage
        answer = gen.json().get("answer")
        return (answer if isinstance(answer, str) else gen.text), [], gen.usage
    return answer
