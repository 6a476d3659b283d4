"""What every `pilotfish` command shares: consoles, one-line errors, quiet third-party logging."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from pilotfish.answer.spec import BUILTIN

out = Console()
err = Console(stderr=True)

KbOpt = Annotated[Path, typer.Option("--kb", help="Knowledge-base folder.", envvar="PILOTFISH_KB")]
DbOpt = Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL (default: SQLite inside --kb).",
                                           envvar="PILOTFISH_DB")]
# Help strings are rich markup: escape() keeps a TOML table such as [answer] from being read as a style tag.
BUILTIN_PIPELINES = ", ".join(BUILTIN)
PIPELINE_HELP = escape(f"{BUILTIN_PIPELINES}, or a pipeline .toml file ([cascade], [router] or [answer], and "
                       "[verify] or [tables] tables; see `pilotfish pipelines`).")


def check_question_or_batch(question: str | None, questions: Path | None) -> None:
    """A command that answers takes one QUESTION or a --questions file, never both or neither."""
    from pilotfish.errors import QueryError

    if (question is None) == (questions is None):
        raise QueryError("give either a QUESTION or --questions FILE.jsonl")
    if question is not None and not question.strip():
        raise QueryError("empty question: ask something")


def fail(message: str, code: int = 1) -> NoReturn:
    # escaped: a message that quotes a TOML table such as [router] must not be read as rich markup
    err.print(f"[bold red]error:[/] {escape(str(message))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def print_table(table: Table) -> None:
    """`table` on stdout: fitted to a terminal, at its full width elsewhere, so a pipe or file gets whole rows."""
    if out.is_terminal:
        out.print(table)
        return
    width = Measurement.get(out, out.options.update_width(10_000), table).maximum
    out.print(table, width=max(width, 1), soft_wrap=True)


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' own bars (loading, saving weights)
    for name in ("pypdf", "sentence_transformers", "transformers", "bm25s", "faiss"):
        logging.getLogger(name).setLevel(logging.ERROR)

