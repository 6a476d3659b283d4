"""Cascade on HotpotQA: qwen2.5-0.5b answers, a confidence signal escalates to qwen2.5-1.5b.

    python benchmarks/hotpotqa_cascade.py [--limit N] [--live N] [--signals self-consistency,self-verify,nli]
                                          [--no-append]

Reads the small- and large-model answers of the pilotfish pipeline (hybrid top-3 reranked, short
answers) with their seconds from hotpotqa_answers.py's run (out/hotpotqa500/answers-pf-0.5b.jsonl and
answers-pf-1.5b.jsonl, same questions), rebuilds each small-model prompt (retrieval only), and measures
the small model's confidence signals on it: self-consistency over 4 samples at temperature 0.7,
self-verification, and the NLI checker's support for the answer in its evidence (`--signals nli`). The
cascade at each threshold takes the small answer when the signal reaches the threshold, else the large one;
its seconds are small + signal (+ large when escalated). Generation is seeded, so a live `Cascade` makes
the same decisions: `--live N` runs the real `Cascade` on the first N questions and reports how many
decisions and answers match the reconstruction.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from shared import HOTPOT_OUT, append_history, hotpotqa_items, load_answers, markdown_table, strip_citations  # noqa: E402

OUT = HOTPOT_OUT

THRESHOLDS = {"self-consistency": (0.5, 0.75, 1.0), "self-verify": (0.5, 0.75, 1.0), "nli": (0.1, 0.3, 0.5)}
LIVE_THRESHOLD = {"self-consistency": 0.75, "self-verify": 0.75, "nli": 0.3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--live", type=int, default=20)
    parser.add_argument("--signals", default="self-consistency,self-verify")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    from sklearn.metrics import roc_auc_score

    from pilotfish.answer import build
    from pilotfish.knowledge.base import KnowledgeBase
    from pilotfish.llms.base import Generation
    from pilotfish.llms.llamacpp import LlamaCppLLM
    from pilotfish.prompts.short_answer import short_answer_schema
    from pilotfish.routing.cascade import Cascade
    from pilotfish.routing.signals import NLISignal, SelfConsistencySignal, SelfVerifySignal

    items = hotpotqa_items()[: args.limit]
    kb = KnowledgeBase.open(OUT / "kb")  # built by hotpotqa_answers.py
    small, large = LlamaCppLLM(model="qwen2.5-0.5b"), LlamaCppLLM(model="qwen2.5-1.5b")
    options = {"answer": {"llm": "answerer", "style": "short", "max_tokens": 64},
               "retrieve": {"top_k": 3, "rerank": True}}
    small_pipe = build(options, kb, llms={"answerer": small})
    answered = {name: load_answers(f"pf-{size}", items) for name, size in (("small", "0.5b"), ("large", "1.5b"))}
    known = {"self-consistency": SelfConsistencySignal(samples=4), "self-verify": SelfVerifySignal(),
             "nli": NLISignal()}
    signals = {name: known[name] for name in args.signals.split(",")}
    small.generate([{"role": "user", "content": "Say hi"}], max_tokens=4)  # warm-up
    rows = []
    for n, item in enumerate(items, 1):
        row: dict = {"gold": item.answers[0]}
        for name in ("small", "large"):
            got = answered[name][n - 1]
            row[name] = {"text": got["prediction"], "seconds": got["seconds"], "f1": got["f1"]}
        passages = kb.search(item.question, mode="hybrid", top_k=3, rerank=True)
        messages = small_pipe.parts.builder.build(item.question, passages)
        similarities = kb.similarity(item.question, passages) if passages else None
        floor = small_pipe.spec.answer.min_similarity
        abstained = not passages or (similarities is not None and max(similarities) < floor)
        row["signals"] = {}
        for signal_name, signal in signals.items():
            t0 = time.perf_counter()
            if abstained:  # the gate abstained: no LLM call to doubt
                confidence = 1.0
            else:
                raw = json.dumps({"answer": strip_citations(row["small"]["text"])})
                confidence, _ = signal.confidence(small, messages, Generation(text=raw), max_tokens=64,
                                                  json_schema=short_answer_schema(len(passages)))
            row["signals"][signal_name] = {"confidence": confidence, "seconds": time.perf_counter() - t0}
        rows.append(row)
        if n % 25 == 0:
            print(f"{n}/{len(items)} questions", flush=True)
    (OUT / f"cascade-rows-{'-'.join(signals)}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    first = next(iter(signals))
    live = live_check(rows[: args.live], items, Cascade([small, large], signal=known[first],
                                                      thresholds=LIVE_THRESHOLD[first]), kb, options,
                      first) if args.live else None
    table_rows = []
    for label, pick in (("small only (qwen2.5-0.5b)", lambda r, s: "small"),
                        ("large only (qwen2.5-1.5b)", lambda r, s: "large")):
        table_rows.append(summary_row(label, rows, pick, None))
    for signal_name in signals:
        wrong = [r["small"]["f1"] < 0.5 for r in rows]
        conf = [r["signals"][signal_name]["confidence"] for r in rows]
        auroc = roc_auc_score(wrong, [-c for c in conf]) if 0 < sum(wrong) < len(wrong) else float("nan")
        for t in THRESHOLDS[signal_name]:
            table_rows.append(summary_row(f"cascade, {signal_name} >= {t} (AUROC {auroc:.2f})", rows,
                                          lambda r, s, t=t: "small" if r["signals"][s]["confidence"] >= t else "large",
                                          signal_name))
    table = markdown_table(("configuration", "F1", "share of large F1", "escalated", "p50 s", "mean s"), table_rows)
    print(table)
    note = (f"{len(rows)} questions; pipeline: hybrid top-3 reranked, short answers. Cascade seconds = small answer "
            "+ signal (+ large answer when escalated); AUROC: the signal predicting a wrong small answer (F1 < 0.5).")
    if live:
        note += (f" Live check: the real Cascade ({first} >= {LIVE_THRESHOLD[first]}) on the first {live['n']} "
                 "questions made "
                 f"{live['same_decisions']}/{live['n']} identical decisions with {live['same_answers']}/{live['n']} "
                 "identical answers.")
    print(note)
    if not args.no_append:
        append_history("Cascade qwen2.5-0.5b -> qwen2.5-1.5b on HotpotQA (hotpotqa_cascade.py)", table, note,
                       area="Routing")


def summary_row(label: str, rows: list[dict], pick, signal: str | None) -> tuple:
    chosen = [pick(r, signal) for r in rows]
    f1 = [r[c]["f1"] for r, c in zip(rows, chosen)]
    seconds = []
    for r, c in zip(rows, chosen):
        if signal is None:
            seconds.append(r[c]["seconds"])
        else:
            seconds.append(r["small"]["seconds"] + r["signals"][signal]["seconds"]
                           + (r["large"]["seconds"] if c == "large" else 0.0))
    large_f1 = statistics.mean(r["large"]["f1"] for r in rows)
    return (label, f"{statistics.mean(f1):.3f}", f"{statistics.mean(f1) / large_f1:.0%}" if large_f1 else "-",
            f"{chosen.count('large') / len(chosen):.0%}", f"{statistics.median(seconds):.1f}",
            f"{statistics.mean(seconds):.1f}")


def live_check(rows: list[dict], items: list, cascade, kb, options: dict, signal: str) -> dict:
    from pilotfish.answer import build

    pipe = build(options, kb, llms={"answerer": cascade})
    same_decisions = same_answers = 0
    for row, item in zip(rows, items):
        answer = pipe.run(item.question)
        route = next((s.outputs["route"] for s in answer.trace if s.outputs.get("route")), None)
        escalated = bool(route and route["escalations"])
        expected = row["signals"][signal]["confidence"] < LIVE_THRESHOLD[signal]
        same_decisions += escalated == expected
        same_answers += answer.text == row["large" if escalated else "small"]["text"]
    return {"n": len(rows), "same_decisions": same_decisions, "same_answers": same_answers}


if __name__ == "__main__":
    main()
