"""NLI scoring speed by batch size: bulk checking and the few pairs of one answer.

    python benchmarks/nli_batch.py [--pairs 2000] [--repeats 3] [--no-append]

`NLIModel.scores` sorts its pairs by length and runs them in batches. Bulk: the first --pairs MNLI
dev-matched pairs in one call (as `pilotfish check --pairs` does). Per answer: FEVER-symmetric pairs
in calls of 6 (a short answer's claims against three passages, as the answer pipeline's checker does).
Each batch size runs in the same process on the same pairs, best of --repeats; ratios are against
batch 32, the earlier default.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from shared import append_history, markdown_table, nli_pairs  # noqa: E402

SIZES = (32, 16, 8, 4, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    from pilotfish.models.nli import NLIModel

    bulk = [(r["premise"], r["hypothesis"]) for r in nli_pairs("mnli_dev_matched.jsonl.gz")[: args.pairs]]
    fever = [(r["premise"], r["hypothesis"]) for r in nli_pairs("fever_symmetric_dev_test.jsonl.gz")[:600]]
    calls = [fever[i:i + 6] for i in range(0, len(fever), 6)]
    model = NLIModel("nli-small")
    model.scores(bulk[:64])  # load and warm
    rows, base = [], {}
    for size in SIZES:
        model.batch_size = size
        bulk_s = min(_timed(lambda: model.scores(bulk)) for _ in range(args.repeats))
        call_s = min(_timed(lambda: [model.scores(c) for c in calls]) for _ in range(args.repeats))
        base = base or {"bulk": bulk_s, "call": call_s}
        rows.append((str(size), f"{len(bulk) / bulk_s:.0f}", f"{base['bulk'] / bulk_s:.2f}x",
                     f"{1000 * call_s / len(calls):.1f}", f"{base['call'] / call_s:.2f}x"))
    table = markdown_table(("batch size", "bulk pairs/s", "bulk speed-up", "ms per answer (6 pairs)",
                            "per-answer speed-up"), rows)
    note = (f"nli-small (int8 ONNX), {len(bulk)} MNLI dev-matched pairs in one call; {len(calls)} calls of 6 "
            f"FEVER-symmetric pairs; best of {args.repeats}; speed-up against batch 32.")
    print(table)
    print(note)
    if not args.no_append:
        append_history("NLI scoring by batch size (nli_batch.py)", table, note, area="Speed")


def _timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
