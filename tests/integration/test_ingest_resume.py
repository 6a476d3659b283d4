"""An ingest killed with SIGKILL in the middle of a batch resumes from its last staged batch, with the real
MiniLM embedder: nothing lost, nothing twice, and the vectors equal those of an uninterrupted ingest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from pilotfish.knowledge.base import KnowledgeBase

SCRIPT = """
import sys
from pilotfish.knowledge.base import KnowledgeBase
kb = KnowledgeBase.open(sys.argv[1], create=True)
report = kb.ingest([sys.argv[2]], batch_chunks=int(sys.argv[3]))
print(report.resumed_batches, report.resumed_records, report.embedded, report.total_chunks)
"""
TOPICS = ("sharks hunt near the reef", "pilot fish follow large sharks", "remoras attach to whales",
          "coral reefs need warm water", "tuna migrate across oceans", "rays glide over sand")


def _corpus(path: Path, n: int) -> Path:
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"_id": f"d{i}", "text": f"Note {i}: {TOPICS[i % len(TOPICS)]}, "
                                                         f"observed on day {i}."}) + "\n")
    return path


def _batches(kb: Path) -> int:
    job = kb / "indexes" / "staging" / "job.json"
    try:
        return sum(len(f["batches"]) for f in json.loads(job.read_text())["files"].values())
    except (OSError, ValueError):
        return 0


def test_sigkill_mid_batch_then_resume(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "notes.jsonl", 600)
    kb = tmp_path / "kb"
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(kb), str(corpus), "50"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 300
    while _batches(kb) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # in the middle of the next batch
    proc.wait()
    staged = _batches(kb)
    assert 3 <= staged < 11, f"killed after {staged} batches"

    done = subprocess.run([sys.executable, "-c", SCRIPT, str(kb), str(corpus), "50"], capture_output=True,
                          text=True, timeout=500)
    assert done.returncode == 0, done.stderr[-2000:]
    resumed_batches, resumed_records, embedded, total = map(int, done.stdout.split())
    assert resumed_batches == staged and resumed_records == 50 * staged
    assert total == 600 and embedded == 600 - resumed_records  # what was staged was not embedded again

    fresh = KnowledgeBase.open(tmp_path / "fresh", create=True)
    fresh.ingest([corpus], batch_chunks=50)
    resumed = KnowledgeBase.open(kb)
    a, b = resumed.current_dense(), fresh.current_dense()
    assert [r.chunk_id for r in a.corpus.rows] == [r.chunk_id for r in b.corpus.rows]
    np.testing.assert_allclose(a.vectors(range(600)), b.vectors(range(600)), atol=1e-5)
    hit = resumed.search("pilot fish follow sharks day 7", top_k=3)
    assert "pilot fish" in hit[0].text
