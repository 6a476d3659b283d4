"""Abstention after generation: does the NLI support of an answer tell answerable questions from near-domain
ones whose facts are missing?

    python benchmarks/abstention.py [--set hotpotqa|examples] [--limit N] [--llm qwen2.5-0.5b] [--style prose]
                                    [--recheck] [--no-append]

Each question is asked twice with the `ask` defaults (basic pipeline, hybrid top-5):
- "with": against a knowledge base that holds its answer;
- "without": against the same knowledge base minus the documents that hold the answers, so only similar
  documents remain: the near-domain case where the right reply is "I cannot answer this from the documents".
Sets: `hotpotqa`, the first N HotpotQA-500 questions (multi-hop; "with" is the pooled corpus of all 500,
4,925 paragraphs; "without" drops these N questions' supporting paragraphs, so the HotpotQA distractors,
chosen to resemble the question, remain), and `examples`, the 20 hand-checked single-document questions
over examples/docs (benchmarks/data/examples_docs_questions.jsonl; "without" drops their 20 documents).
Each answer is checked by `NLIGroundednessChecker.default()` against the passages the LLM read. Reported:
- AUROC of three answer-level supports (the weakest claim, the best claim, the mean) for "with" against
  "without" (answered questions only);
- two thresholds on each support, chosen on the first half of the questions (the best balanced accuracy
  of "abstain on without, keep on with"; the highest that keeps 95% of the correct answers) and
  applied to the second half: the share of right abstentions ("without": abstained by the pipeline or by
  the threshold) and of wrongly suppressed answers ("with": correct answers, a gold answer contained in
  the text, that the threshold would drop).
Whether an answer is correct is recomputed from the saved text on every run. Answers go to
benchmarks/out/abstention/answers-[examples-]LLM-STYLE-{with,without}.jsonl (resumable); `--recheck`
re-scores them with the current checker without calling the LLM.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from shared import (  # noqa: E402
    EXAMPLES_DOCS,
    HOTPOT_OUT,
    OUT,
    ExampleQuestion,
    append_history,
    examples_questions,
    holds_gold,
    markdown_table,
    qa_set,
    write_corpus,
)

FOLDER = OUT / "abstention"
SUPPORTS = ("weakest", "best", "mean")
WORD_SHARE = 0.75  # a gold answer counts as found with 3 in 4 of its words ("Robert Erskine Childers" for "... DSC")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="hotpotqa", choices=("hotpotqa", "examples"))
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--llm", default="qwen2.5-0.5b")
    parser.add_argument("--style", default="prose")
    parser.add_argument("--no-append", action="store_true")
    parser.add_argument("--recheck", action="store_true",
                        help="re-score the saved answers with the current checker (no LLM call): the evidence is "
                             "searched again and must give the same documents")
    args = parser.parse_args()

    from pilotfish.answer import build
    from pilotfish.knowledge.base import KnowledgeBase
    from pilotfish.llms.llamacpp import LlamaCppLLM
    from pilotfish.verification.checker import NLIGroundednessChecker

    if args.set == "hotpotqa":
        data = qa_set("hotpotqa")
        questions = data.items[: args.limit]
        kbs = {"with": _kb(KnowledgeBase, HOTPOT_OUT, write_corpus(data, HOTPOT_OUT)),
               "without": _kb(KnowledgeBase, FOLDER / "without", _corpus_without(HOTPOT_OUT / "paragraphs.jsonl",
                                                                                    questions))}
    else:
        questions = examples_questions()[: args.limit]
        kbs = {"with": _kb(KnowledgeBase, FOLDER / "examples-with", EXAMPLES_DOCS),
               "without": _kb(KnowledgeBase, FOLDER / "examples-without", _docs_without(questions))}
    args.prefix = "" if args.set == "hotpotqa" else "examples-"
    checker = NLIGroundednessChecker.default()
    if args.recheck:
        report(recheck(kbs, questions, checker, args), args)
        return
    llm = LlamaCppLLM(model=args.llm)
    rows: dict[str, list[dict]] = {}
    for side, kb in kbs.items():
        path = FOLDER / f"answers-{args.prefix}{args.llm}-{args.style}-{side}.jsonl"
        done = [json.loads(line) for line in path.open()] if path.is_file() else []
        done = done if [d["question"] for d in done[: len(questions)]] == [q.question for q in questions[: len(done)]] \
            else []
        pipeline = build({"answer": {"llm": args.llm, "style": args.style}}, kb, llms={args.llm: llm})
        pipeline.run("Which city is the capital of France?")  # warm-up: loads are not answer time
        with path.open("w") as fh:
            for row in done[: len(questions)]:
                fh.write(json.dumps(row) + "\n")
            for item in questions[len(done):]:
                start = time.perf_counter()
                answer = pipeline.run(item.question)
                seconds = time.perf_counter() - start
                started = time.perf_counter()
                verdict = checker.check(answer.text, answer.evidence, question=item.question) \
                    if answer.answered else None
                supports = [c.supported for c in verdict.claims if c.label != "unverifiable"] if verdict else []
                row = {"question": item.question, "gold": item.answers, "text": answer.text,
                       "answered": answer.answered, "correct": holds_gold(answer.text, item.answers, WORD_SHARE),
                       "supports": supports, "seconds": seconds, "check_seconds": time.perf_counter() - started,
                       "evidence": [p.doc_id for p in answer.evidence]}
                fh.write(json.dumps(row) + "\n")
                fh.flush()
                done.append(row)
        rows[side] = done[: len(questions)]
        for row, item in zip(rows[side], questions):
            row["correct"] = holds_gold(row["text"], item.answers, WORD_SHARE)
        print(f"{side}: {len(rows[side])} answers", flush=True)
    report(rows, args)


def recheck(kbs: dict[str, object], questions: list, checker: object, args: argparse.Namespace
            ) -> dict[str, list[dict]]:
    """The saved answers with supports from the current checker, over evidence searched again as the
    pipeline searched it (hybrid top 5 by default); answers whose evidence comes back different are
    counted (their check then reads the new evidence)."""
    rows: dict[str, list[dict]] = {}
    for side, kb in kbs.items():
        path = FOLDER / f"answers-{args.prefix}{args.llm}-{args.style}-{side}.jsonl"
        saved = [json.loads(line) for line in path.open()][: len(questions)]
        if len(saved) < len(questions):
            raise SystemExit(f"{path.name} holds {len(saved)} answers: run without --recheck first")
        kept, differ = [], 0
        for row, item in zip(saved, questions):
            evidence = kb.search(item.question, mode="hybrid", top_k=5)
            differ += [p.doc_id for p in evidence] != row["evidence"]
            started = time.perf_counter()
            verdict = checker.check(row["text"], evidence, question=item.question) if row["answered"] else None
            row["supports"] = [c.supported for c in verdict.claims if c.label != "unverifiable"] if verdict else []
            row["check_seconds"] = time.perf_counter() - started
            row["correct"] = holds_gold(row["text"], item.answers, WORD_SHARE)
            kept.append(row)
        print(f"{side}: {len(kept)} answers re-checked; evidence searched again differs for {differ}")
        rows[side] = kept
    return rows


def _kb(knowledge_base: type, folder: Path, corpus: Path) -> object:
    kb = knowledge_base.open(folder / "kb", create=True)
    kb.ingest([corpus])
    return kb


def _docs_without(questions: list[ExampleQuestion]) -> Path:
    """examples/docs without the questions' documents, as a folder of its own."""
    gone = {d for q in questions for d in q.gold_docs}
    folder = FOLDER / "examples-without" / "docs"
    folder.mkdir(parents=True, exist_ok=True)
    for f in EXAMPLES_DOCS.iterdir():
        if f.name not in gone and not (folder / f.name).exists():
            shutil.copy(f, folder / f.name)
    for f in folder.iterdir():
        if f.name in gone:
            f.unlink()
    return folder


def _corpus_without(corpus: Path, questions: list) -> Path:
    gold = {doc_id for item in questions for doc_id in item.gold_doc_ids}
    FOLDER.joinpath("without").mkdir(parents=True, exist_ok=True)
    target = FOLDER / "without" / "paragraphs.jsonl"
    lines = [line for line in corpus.open() if json.loads(line)["_id"] not in gold]
    if not target.is_file() or target.read_text() != "".join(lines):
        target.write_text("".join(lines))
    return target


def support(row: dict, kind: str) -> float:
    """The answer-level support; an answer with no checkable claim counts as unsupported."""
    values = row["supports"]
    if not values:
        return 0.0
    return {"weakest": min, "best": max, "mean": statistics.mean}[kind](values)


def report(rows: dict[str, list[dict]], args: argparse.Namespace) -> None:
    from sklearn.metrics import roc_auc_score

    n = len(rows["with"])
    answered = [(r, 1) for r in rows["with"] if r["answered"]] + [(r, 0) for r in rows["without"] if r["answered"]]
    aurocs = {k: roc_auc_score([y for _, y in answered], [support(r, k) for r, _ in answered]) for k in SUPPORTS}
    half = n // 2
    table_rows = []
    test = range(half, n)
    correct = [i for i in test if rows["with"][i]["answered"] and rows["with"][i]["correct"]]
    for kind in SUPPORTS:
        for rule, cut in (("balanced", _calibrate(rows, kind, range(half))),
                          ("keeps 95% of correct", _conservative(rows, kind, range(half)))):
            right = [not rows["without"][i]["answered"] or support(rows["without"][i], kind) < cut for i in test]
            suppressed = [support(rows["with"][i], kind) < cut for i in correct]
            table_rows.append((kind, f"{aurocs[kind]:.3f}", f"{rule}: {cut:.3f}", f"{statistics.mean(right):.1%}",
                               f"{sum(suppressed)}/{len(correct)} ({statistics.mean(suppressed or [0]):.1%})"))
    table_rows.append(_default_gate(rows))
    base_right = statistics.mean(not r["answered"] for r in rows["without"][half:])
    base_correct = statistics.mean(r["correct"] for r in rows["with"][half:])
    check = statistics.median(r["check_seconds"] for side in rows.values() for r in side if r["answered"])
    answer_s = statistics.median(r["seconds"] for side in rows.values() for r in side)
    table = markdown_table(("answer support", "AUROC with/without", "threshold rule: value (first half)",
                            "right abstentions (second half)", "correct answers suppressed (second half)"),
                           table_rows)
    notes = (f"{n} questions, {args.llm}, style {args.style}, `ask` defaults. Without any check the pipeline "
             f"abstains on {base_right:.1%} of the second half's 'without' questions and answers "
             f"{base_correct:.1%} of its 'with' questions correctly (a gold answer contained in the text). "
             f"Check time: median {check:.2f} s per answer against {answer_s:.1f} s per answer.")
    print(table)
    print(notes)
    if not args.no_append:
        title = f"HotpotQA-500 first {n}" if args.set == "hotpotqa" else f"{n} examples/docs questions"
        append_history(f"Abstention after generation, {title} (abstention.py)", table,
                       notes, area="Verification")


def _default_gate(rows: dict[str, list[dict]]) -> tuple[str, ...]:
    """The built-in pipelines' gate over all questions: best claim support below `abstain_below`, on questions
    the rule gate reads as one fact."""
    from pilotfish.answer.spec import DEFAULT_ABSTAIN
    from pilotfish.prompts.decompose import gate_reasons

    cut = DEFAULT_ABSTAIN["abstain_below"]

    def abstains(row: dict) -> bool:
        return not row["answered"] or (not gate_reasons(row["question"]) and support(row, "best") < cut)

    single = sum(not gate_reasons(r["question"]) for r in rows["with"])
    right = statistics.mean(abstains(r) for r in rows["without"])
    correct = [r for r in rows["with"] if r["answered"] and r["correct"]]
    dropped = sum(abstains(r) for r in correct)
    return (f"default gate (best < {cut}, {single} of {len(rows['with'])} questions read as one fact)", "-",
            "all questions", f"{right:.1%}", f"{dropped}/{len(correct)} ({dropped / max(1, len(correct)):.1%})")


def _conservative(rows: dict[str, list[dict]], kind: str, indices: range) -> float:
    """The highest threshold that keeps at least 95% of the correct "with" answers."""
    kept = sorted(support(rows["with"][i], kind) for i in indices
                  if rows["with"][i]["answered"] and rows["with"][i]["correct"])
    return kept[int(0.05 * len(kept))] if kept else 0.0


def _calibrate(rows: dict[str, list[dict]], kind: str, indices: range) -> float:
    """The threshold with the best balanced accuracy of abstaining on "without" and keeping "with"."""
    neg = [support(rows["without"][i], kind) for i in indices if rows["without"][i]["answered"]]
    pos = [support(rows["with"][i], kind) for i in indices if rows["with"][i]["answered"]]
    best = (0.0, -1.0)
    for cut in sorted(set(neg + pos)) + [1.01]:
        score = (sum(s < cut for s in neg) / max(1, len(neg)) + sum(s >= cut for s in pos) / max(1, len(pos))) / 2
        if score > best[1]:
            best = (cut, score)
    return best[0]


if __name__ == "__main__":
    main()
