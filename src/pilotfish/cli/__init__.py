"""The `pilotfish` command line, one module per command group.

    pilotfish models pull
    pilotfish ingest docs/ --kb .pilotfish
    pilotfish search "how do I reset my password?" --kb .pilotfish --mode hybrid -k 5
    pilotfish ask "Who founded the university?" --kb .pilotfish
    pilotfish tables --kb .pilotfish
    pilotfish sql "Which region had the highest margin?" --kb .pilotfish --show-sql
    pilotfish ingest movies_kb.txt --kind triples --kb .pilotfish
    pilotfish kb link "who directed the films that Tom Hanks starred in" --kb .pilotfish
    pilotfish serve --kb .pilotfish --port 8000
    pilotfish distill nli --kb .pilotfish --name support-nli --teacher qwen2.5-1.5b
"""

from __future__ import annotations

import logging

import typer

from pilotfish.cli import train_encoders, train_router  # noqa: F401  (they add commands to `train`)
from pilotfish.cli.ask import ask, chat
from pilotfish.cli.check import check
from pilotfish.cli.common import fail
from pilotfish.cli.distill import distill
from pilotfish.cli.eval import eval_app
from pilotfish.cli.ingest import ingest
from pilotfish.cli.kb import kb_app
from pilotfish.cli.log import log_app
from pilotfish.cli.models import models_app
from pilotfish.cli.pipelines import pipelines_app
from pilotfish.cli.route import route_app
from pilotfish.cli.search import search
from pilotfish.cli.serve import keys_app, serve
from pilotfish.cli.tables import sql, tables
from pilotfish.cli.train import train_app
from pilotfish.errors import PilotfishError

app = typer.Typer(help="Small models steer large ones: ingest documents, search them, answer from them.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
for command in (ingest, search, ask, chat, check, tables, sql, serve, distill):
    app.command()(command)
app.add_typer(models_app, name="models")
app.add_typer(route_app, name="route")
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")
app.add_typer(pipelines_app, name="pipelines")
app.add_typer(keys_app, name="keys")
app.add_typer(kb_app, name="kb")
app.add_typer(log_app, name="log")


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except PilotfishError as e:  # anything a command did not catch itself
        fail(str(e))
    except KeyboardInterrupt:
        fail("interrupted", 130)


if __name__ == "__main__":
    main()
