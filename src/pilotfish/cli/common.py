"""What every `pilotfish` command shares: consoles, one-line errors, quiet third-party logging."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from pilotfish.errors import QueryError

out = Console()
err = Console(stderr=True)

KbOpt = Annotated[Path, typer.Option("--kb", help="Knowledge-base folder.", envvar="PILOTFISH_KB")]
DbOpt = Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL (default: SQLite inside --kb).",
                                           envvar="PILOTFISH_DB")]


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for name in ("pypdf", "sentence_transformers", "transformers", "bm25s", "faiss"):
        logging.getLogger(name).setLevel(logging.ERROR)


def jsonl_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) of each non-blank line of a JSONL file; QueryError for a missing file
    or a line that is not JSON, naming the line."""
    if not path.is_file():
        raise QueryError(f"file {path} does not exist")
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except json.JSONDecodeError as e:
            raise QueryError(f"{path} line {n}: not valid JSON ({e.msg})") from e
