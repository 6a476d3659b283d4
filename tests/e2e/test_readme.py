"""The README's Python program runs as printed from a fresh shell (its model swapped for the smallest one)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _python_block() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("\n## Python\n"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


def test_readme_python_program_runs_as_printed(tmp_path: Path) -> None:
    program = _python_block()
    assert 'LLM = "qwen2.5-1.5b"' in program  # the one line the test changes
    program = program.replace('LLM = "qwen2.5-1.5b"', 'LLM = "smollm2-135m"')
    docs = tmp_path / "examples" / "docs"
    docs.mkdir(parents=True)
    for name in ("University_of_the_Incarnate_Word.html", "Apple_Watch.md", "14ymedio.txt"):
        shutil.copy(ROOT / "examples" / "docs" / name, docs / name)
    shutil.copy(ROOT / "examples" / "questions.jsonl", tmp_path / "examples" / "questions.jsonl")
    (tmp_path / "program.py").write_text(program, encoding="utf-8")
    done = subprocess.run([sys.executable, "program.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert any("University_of_the_Incarnate_Word" in line for line in lines[:3])  # the search found it first
    assert "('retrieve', 'rerank', 'generate')" in done.stdout
    assert "[answer]" in done.stdout or "'answer'" in done.stdout  # the spec printed back as tables
