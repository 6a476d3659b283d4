"""Which local model and answer style should `ask` and `chat` use by default: every model x style, on HotpotQA
and on 20 hand-checked questions over examples/docs.

    python benchmarks/answer_defaults.py [--limit N] [--models a,b] [--styles x,y] [--sets hotpotqa,examples]
                                         [--no-append]

Each configuration is one local model (smollm2-135m, qwen2.5-0.5b, qwen2.5-1.5b) with one answer style of the
pipeline (prose: cited sentences; short: a JSON-enforced short answer and its sources; quoted: the same with the
evidence sentence first), built by `pilotfish.answer.build` with every other setting at `pilotfish ask`'s
defaults (basic pipeline, hybrid retrieval, its top-k, no rerank, its max_tokens), read from the command itself.
One LlamaCppLLM per model serves all its styles; each model and knowledge base is warmed up before timing.
Sets: `hotpotqa`, the first --limit questions of the HotpotQA sample (all paragraphs pooled, the knowledge base
of hotpotqa_answers.py); `examples`, the 20 questions of benchmarks/data/examples_docs_questions.jsonl
(a gold answer found in one named document) against a knowledge base of examples/docs.

Columns:
  accuracy   share of answers holding a gold answer variant (SQuAD-normalised, citations stripped, whole words)
  EM, F1     SQuAD v1.1 exact match and token F1, best over the gold answers, citations stripped
  cited      share of the non-abstaining answers that cite at least one evidence passage themselves (`[n]`
             markers in prose, the sources list of the JSON styles); citations the embedding model attributed
             after the fact, and numbers that match no passage, do not count
  abstained  share of answers that say the documents cannot answer (or where no passage was relevant)
  sentences  mean sentences per non-abstaining answer (the README promises one to three for prose)
  p50 s      median seconds per answer, retrieval included
  evidence   share of the gold documents (HotpotQA: supporting paragraphs) among the evidence passages

Each configuration's answers go to benchmarks/out/answer-defaults/answers-MODEL-STYLE-SET.jsonl as they are
written; a rerun keeps the answers already there for the same questions and settings and answers only the rest.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from shared import (  # noqa: E402
    EXAMPLES_DOCS,
    EXAMPLES_QUESTIONS,
    HOTPOT_OUT,
    OUT,
    QA_SETS,
    ExampleQuestion,
    answer_scores,
    append_history,
    examples_questions,
    holds_gold,
    markdown_table,
    qa_set,
    strip_citations,
    support_recall,
    write_corpus,
)

from pilotfish.text import split_sentences  # noqa: E402

RESULTS = OUT / "answer-defaults"
EXAMPLES_KB = OUT / "examples-docs" / "kb"
MODELS = ("smollm2-135m", "qwen2.5-0.5b", "qwen2.5-1.5b")
SETS = ("hotpotqa", "examples")


Question = ExampleQuestion  # a HotpotQA item is read into the same shape


@dataclass
class QuestionSet:
    name: str
    kb: Any
    questions: list[Question]
    doc_key: Callable[[str], str]  # evidence doc id -> the form gold_docs use


def main() -> None:
    from pilotfish.answer.build import STYLES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=100, help="HotpotQA questions (the examples set has 20)")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--styles", default=",".join(STYLES))
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    if args.limit < 1:
        raise SystemExit("--limit must be at least 1")
    models, styles, sets = (_names(args.models, MODELS, "model"), _names(args.styles, STYLES, "style"),
                            _names(args.sets, SETS, "set"))

    from pilotfish.llms.llamacpp import LlamaCppLLM

    defaults = ask_defaults()
    print(f"pilotfish ask defaults: {json.dumps(defaults)}", flush=True)
    question_sets = [open_set(name, args.limit) for name in sets]
    RESULTS.mkdir(parents=True, exist_ok=True)
    results: dict[tuple[str, str, str], list[dict]] = {}
    for model in models:
        llm = LlamaCppLLM(model=model)
        warm = False
        for style in styles:
            spec = {"answer": {"llm": model, "style": style, "max_tokens": defaults["max_tokens"]},
                    "retrieve": {"mode": defaults["mode"], "top_k": defaults["k"], "rerank": defaults["rerank"]}}
            settings = {"mode": defaults["mode"], "top_k": defaults["k"], "rerank": defaults["rerank"],
                        "max_tokens": defaults["max_tokens"]}
            for qs in question_sets:
                path = RESULTS / f"answers-{model}-{style}-{qs.name}.jsonl"
                rows = done_rows(path, qs.questions, settings)
                if len(rows) < len(qs.questions):
                    if not warm:  # loading the weights is not answer time
                        llm.generate([{"role": "user", "content": "Say hi."}], max_tokens=4)
                        warm = True
                    rows = answer_set(path, rows, qs, spec, settings, llm)
                else:
                    print(f"{path.name}: all {len(qs.questions)} answers already there", flush=True)
                results[(model, style, qs.name)] = rows
                print(model, style, qs.name, json.dumps(summarise(rows, qs)), flush=True)
        del llm

    header = ("model", "style", "set", "questions", "accuracy", "EM", "F1", "cited", "abstained", "sentences",
              "p50 s", "evidence")
    by_name = {qs.name: qs for qs in question_sets}
    table = markdown_table(header, [(m, s, q, len(rows), *summarise(rows, by_name[q]).values())
                                    for (m, s, q), rows in results.items()])
    print(table)
    if not args.no_append:
        sizes = ", ".join(f"{qs.name} {len(qs.questions)}" for qs in question_sets)
        append_history(f"Default model and answer style, {sizes} questions (answer_defaults.py)", table,
                       f"`pilotfish ask` defaults but the model and style: basic pipeline, {defaults['mode']} "
                       f"retrieval, top-{defaults['k']}, rerank {defaults['rerank']}, max_tokens "
                       f"{defaults['max_tokens']}. Accuracy: a gold answer variant inside the answer "
                       "(SQuAD-normalised, citations stripped); EM/F1 by the SQuAD v1.1 rules. Cited: "
                       "non-abstaining answers with at least one citation the LLM wrote (embedding-attributed "
                       "ones not counted). Sentences: mean per non-abstaining answer. Seconds: p50 per answer "
                       "after a warm-up, retrieval included. Data: "
                       f"{QA_SETS['hotpotqa'].path} and benchmarks/data/{EXAMPLES_QUESTIONS.name} over examples/docs.",
                       area="Grounded answers")


def _names(given: str, known: tuple[str, ...], what: str) -> list[str]:
    names = [n.strip() for n in given.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise SystemExit(f"unknown {what} {', '.join(unknown) or '(none given)'}: choose from {', '.join(known)}")
    return names


def ask_defaults() -> dict[str, Any]:
    """The retrieval mode, top-k, rerank and max_tokens defaults of the `pilotfish ask` command itself."""
    from pilotfish.cli.ask import ask

    parameters = inspect.signature(ask).parameters
    return {name: parameters[name].default for name in ("mode", "k", "rerank", "max_tokens")}


# -- question sets ------------------------------------------------------------------------------------
def open_set(name: str, limit: int) -> QuestionSet:
    from pilotfish.knowledge.base import KnowledgeBase

    if name == "hotpotqa":
        data = qa_set("hotpotqa")
        corpus_path = hotpot_corpus(data)
        kb = KnowledgeBase.open(HOTPOT_OUT / "kb", create=True)
        counts = ingest_unless_held(kb, [corpus_path], [corpus_path])
        questions = [Question(i.id, i.question, list(i.answers), list(i.gold_doc_ids)) for i in data.items[:limit]]
        key: Callable[[str], str] = str
    else:
        questions = examples_questions()
        kb = KnowledgeBase.open(EXAMPLES_KB, create=True)
        counts = ingest_unless_held(kb, sorted(p for p in EXAMPLES_DOCS.iterdir() if p.is_file()), [EXAMPLES_DOCS])
        key = lambda doc_id: Path(doc_id).name  # noqa: E731 - ids are "docs/NAME"
    print(f"{name}: {len(questions)} questions; knowledge base {counts['documents']} documents, "
          f"{counts['chunks']} chunks", flush=True)
    kb.search(questions[0].question, top_k=1)  # warm-up: loads the indexes and the embedding model
    return QuestionSet(name, kb, questions, key)


def ingest_unless_held(kb: Any, files: list[Path], paths: list[Path]) -> dict[str, int]:
    """`kb.ingest(paths)`, skipped when the knowledge base already holds every file's content, whatever its path:
    a knowledge base built from another checkout knows the files under other paths, and ingest would refuse
    their document ids (already taken) and still write a new index generation. Any file ingest refuses stops
    the run, so answers are never measured against a stale corpus."""
    held = {row.content_hash for row in kb.store.sources().values()}
    if not (files and kb.index_generation() > 0 and all(_sha256(f) in held for f in files)):
        report = kb.ingest(paths)
        if report.failed:
            path, reason = report.failed[0]
            raise SystemExit(f"ingest into {kb.directory} refused {len(report.failed)} file(s), e.g. {path}: {reason}")
    return kb.store.counts()


def _sha256(path: Path) -> str:
    """The content hash ingest keeps for a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def hotpot_corpus(data: Any) -> Path:
    """HotpotQA's pooled corpus file, rewritten only when its content changed (other runs may be reading it)."""
    path = HOTPOT_OUT / "paragraphs.jsonl"
    with tempfile.TemporaryDirectory() as tmp:
        fresh = write_corpus(data, Path(tmp))
        if path.is_file() and path.read_bytes() == fresh.read_bytes():
            return path
    return write_corpus(data, HOTPOT_OUT)


# -- answering ----------------------------------------------------------------------------------------
def done_rows(path: Path, questions: list[Question], settings: dict[str, Any]) -> list[dict]:
    """The answers already in `path` for the first of `questions`, in order, under the same settings."""
    rows: list[dict] = []
    if not path.is_file():
        return rows
    for line, q in zip(path.read_text(encoding="utf-8").splitlines(), questions):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by an interrupted run
            break
        if row.get("question") != q.question or row.get("settings") != settings:
            break
        rows.append(row)
    return rows


def answer_set(path: Path, rows: list[dict], qs: QuestionSet, spec: dict, settings: dict[str, Any],
               llm: Any) -> list[dict]:
    """Answer the questions after `rows`, appending each answer to `path` as soon as it is written."""
    from pilotfish.answer import build

    pipeline = build(spec, qs.kb, llms={spec["answer"]["llm"]: llm})
    rows = list(rows)
    print(f"{path.name}: {len(rows)} answers kept, {len(qs.questions) - len(rows)} to write", flush=True)
    with path.open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
        for q in qs.questions[len(rows):]:
            start = time.perf_counter()
            answer = pipeline.run(q.question)
            seconds = time.perf_counter() - start
            usage = answer.usage
            row = {"id": q.id, "question": q.question, "gold": q.answers, "gold_docs": q.gold_docs,
                   "prediction": answer.text, "answered": answer.answered,
                   "citations": [c.to_dict() for c in answer.citations], "quote": answer.quote,
                   "evidence": [p.doc_id for p in answer.evidence], "seconds": seconds,
                   "llm_seconds": usage.seconds if usage is not None else 0.0,
                   "tokens_in": usage.prompt_tokens if usage is not None else 0,
                   "tokens_out": usage.completion_tokens if usage is not None else 0, "settings": settings}
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            rows.append(row)
    return rows


# -- scores -------------------------------------------------------------------------------------------
def self_cited(row: dict) -> bool:
    """At least one citation the LLM wrote that names an evidence passage."""
    return any(c["known"] and not c["attributed"] for c in row["citations"])


def summarise(rows: list[dict], qs: QuestionSet) -> dict[str, str]:
    answered = [r for r in rows if r["answered"]]
    scores = [answer_scores(r["prediction"], r["gold"]) for r in rows]

    def share(values: list[bool]) -> str:
        return f"{statistics.mean(values):.3f}" if values else "-"

    sentences = [len(split_sentences(strip_citations(r["prediction"]))) for r in answered]
    evidence = [support_recall(r["gold_docs"], map(qs.doc_key, r["evidence"])) for r in rows]
    return {"accuracy": share([r["answered"] and holds_gold(r["prediction"], r["gold"]) for r in rows]),
            "em": f"{statistics.mean(s[0] for s in scores):.3f}", "f1": f"{statistics.mean(s[1] for s in scores):.3f}",
            "cited": share([self_cited(r) for r in answered]),
            "abstained": share([not r["answered"] for r in rows]),
            "sentences": f"{statistics.mean(sentences):.1f}" if sentences else "-",
            "p50": f"{statistics.median(r['seconds'] for r in rows):.1f}",
            "evidence": f"{statistics.mean(evidence):.3f}"}


if __name__ == "__main__":
    main()
