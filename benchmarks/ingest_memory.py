"""Ingest's peak memory and time on inputs that once blew it up: one long line, and one large text file.

    python benchmarks/ingest_memory.py [--sizes 50,200] [--dense] [--no-append]

Generates, in a temporary folder, a single-line file of `--sizes[0]` MB (words without any full stop,
the shape of a minified file or a log line) and a file of ordinary paragraphs of `--sizes[1]` MB, and
ingests each with `pilotfish ingest` in a fresh process (BM25 only unless `--dense`: embedding 200 MB on
two cores takes hours). Reported per file: chunks, seconds, peak resident memory of the process, and
that peak against the file's size. Before the fix a 2 MB single-line file peaked at 3.4 GB (every chunk
fetched its document's whole text from SQL, and the tokenizer read the whole line at once).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from shared import ROOT, append_history, markdown_table  # noqa: E402

sys.path.insert(0, str(ROOT))
# the same generated inputs as the CI test, at full size
from tests.integration.test_ingest_memory import paragraphs_file, run_measured, single_line_file  # noqa: E402


def ingest(file: Path, kb: Path, dense: bool) -> tuple[str, float, float]:
    """(summary line, seconds, peak resident MB) of `pilotfish ingest FILE` in a fresh process."""
    args = [sys.executable, "-m", "pilotfish.cli", "ingest", str(file), "--kb", str(kb)] + ([] if dense else
                                                                                           ["--no-dense"])
    start = time.perf_counter()
    code, out, _, peak = run_measured(args, kb.parent)
    seconds = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"ingest of {file.name} failed: {out}")
    return out, seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="50,200", help="MB of the single-line file and of the paragraphs file")
    parser.add_argument("--dense", action="store_true", help="also embed (slow on CPU)")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    line_mb, text_mb = (int(x) for x in args.sizes.split(","))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape, mb, write in (("one line, no full stop", line_mb, single_line_file),
                                 ("paragraphs", text_mb, paragraphs_file)):
            file = Path(tmp) / f"{mb}mb.txt"
            write(file, mb << 20)
            out, seconds, peak = ingest(file, Path(tmp) / f"kb-{mb}", args.dense)
            chunks = re.search(r"(\d+) chunks", out)
            rows.append((f"{shape}, {mb} MB", chunks.group(1) if chunks else "?", f"{seconds:.0f}",
                         f"{peak:,.0f}", f"{peak / mb:.1f}x"))
            print(rows[-1], flush=True)
            file.unlink()
    table = markdown_table(("file", "chunks", "seconds", "peak resident MB", "peak / file size"), rows)
    print(table)
    if not args.no_append:
        append_history("Ingest memory on a long line and a large file (ingest_memory.py)", table,
                       f"`pilotfish ingest FILE --kb DIR{'' if args.dense else ' --no-dense'}` in a fresh process; "
                       "default chunker (MiniLM tokenizer, 200 tokens). Before the fix a 2 MB single-line file "
                       "peaked at 3.4 GB.", area="Ingest")


if __name__ == "__main__":
    main()
