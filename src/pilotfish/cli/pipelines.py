"""`pilotfish pipelines`: the built-in answer pipelines, and the graph of any pipeline.

    pilotfish pipelines                     # the built-in pipelines, one line each
    pilotfish pipelines show multihop       # its graph as mermaid text, and its nodes in order
    pilotfish pipelines show my-rag.toml    # a pipeline file, checked as `ask --pipeline` would
"""

from __future__ import annotations

from typing import Annotated

import typer

from pilotfish.cli.common import fail, out
from pilotfish.errors import PilotfishError

pipelines_app = typer.Typer(help="List the built-in answer pipelines, or show one's graph.",
                            invoke_without_command=True)


@pipelines_app.callback()
def pipelines_list(ctx: typer.Context) -> None:
    """The built-in pipelines with a one-line description each."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from pilotfish.answer.spec import BUILTIN

    table = Table("pipeline", "what it does", show_lines=False)
    for name, description in BUILTIN.items():
        table.add_row(name, description)
    out.print(table)
    out.print("[dim]A pipeline file (.toml) composes its own: see `pilotfish pipelines show FILE` and README.[/]")


@pipelines_app.command("show")
def pipelines_show(name: Annotated[str, typer.Argument(help="A built-in pipeline name or a pipeline .toml file.")],
                   llm: Annotated[str | None, typer.Option(help="LLM for pipelines that take one.")] = None,
                   spec: Annotated[bool, typer.Option("--spec", help="Print the spec as JSON tables instead (what "
                                                                     "a pipeline file or dict would hold).")] = False,
                   ) -> None:
    """Print the pipeline's graph as mermaid text (paste it into any mermaid viewer), or its spec."""
    import json

    from pilotfish.answer import build

    try:
        pipeline = build(name, None, llm=llm)  # models load lazily: nothing runs
    except PilotfishError as e:
        fail(str(e))
    if spec:
        out.print_json(json.dumps(pipeline.to_config()))
        return
    out.print(pipeline.mermaid(), highlight=False, markup=False, soft_wrap=True)


def print_steering(answer: object) -> None:
    """One dim line each for what the rewrite and decompose nodes did, under `ask`'s answer."""
    from rich.markup import escape

    def dim(text: str) -> None:
        out.print(f"[dim]{escape(text)}[/]", soft_wrap=True, highlight=False)

    for step in getattr(answer, "trace", []):
        rewrite, plan = step.outputs.get("rewrite"), step.outputs.get("plan")
        if rewrite:
            extra = " + a hypothetical passage" if rewrite.get("passage") else ""
            dim(f"rewrite: {'; '.join(rewrite['queries'][1:]) or 'question kept'}{extra}"
                + (f" ({rewrite['fallback']})" if rewrite["fallback"] else ""))
        if plan and len(plan["steps"]) > 1:
            dim(f"plan ({plan['reason']}): {' -> '.join(plan['steps'])}")
        elif plan and plan.get("fallback"):
            dim(f"plan: {plan['fallback']}")
        for record in step.outputs.get("steps") or []:
            if "answer" in record:
                dim(f"  step {record['step']}: {record['question']} -> {record['answer'] or 'not found'}")
