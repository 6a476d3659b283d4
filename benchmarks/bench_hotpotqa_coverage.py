"""HotpotQA-300: how many supporting paragraphs the pooled corpus holds, and F1 split by that.

    python benchmarks/bench_hotpotqa_coverage.py [--no-append]

The 300 questions' own 10 paragraphs make the pooled corpus (bench_hotpotqa_rag.py). In this file a
question's supporting paragraphs are not always among its 10, so some questions cannot be answered
from the corpus at all. This script counts, per question, how many of its supporting titles the corpus
holds (both, one, none), gives the supporting-paragraph recall that a perfect retriever would reach,
and splits the F1 of every answers-*.jsonl that bench_hotpotqa_rag.py wrote (and of the multihop rows
of bench_multihop.py) by those groups. No model runs, unless `--retrieval N`: then the first N
questions are searched in the knowledge base bench_hotpotqa_rag.py built (hybrid, the first stage's top
20, and the cross-encoder's top 3 and top 5 of those 20) and each list's supporting-paragraph recall and
gold-answer presence are set against the ceiling.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_hotpotqa_rag import OUT, f1_score, load_items, strip_citations  # noqa: E402
from common import append_markdown, markdown_table  # noqa: E402

GROUPS = ("both", "one", "none")


def coverage(item: dict, corpus_titles: set[str]) -> str:
    """'both', 'one' or 'none': how many of the question's supporting titles the pooled corpus holds."""
    gold = {title for title, _ in item["supporting_facts"]}
    held = len(gold & corpus_titles)
    return "both" if held == len(gold) else ("none" if held == 0 else "one")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--multihop-rows", default="rows-*-rules.jsonl,rows-*-bestlast.jsonl",
                        help="comma-separated globs of bench_multihop.py row files to include")
    parser.add_argument("--retrieval", type=int, default=0, metavar="N",
                        help="also measure retrieval recall against the ceiling on the first N questions")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    items = load_items()
    corpus_titles = {title for item in items for title, _ in item["context"]}
    group_of = {item["question"]: coverage(item, corpus_titles) for item in items}
    counts = {g: sum(v == g for v in group_of.values()) for g in GROUPS}
    ceiling = statistics.mean(
        len({t for t, _ in item["supporting_facts"]} & corpus_titles) / len({t for t, _ in item["supporting_facts"]})
        for item in items)

    rows = [("questions", *(str(counts[g]) for g in GROUPS), str(len(items)))]
    for path in sorted(OUT.glob("answers-*.jsonl")):
        answered = [json.loads(line) for line in path.open()]
        rows.append((path.stem.removeprefix("answers-"), *_f1_by_group(
            [(group_of[a["question"]], a["f1"]) for a in answered if a["question"] in group_of])))
    multihop = OUT.parent / "multihop"
    for path in sorted({p for pattern in args.multihop_rows.split(",") for p in multihop.glob(pattern)}):
        answered = [json.loads(line) for line in path.open()]
        for config in ("basic", "multihop"):
            scored = [(group_of[r["question"]], f1_score(strip_citations(r[config]["text"]), r["gold"]))
                      for r in answered if r["question"] in group_of]
            rows.append((f"{config}, {path.stem.removeprefix('rows-')} ({len(scored)} q)", *_f1_by_group(scored)))
    table = markdown_table(("F1 by corpus coverage", "both supporting paragraphs in corpus", "one", "none",
                            "all"), rows)
    note = (f"The pooled corpus holds {len(corpus_titles)} paragraphs. Supporting-paragraph recall of a perfect "
            f"retriever: {ceiling:.3f}. Each answers file is the latest bench_hotpotqa_rag.py run of that "
            "configuration; multihop rows come from bench_multihop.py.")
    if args.retrieval:
        table += "\n\n" + retrieval_table(items[: args.retrieval], corpus_titles)
    print(table)
    print(note)
    if not args.no_append:
        append_markdown("HotpotQA-300 corpus coverage (bench_hotpotqa_coverage.py)", table, note)


def retrieval_table(items: list[dict], corpus_titles: set[str]) -> str:
    """Supporting-paragraph recall and gold-answer presence of each evidence list, beside the ceiling."""
    from pilotfish.routing.signals import normalise
    from pilotfish.knowledge.base import KnowledgeBase

    kb = KnowledgeBase.open(OUT / "kb")  # built by bench_hotpotqa_rag.py
    scores: dict[str, list[tuple[float, bool]]] = {}
    for item in items:
        gold = {title for title, _ in item["supporting_facts"]}
        answer = normalise(item["answer"])
        pool = kb.search(item["question"], mode="hybrid", top_k=20)
        ranked = kb.rerank(item["question"], pool, top_k=20)
        lists = {"ceiling: the supporting paragraphs the corpus holds": None, "hybrid, first 20": pool,
                 "reranked top 3": ranked[:3], "reranked top 5": ranked[:5]}
        for name, passages in lists.items():
            if passages is None:
                found, text = gold & corpus_titles, " ".join(
                    " ".join(s) for t, s in item["context"] if t in gold)
            else:
                found, text = gold & {p.title for p in passages}, " ".join(f"{p.title} {p.text}" for p in passages)
            has_answer = answer in ("yes", "no") or f" {answer} " in f" {normalise(text)} "
            scores.setdefault(name, []).append((len(found) / len(gold), has_answer))
    rows = [(name, f"{statistics.mean(r for r, _ in v):.3f}", f"{statistics.mean(h for _, h in v):.3f}")
            for name, v in scores.items()]
    return markdown_table((f"evidence ({len(items)} questions)", "supporting-paragraph recall",
                           "gold answer in the text"), rows)


def _f1_by_group(scored: list[tuple[str, float]]) -> tuple[str, ...]:
    cells = []
    for group in (*GROUPS, None):
        values = [f1 for g, f1 in scored if group is None or g == group]
        cells.append(f"{statistics.mean(values):.3f}" if values else "-")
    return tuple(cells)


if __name__ == "__main__":
    main()
