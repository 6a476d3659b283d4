"""HotpotQA: how many supporting paragraphs the pooled corpus holds, and F1 split by that.

    python benchmarks/hotpotqa_coverage.py [--retrieval N] [--multihop-rows GLOBS] [--no-append]

The questions' own 10 paragraphs make the pooled corpus (hotpotqa_answers.py). In the earlier 300-item
file a question's supporting paragraphs were often not among its 10, so some questions could not be
answered from the corpus at all; in the 500-item file every question holds both, and this script checks
that. It counts, per question, how many of its supporting titles the corpus holds (both, one, none),
gives the supporting-paragraph recall that a perfect retriever would reach, and splits the F1 of every
answers-*.jsonl that hotpotqa_answers.py wrote (and of the rows of multihop_pipelines.py in
out/multihop500) by those groups. No model runs, unless `--retrieval N`: then the first N questions are
searched in the knowledge base hotpotqa_answers.py built (hybrid, the first stage's top 20, and the
cross-encoder's top 3 and top 5 of those 20) and each list's supporting-paragraph recall and
gold-answer presence are set against the ceiling.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from shared import HOTPOT_OUT, OUT, answer_scores, append_history, markdown_table, qa_set, support_recall  # noqa: E402

GROUPS = ("both", "one", "none")


def coverage(item, corpus_titles: set[str]) -> str:
    """'both', 'one' or 'none': how many of the question's supporting titles the pooled corpus holds."""
    gold = set(item.gold_doc_ids)
    held = len(gold & corpus_titles)
    return "both" if held == len(gold) else ("none" if held == 0 else "one")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--multihop-rows", default="rows-*-rules.jsonl,rows-*-bestlast.jsonl",
                        help="comma-separated globs of multihop_pipelines.py row files (out/multihop500) to include")
    parser.add_argument("--retrieval", type=int, default=0, metavar="N",
                        help="also measure retrieval recall against the ceiling on the first N questions")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    data = qa_set("hotpotqa")
    items = data.items
    corpus_titles = {doc["title"] for doc in data.corpus or []}
    group_of = {item.question: coverage(item, corpus_titles) for item in items}
    counts = {g: sum(v == g for v in group_of.values()) for g in GROUPS}
    ceiling = statistics.mean(support_recall(item.gold_doc_ids, corpus_titles) for item in items)

    rows = [("questions", *(str(counts[g]) for g in GROUPS), str(len(items)))]
    for path in sorted(p for p in HOTPOT_OUT.glob("answers-*.jsonl") if not p.name.endswith(".partial.jsonl")):
        answered = [json.loads(line) for line in path.open()]
        rows.append((path.stem.removeprefix("answers-"), *_f1_by_group(
            [(group_of[a["question"]], a["f1"]) for a in answered if a["question"] in group_of])))
    multihop = OUT / "multihop500"
    for path in sorted({p for pattern in args.multihop_rows.split(",") for p in multihop.glob(pattern)}):
        answered = [json.loads(line) for line in path.open()]
        for config in ("basic", "multihop"):
            scored = [(group_of[r["question"]], answer_scores(r[config]["text"], [r["gold"]])[1])
                      for r in answered if r["question"] in group_of]
            rows.append((f"{config}, {path.stem.removeprefix('rows-')} ({len(scored)} q)", *_f1_by_group(scored)))
    table = markdown_table(("F1 by corpus coverage", "both supporting paragraphs in corpus", "one", "none",
                            "all"), rows)
    note = (f"The pooled corpus holds {len(corpus_titles)} paragraphs. Supporting-paragraph recall of a perfect "
            f"retriever: {ceiling:.3f}. Each answers file is the latest hotpotqa_answers.py run of that "
            "configuration; multihop rows come from multihop_pipelines.py.")
    if args.retrieval:
        table += "\n\n" + retrieval_table(items[: args.retrieval], corpus_titles)
    print(table)
    print(note)
    if not args.no_append:
        append_history("HotpotQA corpus coverage (hotpotqa_coverage.py)", table, note, area="Grounded answers")


def retrieval_table(items: list, corpus_titles: set[str]) -> str:
    """Supporting-paragraph recall and gold-answer presence of each evidence list, beside the ceiling."""
    from pilotfish.knowledge.base import KnowledgeBase
    from pilotfish.routing.signals import normalise

    kb = KnowledgeBase.open(HOTPOT_OUT / "kb")  # built by hotpotqa_answers.py
    scores: dict[str, list[tuple[float, bool]]] = {}
    for item in items:
        gold = set(item.gold_doc_ids)
        answer = normalise(item.answers[0])
        pool = kb.search(item.question, mode="hybrid", top_k=20)
        ranked = kb.rerank(item.question, pool, top_k=20)
        lists = {"ceiling: the supporting paragraphs the corpus holds": None, "hybrid, first 20": pool,
                 "reranked top 3": ranked[:3], "reranked top 5": ranked[:5]}
        for name, passages in lists.items():
            if passages is None:  # the gold paragraphs' text as the corpus holds it (sentences joined as given)
                found, text = gold & corpus_titles, " ".join(item.gold_passages)
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
