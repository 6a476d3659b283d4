"""The node list of a pipeline spec: the one declared in `[pipeline] nodes`, checked against the spec's tables,
or the one the tables imply. Node names are the same in files, traces and mermaid drawings.

>>> graph_nodes({"retrieve": {"rerank": True}, "verify": {}}, None, "x")
('retrieve', 'rerank', 'generate', 'verify')
>>> graph_nodes({}, ["generate", "retrieve"], "x")  # doctest: +ELLIPSIS
Traceback (most recent call last):
pilotfish.errors.ConfigError: x: impossible edge generate -> retrieve: retrieve runs before generate; the order is ...
"""

from __future__ import annotations

from typing import Any

from pilotfish.errors import ConfigError

# The nodes a pipeline may name, in the only order the graph can run them.
NODES = ("link_tables", "link_entities", "graph_paths", "rewrite", "decompose", "retrieve", "rerank", "sql",
         "table_evidence", "graph_evidence", "route", "compress", "demos", "generate", "verify")
GRAPH_NODES = ("link_entities", "graph_paths", "graph_evidence")


def graph_nodes(tables: dict[str, Any], declared: Any, where: str) -> tuple[str, ...]:
    """The graph's nodes: the declared list, checked against the tables, or the list the tables imply."""
    retrieve = tables.get("retrieve", {})
    implied = {"rewrite": "rewrite" in tables, "decompose": "decompose" in tables, "retrieve": True,
               "rerank": bool(retrieve.get("rerank")), "route": "router" in tables,
               "compress": retrieve.get("compress") is not None, "demos": "demos" in tables, "generate": True,
               "verify": "verify" in tables, "link_tables": "tables" in tables,
               "sql": "tables" in tables and tables["tables"].get("sql", True) is not False,
               "table_evidence": "tables" in tables, **{n: "graph" in tables for n in GRAPH_NODES}}
    if declared is None:
        return tuple(n for n in NODES if implied[n])
    if not isinstance(declared, list) or not all(isinstance(n, str) for n in declared):
        raise ConfigError(f"{where}: [pipeline] nodes must be a list of node names")
    unknown = [n for n in declared if n not in NODES]
    if unknown:
        raise ConfigError(f"{where}: unknown node {unknown[0]!r} in [pipeline] nodes; known: {', '.join(NODES)}")
    for a, b in zip(declared, declared[1:]):
        if NODES.index(a) >= NODES.index(b):
            raise ConfigError(f"{where}: impossible edge {a} -> {b}: {b} runs "
                              f"{'only once' if a == b else 'before ' + a}; the order is {' -> '.join(NODES)}")
    for needed in ("retrieve", "generate"):
        if needed not in declared:
            raise ConfigError(f"{where}: [pipeline] nodes must include {needed!r}")
    if "route" in declared and "router" not in tables:
        raise ConfigError(f"{where}: node 'route' needs a [router] table")
    if "demos" in declared and "demos" not in tables:
        raise ConfigError(f"{where}: node 'demos' needs a [demos] table with pool = \"FILE.jsonl\"")
    if "compress" in declared and "compress" not in retrieve:
        raise ConfigError(f"{where}: node 'compress' needs compress = N (sentences kept) in [retrieve]")
    table_nodes = [n for n in ("link_tables", "sql", "table_evidence") if n in declared]
    if table_nodes and "tables" not in tables:
        raise ConfigError(f"{where}: node {table_nodes[0]!r} needs a [tables] table")
    if table_nodes and "link_tables" not in declared:
        raise ConfigError(f"{where}: nodes {', '.join(table_nodes)} need 'link_tables' in [pipeline] nodes")
    if "tables" in tables and "link_tables" not in declared:
        raise ConfigError(f"{where}: [tables] is configured but 'link_tables' is not in [pipeline] nodes")
    graph_nodes = [n for n in GRAPH_NODES if n in declared]
    if graph_nodes and "graph" not in tables:
        raise ConfigError(f"{where}: node {graph_nodes[0]!r} needs a [graph] table")
    if ("graph" in tables or graph_nodes) and graph_nodes[:2] != ["link_entities", "graph_paths"]:
        raise ConfigError(f"{where}: [graph] needs 'link_entities' and 'graph_paths' in [pipeline] nodes")
    for table in ("rewrite", "decompose", "demos", "verify"):
        if table in tables and table not in declared:
            raise ConfigError(f"{where}: [{table}] is configured but {table!r} is not in [pipeline] nodes")
    if "router" in tables and "route" not in declared:
        raise ConfigError(f"{where}: a [router] pipeline needs 'route' in [pipeline] nodes")
    if retrieve.get("rerank") and "rerank" not in declared:
        raise ConfigError(f"{where}: [retrieve] rerank = true but 'rerank' is not in [pipeline] nodes")
    if retrieve.get("rerank") is False and "rerank" in declared:
        raise ConfigError(f"{where}: [retrieve] rerank = false but 'rerank' is in [pipeline] nodes")
    if retrieve.get("compress") is not None and "compress" not in declared:
        raise ConfigError(f"{where}: [retrieve] compress is set but 'compress' is not in [pipeline] nodes")
    return tuple(declared)
