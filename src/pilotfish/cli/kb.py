"""`pilotfish kb link` and `pilotfish kb show`: what a question links to in the knowledge graph, and an
entity's neighbourhood; `pilotfish kb reembed`: rebuild the dense index with another embedding model.

    pilotfish kb link "who directed the films that Tom Hanks starred in" --kb .pilotfish
    pilotfish kb show "Tom Hanks" --kb .pilotfish
    pilotfish kb reembed --model my-embedder --kb .pilotfish
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from pilotfish.cli.common import DbOpt, KbOpt, _quiet_libraries, err, fail, out, print_table
from pilotfish.errors import GraphError, PilotfishError

kb_app = typer.Typer(help="Look into a knowledge base's knowledge graph, or re-embed its documents with another "
                          "embedding model.", no_args_is_help=True)

ScorerOpt = Annotated[str, typer.Option(help="Path scorer: embedding, cross-encoder, or a folder from "
                                             "`pilotfish train paths`.")]


def open_graph(kb: Path, db: str | None) -> Any:
    """The knowledge base's graph; `GraphError` with the command that makes one when it has none."""
    from pilotfish.knowledge.base import KnowledgeBase

    graph = KnowledgeBase.open(kb, db=db).graph()
    if graph is None:
        raise GraphError(f"{kb} holds no knowledge graph: add triples with `pilotfish ingest FILE --kind triples "
                         f"--kb {kb}`")
    return graph


@kb_app.command("link")
def link(
    question: Annotated[str, typer.Argument(help="The question.")],
    kb: KbOpt = Path(".pilotfish"),
    db: DbOpt = None,
    scorer: ScorerOpt = "embedding",
    hops: Annotated[int, typer.Option(help="Longest relation path.")] = 3,
    paths: Annotated[int, typer.Option(help="Relation paths shown.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """The entities a question links to (mention, entity, score, why) and the best relation paths from them.
    Exit code 1 when no entity is linked."""
    from pilotfish.graphs.linker import EntityLinker
    from pilotfish.graphs.paths import PathRetriever
    from pilotfish.graphs.scorers import load_scorer

    _quiet_libraries()
    try:
        if not question.strip():
            raise GraphError("empty question: ask something")
        graph = open_graph(kb, db)
        result = PathRetriever(scorer=load_scorer(scorer), hops=hops, top_paths=paths).retrieve(
            question, graph, EntityLinker())
    except PilotfishError as e:
        fail(str(e))
    if as_json:
        out.print_json(json.dumps(result.to_dict()))
        raise typer.Exit(0 if result.entities else 1)
    if not result.entities:
        out.print("no entity of the knowledge graph is mentioned in the question", soft_wrap=True)
        raise typer.Exit(1)
    table = Table("mention", "entity", "score", "why")
    for e in result.entities:
        table.add_row(escape(e.mention), escape(e.entity), f"{e.score:.2f}", escape(e.why))
    print_table(table)
    table = Table("from", "path", "score", "answers")
    for p in result.paths:
        shown = ", ".join(p.answers[:5]) + (f" (+{len(p.answers) - 5})" if len(p.answers) > 5 else "")
        table.add_row(escape(p.entity), " -> ".join(p.steps), f"{p.score:.3f}", escape(shown))
    print_table(table)


@kb_app.command("show")
def show(
    entity: Annotated[str, typer.Argument(help="The entity's name (or an alias).")],
    kb: KbOpt = Path(".pilotfish"),
    db: DbOpt = None,
    limit: Annotated[int, typer.Option(help="Most edges shown.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print the neighbourhood as JSON.")] = False,
) -> None:
    """An entity's neighbourhood: its relations, in both directions, with the triple ids."""
    try:
        graph = open_graph(kb, db)
        index = graph.entity(entity)
    except PilotfishError as e:
        fail(str(e))
    edges = graph.neighbourhood(index, limit=limit)
    name = graph.names[index]
    if as_json:
        out.print_json(json.dumps({"entity": name, "aliases": graph.aliases.get(index, []),
                                   "degree": graph.degree(index), "edges": edges}))
        return
    aliases = graph.aliases.get(index, [])
    also = f" (also: {', '.join(aliases)})" if aliases else ""
    out.print(f"[bold]{escape(name)}[/]{escape(also)}: {graph.degree(index)} edges"
              + (f", {limit} shown" if graph.degree(index) > limit else ""), highlight=False, soft_wrap=True)
    table = Table("relation", "entity", "triple")
    for edge in edges:
        relation = (f"{edge['step'][1:]} (of)" if edge["step"].startswith("~") else edge["step"])
        table.add_row(escape(relation), escape(edge["entity"]), f"kb:{edge['triple']}")
    print_table(table)


@kb_app.command("reembed")
def reembed_command(
    model: Annotated[str, typer.Option(help="Embedding model: minilm-l6, bge-small, a name registered by `pilotfish "
                                            "train embedder --name`, or a model folder.")],
    kb: KbOpt = Path(".pilotfish"),
    db: DbOpt = None,
) -> None:
    """Embed every chunk again with MODEL into a new index generation, then switch the knowledge base to it in
    one transaction: until then (and if the command is stopped or killed) searches use the old index."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeRemainingColumn

    from pilotfish.cli.ingest import _RichProgress
    from pilotfish.knowledge.base import KnowledgeBase
    from pilotfish.knowledge.reembed import reembed

    _quiet_libraries()
    try:
        base = KnowledgeBase.open(kb, db=db)
        columns = (SpinnerColumn(finished_text="[green]✓[/]"), TextColumn("{task.description}"), BarColumn(),
                   MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=err, transient=True) as progress:
            report = reembed(base, model, progress=_RichProgress(progress))
    except PilotfishError as e:
        fail(str(e))
    out.print(f"re-embedded {report.chunks} chunks of {escape(str(kb))} with {escape(report.name)} in "
              f"{report.seconds:.1f}s (index generation {report.generation}; was {escape(report.previous)})",
              highlight=False, soft_wrap=True)
