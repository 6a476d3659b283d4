"""`pilotfish log`: what the answer log recorded (LLM calls, answers, feedback), exported as JSONL."""

from __future__ import annotations

import typer
from rich.markup import escape

log_app = typer.Typer(help=escape("Export and prune the answer log (off unless a pipeline's [log] table turns it on)."),
                      no_args_is_help=True)
