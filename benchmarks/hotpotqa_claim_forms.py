"""Does a better claim form let NLI tell a grounded short answer? HotpotQA answers of qwen2.5-0.5b.

    python benchmarks/hotpotqa_claim_forms.py [--limit 100] [--model nli-small] [--no-append]

Reads the 0.5B pipeline's answers (out/hotpotqa500/answers-pf-0.5b.jsonl from hotpotqa_answers.py), retrieves the same
three passages (hybrid, reranked) and scores each answer's entailment by the evidence with three claim
forms and two ways of reading the evidence:
  meta        'The answer to "QUESTION" is ANSWER.' for every answer (NLIGroundednessChecker uses this form
              for answers of up to four words and reads longer ones as they are)
  declarative the question rewritten around the answer by a few rules (QA2D-style), else meta
  q+a         'QUESTION ANSWER.'
  per passage the best entailment over the three passages, each read alone (the checker's way)
  joined      the three passages as one premise, read in sentence windows (multi-hop facts side by side)
Reported: AUROC of 1 - entailment for a wrong answer (F1 < 0.5), beside the lexical baseline "the answer
string does not occur in the evidence".
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from shared import HOTPOT_OUT, append_history, hotpotqa_items, load_answers, markdown_table, strip_citations  # noqa: E402

AUX = r"(is|was|are|were|does|did|do|has|had|have|can|could|will|would)"


def declarative(question: str, answer: str) -> str | None:
    """QUESTION + ANSWER as one statement for the common HotpotQA forms; None where no rule applies."""
    q, a = question.strip().rstrip("?").strip(), answer.strip().rstrip(".")
    if a.lower() in ("yes", "no"):
        m = re.match(rf"^{AUX}\s+(.*)$", q, re.I)
        if not m:
            return None
        return f"{m.group(2)}." if a.lower() == "yes" else f"It is not true that {m.group(2)}."
    m = re.match(rf"^(who|what|which)(\s+[^,]*?)?\s+{AUX}\s+(.*)$", q, re.I)
    if m:
        return f"{a} {m.group(3)} {m.group(4)}."
    m = re.match(r"^(who|what|which)(\s+\w+)?\s+(\w+(ed|s))\s+(.*)$", q, re.I)
    if m:
        return f"{a} {m.group(3)} {m.group(5)}."
    m = re.match(rf"^(when|where|in what year|in which year|in which \w+|what year)\s+{AUX}\s+(.*)$", q, re.I)
    if m:
        return f"{m.group(3)} {'on' if m.group(1).lower() == 'when' else 'in'} {a}."
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--model", default="nli-small")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    from sklearn.metrics import roc_auc_score

    from pilotfish.knowledge.base import KnowledgeBase
    from pilotfish.models.nli import NLIModel
    from pilotfish.prompts.builder import is_abstention

    items = hotpotqa_items()[: args.limit]
    answers = load_answers("pf-0.5b", items)
    kb = KnowledgeBase.open(HOTPOT_OUT / "kb")
    rows = []
    for item, got in zip(items, answers):
        if is_abstention(got["prediction"]):
            continue
        passages = kb.search(item.question, mode="hybrid", top_k=3, rerank=True)
        rows.append({"q": item.question, "a": strip_citations(got["prediction"]), "f1": got["f1"],
                     "passages": [p.text for p in passages]})
    nli = NLIModel(args.model)

    def entailment(premises: list[list[str]], hypotheses: list[str]) -> list[float]:
        jobs = [(i, p, h) for i, (ps, h) in enumerate(zip(premises, hypotheses)) for p in ps]
        best = [0.0] * len(hypotheses)
        for (i, _, _), group in zip(jobs, nli.predict_windows([(p, h) for _, p, h in jobs])):
            best[i] = max(best[i], *(s.entailment for s in group))
        return best

    wrong = [r["f1"] < 0.5 for r in rows]
    meta = [f'The answer to "{r["q"]}" is {r["a"].rstrip(".")}.' for r in rows]
    rules = [declarative(r["q"], r["a"]) for r in rows]
    forms = {"meta": meta, "declarative (rules, else meta)": [d or m for d, m in zip(rules, meta)],
             "q+a": [f'{r["q"]} {r["a"]}.' for r in rows]}
    table = []
    for name, hypotheses in forms.items():
        alone = entailment([r["passages"] for r in rows], hypotheses)
        joined = entailment([[" ".join(r["passages"])] for r in rows], hypotheses)
        table.append([name, f"{roc_auc_score(wrong, [1 - s for s in alone]):.3f}",
                      f"{roc_auc_score(wrong, [1 - s for s in joined]):.3f}"])
    absent = [float(r["a"].lower() not in " ".join(r["passages"]).lower()) for r in rows]
    table.append(["lexical: answer not in the evidence", f"{roc_auc_score(wrong, absent):.3f}", "-"])
    text = markdown_table(["claim form", "AUROC, per passage", "AUROC, passages joined"], table)
    note = (f"{len(rows)} answered questions of the first {args.limit} ({sum(wrong)} wrong, F1 < 0.5); NLI model "
            f"`{args.model}`; the rules rewrite {sum(d is not None for d in rules)} of them. Command: "
            f"`python benchmarks/hotpotqa_claim_forms.py --limit {args.limit}`.")
    print(text)
    print(note)
    if not args.no_append:
        append_history("Claim forms for short answers, HotpotQA, qwen2.5-0.5b (hotpotqa_claim_forms.py)", text, note,
                       area="Verification")


if __name__ == "__main__":
    main()
