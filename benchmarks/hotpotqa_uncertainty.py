"""Which signal predicts a wrong answer? HotpotQA answers of qwen2.5-0.5b, checked four ways.

    python benchmarks/hotpotqa_uncertainty.py [--limit 100] [--samples 4] [--compare MODEL] [--no-append]

Reads the 0.5B pipeline's answers (hybrid top-3 reranked, short style) from hotpotqa_answers.py's
run (out/hotpotqa500/answers-pf-0.5b.jsonl), rebuilds each prompt (retrieval only) and measures, per answered question:
  groundedness      1 - the NLI checker's `supported` for the answer against the three passages
  self-consistency  SelfCheckGPT-NLI: contradiction of the answer by `--samples` answers at T=0.7
  semantic entropy  entropy of the answer and its samples clustered by two-way entailment
  mean logprob      the baseline: minus the mean token log-probability of the answer (teacher-forced)
and reports each one's AUROC for predicting a wrong answer (F1 < 0.5), then the F1 / abstention
trade-off of the `verified` pipeline's rule (abstain when `supported` is below a threshold).
`--compare` scores the same answers and samples with a second NLI model (a registry name or folder) too.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--model", default="nli-small")
    parser.add_argument("--compare", default="", help="a second NLI model for the same answers and samples")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    from sklearn.metrics import roc_auc_score

    from pilotfish.answer import build
    from pilotfish.knowledge.base import KnowledgeBase
    from pilotfish.llms.llamacpp import LlamaCppLLM
    from pilotfish.prompts.builder import is_abstention
    from pilotfish.prompts.short_answer import short_answer_schema
    from pilotfish.verification.checker import NLIGroundednessChecker
    from pilotfish.verification.uncertainty import SelfConsistencyChecker, SemanticEntropy

    items = hotpotqa_items()[: args.limit]
    answers = load_answers("pf-0.5b", items)
    kb = KnowledgeBase.open(OUT / "kb")
    llm = LlamaCppLLM(model="qwen2.5-0.5b")
    pipe = build({"answer": {"llm": "qwen2.5-0.5b", "style": "short", "max_tokens": 64},
                  "retrieve": {"top_k": 3, "rerank": True}}, kb, llms={"qwen2.5-0.5b": llm})
    checker = NLIGroundednessChecker.default(model=args.model)
    selfcheck, entropy = SelfConsistencyChecker(model=checker.nli), SemanticEntropy(model=checker.nli)
    other = NLIGroundednessChecker.default(model=args.compare) if args.compare else None
    if other is not None:
        other_selfcheck, other_entropy = SelfConsistencyChecker(model=other.nli), SemanticEntropy(model=other.nli)
    rows = []
    for n, (item, got) in enumerate(zip(items, answers), 1):
        if is_abstention(got["prediction"]):
            continue
        passages = kb.search(item.question, mode="hybrid", top_k=3, rerank=True)
        messages = pipe.parts.builder.build(item.question, passages)
        answer = strip_citations(got["prediction"])
        t0 = time.perf_counter()
        verdict = checker.check(answer, passages, question=item.question)
        t1 = time.perf_counter()
        raw = llm.generate(messages, n=args.samples, temperature=0.7, max_tokens=64,
                           json_schema=short_answer_schema(len(passages)))
        samples = [_answer_of(g.text) for g in raw]
        t2 = time.perf_counter()
        claim = _as_sentence(answer, item.question)
        sample_claims = [_as_sentence(s, item.question) for s in samples]
        consistency = selfcheck.measure(claim, sample_claims)
        clusters = entropy.measure([answer, *samples], question=item.question)
        t3 = time.perf_counter()
        reply = json.dumps({"answer": answer, "sources": []})[: -len(', "sources": []}')]  # the answer's own tokens
        scored, _ = llm.score_completion(messages, reply)
        t4 = time.perf_counter()
        compared = {}
        if other is not None:
            compared = {"supported": other.check(answer, passages, question=item.question).supported,
                        "selfcheck": other_selfcheck.measure(claim, sample_claims).score,
                        "entropy": other_entropy.measure([answer, *samples], question=item.question).entropy}
        rows.append({"f1": got["f1"], "answer": answer, "samples": samples, "supported": verdict.supported,
                     "compared": compared,
                     "label": verdict.label, "selfcheck": consistency.score, "entropy": clusters.entropy,
                     "logprob": statistics.mean(lp for _, lp in scored),
                     "seconds": {"groundedness": t1 - t0, "sampling": t2 - t1, "nli_on_samples": t3 - t2,
                                 "logprob": t4 - t3}})
        if n % 20 == 0:
            print(f"{n}/{len(items)} questions", flush=True)
    (OUT / "uncertainty-rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    wrong = [r["f1"] < 0.5 for r in rows]
    signals = {"groundedness (1 - supported)": [1 - r["supported"] for r in rows],
               f"self-consistency (SelfCheckGPT-NLI, {args.samples} samples)": [r["selfcheck"] for r in rows],
               f"semantic entropy ({args.samples + 1} answers)": [r["entropy"] for r in rows],
               "mean token log-probability (baseline)": [-r["logprob"] for r in rows]}
    cost = {"groundedness (1 - supported)": ["groundedness"],
            f"self-consistency (SelfCheckGPT-NLI, {args.samples} samples)": ["sampling", "nli_on_samples"],
            f"semantic entropy ({args.samples + 1} answers)": ["sampling", "nli_on_samples"],
            "mean token log-probability (baseline)": ["logprob"]}
    key = dict(zip(signals, ("supported", "selfcheck", "entropy")))
    table_rows = []
    for name, values in signals.items():
        row = [name, f"{roc_auc_score(wrong, values):.3f}"]
        if other is not None:
            theirs = [r["compared"][key[name]] for r in rows] if name in key else None
            if theirs and key[name] == "supported":
                theirs = [1 - v for v in theirs]
            row.append(f"{roc_auc_score(wrong, theirs):.3f}" if theirs else "-")
        table_rows.append(row + [f"{statistics.mean(sum(r['seconds'][k] for k in cost[name]) for r in rows):.2f}"])
    header = ["signal", f"AUROC (wrong answer), {args.model}"]
    header += [f"AUROC, {Path(args.compare).name}"] if other is not None else []
    table = markdown_table(header + ["mean s per answer"], table_rows)
    trade = []
    for threshold in (0.0, 0.1, 0.2, 0.3, 0.5, 0.7):
        kept = [r for r in rows if r["supported"] >= threshold]
        trade.append([f"{threshold:.1f}", f"{len(kept) / len(rows):.0%}",
                      f"{statistics.mean(r['f1'] for r in kept):.3f}" if kept else "-",
                      f"{sum(r['f1'] for r in kept) / len(rows):.3f}"])
    table += ("\n\nAbstain when `supported` < threshold:\n\n"
              + markdown_table(["threshold", "answered", "F1 of answered", "F1 over all (abstain = 0)"], trade))
    note = (f"{len(rows)} answered questions of the first {args.limit} ({sum(wrong)} wrong, F1 < 0.5); "
            f"NLI model `{args.model}`. Command: `python benchmarks/hotpotqa_uncertainty.py --limit {args.limit} "
            f"--samples {args.samples}" + (f" --compare {Path(args.compare).name}" if args.compare else "") + "`.")
    print(table)
    print(note)
    if not args.no_append:
        append_history("Answer-level uncertainty on HotpotQA, qwen2.5-0.5b (hotpotqa_uncertainty.py)",
                       table, note, area="Verification")


def _answer_of(text: str) -> str:
    try:
        return str(json.loads(text).get("answer", "")).strip()
    except (ValueError, AttributeError):
        return text.strip()


def _as_sentence(answer: str, question: str) -> str:
    from pilotfish.verification.checker import as_claim

    return as_claim(answer, question)


if __name__ == "__main__":
    main()
