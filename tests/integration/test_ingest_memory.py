"""Ingest's memory stays bounded whatever the input: a long line without sentence breaks and a large file
of ordinary text, each ingested by the real CLI in a subprocess under a memory ceiling and a time bound.

Before the fix, a 2 MB single-line file took 3.4 GB (every chunk fetched its document's whole text from
SQL) and the tokenizer saw the whole line at once; at these sizes the ceiling would stop the run.
`benchmarks/ingest_memory.py` measures the same at 50 MB and 200 MB.
"""

from __future__ import annotations

import os
import random
import resource
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

CEILING = 3 << 30  # address space of the child (virtual memory; the resident peak is asserted below)
WORDS = ("the pilot fish swims ahead of a shark and eats parasites from its skin while the reef waits "
         "in warm water near islands").split()


def single_line_file(path: Path, size: int) -> None:
    """`size` bytes of words without a full stop, on one line (benchmarks/ingest_memory.py uses it too)."""
    rng = random.Random(0)
    with path.open("w") as fh:
        written = 0
        while written < size:
            piece = " ".join(rng.choice(WORDS) for _ in range(10_000)) + " "
            fh.write(piece)
            written += len(piece)


def paragraphs_file(path: Path, size: int) -> None:
    """`size` bytes of ordinary sentences in paragraphs (benchmarks/ingest_memory.py uses it too)."""
    rng = random.Random(1)
    with path.open("w") as fh:
        written = 0
        while written < size:
            sentences = (" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 25))).capitalize() + "."
                         for _ in range(rng.randint(3, 8)))
            paragraph = " ".join(sentences) + "\n\n"
            fh.write(paragraph)
            written += len(paragraph)


def _ingest_bounded(file: Path, kb: Path, seconds: int) -> tuple[str, float]:
    """Run `pilotfish ingest` on `file` under the ceiling; returns (stdout, its peak resident MB)."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (CEILING, CEILING))

    out, err = kb.parent / "ingest.out", kb.parent / "ingest.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "pilotfish.cli", "ingest", str(file), "--kb", str(kb),
                                 "--no-dense"], preexec_fn=limit, stdout=stdout, stderr=stderr)
        timer = threading.Timer(seconds, proc.kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak, not the test session's
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode != -signal.SIGKILL, f"ingest of {file.name} took more than {seconds}s"
    assert proc.returncode == 0, err.read_text()[-2000:]
    return out.read_text(), usage.ru_maxrss / 1024


@pytest.mark.parametrize(("shape", "megabytes", "seconds"), [("single-line", 8, 240), ("paragraphs", 16, 300)])
def test_ingest_memory_is_bounded(tmp_path: Path, shape: str, megabytes: int, seconds: int) -> None:
    file = tmp_path / f"{shape}.txt"
    (single_line_file if shape == "single-line" else paragraphs_file)(file, megabytes << 20)
    stdout, peak_mb = _ingest_bounded(file, tmp_path / "kb", seconds)
    assert "1 documents" in stdout
    assert peak_mb < 1024, f"peak resident memory {peak_mb:.0f} MB for a {megabytes} MB file"
    if os.environ.get("PILOTFISH_TEST_VERBOSE"):
        print(f"{shape} {megabytes} MB: peak {peak_mb:.0f} MB")
