"""NLI domain adaptation on SciFact: distil the 1.5B LLM's judgements on the corpus into nli-small.

    python benchmarks/scifact_nli_distill.py [--passages 250] [--teacher qwen2.5-1.5b] [--teacher-limit 150]
                                             [--minutes 20] [--no-append]

1. Test pairs: SciFact's validation claims (claims_validation.csv), each with its evidence abstract, or its
   first cited abstract when it has none; SUPPORT is positive, CONTRADICT and no evidence negative.
   `nli-small` (the checker's `supported` score, as `pilotfish check --pairs` gives it) and the teacher
   alone (P("Yes") on the abstract and claim, first `--teacher-limit` pairs) are measured on them first.
2. Training: `pilotfish train nli --teacher ... --documents KB --data NLI_DIR`, the command a user runs:
   claims made from `--passages` passages of the SciFact corpus knowledge base (no claim file is used),
   labelled by the teacher, distilled into nli-small with 2,000 labelled NLI pairs mixed in.
3. The student on the test pairs, on FEVER-symmetric (it must keep its AUROC within 0.02) and its speed
   (pairs/s of the checker on 2 cores), against nli-small in the same run.

Teacher labels are cached in benchmarks/out/nli-distill/ (labels.jsonl for training, teacher-test.jsonl for
the test pairs), so a rerun labels only what is new. The knowledge base is benchmarks/out/scifact/kb-minilm
(from scifact_retrieval.py).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from shared import DATA, OUT, append_history, markdown_table, nli_pairs  # noqa: E402

WORK = OUT / "nli-distill"


def test_pairs() -> list[tuple[str, str, bool]]:
    """(abstract, claim, supported) for each validation row, as the issue defines them."""
    import gzip

    with gzip.open(DATA / "scifact" / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        abstracts = {d["_id"]: d["text"] for d in map(json.loads, fh)}
    pairs = []
    with open(DATA / "scifact" / "claims_validation.csv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            doc = row["evidence_doc_id"] or row["cited_doc_ids"].strip("[]").split()[0].strip(",")
            if doc in abstracts:
                pairs.append((abstracts[doc], row["claim"], row["evidence_label"] == "SUPPORT"))
    return pairs


def checker_scores(model: str, pairs: list[tuple[str, str]]) -> tuple[list[float], float]:
    """The checker's `supported` per pair and pairs/s (after a warm-up)."""
    from pilotfish.verification.checker import NLIGroundednessChecker

    checker = NLIGroundednessChecker.default(model=model)
    checker.check_claims([([p], h, None) for p, h in pairs[:16]])
    start = time.perf_counter()
    verdicts, _ = checker.check_claims([([p], h, None) for p, h in pairs])
    return [v.supported for v in verdicts], len(pairs) / (time.perf_counter() - start)


def teacher_scores(name: str, pairs: list[tuple[str, str]]) -> tuple[list[float], float]:
    """The teacher's P(Yes) per pair (cached) and its seconds per pair when any were new."""
    from pilotfish.llms import resolve_llm
    from pilotfish.training.nli_teacher import ClaimPair, teacher_label

    claims = [ClaimPair(p, h, "test") for p, h in pairs]
    start = time.perf_counter()
    labelled = teacher_label(claims, resolve_llm(name), cache=WORK / "teacher-test.jsonl")
    return [c.teacher for c in labelled], (time.perf_counter() - start) / max(1, len(pairs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=250)
    parser.add_argument("--teacher", default="qwen2.5-1.5b")
    parser.add_argument("--teacher-limit", type=int, default=150)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--label-minutes", type=float, default=None,
                        help="stop teacher labelling after this long (0: use only cached labels)")
    parser.add_argument("--kb", default=str(OUT / "scifact" / "kb-minilm"))
    parser.add_argument("--reuse", action="store_true", help="measure the student already in out/, skip training")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    from sklearn.metrics import roc_auc_score

    WORK.mkdir(parents=True, exist_ok=True)
    pairs = test_pairs()
    labels = [y for _, _, y in pairs]
    texts = [(p, h) for p, h, _ in pairs]
    base, base_speed = checker_scores("nli-small", texts)
    print(f"{len(pairs)} SciFact test pairs, {sum(labels)} supported; nli-small AUROC "
          f"{roc_auc_score(labels, base):.4f}", flush=True)
    n = args.teacher_limit
    teacher, teacher_s = teacher_scores(args.teacher, texts[:n])
    print(f"teacher AUROC on the first {n}: {roc_auc_score(labels[:n], teacher):.4f} ({teacher_s:.1f} s/pair)",
          flush=True)

    student = WORK / "student"
    command = [sys.executable, "-m", "pilotfish.cli", "train", "nli", "--teacher", args.teacher, "--documents",
               args.kb, "--passages", str(args.passages), "--labels", str(WORK / "labels.jsonl"), "--data",
               str(DATA / "nli"), "--out", str(student), "--minutes", str(args.minutes)]
    if args.label_minutes is not None:
        command += ["--label-minutes", str(args.label_minutes)]
    started, cpu = time.perf_counter(), os.times()
    if not (args.reuse and (student / "distill.json").is_file()):
        subprocess.run(command, check=True)
    after = os.times()
    train_minutes = (time.perf_counter() - started) / 60
    cpu_minutes = (after.children_user + after.children_system - cpu.children_user - cpu.children_system) / 60
    report = json.loads((student / "distill.json").read_text())

    tuned, tuned_speed = checker_scores(str(student), texts)
    fever = nli_pairs("fever_symmetric_dev_test.jsonl.gz")
    fever_texts = [(r["premise"], r["hypothesis"]) for r in fever]
    fever_labels = [r["label"] == "entailment" for r in fever]
    fever_base, _ = checker_scores("nli-small", fever_texts)
    fever_tuned, _ = checker_scores(str(student), fever_texts)
    rows = [["nli-small (shipped)", f"{roc_auc_score(labels, base):.3f}", f"{roc_auc_score(labels[:n], base[:n]):.3f}",
             f"{roc_auc_score(fever_labels, fever_base):.3f}", f"{base_speed:.0f}"],
            [f"teacher {args.teacher} (P(Yes))", "-", f"{roc_auc_score(labels[:n], teacher):.3f}", "-",
             f"{1 / teacher_s:.2f}" if teacher_s > 0.05 else "cached"],
            ["nli-small distilled on SciFact passages", f"{roc_auc_score(labels, tuned):.3f}",
             f"{roc_auc_score(labels[:n], tuned[:n]):.3f}", f"{roc_auc_score(fever_labels, fever_tuned):.3f}",
             f"{tuned_speed:.0f}"]]
    table = markdown_table(["model", f"SciFact AUROC ({len(pairs)} pairs)", f"SciFact AUROC (first {n})",
                            f"FEVER-symmetric AUROC ({len(fever)})", "pairs/s"], rows)
    notes = (f"Command: `python benchmarks/scifact_nli_distill.py --passages {args.passages} --teacher {args.teacher} "
             f"--minutes {args.minutes:g}`. Training data: {report['claims_labelled']} claims from {args.passages} "
             f"corpus passages labelled by the teacher ({report['label_minutes']} min this run; labels cached), "
             f"{report['claims_train']} trained with {report['mixed_nli_pairs']} labelled NLI pairs "
             f"({report['train_minutes']} min training, {report['threads']} threads); held-out claims AUROC "
             f"against the teacher {report['before']} -> {report['after']}. "
             + (f"The command took {train_minutes:.1f} min wall, {cpu_minutes:.1f} CPU min." if not args.reuse else
                "The student was trained by an earlier run of the same command (--reuse)."))
    print(table)
    print(notes)
    if not args.no_append:
        append_history("NLI distilled on SciFact passages (scifact_nli_distill.py)", table, notes,
                       area="Verification")


if __name__ == "__main__":
    main()
