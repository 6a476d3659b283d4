"""The distillation loop end to end on SciFact: synthetic questions from the LLM, `pilotfish distill`, the gate.

    python benchmarks/scifact_distill_loop.py [--llm qwen2.5-0.5b] [-n 150] [--minutes 5] [--no-append]

1. `pilotfish eval synth --kb KB --llm LLM -n N`: the LLM writes one question per sampled corpus chunk
   (its source document is the gold document). This is the only training data: no SciFact query is used.
2. `pilotfish distill embedder --kb KB --name scifact-embedder --dataset synth.jsonl` and the same for the
   reranker: the student trains on 80% of the questions, is measured with the current model (the packaged
   one, on a first round) on the other 20%, and is registered only if it wins by the margin.
3. A second embedder round from the promoted student, to show the gate comparing a student with a trained
   current model (it must win again to replace it).
4. The test that matters to a user: nDCG@10 on SciFact's 300 real test queries, dense retrieval with the
   packaged MiniLM against the first student, on the same knowledge base's chunks.

Students and the registry of trained names live in benchmarks/out/distill-loop/ (the user's own registry
is not touched). The knowledge base is benchmarks/out/scifact/kb-minilm (from scifact_retrieval.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from shared import OUT, append_history, beir, doc_run, markdown_table, retrieval_scores  # noqa: E402

WORK = OUT / "distill-loop"


def cli(*args: str, env: dict[str, str]) -> tuple[int, str, float]:
    """Run a pilotfish command; (exit code, stdout, CPU minutes of the command)."""
    before = os.times()
    done = subprocess.run([sys.executable, "-m", "pilotfish.cli", *args], env=env, text=True, capture_output=True)
    after = os.times()
    print(done.stdout, done.stderr[-2000:], sep="\n", flush=True)
    cpu = (after.children_user + after.children_system - before.children_user - before.children_system) / 60
    return done.returncode, done.stdout, cpu


def latest_report(name: str) -> dict:
    reports = sorted((WORK / "models" / name).glob("*/distill-report.json"))
    return json.loads(reports[-1].read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llm", default="qwen2.5-0.5b")
    parser.add_argument("-n", type=int, default=150)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--kb", default=str(OUT / "scifact" / "kb-minilm"))
    parser.add_argument("--skip-real", action="store_true", help="skip re-indexing the corpus for the real queries")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    WORK.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PILOTFISH_TRAINED_REGISTRY": str(WORK / "trained.json")}
    synth = WORK / f"synth-{args.llm}-{args.n}.jsonl"
    rows, cpu_total = [], 0.0
    if not synth.exists():
        code, _, cpu = cli("eval", "synth", "--kb", args.kb, "--llm", args.llm, "-n", str(args.n), "--out",
                           str(synth), env=env)
        cpu_total += cpu
        assert code == 0, "eval synth failed"
    questions = len(synth.read_text().splitlines())
    common = ["--kb", args.kb, "--dataset", str(synth), "--minutes", str(args.minutes), "--models-dir",
              str(WORK / "models")]
    decisions = []
    for label, component, name in (("embedder, round 1", "embedder", "scifact-embedder"),
                                   ("reranker, round 1", "reranker", "scifact-reranker"),
                                   ("embedder, round 2", "embedder", "scifact-embedder")):
        start = time.perf_counter()
        code, _, cpu = cli("distill", component, "--name", name, *common, env=env)
        cpu_total += cpu
        assert code in (0, 2), f"distill {component} failed"
        d = latest_report(name)["decision"]
        decisions.append(d)
        rows.append([label, Path(d["current"]).name if "/" in d["current"] else d["current"], d["metric"],
                     f"{d['before']:.3f}", f"{d['after']:.3f}", "promoted" if d["promoted"] else "kept current",
                     f"{(time.perf_counter() - start) / 60:.1f}"])
    table = markdown_table(["round", "current model", "held-back metric", "current", "student", "decision",
                            "minutes"], rows)

    notes = (f"Command: `python benchmarks/scifact_distill_loop.py --llm {args.llm} -n {args.n} --minutes "
             f"{args.minutes:g}{' --skip-real' if args.skip_real else ''}`. {questions} questions kept by "
             "`eval synth` from the SciFact corpus KB; margin "
             f"0.01 (the default); {cpu_total:.1f} CPU minutes for the commands in this run.")
    if not args.skip_real:
        table += real_queries(Path(decisions[0]["student"]), args.kb, questions, args.llm)
    print(table)
    print(notes)
    if not args.no_append:
        append_history("The distillation loop on SciFact (scifact_distill_loop.py)", table, notes, area="Training")


def real_queries(first: Path, kb_dir: str, questions: int, llm: str) -> str:
    """nDCG@10 on SciFact's real test queries: the packaged MiniLM against the first student, same chunks."""
    from pilotfish.knowledge.base import KnowledgeBase
    from pilotfish.retrievers.dense import DenseRetriever

    kb = KnowledgeBase.open(kb_dir)
    _, queries, qrels = beir("scifact", "test")
    qids = list(queries)
    texts = [queries[q] for q in qids]
    packaged = kb.retriever("dense").run_batch(texts, top_k=200)
    student = DenseRetriever(model=str(first))
    student.index(kb.corpus())
    tuned = student.run_batch(texts, top_k=200)
    real = [["MiniLM-L6 (packaged)", f"{retrieval_scores(qrels, doc_run(packaged, qids))['ndcg@10']:.3f}"],
            [f"round-1 student ({questions} synthetic questions by {llm})",
             f"{retrieval_scores(qrels, doc_run(tuned, qids))['ndcg@10']:.3f}"]]
    header = "\n\nOn SciFact's 300 real test queries (dense, nDCG@10):\n\n"
    return header + markdown_table(["embedder", "nDCG@10"], real)


if __name__ == "__main__":
    main()
