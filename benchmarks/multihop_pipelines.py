"""Multi-hop QA (HotpotQA, MuSiQue or 2WikiMultihopQA; all paragraphs pooled): `basic` against `multihop`.

    python benchmarks/multihop_pipelines.py [--dataset hotpotqa|musique|2wiki] --model qwen2.5-0.5b [--limit N]
                                            [--gate rules|always] [--report] [--tag T] [--planner qwen2.5-1.5b]
    python benchmarks/multihop_pipelines.py --gate-only          # the decomposition gate on four question sets

Data (under the benchmark data folder): hotpotqa/dev_distractor_v1_sample500.jsonl.gz (500 questions),
musique/musique_ans_dev_with_paragraphs_210.jsonl.gz (210), 2wiki/dev_sample500.jsonl.gz (500). Each set's
paragraphs, pooled, make one knowledge base in its own folder: benchmarks/out/hotpotqa500/kb (shared with
hotpotqa_answers.py), out/musique210/kb, out/2wiki500/kb.

Both pipelines: hybrid retrieval, cross-encoder reranked, top 5, short answer style. `multihop` adds the
rule gate and the decomposer (its plans written by --planner, default the answering model): each step is
searched (top 3, reranked) and the earlier steps answered by the same model; the final answer reads the
merged evidence (5 passages) and the facts found. For each question the two pipelines run back to back,
so load on the machine hits both alike. Rows are appended to rows-MODEL-GATE[-TAG].jsonl in
out/multihop500 (HotpotQA), out/multihop-musique210 or out/multihop-2wiki500 as they finish, and a
re-run resumes; `--report` only summarises them.

Reports EM/F1 (SQuAD v1.1 rules, best over every gold answer: MuSiQue's aliases count), supporting-paragraph
recall@5 of the evidence against the gold paragraphs, mean and p50 seconds per question, LLM calls per
question, and the share of questions the gate decomposed.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from shared import (  # noqa: E402
    DATA,
    OUT,
    QA_SETS,
    answer_scores,
    append_history,
    hotpotqa_items,
    markdown_table,
    qa_set,
    support_recall,
    write_corpus,
)

from pilotfish.evaluation.datasets import EvalDataset, EvalItem  # noqa: E402

ROWS = {"hotpotqa": OUT / "multihop500", "musique": OUT / "multihop-musique210", "2wiki": OUT / "multihop-2wiki500"}
TITLES = {"hotpotqa": "HotpotQA", "musique": "MuSiQue", "2wiki": "2WikiMultihopQA"}


def gate_table() -> str:
    """Share of questions the rule gate decomposes, on multi-hop sets and on single-table/SQL question sets."""
    import csv

    from pilotfish.prompts.decompose import gate_reasons

    hotpot = [i.question for i in hotpotqa_items()]
    with gzip.open(DATA / "musique" / "musique_ans_dev_with_decomposition.json.gz", "rt") as fh:
        musique = [x["question"] for x in json.load(fh)]
    with (DATA / "wtq" / "training.tsv").open(encoding="utf-8") as fh:
        wtq = [row["utterance"] for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)]
    with gzip.open(DATA / "spider" / "dev.json.gz", "rt") as fh:
        spider = [x["question"] for x in json.load(fh)]
    rows = []
    for name, kind, questions in (("HotpotQA dev 500", "multi-hop", hotpot), ("MuSiQue dev", "multi-hop", musique),
                                  ("WikiTableQuestions train", "one table", wtq),
                                  ("Spider dev", "one database", spider)):
        share = sum(bool(gate_reasons(q)) for q in questions) / len(questions)
        rows.append((name, kind, len(questions), f"{share:.1%}"))
    return markdown_table(("question set", "kind", "questions", "decomposed by the gate"), rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="hotpotqa", choices=list(QA_SETS))
    parser.add_argument("--model", default="qwen2.5-0.5b")
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--gate", default="rules")
    parser.add_argument("--report", action="store_true", help="only summarise the stored rows")
    parser.add_argument("--gate-only", action="store_true")
    parser.add_argument("--no-append", action="store_true")
    parser.add_argument("--tag", default="", help="a suffix for the rows file, to keep an earlier run's rows")
    parser.add_argument("--planner", default="", help="the LLM that writes multihop's plans (default: --model)")
    args = parser.parse_args()
    if args.gate_only:
        table = gate_table()
        print(table)
        if not args.no_append:
            append_history("Decomposition gate (multihop_pipelines.py --gate-only)", table,
                           "Rule gate of `Decomposer` (pilotfish.prompts.decompose.gate_reasons), no model. The "
                           "table and SQL sets stand in for single-fact questions; some of theirs are genuinely "
                           "multi-step (comparisons, nested conditions).", area="Multi-hop")
        return
    rows_dir = ROWS[args.dataset]
    rows_dir.mkdir(parents=True, exist_ok=True)
    rows_path = rows_dir / f"rows-{args.model}-{args.gate}{'-' + args.tag if args.tag else ''}.jsonl"
    data = qa_set(args.dataset)
    items = data.items[: args.limit]
    if not args.report:
        run(data, items, rows_path, args.model, args.gate, args.planner)
    wanted = {item.id for item in items}
    rows = [row for row in (json.loads(line) for line in rows_path.open()) if row["id"] in wanted] \
        if rows_path.exists() else []
    if not rows:
        print(f"no rows in {rows_path} for these questions")
        return
    table = summarise(rows, items)
    print(table)
    if not args.no_append:
        name = TITLES[args.dataset]
        append_history(f"{name} basic vs multihop, {args.model}, {len(rows)} questions (multihop_pipelines.py)", table,
                       f"Hybrid retrieval reranked, top 5, short answers; multihop: gate `{args.gate}`, plans by "
                       f"{args.planner or args.model}, steps "
                       "searched top 3 and answered by the same model, final answer over the merged evidence "
                       "with the facts found. Both pipelines ran back to back on each question. Data: "
                       f"{QA_SETS[args.dataset].path}.", area="Multi-hop")


def run(data: EvalDataset, items: list, rows_path: Path, model: str, gate: str, planner: str = "") -> None:
    """Answer each item not yet in `rows_path` with both pipelines, appending one row per question."""
    from pilotfish.answer import build
    from pilotfish.knowledge.base import KnowledgeBase
    from pilotfish.llms.llamacpp import LlamaCppLLM

    done = {json.loads(line)["id"] for line in rows_path.open()} if rows_path.exists() else set()
    folder = OUT / QA_SETS[data.name].out
    kb = KnowledgeBase.open(folder / "kb", create=True)
    if kb.store.counts()["documents"] == 0:
        kb.ingest([write_corpus(data, folder)])
    # One model instance per pipeline: llama.cpp reuses a cached prompt prefix, and multihop would otherwise
    # get basic's identical prompt for free on every question the gate leaves whole.
    common = {"answer": {"llm": model, "style": "short", "max_tokens": 64},
              "retrieve": {"top_k": 5, "rerank": True, "step_top_k": 3}}
    decompose = {"gate": gate} | ({"llm": f"planner:{planner}"} if planner else {})
    pipelines = {"basic": build(common, kb, llms={model: LlamaCppLLM(model=model)}),
                 "multihop": build(common | {"decompose": decompose}, kb,
                                   llms={model: LlamaCppLLM(model=model)}
                                   | ({f"planner:{planner}": LlamaCppLLM(model=planner)} if planner else {}))}
    for pipeline in pipelines.values():
        pipeline.run("Which city is the capital of France?")  # warm-up: loads are not answer time
    with rows_path.open("a", encoding="utf-8") as fh:
        for n, item in enumerate(items, 1):
            if item.id in done:
                continue
            row = {"id": item.id, "question": item.question, "gold": item.answers[0], "type": question_type(item)}
            for name, pipeline in pipelines.items():
                start = time.perf_counter()
                answer = pipeline.run(item.question)
                seconds = time.perf_counter() - start
                plan = next((s.outputs.get("plan") for s in answer.trace if s.node == "decompose"), None)
                steps = next((s.outputs.get("steps") for s in answer.trace if s.node == "answer_steps"), None)
                row[name] = {"text": answer.text, "seconds": seconds, "calls": answer.usage.calls,
                             "evidence": [p.doc_id for p in answer.evidence], "plan": plan, "steps": steps}
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            print(f"{n}/{len(items)} basic {row['basic']['seconds']:.1f}s multihop {row['multihop']['seconds']:.1f}s "
                  f"| {row['gold']!r}: {row['basic']['text']!r} / {row['multihop']['text']!r}", flush=True)


def question_type(item: EvalItem) -> str | None:
    """HotpotQA's and 2Wiki's own type (bridge, comparison ...); for MuSiQue the number of hops ("2hop")."""
    if "type" in item.metadata:
        return item.metadata["type"]
    steps = item.metadata.get("question_decomposition")
    return f"{len(steps)}hop" if steps else None


def paired_interval(a: list[float], b: list[float], resamples: int = 2000) -> tuple[float, float]:
    """95% paired bootstrap interval of mean(b) - mean(a), over the same questions (seeded)."""
    import numpy as np

    diff = np.asarray(b) - np.asarray(a)
    picks = np.random.default_rng(0).integers(0, len(diff), size=(resamples, len(diff)))
    means = diff[picks].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def summarise(rows: list[dict], items: list) -> str:
    """Scores against the dataset's items (every gold answer, the gold paragraphs), looked up by id."""
    by_id = {item.id: item for item in items}
    table = []
    for name in ("basic", "multihop"):
        runs = [r[name] for r in rows]
        scores = [answer_scores(run["text"], by_id[r["id"]].answers) for r, run in zip(rows, runs)]
        em, f1 = statistics.mean(s[0] for s in scores), statistics.mean(s[1] for s in scores)
        recall = statistics.mean(support_recall(by_id[r["id"]].gold_doc_ids, run["evidence"][:5])
                                 for r, run in zip(rows, runs))
        seconds = [run["seconds"] for run in runs]
        decomposed = (sum(bool(run["steps"]) for run in runs) / len(rows)) if name == "multihop" else 0.0
        table.append((name, f"{em:.3f}", f"{f1:.3f}", f"{recall:.3f}", f"{statistics.mean(seconds):.1f}",
                      f"{statistics.median(seconds):.1f}", f"{statistics.mean(run['calls'] for run in runs):.2f}",
                      f"{decomposed:.0%}"))
    ratio = (statistics.mean(r["multihop"]["seconds"] for r in rows)
             / statistics.mean(r["basic"]["seconds"] for r in rows))
    low, high = paired_interval([answer_scores(r["basic"]["text"], by_id[r["id"]].answers)[1] for r in rows],
                                [answer_scores(r["multihop"]["text"], by_id[r["id"]].answers)[1] for r in rows])
    table.append(("multihop / basic", "", f"{float(table[1][2]) - float(table[0][2]):+.3f} "
                  f"(95% interval {low:+.3f} to {high:+.3f})", "", f"{ratio:.2f}x", "", "", ""))
    return markdown_table(("pipeline", "EM", "F1", "support recall@5", "mean s", "p50 s", "LLM calls", "decomposed"),
                          table)


if __name__ == "__main__":
    main()
