"""What every `pilotfish` command shares: consoles, one-line errors, quiet third-party logging."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

out = Console()
err = Console(stderr=True)

KbOpt = Annotated[Path, typer.Option("--kb", help="Knowledge-base folder.", envvar="PILOTFISH_KB")]
DbOpt = Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL (default: SQLite inside --kb).",
                                           envvar="PILOTFISH_DB")]


def fail(message: str, code: int = 1) -> NoReturn:
    # escaped: a message that quotes a TOML table such as [router] must not be read as rich markup
    err.print(f"[bold red]error:[/] {escape(str(message))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for name in ("pypdf", "sentence_transformers", "transformers", "bm25s", "faiss"):
        logging.getLogger(name).setLevel(logging.ERROR)

