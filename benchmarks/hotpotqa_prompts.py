"""Short-answer prompt variants on a slice of HotpotQA, same evidence for every variant (exploration).

    python benchmarks/hotpotqa_prompts.py [--offset 0] [--limit 60] [--llm qwen2.5-0.5b]
        [--variants base,qfirst,reversed,srcfirst,quote] [--top-k 3] [--out FILE]

The evidence is retrieved once per question (hybrid, cross-encoder reranked to --top-k, as pf-0.5b in
hotpotqa_answers.py, whose knowledge base it reads); each variant changes only the prompt or the answer schema:
  base      the shipped short-answer prompt and schema
  qfirst    the question also stated before the evidence
  reversed  passages in reverse order (the best one nearest the question)
  revnum    passages in reverse order but numbered as ranked ([1], the best, listed last)
  srcfirst  the schema asks for "sources" before "answer"
  quote     the schema asks first for the evidence sentence that answers, then the answer
Variants combine with "+", e.g. reversed+srcfirst.
Prints F1 per variant and mean output tokens; appends nothing (exploration: report it by hand in
benchmarks/history.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from shared import HOTPOT_OUT, answer_scores, hotpotqa_items  # noqa: E402

QUOTE_RULE = ('Reply in JSON with three keys:\n- "quote": the sentence of the evidence that answers the question, '
              'copied word for word.\n')


def variant_messages(name: str, builder, question: str, passages: list) -> tuple[list, dict]:
    from pilotfish.prompts.builder import PromptBuilder
    from pilotfish.prompts.short_answer import short_answer_schema

    parts = set(name.split("+"))
    shown = list(reversed(passages)) if "reversed" in parts else passages
    if "revnum" in parts:  # the shipped order="best_last": best passage last, still numbered [1]
        builder = PromptBuilder(system_template="answer_short_system", user_template="answer_short_user",
                                order="best_last")
    messages = builder.build(question, shown)
    schema = short_answer_schema(len(shown))
    if "qfirst" in parts:
        messages[1]["content"] = f"Question: {question}\n\n" + messages[1]["content"]
    if "srcfirst" in parts:
        schema = {**schema, "properties": {"sources": schema["properties"]["sources"],
                                           "answer": schema["properties"]["answer"]}}
    if "quote" in parts:
        messages[0]["content"] = messages[0]["content"].replace('Reply in JSON with two keys:\n', QUOTE_RULE)
        schema = {**schema, "properties": {"quote": {"type": "string", "maxLength": 300}, **schema["properties"]},
                  "required": ["quote", "answer", "sources"]}
    return messages, schema


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument("--variants", default="base,qfirst,reversed,srcfirst,quote")
    parser.add_argument("--llm", default="qwen2.5-0.5b")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--out", default="")
    args = parser.parse_args()

    from pilotfish.knowledge.base import KnowledgeBase
    from pilotfish.llms.llamacpp import LlamaCppLLM
    from pilotfish.prompts.builder import PromptBuilder
    from pilotfish.prompts.short_answer import render_short_answer

    items = hotpotqa_items()[args.offset: args.offset + args.limit]
    kb = KnowledgeBase.open(HOTPOT_OUT / "kb")  # built by hotpotqa_answers.py
    llm = LlamaCppLLM(model=args.llm)
    builder = PromptBuilder(system_template="answer_short_system", user_template="answer_short_user")
    names = args.variants.split(",")
    f1s: dict[str, list[float]] = {n: [] for n in names}
    out_tokens: dict[str, list[int]] = {n: [] for n in names}
    rows = []
    for i, item in enumerate(items):
        passages = kb.search(item.question, mode="hybrid", top_k=args.top_k, rerank=True)
        row = {"question": item.question, "gold": item.answers[0]}
        for name in names:
            messages, schema = variant_messages(name, builder, item.question, passages)
            generation = llm.generate(messages, max_tokens=160, temperature=0.0, json_schema=schema)[0]
            try:
                reply = generation.json()
                text = render_short_answer({"answer": reply["answer"], "sources": reply.get("sources", [])})
            except Exception:  # noqa: BLE001 - exploration: a broken reply scores as its raw text
                text = generation.text
            f1s[name].append(answer_scores(text, item.answers)[1])
            out_tokens[name].append(generation.usage.completion_tokens)
            row[name] = text
        rows.append(row)
        if (i + 1) % 10 == 0:
            print(f"{i + 1}: " + ", ".join(f"{n} {statistics.mean(f1s[n]):.3f}" for n in names), flush=True)
    for name in names:
        print(f"{name}: F1 {statistics.mean(f1s[name]):.3f}, output tokens {statistics.mean(out_tokens[name]):.0f}")
    if args.out:
        Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
