"""`pilotfish pipelines`: the built-in answer pipelines, and the graph of any pipeline.

    pilotfish pipelines                     # the built-in pipelines, one line each
    pilotfish pipelines show multihop       # its graph as mermaid text, and its nodes in order
    pilotfish pipelines show my-rag.toml    # a pipeline file, checked as `ask --pipeline` would
"""

from __future__ import annotations

from typing import Annotated

import typer

from pilotfish.cli_common import fail, out
from pilotfish.errors import PilotfishError

pipelines_app = typer.Typer(help="List the built-in answer pipelines, or show one's graph.",
                            invoke_without_command=True)


@pipelines_app.callback()
def pipelines_list(ctx: typer.Context) -> None:
    """The built-in pipelines with a one-line description each."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from pilotfish.agents.pipelines import BUILTIN

    table = Table("pipeline", "what it does", show_lines=False)
    for name, description in BUILTIN.items():
        table.add_row(name, description)
    out.print(table)
    out.print("[dim]A pipeline file (.toml) composes its own: see `pilotfish pipelines show FILE` and README.[/]")


@pipelines_app.command("show")
def pipelines_show(name: Annotated[str, typer.Argument(help="A built-in pipeline name or a pipeline .toml file.")],
                   llm: Annotated[str | None, typer.Option(help="LLM for pipelines that take one.")] = None) -> None:
    """Print the pipeline's graph as mermaid text (paste it into any mermaid viewer)."""
    from pilotfish.agents.graph import AnswerPipeline
    from pilotfish.agents.pipelines import pipeline_options

    try:
        pipeline = AnswerPipeline(kb=None, **pipeline_options(name, llm))  # models load lazily: nothing runs
    except PilotfishError as e:
        fail(e)
    out.print(pipeline.mermaid(), highlight=False, markup=False, soft_wrap=True)
