"""Routers on RouteLLM's GSM8K data: APGR, CPT(50%), CPT(80%) over five random 70/30 splits.

    python benchmarks/gsm8k_routing.py [--splits 5] [--embedder minilm-l6] [--no-append]

The data (1,319 GSM8K prompts, Mixtral-8x7B and GPT-4 correctness) is converted to pilotfish's routing
JSONL in benchmarks/out/routing/gsm8k.jsonl, the same file `pilotfish route train` reads. Each split
trains the kNN and classifier routers on 70% of the prompts and scores the other 30%, beside a random
router in the same run. Metrics follow RouteLLM: PGR over the share of GPT-4 calls, APGR by
trapezoids, CPT(x) by linear interpolation; every distinct threshold is a curve point.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from shared import DATA, append_history, markdown_table  # noqa: E402

OUT = Path(__file__).parent / "out" / "routing"
WEAK, STRONG = "mixtral-8x7b", "gpt-4-1106"
COSTS = {WEAK: 0.6, STRONG: 20.0}  # USD per million tokens, blended; only their order matters for APGR


def convert() -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "gsm8k.jsonl"
    with gzip.open(DATA / "routing" / "routellm_gsm8k_responses.csv.gz", "rt", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            scores = {WEAK: float(row["mistralai/Mixtral-8x7B-Instruct-v0.1"] == "True"),
                      STRONG: float(row["gpt-4-1106-preview"] == "True")}
            out.write(json.dumps({"prompt": row["prompt"], "scores": scores}) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--embedder", default="minilm-l6")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    from pilotfish.models.embedding import Embedder
    from pilotfish.routing.classifier import ClassifierRouter
    from pilotfish.routing.data import load_routing_data
    from pilotfish.routing.knn import KNNRouter
    from pilotfish.routing.metrics import deferral_curve, random_predictions, summarise

    data = load_routing_data(convert(), [WEAK, STRONG])
    start = time.perf_counter()
    x = np.asarray(Embedder(model=args.embedder).encode_queries(data.prompts), dtype=np.float32)
    print(f"{len(data.prompts)} prompts embedded with {args.embedder} in {time.perf_counter() - start:.1f}s; "
          f"accuracy {WEAK} {data.scores[:, 0].mean():.3f}, {STRONG} {data.scores[:, 1].mean():.3f}", flush=True)
    makers = {"random": None,
              "knn (k=60)": lambda: KNNRouter(models=[WEAK, STRONG], costs=list(COSTS.values()),
                                              embedder=args.embedder, k=60),
              "classifier (logistic, + shape features)": lambda: ClassifierRouter(
                  models=[WEAK, STRONG], costs=list(COSTS.values()), embedder=args.embedder),
              "classifier (logistic, embedding only)": lambda: ClassifierRouter(
                  models=[WEAK, STRONG], costs=list(COSTS.values()), embedder=args.embedder, shape_features=False)}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in makers}
    seconds: dict[str, float] = {name: 0.0 for name in makers}
    for seed in range(args.splits):
        order = np.random.default_rng(seed).permutation(len(data.prompts))
        cut = int(0.7 * len(order))
        train, test = data.subset(order[:cut]), data.subset(order[cut:])
        for name, make in makers.items():
            t0 = time.perf_counter()
            if make is None:
                predicted = random_predictions(len(test.prompts), 2, seed=seed)
            else:
                router = make().fit(train, embeddings=x[order[:cut]], seed=seed)
                predicted = router.predict(test.prompts, embeddings=x[order[cut:]])
            seconds[name] += time.perf_counter() - t0
            results[name].append(summarise(deferral_curve(predicted, test.scores, list(COSTS.values())),
                                           test.scores, list(COSTS.values())))
        print(f"split {seed}: " + ", ".join(f"{n} {r[-1]['apgr']:.3f}" for n, r in results.items()), flush=True)

    def cell(rows: list[dict[str, float]], key: str, pct: bool) -> str:
        values = [r[key] * (100 if pct else 1) for r in rows]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        mean = statistics.mean(values)
        return f"{mean:.1f}% ± {spread:.1f}" if pct else f"{mean:.3f} ± {spread:.3f}"

    table = markdown_table(("router", "APGR", "CPT(50%)", "CPT(80%)", "fit+predict s/split"),
                           [(n, cell(r, "apgr", False), cell(r, "cpt50", True), cell(r, "cpt80", True),
                             f"{seconds[n] / args.splits:.2f}") for n, r in results.items()])
    print(table)
    if not args.no_append:
        append_history(f"Routing on RouteLLM's GSM8K data, {args.splits} random 70/30 splits (gsm8k_routing.py)",
                       table,
                       f"Mean ± standard deviation over the splits; {len(data.prompts)} prompts, test sets of "
                       f"{len(data.prompts) - int(0.7 * len(data.prompts))}. Embeddings: {args.embedder} (computed "
                       "once, outside the timings). CPT is the share of GPT-4 calls needed to recover 50% / 80% "
                       "of the Mixtral-to-GPT-4 accuracy gap.", area="Routing")


if __name__ == "__main__":
    main()
