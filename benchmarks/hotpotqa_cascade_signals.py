"""Can cheap features tell when qwen2.5-1.5b would beat qwen2.5-0.5b? (HotpotQA, for the 0.5B -> 1.5B cascade)

    python benchmarks/hotpotqa_cascade_signals.py [--limit N] [--order-agreement] [--no-append]

Reads both models' answers from hotpotqa_answers.py's latest run (out/hotpotqa500/answers-pf-0.5b.jsonl
and answers-pf-1.5b.jsonl), searches each question again as the pipeline does (hybrid, the cross-encoder's
top 3 of the first 20), and computes signals that cost no LLM call: the small answer found verbatim in
the evidence, yes/no, abstention, answer length, answer words shared with the question and with the
evidence, the NLI checker's support, the cross-encoder's top score and margin, the dense similarity,
the number of citations, a comparison cue, question length, and the cross-encoder's score of the
question against the best evidence sentence that holds the answer. For each, the AUROC of predicting
"the small answer is wrong" (F1 < 0.5) and "the large answer scores higher". Then a logistic
regression over all of them, cross-fitted (5 folds, 5 seeds), ranks the questions, and a cascade that
escalates its top 30/40/50% is set against random escalation and the oracle.

`--order-agreement` adds one signal that does cost an LLM call: the 0.5B answers again with its
evidence in the other order (best passage first), and the signal is whether both answers agree.
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from shared import HOTPOT_OUT, append_history, hotpotqa_items, load_answers, markdown_table, strip_citations  # noqa: E402

COMPARISON = re.compile(r"\b(which|or|both|same|first|older|younger|more|less|earlier|later)\b")
NAMES = ("answer in evidence", "yes/no", "abstained", "log answer length", "answer words in question",
         "answer words in evidence", "NLI support", "cross-encoder top score", "cross-encoder margin",
         "dense similarity", "citations", "comparison cue", "question length", "cross-encoder answer sentence")
SHARES = (0.3, 0.4, 0.5)


def features(question: str, answer: str, raw: str, passages: list, similarity: float, nli: float,
             scorer) -> list[float]:
    from pilotfish.routing.signals import normalise

    a, q = normalise(answer), normalise(question)
    evidence = normalise(" ".join(f"{p.title} {p.text}" for p in passages))
    words, ev_words, q_words = a.split(), set(evidence.split()), set(q.split())
    yes_no, abstained = a in ("yes", "no"), "cannot answer" in answer.lower()
    scores = [p.score for p in passages] + [0.0, 0.0]
    sentences = [s for p in passages for s in re.split(r"(?<=[.!?])\s+", p.text) if a and f" {a} " in
                 f" {normalise(s)} "]
    answer_sentence = max(scorer.score([(question, s) for s in sentences])) if sentences else -12.0
    return [float(bool(a) and f" {a} " in f" {evidence} " and not yes_no and not abstained), float(yes_no),
            float(abstained), math.log1p(len(words)),
            sum(w in q_words for w in words) / len(words) if words else 0.0,
            sum(w in ev_words for w in words) / len(words) if words else 0.0,
            nli, scores[0], scores[0] - scores[1], similarity, float(raw.count("[")),
            float(bool(COMPARISON.search(question.lower()))), len(question) / 100, answer_sentence]


def cascade_share(order: np.ndarray, small: np.ndarray, large: np.ndarray, share: float) -> float:
    """F1 of escalating the first `share` of `order`, as a fraction of large-only F1."""
    escalate = np.zeros(len(order), bool)
    escalate[order[: int(round(share * len(order)))]] = True
    return float(np.where(escalate, large, small).mean() / large.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--order-agreement", action="store_true",
                        help="add the agreement of a second 0.5B answer with the evidence best passage first")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from pilotfish.knowledge.base import KnowledgeBase
    from pilotfish.verification.checker import NLIGroundednessChecker

    items = hotpotqa_items()[: args.limit]
    kb = KnowledgeBase.open(HOTPOT_OUT / "kb")  # built by hotpotqa_answers.py
    small, large = load_answers("pf-0.5b", items), load_answers("pf-1.5b", items)
    checker = NLIGroundednessChecker.default()
    names = list(NAMES)
    if args.order_agreement:
        from pilotfish.answer import build
        from pilotfish.llms.llamacpp import LlamaCppLLM
        from pilotfish.routing.signals import agree

        other = build({"answer": {"llm": "qwen2.5-0.5b", "style": "short", "max_tokens": 64,
                                  "passage_order": "best_first"}, "retrieve": {"top_k": 3, "rerank": True}}, kb,
                      llms={"qwen2.5-0.5b": LlamaCppLLM(model="qwen2.5-0.5b")})
        names.append("agrees with a best-first answer (one more 0.5B call)")
    x = []
    for n, item in enumerate(items, 1):
        passages = kb.search(item.question, mode="hybrid", top_k=3, rerank=True, rerank_depth=20)
        answer = strip_citations(small[n - 1]["prediction"]).strip()
        similarity = max(kb.similarity(item.question, passages) or [0.0]) if passages else 0.0
        nli = checker.check(answer, passages, question=item.question).supported if passages else 1.0
        x.append(features(item.question, answer, small[n - 1]["prediction"], passages, similarity, nli,
                          kb.reranker))
        if args.order_agreement:
            x[-1].append(float(agree(answer, strip_citations(other.run(item.question).text))))
        if n % 50 == 0:
            print(f"{n}/{len(items)} questions", flush=True)
    x_arr = np.asarray(x)
    f_small = np.array([r["f1"] for r in small])
    f_large = np.array([r["f1"] for r in large])
    wrong, gain = f_small < 0.5, f_large > f_small

    rows = [(name, f"{roc_auc_score(wrong, -x_arr[:, j]):.3f}", f"{roc_auc_score(gain, -x_arr[:, j]):.3f}")
            for j, name in enumerate(names)]
    z = (x_arr - x_arr.mean(0)) / (x_arr.std(0) + 1e-9)
    curve_rows = [("random escalation (expected)", "-", *(
        f"{(f_small.mean() + s * (f_large - f_small).mean()) / f_large.mean():.1%}" for s in SHARES))]
    for label, target in (("logistic regression, trained on 'small wrong'", wrong),
                          ("logistic regression, trained on 'large better'", gain)):
        aurocs, shares = [], {s: [] for s in SHARES}
        for seed in range(5):
            oof = np.zeros(len(target))
            order = np.random.default_rng(seed).permutation(len(target))
            for part in np.array_split(order, 5):
                train = np.setdiff1d(order, part)
                model = LogisticRegression(C=0.3, max_iter=2000).fit(z[train], target[train])
                oof[part] = model.predict_proba(z[part])[:, 1]
            aurocs.append(roc_auc_score(gain, oof))
            for s in SHARES:
                shares[s].append(cascade_share(np.argsort(-oof), f_small, f_large, s))
        curve_rows.append((label, f"{statistics.mean(aurocs):.3f}",
                           *(f"{statistics.mean(v):.1%} ± {statistics.pstdev(v):.1%}" for v in shares.values())))
    oracle = np.argsort(-(f_large - f_small))
    curve_rows.append(("oracle (knows both F1)", "1.000", *(f"{cascade_share(oracle, f_small, f_large, s):.1%}"
                                                           for s in SHARES)))
    table = (markdown_table(("signal", "AUROC small wrong", "AUROC large better"), rows) + "\n\n"
             + markdown_table(("escalation rule", "AUROC large better", *(f"large F1 share, {s:.0%} escalated"
                                                                          for s in SHARES)), curve_rows))
    note = (f"{len(items)} questions; small qwen2.5-0.5b F1 {f_small.mean():.3f}, large qwen2.5-1.5b F1 "
            f"{f_large.mean():.3f}; the large model scores higher on {gain.mean():.0%} of them. AUROC 0.5 is "
            "chance; a signal that marks wrong answers with high values shows below 0.5.")
    print(table)
    print(note)
    if not args.no_append:
        append_history("Cheap escalation signals for the 0.5B -> 1.5B cascade (hotpotqa_cascade_signals.py)",
                       table, note, area="Routing")


if __name__ == "__main__":
    main()
