"""Pipeline variants on a slice of HotpotQA with qwen2.5-0.5b: evidence depth and sentence compression.

    python benchmarks/hotpotqa_compression.py [--offset 0] [--limit 40] [--variants 3/none,5/6,3/4] [--llm MODEL]

Each variant is TOP_K/COMPRESS: hybrid retrieval reranked to TOP_K passages, then (unless `none`)
cut to the COMPRESS sentences the cross-encoder ranks highest; answers in the short style. Prints F1,
p50 seconds and mean prompt tokens; appends nothing (exploration: report it by hand in benchmarks/history.md).
Reads the knowledge base hotpotqa_answers.py built.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from shared import HOTPOT_OUT, answer_scores, hotpotqa_items  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--variants", default="3/none,5/6,3/4")
    parser.add_argument("--llm", default="qwen2.5-0.5b")
    args = parser.parse_args()

    from pilotfish.answer import build
    from pilotfish.knowledge.base import KnowledgeBase
    from pilotfish.llms.llamacpp import LlamaCppLLM

    items = hotpotqa_items()[args.offset: args.offset + args.limit]
    kb = KnowledgeBase.open(HOTPOT_OUT / "kb")  # built by hotpotqa_answers.py
    llm = LlamaCppLLM(model=args.llm)
    for spec in args.variants.split(","):
        top_k, keep = spec.split("/")
        retrieve = {"top_k": int(top_k), "rerank": True} | ({} if keep == "none" else {"compress": int(keep)})
        pipe = build({"answer": {"llm": args.llm, "style": "short", "max_tokens": 64}, "retrieve": retrieve}, kb,
                     llms={args.llm: llm})
        f1s, seconds, tokens = [], [], []
        for item in items:
            start = time.perf_counter()
            answer = pipe.run(item.question)
            seconds.append(time.perf_counter() - start)
            f1s.append(answer_scores(answer.text, item.answers)[1])
            tokens.append(answer.usage.prompt_tokens)
        print(f"{spec}: F1 {statistics.mean(f1s):.3f}, p50 {statistics.median(seconds):.1f}s, "
              f"prompt tokens {statistics.mean(tokens):.0f}", flush=True)


if __name__ == "__main__":
    main()
