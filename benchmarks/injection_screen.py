"""How often the prompt-injection screen flags real passages: SciFact abstracts, HotpotQA-500 paragraphs and
the example documents, none of which hold instructions to a model (a flag there is a false alarm).

    python benchmarks/injection_screen.py [--no-append]

Each passage is its title and text as ingested; `instruction_signs` (pilotfish.prompts.injection) lists the
kinds of instruction-like text it finds. Reports the passages read and flagged per corpus and sign, and the
first few flagged passages to read.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from shared import DATA, ROOT, append_history, markdown_table  # noqa: E402

from pilotfish.prompts.injection import instruction_signs  # noqa: E402


def corpora() -> dict[str, list[str]]:
    with gzip.open(DATA / "scifact" / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        scifact = [f"{d.get('title', '')} {d.get('text', '')}" for d in map(json.loads, fh)]
    hotpot: dict[str, str] = {}
    with gzip.open(DATA / "hotpotqa" / "dev_distractor_v1_sample500.jsonl.gz", "rt", encoding="utf-8") as fh:
        for item in map(json.loads, fh):
            context = item["context"]
            pairs = context if isinstance(context, list) else zip(context["title"], context["sentences"])
            for title, sentences in pairs:
                hotpot[title] = f"{title} {''.join(sentences)}"
    examples = [p.read_text(encoding="utf-8", errors="ignore") for p in sorted((ROOT / "examples" / "docs").iterdir())]
    return {"SciFact abstracts": scifact, "HotpotQA-500 paragraphs (pooled)": list(hotpot.values()),
            "examples/docs files": examples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    rows, shown = [], []
    for name, texts in corpora().items():
        signs: Counter[str] = Counter()
        flagged = 0
        for text in texts:
            found = instruction_signs(text)
            flagged += bool(found)
            signs.update(found)
            if found and len(shown) < 5:
                shown.append(f"{name}: {found}: {text[:160]!r}")
        rows.append((name, f"{len(texts):,}", flagged, ", ".join(f"{k} {v}" for k, v in signs.items()) or "-"))
    table = markdown_table(["corpus", "passages", "flagged", "by sign"], rows)
    print(table)
    for line in shown:
        print(line)
    if not args.no_append:
        append_history("Prompt-injection screen on real passages (injection_screen.py)", table,
                       "A flag on these corpora is a false alarm: none of them holds instructions to a model.",
                       area="Serving")


if __name__ == "__main__":
    main()
