from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "docs"


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `pilotfish ARGS...` as a user would, in a fresh process."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "pilotfish.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout)


@pytest.fixture()
def docs(tmp_path: Path) -> Path:
    """A folder of 12 real example articles (md, txt, html) plus a corrupt PDF."""
    folder = tmp_path / "docs"
    folder.mkdir()
    for f in sorted(EXAMPLES.iterdir())[:12]:
        shutil.copy(f, folder / f.name)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\n" + os.urandom(400))
    return folder
