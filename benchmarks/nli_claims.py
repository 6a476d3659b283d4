"""The shipped NLI model and the checker: MNLI accuracy, claim verification AUROC, and the LLM band.

    python benchmarks/nli_claims.py [--model nli-small] [--judge qwen2.5-1.5b] [--judge-limit 300] [--send 0.3]
                                    [--no-append]

1. MNLI dev-matched accuracy (9,815 pairs, never used in training), model size and pairs/second.
2. Claim verification, binary (supports vs refutes / not enough info), on FEVER-symmetric (1,420 pairs)
   and Climate-FEVER (7,675 claim/evidence-sentence pairs): AUROC and accuracy of `supported` (the
   entailment probability) at the checker's threshold.
3. The checker as a cascade, on the first `--judge-limit` pairs of each set: pairs whose NLI score falls
   in the band go to the LLM judge (P("Yes") from one forward pass). The band is set from the NLI
   scores alone (no labels) as the middle third of the score range by rank around the threshold; we report
   the share sent, AUROC and accuracy of NLI alone and with the judge on the same pairs, and seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from shared import append_history, markdown_table, nli_pairs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="nli-small", help="registry name or model folder")
    parser.add_argument("--judge", default="qwen2.5-1.5b", help="LLM for the uncertain band ('' to skip)")
    parser.add_argument("--judge-limit", type=int, default=300)
    parser.add_argument("--send", type=float, default=0.3, help="share of pairs the band should hold")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    from sklearn.metrics import roc_auc_score

    from pilotfish.models import model_path
    from pilotfish.models.nli import NLIModel
    from pilotfish.verification.checker import NLIGroundednessChecker

    nli = NLIModel(args.model)
    folder = Path(model_path(args.model))
    size_mb = (folder / "model.onnx").stat().st_size / 1e6
    mnli = nli_pairs("mnli_dev_matched.jsonl.gz")
    nli.scores([(r["premise"], r["hypothesis"]) for r in mnli[:64]])  # warm-up
    start = time.perf_counter()
    scores = nli.scores([(r["premise"], r["hypothesis"]) for r in mnli])
    seconds = time.perf_counter() - start
    accuracy = sum(s.label == r["label"] for s, r in zip(scores, mnli)) / len(mnli)
    rows = [["MNLI dev-matched (3-way)", len(mnli), f"{accuracy:.3f}", "-", f"{len(mnli) / seconds:.0f}"]]
    print(f"MNLI dev-matched accuracy {accuracy:.4f}, {len(mnli) / seconds:.0f} pairs/s, {size_mb:.1f} MB")

    checker = NLIGroundednessChecker.default(model=args.model)
    judge_rows = []
    for title, name in (("FEVER-symmetric", "fever_symmetric_dev_test.jsonl.gz"),
                        ("Climate-FEVER", "climate_fever_pairs.jsonl.gz")):
        pairs = nli_pairs(name)
        labels = [r["label"] == "entailment" for r in pairs]
        start = time.perf_counter()
        verdicts, _ = checker.check_claims([([r["premise"]], r["hypothesis"], None) for r in pairs])
        seconds = time.perf_counter() - start
        supported = [v.supported for v in verdicts]
        auroc = roc_auc_score(labels, supported)
        acc = sum((s >= checker.threshold) == y for s, y in zip(supported, labels)) / len(pairs)
        rows.append([f"{title} (supports vs not)", len(pairs), f"{acc:.3f}", f"{auroc:.3f}",
                     f"{len(pairs) / seconds:.0f}"])
        print(f"{title}: AUROC {auroc:.4f}, accuracy {acc:.4f} at {checker.threshold}, positives {sum(labels)}")
        if args.judge:
            judge_rows.append(judge_band(checker, args, title, pairs[: args.judge_limit],
                                         supported[: args.judge_limit], labels[: args.judge_limit]))

    table = markdown_table(["set", "pairs", "accuracy", "AUROC (supported)", "pairs/s"], rows)
    notes = (f"Model: `{args.model}`, int8 ONNX, {size_mb:.1f} MB, threshold {checker.threshold}. Command: "
             f"`python benchmarks/nli_claims.py --judge {args.judge or repr('')} --judge-limit {args.judge_limit}`.")
    if judge_rows:
        table += "\n\nWith the LLM judge for the uncertain band:\n\n" + markdown_table(
            ["set", "pairs", "band", "sent to LLM", "AUROC NLI", "AUROC NLI+LLM", "accuracy NLI", "accuracy NLI+LLM",
             "s/pair sent"], judge_rows)
    print(table)
    if not args.no_append:
        append_history("NLI model and claim checker (nli_claims.py)", table, notes, area="Verification")


def judge_band(checker, args, title, pairs, nli_scores, labels) -> list:
    """Send the pairs in the band (chosen from the NLI scores only) to the LLM; compare on the same pairs."""
    from sklearn.metrics import roc_auc_score

    from pilotfish.llms import resolve_llm
    from pilotfish.verification.checker import NLIGroundednessChecker

    ranked = sorted(nli_scores, key=lambda s: abs(s - checker.threshold))
    width = abs(ranked[max(0, int(len(ranked) * args.send) - 1)] - checker.threshold)
    band = (max(0.0, checker.threshold - width), min(1.0, checker.threshold + width))
    judged = NLIGroundednessChecker(model=checker._config["model"], threshold=checker.threshold,
                                    contradiction=checker.contradiction, llm=resolve_llm(args.judge), band=band)
    start = time.perf_counter()
    verdicts, usage = judged.check_claims([([r["premise"]], r["hypothesis"], None) for r in pairs])
    seconds = time.perf_counter() - start
    sent = sum(v.judge == "llm" for v in verdicts)
    combined = [v.supported for v in verdicts]
    acc = lambda xs: sum((s >= checker.threshold) == y for s, y in zip(xs, labels)) / len(labels)  # noqa: E731
    row = [title, len(pairs), f"[{band[0]:.3f}, {band[1]:.3f}]", f"{sent / len(pairs):.1%}",
           f"{roc_auc_score(labels, nli_scores):.3f}", f"{roc_auc_score(labels, combined):.3f}",
           f"{acc(nli_scores):.3f}", f"{acc(combined):.3f}", f"{seconds / max(1, sent):.1f}"]
    print(row)
    return row


if __name__ == "__main__":
    main()
