"""WikiTableQuestions (a fixed sample of 500 training questions, one table each): denotation accuracy.

    python benchmarks/wtq_tables.py [--limit N] [--seed S] [--llm qwen2.5-0.5b|qwen2.5-1.5b]
                                    [--configs sql,evidence,pilotfish-sql,pilotfish-evidence,pilotfish-auto]
                                    [--no-append]

Configurations, each on the same questions, with the same GGUF model through pilotfish's LLM:
  sql                 the table goes into a SQLite file (table `t`, read by pilotfish.tables.load.read_tables:
                      clean column names, numbers and dates typed; plain text columns when that module is
                      missing); the model sees its CREATE TABLE statement and 3 rows and writes one SELECT
                      (greedy, 256 tokens), run in pilotfish's read-only SQL sandbox; the answer is the first
                      column of the result (`values_of`)
  evidence            the table's first 60 rows as a markdown table in the prompt (cells as in the CSV); the
                      model answers in a few words, several answers separated by "|" (greedy, 64 tokens)
  pilotfish-sql       pilotfish's table linker and SQL generator     (`run_pilotfish`, filled in by the
  pilotfish-evidence  pilotfish's linked rows as evidence             tables work)
  pilotfish-auto      pilotfish choosing between the two

Denotation accuracy follows the official evaluator (`pilotfish.evaluation.tables.wtq_denotation_match`),
with a 95% Wilson interval. The sample's ids are written to benchmarks/out/wtq/; each configuration's
records (id, answer or sql, predicted values, correct, error, seconds) are kept in
benchmarks/out/wtq_tables-CONFIG-LLM.partial.jsonl, and a rerun skips the ids already there.
"""

from __future__ import annotations

import argparse
import csv
import functools
import sqlite3
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from shared import append_history  # noqa: E402
from table_sets import (  # noqa: E402
    WTQ_OUT,
    WtqItem,
    chosen_configs,
    execute,
    extract_sql,
    run_configs,
    wtq_items,
)

CONFIGS = ("sql", "evidence", "pilotfish-sql", "pilotfish-evidence", "pilotfish-auto")
LLMS = ("qwen2.5-0.5b", "qwen2.5-1.5b")
EVIDENCE_ROWS = 60
SQL_SYSTEM = ("You are an expert in SQLite. Write one SQLite SELECT statement over the table below that answers "
              "the question. Select the answer column first and nothing else if you can. Reply with the SQL only.")
EVIDENCE_SYSTEM = ("Answer the question from the table. Reply with the answer only, in a few words: a name, a "
                   "number or a date. If there are several answers, separate them with |.")
HEADER = ("config", "model", "n", "denotation accuracy [95% CI]", "refused / failed SQL", "p50 s / question",
          "linking recall")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=500, help="the first N questions of the fixed sample")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--llm", choices=LLMS, default="qwen2.5-1.5b")
    parser.add_argument("--configs", default="sql,evidence")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    configs = chosen_configs(args.configs, CONFIGS)
    items = wtq_items(args.limit, seed=args.seed)
    print(f"{len(items)} WikiTableQuestions training questions, {args.llm}", flush=True)
    if "sql" in configs:
        for item in items:  # built once, before any timing
            table_db(item)
    table = run_configs("wtq_tables", items, configs, args.llm, lambda config: answerer(config, args.llm), score,
                        HEADER)
    if not args.no_append:
        append_history(f"WikiTableQuestions, {len(items)} questions, {args.llm} (wtq_tables.py)", table,
                       f"Questions: random.Random({args.seed}).sample of {len(items)} training questions (ids in "
                       f"benchmarks/out/wtq/). Denotation accuracy by the official evaluator's rules (gold numbers "
                       "and dates in words read as CoreNLP would); 95% Wilson interval. sql: the table in SQLite, "
                       "CREATE TABLE plus 3 rows in the prompt, the first result column as the answer. evidence: "
                       f"the first {EVIDENCE_ROWS} rows as markdown. Seconds: answer (and execution), model loaded.",
                       area="Tables")


def answerer(config: str, llm_name: str) -> tuple[Any, Any]:
    """(answer(item) -> {"predicted", "error", ...}, warm-up or None); one model per run."""
    if config not in ("sql", "evidence"):
        return functools.partial(run_pilotfish, llm_name=llm_name, mode=config.removeprefix("pilotfish-")), None
    llm = _llm(llm_name)
    answer = functools.partial(sql_answer if config == "sql" else evidence_answer, llm=llm)
    return answer, functools.partial(llm.generate, [{"role": "user", "content": "Say OK."}], max_tokens=2)


@functools.cache
def _llm(name: str) -> Any:
    from pilotfish.llms import resolve_llm

    return resolve_llm(name)


# -- the table as SQLite and as text ----------------------------------------------------------------------
def _typed_frame(path: Path) -> Any:
    """The table as pilotfish reads a CSV (clean names, typed columns); plain text without that module."""
    import pandas as pd

    try:
        from pilotfish.tables.load import read_tables
    except ImportError:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    frame = read_tables(path)[0][0].frame.copy()
    for name in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[name]):
            midnight = (frame[name].dropna().dt.normalize() == frame[name].dropna()).all()
            frame[name] = frame[name].dt.strftime("%Y-%m-%d" if midnight else "%Y-%m-%d %H:%M:%S")
    return frame


def table_db(item: WtqItem) -> Path:
    """A SQLite copy of the item's table (table `t`), built once under benchmarks/out/wtq/db/."""
    path = WTQ_OUT / "db" / (item.context.removeprefix("csv/").removesuffix(".csv").replace("/", "_") + ".sqlite")
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        conn = sqlite3.connect(tmp)
        try:
            _typed_frame(item.table_path).to_sql("t", conn, index=False)
            conn.commit()
        finally:
            conn.close()
        tmp.replace(path)
    return path


def sql_prompt(db: Path) -> str:
    """The CREATE TABLE statement and the first 3 rows, tab-separated."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        create = conn.execute("SELECT sql FROM sqlite_master WHERE name = 't'").fetchone()[0]
        cursor = conn.execute("SELECT * FROM t LIMIT 3")
        names = [d[0] for d in cursor.description]
        rows = ["\t".join("" if v is None else str(v) for v in row) for row in cursor.fetchall()]
    finally:
        conn.close()
    return f"{create};\n/*\n3 rows of t:\n" + "\n".join(["\t".join(names), *rows]) + "\n*/"


def table_markdown(path: Path, max_rows: int = EVIDENCE_ROWS) -> str:
    """The first `max_rows` rows of the CSV as a markdown table, cells as written (no padding, which would
    only spend tokens)."""
    with path.open(encoding="utf-8", newline="") as fh:
        header, *rows = list(csv.reader(fh))

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "/").replace("\n", " ").strip() for c in cells) + " |"

    text = "\n".join([line(header), "|" + "---|" * len(header), *(line(r) for r in rows[:max_rows])])
    if len(rows) > max_rows:
        text += f"\n({len(rows) - max_rows} more rows not shown)"
    return text


# -- configurations ---------------------------------------------------------------------------------------
def sql_answer(item: WtqItem, llm: Any) -> dict[str, Any]:
    from pilotfish.evaluation.tables import values_of

    db = table_db(item)
    user = f"{sql_prompt(db)}\n\nQuestion: {item.question}\nSQL:"
    reply = llm.generate([{"role": "system", "content": SQL_SYSTEM}, {"role": "user", "content": user}],
                         max_tokens=256, temperature=0.0)[0].text
    sql = extract_sql(reply)
    result = execute(db, sql)
    return {"sql": sql, "raw": reply, "predicted": values_of(result["columns"], result["rows"]),
            "n_rows": len(result["rows"]), "error": result["error"]}


def evidence_answer(item: WtqItem, llm: Any) -> dict[str, Any]:
    user = f"Table:\n{table_markdown(item.table_path)}\n\nQuestion: {item.question}\nAnswer:"
    reply = llm.generate([{"role": "system", "content": EVIDENCE_SYSTEM}, {"role": "user", "content": user}],
                         max_tokens=64, temperature=0.0)[0].text
    answer = reply.strip().splitlines()[0].strip() if reply.strip() else ""
    predicted = [v.strip() for v in answer.split("|") if v.strip()] if "|" in answer else [answer]
    return {"answer": answer, "raw": reply, "predicted": predicted, "error": None}


_CATALOGS: dict[str, Any] = {}


def run_pilotfish(item: WtqItem, llm_name: str, mode: str) -> dict[str, Any]:
    """pilotfish on one question over its table alone (`ask --table FILE`: `TableCatalog.for_files`), `mode`:
    "sql" (`SQLGenerator`: linked schema with example rows and value notes, one repair; predicted values from
    the result's first column), "evidence" (the answer pipeline with [tables] sql = false: the table's rows
    as markdown evidence, a short answer) or "auto" (the answer pipeline with its default [tables]: SQL first,
    rows when SQL finds nothing, and the short answer written from what was found)."""
    from pilotfish.answer import build
    from pilotfish.evaluation.tables import values_of
    from pilotfish.prompts.builder import strip_citations
    from pilotfish.tables.catalog import TableCatalog
    from pilotfish.tables.sql import SQLGenerator

    key = str(item.table_path)
    if key not in _CATALOGS:
        _CATALOGS.clear()  # one table at a time: each question has its own
        _CATALOGS[key] = TableCatalog.for_files([item.table_path])
    catalog, llm = _CATALOGS[key], _llm(llm_name)
    if mode == "sql":
        found = SQLGenerator(llm=llm).answer(item.question, catalog)
        return {"sql": found.sql, "predicted": values_of(found.columns, found.rows), "n_rows": len(found.rows),
                "error": found.error, "repairs": found.repairs}
    tables = {"sql": False} if mode == "evidence" else {}
    pipeline = build({"answer": {"llm": llm_name, "style": "short", "max_tokens": 64}, "tables": tables}, None,
                     tables=catalog, llms={llm_name: llm})
    answer = pipeline.run(item.question)
    text = strip_citations(answer.text).strip()
    predicted = [v.strip() for v in text.split("|") if v.strip()] if "|" in text else [text]
    route = next((s.outputs.get("tables") for s in answer.trace if s.node == "link_tables"), None) or {}
    return {"answer": text, "predicted": predicted if answer.answered else [], "sql": answer.sql,
            "error": None, "route": route.get("route"), "used_sql": answer.sql is not None}


def score(item: WtqItem, out: dict[str, Any]) -> dict[str, Any]:
    from pilotfish.evaluation.tables import wtq_denotation_match

    predicted = [str(v) for v in out.get("predicted") or []]
    correct = out.get("error") is None and wtq_denotation_match(predicted, item.gold)
    extra = {k: v for k, v in out.items() if k not in ("predicted", "error")}
    return {"question": item.question, "context": item.context, "gold": list(item.gold), **extra,
            "predicted": predicted, "correct": bool(correct), "error": out.get("error")}


if __name__ == "__main__":
    main()
