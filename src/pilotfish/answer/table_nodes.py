"""The answer graph's table nodes: link the question to tables and choose the path, write and run SQL, and
show linked rows when SQL is not the tool. Their passages join the text passages, so the prompt, the
citations and the verifier treat table evidence like any other.

    link_tables -> (text search unless the route is "tables") -> sql -> table_evidence -> gate -> ...

>>> route_for({"tables": 1, "values": 1, "columns": 1, "cue": True, "text": True})
('tables', 'the question names a value found in a table and asks to count, compare or aggregate')
>>> route_for({"tables": 0, "values": 0, "columns": 0, "cue": True, "text": True})[0]
'text'
"""

from __future__ import annotations

import re
from typing import Any

from pilotfish.answer.nodes import AnswerState, Parts
from pilotfish.errors import TableError
from pilotfish.types import Passage

# words that ask for a computation over rows: SQL is the tool
_CUE = re.compile(r"\b(how many|how much|number of|count|total|sum|average|mean|median|highest|lowest|most|least|"
                  r"largest|smallest|biggest|maximum|minimum|max|min|top|bottom|rank|more than|less than|fewer|"
                  r"greater|before|after|between|per|each|list all|which \w+ (?:has|had|have)|first|last|"
                  r"older|younger|oldest|youngest|percent|percentage|ratio|difference)\b", re.I)


def route_for(signals: dict[str, Any]) -> tuple[str, str]:
    """(route, reason) from the linker's signals: tables linked, values and columns matched, an aggregate cue,
    and whether the knowledge base holds any text documents."""
    if not signals["tables"]:
        return "text", "no table is linked to the question"
    if not signals["text"]:
        return "tables", "the knowledge base holds tables only"
    if signals["values"] and signals["cue"]:
        return "tables", "the question names a value found in a table and asks to count, compare or aggregate"
    if signals["columns"] >= 2 and signals["cue"]:
        return "tables", "the question names table columns and asks to count, compare or aggregate"
    if signals["values"] or signals["columns"]:
        return "both", "the question matches table values or columns; text may hold the answer too"
    return "text", "the linked tables share no value or column with the question"


def catalog_of(parts: Parts) -> Any:
    """The tables at hand: those handed to `build`, else the knowledge base's (None without either)."""
    if parts.tables is not None:
        return parts.tables
    return parts.kb.tables() if parts.kb is not None and hasattr(parts.kb, "tables") else None


def link_tables(parts: Parts, state: AnswerState) -> AnswerState:
    spec = parts.spec.tables
    catalog = catalog_of(parts)
    if catalog is None or not len(catalog):
        return {"tables": {"route": "text", "reason": "no tables here"}}
    question = state["question"]
    try:
        linked = parts.linker.link(question, catalog)
    except TableError as err:  # a registered database that went away
        return {"tables": {"route": "text", "reason": f"the tables cannot be read: {err}"}}
    strong = [c for c in linked.columns if c.score >= 1]
    has_text = parts.kb is not None and parts.kb.has_text()
    signals = {"tables": len(linked.tables), "values": len(linked.values), "columns": len(strong),
               "cue": bool(_CUE.search(question)), "text": has_text}
    route, reason = route_for(signals) if spec.route == "auto" else (spec.route, "set by the pipeline's [tables]")
    if route != "text" and not linked.tables:
        route, reason = "text", "no table is linked to the question"
    if route in ("text", "both") and not has_text:
        route = "tables" if linked.tables else route
    return {"tables": {"route": route, "reason": reason, "linked": linked.to_dict()}, "linked": linked}


def sql(parts: Parts, state: AnswerState) -> AnswerState:
    """Write and run SQL over the linked tables; a result becomes a passage citing the tables and the SQL."""
    info = state.get("tables") or {}
    if info.get("route") not in ("tables", "both"):
        return {}
    found = parts.sql_writer.answer(state["question"], catalog_of(parts), linked=state.get("linked"))
    record = found.to_dict()
    update: AnswerState = {"tables": {**info, "sql": record}, "spent": found.usage}
    if found.error is None and found.rows:
        update["passages"] = [sql_passage(found, catalog_of(parts)), *_text_only(state)]
    return update


def table_evidence(parts: Parts, state: AnswerState) -> AnswerState:
    """Linked rows as evidence when the route reads tables and SQL did not find an answer."""
    info = state.get("tables") or {}
    done = info.get("sql")
    if info.get("route") not in ("tables", "both") or (done and done["error"] is None and done["rows"]):
        return {}
    try:
        rows = parts.table_evidence.select(state["question"], catalog_of(parts), linked=state.get("linked"))
    except TableError as err:
        return {"tables": {**info, "evidence_error": str(err)}}
    return {"passages": [*rows, *_text_only(state)],
            "tables": {**info, "evidence": [p.chunk_id for p in rows]}}


def _text_only(state: AnswerState) -> list[Passage]:
    """The text passages found so far, without tables' cards (the table path shows the tables themselves)."""
    return [p for p in state.get("passages") or [] if p.metadata.get("kind") != "table"]


def sql_passage(found: Any, catalog: Any) -> Passage:
    """The SQL result as evidence, phrased as the table's answer to the question the query was written for. The
    NLI checker then separates a faithful sentence from a wrong one ("West had the highest revenue": 0.98;
    "East ...": 0.09, contradicted); the bare query and its rows read as neutral to both (0.01), and the SQL in
    the text blurs them (0.99 against 0.95), so the query stays in the passage's metadata, the trace and
    `Answer.sql`. One row reads as `column = value` words, more rows as a markdown table."""
    from pilotfish.tables.evidence import cell_text

    used = [t for t in found.tables if re.search(rf"\b{re.escape(t)}\b", found.sql, re.I)] or found.tables
    card = catalog.card(used[0]) if used else None
    more = " (more rows were cut)" if found.result.truncated else ""
    head = f'Table {", ".join(used)} answers "{found.question.strip()}" with'
    if len(found.rows) == 1:
        text = head + ": " + "; ".join(f"{c} = {cell_text(v)}" for c, v in zip(found.columns, found.rows[0])) + "."
    else:
        lines = ["| " + " | ".join(found.columns) + " |", "|" + "---|" * len(found.columns)]
        lines += ["| " + " | ".join(cell_text(v) for v in row) + " |" for row in found.rows]
        text = f"{head} these {len(found.rows)} rows{more}:\n" + "\n".join(lines)
    name = used[0] if used else "tables"
    return Passage(chunk_id=f"sql:{name}", doc_id=f"table:{name}", text=text, score=1.0,
                   source=card.source if card is not None else "", title=f"SQL over {', '.join(used)}",
                   retriever="sql", metadata={"kind": "sql", "sql": found.sql, "tables": used})
