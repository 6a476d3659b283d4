"""MuSiQue (answerable dev, gold decompositions): how well the decomposer plans, per local LLM.

    python benchmarks/musique_decompose.py [--models qwen2.5-0.5b,qwen2.5-1.5b] [--limit N] [--no-append]

For each question the decomposer (gate "always", so every question is planned) writes its steps. Reports,
on the LLM's proposed plan (before the decomposer's own checks): the share of questions whose number of
steps equals the gold's, and the mean embedding similarity (MiniLM, cosine) of each gold step to its
best-matching predicted step; then the share of plans the checks accepted (the rest are answered as one
step), the same similarity on accepted plans only, and LLM seconds per question. Gold steps are written
"Green >> performer"; they are read as "performer of Green" before embedding, and `#k` references are kept
on both sides.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from shared import DATA, append_history, markdown_table  # noqa: E402


def gold_text(step: str) -> str:
    if ">>" in step:
        subject, relation = (part.strip() for part in step.split(">>", 1))
        return f"{relation} of {subject}"
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="qwen2.5-0.5b,qwen2.5-1.5b")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    from pilotfish.llms.llamacpp import LlamaCppLLM
    from pilotfish.models.embedding import Embedder
    from pilotfish.prompts.decompose import Decomposer

    with gzip.open(DATA / "musique" / "musique_ans_dev_with_decomposition.json.gz", "rt") as fh:
        items = json.load(fh)[: args.limit]
    embedder = Embedder(model="minilm-l6")
    rows = []
    for model in args.models.split(","):
        decomposer = Decomposer(LlamaCppLLM(model=model), gate="always")
        same, sims, accepted_sims, accepted, seconds = [], [], [], 0, []
        for n, item in enumerate(items, 1):
            gold = [gold_text(s["question"]) for s in item["question_decomposition"]]
            plan = decomposer.plan(item["question"])
            proposed = plan.proposed or plan.steps  # a reply that was not JSON proposes the question alone
            seconds.append(plan.usage.seconds)
            same.append(len(proposed) == len(gold))
            sim = float((embedder.encode_documents(gold) @ embedder.encode_documents(proposed).T).max(axis=1).mean())
            sims.append(sim)
            if plan.fallback is None:
                accepted += 1
                accepted_sims.append(sim)
            if n % 50 == 0:
                print(f"{model}: {n}/{len(items)}", flush=True)
        rows.append((model, len(items), f"{statistics.mean(same):.1%}", f"{statistics.mean(sims):.3f}",
                     f"{accepted / len(items):.1%}",
                     f"{statistics.mean(accepted_sims):.3f}" if accepted_sims else "-",
                     f"{statistics.mean(seconds):.2f}"))
        print(rows[-1], flush=True)
    hops = statistics.mean(len(i["question_decomposition"]) for i in items)
    table = markdown_table(("decomposer LLM", "questions", "steps = gold", "gold-step similarity",
                            "plans accepted", "similarity, accepted", "LLM s/question"), rows)
    print(table)
    if not args.no_append:
        append_history(f"MuSiQue decomposition, {len(items)} questions (musique_decompose.py)", table,
                       f"Gold plans have {hops:.2f} steps on average (2 to 4). Similarity: MiniLM cosine of each gold "
                       "step to its best predicted step, averaged.", area="Multi-hop")


if __name__ == "__main__":
    main()
