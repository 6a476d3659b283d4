"""HotpotQA (500 dev-distractor-v1 questions, all paragraphs pooled): `basic` against `multihop`, same model.

    python benchmarks/bench_multihop.py --model qwen2.5-0.5b [--limit N] [--gate rules|always] [--report] [--tag T]
                                        [--planner qwen2.5-1.5b]
    python benchmarks/bench_multihop.py --gate-only          # the decomposition gate on four question sets

Both pipelines: hybrid retrieval, cross-encoder reranked, top 5, short answer style. `multihop` adds the
rule gate and the decomposer (its plans written by --planner, default the answering model): each step is searched (top 3, reranked) and the earlier steps answered by
the same model; the final answer reads the merged evidence (5 passages) and the facts found. For each
question the two pipelines run back to back, so load on the machine hits both alike. Rows are appended to
out/multihop/rows-MODEL.jsonl as they finish, and a re-run resumes; `--report` only summarises them.

Reports EM/F1 (SQuAD v1.1 rules), supporting-paragraph recall@5 of the evidence, mean and p50 seconds per
question, LLM calls per question, and the share of questions the gate decomposed.
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
from bench_hotpotqa_rag import OUT as HOTPOT_OUT  # noqa: E402
from bench_hotpotqa_rag import build_corpus, exact_match, f1_score, load_items  # noqa: E402
from common import DATA, append_markdown, markdown_table  # noqa: E402

from pilotfish.prompts.builder import strip_citations  # noqa: E402

OUT = Path(__file__).parent / "out" / "multihop500"


def gate_table() -> str:
    """Share of questions the rule gate decomposes, on multi-hop sets and on single-table/SQL question sets."""
    import csv

    from pilotfish.prompts.decompose import gate_reasons

    hotpot = [i["question"] for i in load_items()]
    with gzip.open(DATA / "musique" / "musique_ans_dev_with_decomposition.json.gz", "rt") as fh:
        musique = [x["question"] for x in json.load(fh)]
    with (DATA / "wtq" / "training.tsv").open(encoding="utf-8") as fh:
        wtq = [row["utterance"] for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)]
    with gzip.open(DATA / "spider" / "dev.json.gz", "rt") as fh:
        spider = [x["question"] for x in json.load(fh)]
    rows = []
    for name, kind, questions in (("HotpotQA dev 500", "multi-hop", hotpot), ("MuSiQue dev", "multi-hop", musique),
                                  ("WikiTableQuestions train", "one table", wtq), ("Spider dev", "one database", spider)):
        share = sum(bool(gate_reasons(q)) for q in questions) / len(questions)
        rows.append((name, kind, len(questions), f"{share:.1%}"))
    return markdown_table(("question set", "kind", "questions", "decomposed by the gate"), rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
            append_markdown("Decomposition gate (bench_multihop.py --gate-only)", table,
                            "Rule gate of `Decomposer` (pilotfish.prompts.decompose.gate_reasons), no model. The "
                            "table and SQL sets stand in for single-fact questions; some of theirs are genuinely "
                            "multi-step (comparisons, nested conditions).")
        return
    OUT.mkdir(parents=True, exist_ok=True)
    rows_path = OUT / f"rows-{args.model}-{args.gate}{'-' + args.tag if args.tag else ''}.jsonl"
    items = load_items()[: args.limit]
    if not args.report:
        run(items, rows_path, args.model, args.gate, args.planner)
    rows = [json.loads(line) for line in rows_path.open()] if rows_path.exists() else []
    table = summarise(rows, items)
    print(table)
    if not args.no_append and rows:
        append_markdown(f"HotpotQA basic vs multihop, {args.model}, {len(rows)} questions (bench_multihop.py)", table,
                        f"Hybrid retrieval reranked, top 5, short answers; multihop: gate `{args.gate}`, plans by "
                        f"{args.planner or args.model}, steps "
                        "searched top 3 and answered by the same model, final answer over the merged evidence "
                        "with the facts found. Both pipelines ran back to back on each question.")


def run(items: list[dict], rows_path: Path, model: str, gate: str, planner: str = "") -> None:
    from pilotfish.answer.graph import AnswerPipeline
    from pilotfish.knowledge.base import KnowledgeBase
    from pilotfish.llms.llamacpp import LlamaCppLLM
    from pilotfish.prompts.decompose import Decomposer

    done = {json.loads(line)["id"] for line in rows_path.open()} if rows_path.exists() else set()
    kb = KnowledgeBase.open(HOTPOT_OUT / "kb", create=True)
    if kb.store.counts()["documents"] == 0:
        kb.ingest([build_corpus(load_items())])
    # One model instance per pipeline: llama.cpp reuses a cached prompt prefix, and multihop would otherwise
    # get basic's identical prompt for free on every question the gate leaves whole.
    common = {"kb": kb, "top_k": 5, "rerank": True, "style": "short", "max_tokens": 64}
    pipelines = {"basic": AnswerPipeline(**common, llm=LlamaCppLLM(model=model)),
                 "multihop": AnswerPipeline(**common, llm=LlamaCppLLM(model=model), decomposer=Decomposer(
                                                LlamaCppLLM(model=planner) if planner else None, gate=gate),
                                            step_top_k=3)}
    for pipeline in pipelines.values():
        pipeline.run("Which city is the capital of France?")  # warm-up: loads are not answer time
    with rows_path.open("a", encoding="utf-8") as fh:
        for n, item in enumerate(items, 1):
            if item["_id"] in done:
                continue
            row = {"id": item["_id"], "question": item["question"], "gold": item["answer"], "type": item.get("type")}
            for name, pipeline in pipelines.items():
                start = time.perf_counter()
                answer = pipeline.run(item["question"])
                seconds = time.perf_counter() - start
                plan = next((s.outputs.get("plan") for s in answer.trace if s.node == "decompose"), None)
                steps = next((s.outputs.get("steps") for s in answer.trace if s.node == "answer_steps"), None)
                row[name] = {"text": answer.text, "seconds": seconds, "calls": answer.usage.calls,
                             "evidence": [p.doc_id for p in answer.evidence], "plan": plan, "steps": steps}
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            print(f"{n}/{len(items)} basic {row['basic']['seconds']:.1f}s multihop {row['multihop']['seconds']:.1f}s "
                  f"| {row['gold']!r}: {row['basic']['text']!r} / {row['multihop']['text']!r}", flush=True)


def summarise(rows: list[dict], items: list[dict]) -> str:
    gold_titles = {i["_id"]: {t for t, _ in i["supporting_facts"]} for i in items}
    table = []
    for name in ("basic", "multihop"):
        def metric(fn: object) -> float:
            return statistics.mean(fn(r) for r in rows)  # type: ignore[operator]
        em = metric(lambda r: exact_match(strip_citations(r[name]["text"]), r["gold"]))
        f1 = metric(lambda r: f1_score(strip_citations(r[name]["text"]), r["gold"]))
        recall = metric(lambda r: len(gold_titles[r["id"]] & set(r[name]["evidence"][:5])) / len(gold_titles[r["id"]]))
        seconds = [r[name]["seconds"] for r in rows]
        decomposed = (sum(bool(r[name]["steps"]) for r in rows) / len(rows)) if name == "multihop" else 0.0
        table.append((name, f"{em:.3f}", f"{f1:.3f}", f"{recall:.3f}", f"{statistics.mean(seconds):.1f}",
                      f"{statistics.median(seconds):.1f}", f"{metric(lambda r: r[name]['calls']):.2f}",
                      f"{decomposed:.0%}"))
    ratio = statistics.mean(r["multihop"]["seconds"] for r in rows) / statistics.mean(r["basic"]["seconds"] for r in rows)
    table.append(("multihop / basic", "", f"{float(table[1][2]) - float(table[0][2]):+.3f}", "", f"{ratio:.2f}x", "",
                  "", ""))
    return markdown_table(("pipeline", "EM", "F1", "support recall@5", "mean s", "p50 s", "LLM calls", "decomposed"),
                          table)


if __name__ == "__main__":
    main()
