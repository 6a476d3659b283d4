"""Ingest's memory stays bounded whatever the input: a long line without sentence breaks and a large file
of ordinary text, each ingested by the real CLI in a subprocess under a memory ceiling and a time bound.

Before the fix, a 2 MB single-line file took 3.4 GB (every chunk fetched its document's whole text from
SQL) and the tokenizer saw the whole line at once; at these sizes the ceiling would stop the run.
`benchmarks/ingest_memory.py` measures the same at 50 MB and 200 MB.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
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


# A fork copies the parent's page tables, and Linux counts them in the child's ru_maxrss: measured
# straight from pytest (1 GB+ after the model tests), the child's peak would read as pytest's. A small
# launcher process runs the command as its own child and reports that grandchild's peak instead.
_LAUNCHER = """
import os, resource, subprocess, sys
result, ceiling, command = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
if ceiling:
    resource.setrlimit(resource.RLIMIT_AS, (ceiling, ceiling))
_, status, usage = os.wait4(subprocess.Popen(command).pid, 0)
with open(result, "w") as fh:
    fh.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}")
"""


def run_measured(command: list[str], workdir: Path, seconds: float | None = None,
                 ceiling: int = 0) -> tuple[int, str, str, float]:
    """Run `command` in a fresh process (address space capped at `ceiling` bytes when given, killed after
    `seconds`); returns (exit code, stdout, stderr, its own peak resident MB). The benchmark uses it too."""
    out, err, result = workdir / "run.out", workdir / "run.err", workdir / "run.result"
    result.unlink(missing_ok=True)
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(result), str(ceiling), *command],
                                stdout=stdout, stderr=stderr, start_new_session=True)
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return -signal.SIGKILL, out.read_text(), err.read_text(), 0.0
    code, maxrss_kb = result.read_text().split() if result.exists() else (str(proc.returncode), "0")
    return int(code), out.read_text(), err.read_text(), int(maxrss_kb) / 1024


def _ingest_bounded(file: Path, kb: Path, seconds: int) -> tuple[str, float]:
    """Run `pilotfish ingest` on `file` under the ceiling; returns (stdout, its peak resident MB)."""
    code, stdout, stderr, peak_mb = run_measured(
        [sys.executable, "-m", "pilotfish.cli", "ingest", str(file), "--kb", str(kb), "--no-dense"],
        kb.parent, seconds, CEILING)
    assert code != -signal.SIGKILL, f"ingest of {file.name} took more than {seconds}s"
    assert code == 0, stderr[-2000:]
    return stdout, peak_mb


@pytest.mark.parametrize(("shape", "megabytes", "seconds"), [("single-line", 8, 240), ("paragraphs", 16, 300)])
def test_ingest_memory_is_bounded(tmp_path: Path, shape: str, megabytes: int, seconds: int) -> None:
    file = tmp_path / f"{shape}.txt"
    (single_line_file if shape == "single-line" else paragraphs_file)(file, megabytes << 20)
    stdout, peak_mb = _ingest_bounded(file, tmp_path / "kb", seconds)
    assert "1 documents" in stdout
    assert peak_mb < 1024, f"peak resident memory {peak_mb:.0f} MB for a {megabytes} MB file"
    if os.environ.get("PILOTFISH_TEST_VERBOSE"):
        print(f"{shape} {megabytes} MB: peak {peak_mb:.0f} MB")


def test_measured_peak_is_the_commands_own_not_the_callers(tmp_path: Path) -> None:
    ballast = bytearray(600 << 20)
    ballast[::4096] = b"\1" * len(range(0, len(ballast), 4096))  # touch every page: 600 MB resident here
    code, _, _, peak_mb = run_measured([sys.executable, "-c", "pass"], tmp_path)
    assert code == 0
    assert peak_mb < 200, f"a bare interpreter measured at {peak_mb:.0f} MB: the caller's memory leaked in"
    del ballast


def test_a_200k_line_jsonl_streams_in_bounded_memory(tmp_path: Path) -> None:
    """200,000 records in one JSONL file: read record by record and staged in batches, so the peak is the
    index's own size plus a constant. Before streaming, this file peaked at 2,037 MB; now about 640 MB, of
    which about 480 MB is the loaded index itself (a search over the same KB)."""
    import json

    rng = random.Random(2)
    file = tmp_path / "records.jsonl"
    with file.open("w") as fh:
        for i in range(200_000):
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(15, 40)))
            fh.write(json.dumps({"_id": f"r{i}", "title": f"Record {i}", "text": words + "."}) + "\n")
    stdout, peak_mb = _ingest_bounded(file, tmp_path / "kb", 600)
    assert "200000 documents" in stdout
    assert peak_mb < 1024, f"peak resident memory {peak_mb:.0f} MB for 200,000 records"
