"""Spider dev text-to-SQL (972 questions on the 19 dev databases at hand): execution accuracy against peers.

    python benchmarks/spider_sql.py [--limit N] [--seed S] [--llm qwen2.5-0.5b|qwen2.5-1.5b]
                                    [--configs full-schema,langchain,pilotfish,...] [--no-append]

Configurations, each on the same questions, with the same GGUF model:
  full-schema     the model gets the database's CREATE TABLE statements (as stored in sqlite_master,
                  nothing else) and the question, and writes one SQLite SELECT; greedy, 256 tokens at most
  langchain       LangChain's SQL query chain (`create_sql_query_chain` of langchain-classic, its SQLite
                  prompt: table info with 3 sample rows per table, "at most top_k results" with LangChain's
                  default top_k=5) over `SQLDatabase.from_uri`, the same GGUF through langchain-community's
                  ChatLlamaCpp (pilotfish's n_ctx 4096 and thread count, temperature 0, 256 tokens)
  pilotfish       pilotfish's `SQLGenerator` over the database registered as a `TableCatalog`: every table of a
                  database under 12 tables (all of Spider's) as CREATE statements with 3 example rows, notes on
                  the question's values found in cells, one repair of a failed or empty statement
  pilotfish-vote  the same with 3 samples (one greedy, two at temperature 0.7) and a vote on their results
  pilotfish-demos the same with 2 demonstrations picked by BM25 from the other databases' dev questions

The SQL of every reply is read the same way (`table_sets.extract_sql`: ``` fences and LangChain's
"SQLQuery:" label stripped, the first statement) and run in pilotfish's read-only SQL sandbox (10,000 rows,
10 s). Execution accuracy follows the Spider test-suite evaluation (`result_eq`: same rows as a multiset,
or as a list when the gold query ends in ORDER BY; columns in any consistent order), with a 95% Wilson
interval. Each configuration's records (id, sql, predicted rows, correct, error, seconds) are kept in
benchmarks/out/spider_sql-CONFIG-LLM.partial.jsonl; a rerun skips the ids already there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from shared import append_history  # noqa: E402
from table_sets import (  # noqa: E402
    KEEP_ROWS,
    SpiderItem,
    chosen_configs,
    execute,
    extract_sql,
    run_configs,
    spider_gold_rows,
    spider_items,
    spider_schema,
)

CONFIGS = ("full-schema", "langchain", "pilotfish", "pilotfish-vote", "pilotfish-demos")
LLMS = ("qwen2.5-0.5b", "qwen2.5-1.5b")
MAX_TOKENS = 256
SYSTEM = ("You are an expert in SQLite. Write one SQLite SELECT statement that answers the question over "
          "the database below. Reply with the SQL only, no explanation.")
HEADER = ("config", "model", "n", "execution accuracy [95% CI]", "refused / failed SQL", "p50 s / question",
          "linking recall")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="a seeded sample of this many questions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--llm", choices=LLMS, default="qwen2.5-1.5b")
    parser.add_argument("--configs", default="full-schema,langchain")
    parser.add_argument("--langchain-top-k", type=int, default=5, help="the chain's top_k (LangChain's default 5)")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    configs = chosen_configs(args.configs, CONFIGS)
    items = spider_items(args.limit, seed=args.seed)
    print(f"{len(items)} Spider dev questions, {args.llm}", flush=True)
    table = run_configs("spider_sql", items, configs, args.llm,
                        lambda config: answerer(config, args.llm, args.langchain_top_k), score, HEADER)
    if not args.no_append:
        sample = f"a seeded sample (seed {args.seed}) of " if args.limit else ""
        append_history(f"Spider dev text-to-SQL, {len(items)} questions, {args.llm} (spider_sql.py)", table,
                       f"Questions: {sample}the 972 Spider dev questions whose database is at hand (wta_1 is "
                       "not). Execution accuracy by the test-suite rules (multiset of rows, ordered when the gold "
                       "query's outer level has ORDER BY, columns in any consistent order, floats to 9 significant "
                       "digits); 95% Wilson interval. Predicted SQL runs in pilotfish's read-only sandbox (10,000 "
                       f"rows, 10 s). langchain: create_sql_query_chain with top_k={args.langchain_top_k}, "
                       "ChatLlamaCpp on the same GGUF. Seconds: answer and execution, model loaded.",
                       area="Tables")


def answerer(config: str, llm_name: str, top_k: int) -> tuple[Any, Any]:
    """(answer(item) -> {"sql", "raw", "columns", "rows", "truncated", "error", ...}, warm-up or None)."""
    if config == "full-schema":
        from pilotfish.llms import resolve_llm

        llm = resolve_llm(llm_name)

        def full_schema(item: SpiderItem) -> dict[str, Any]:
            user = f"Database schema:\n{spider_schema(item.db_path)}\n\nQuestion: {item.question}\nSQL:"
            reply = llm.generate([{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}],
                                 max_tokens=MAX_TOKENS, temperature=0.0)[0].text
            sql = extract_sql(reply)
            return {"sql": sql, "raw": reply, **execute(item.db_path, sql)}

        return full_schema, lambda: llm.generate([{"role": "user", "content": "Say OK."}], max_tokens=2)
    if config == "langchain":
        chain = LangChainSQL(llm_name, top_k)
        return chain.answer, chain.warm
    samples = 3 if config == "pilotfish-vote" else 1
    demos = config == "pilotfish-demos"
    return (lambda item: run_pilotfish(item, llm_name, samples, demos)), None


class LangChainSQL:
    """create_sql_query_chain over a ChatLlamaCpp on pilotfish's GGUF file; the model loads once, the
    SQLDatabase once per database."""

    def __init__(self, llm_name: str, top_k: int) -> None:
        self.llm_name, self.top_k = llm_name, top_k
        self._chat: Any = None
        self._chains: dict[str, Any] = {}

    def warm(self) -> None:
        self._model().invoke("Say OK.")

    def _model(self) -> Any:
        if self._chat is None:
            from langchain_community.chat_models import ChatLlamaCpp

            from pilotfish.llms.llamacpp import LlamaCppLLM, default_threads
            from pilotfish.models import model_path

            defaults = LlamaCppLLM(model=self.llm_name).to_config()["init"]  # pilotfish's n_ctx, threads, seed
            self._chat = ChatLlamaCpp(model_path=str(model_path(self.llm_name)), n_ctx=defaults["n_ctx"],
                                      n_threads=defaults["threads"] or default_threads(), seed=defaults["seed"],
                                      temperature=0.0, max_tokens=MAX_TOKENS, verbose=False)
        return self._chat

    def answer(self, item: SpiderItem) -> dict[str, Any]:
        if item.db_id not in self._chains:
            from langchain_classic.chains import create_sql_query_chain
            from langchain_community.utilities import SQLDatabase

            db = SQLDatabase.from_uri(f"sqlite:///{item.db_path}")
            self._chains[item.db_id] = create_sql_query_chain(self._model(), db, k=self.top_k)
        reply = self._chains[item.db_id].invoke({"question": item.question})
        sql = extract_sql(reply)
        return {"sql": sql, "raw": reply, **execute(item.db_path, sql)}


_PILOTFISH: dict[str, Any] = {}


def run_pilotfish(item: SpiderItem, llm_name: str, samples: int, demos: bool = False) -> dict[str, Any]:
    """pilotfish's own text-to-SQL on one question: the database registered as a `TableCatalog` (cards with
    foreign keys and sample values), `SQLGenerator` (linked schema with example rows and value notes, votes
    over `samples` candidates, one repair), run in the same sandbox limits as the baselines.
    "linking_recall": the share of the gold query's tables and table.columns the prompt showed;
    "linker_table_recall": the share of gold tables among the linker's top 3."""
    from pilotfish.llms import resolve_llm
    from pilotfish.tables.catalog import TableCatalog
    from pilotfish.tables.sql import SQLGenerator

    key = f"{llm_name}/{samples}/{item.db_id if demos else ''}"
    if key not in _PILOTFISH:
        _PILOTFISH.setdefault("llm", resolve_llm(llm_name))
        _PILOTFISH[key] = SQLGenerator(llm=_PILOTFISH["llm"], samples=samples, row_limit=10_000, time_limit=10.0,
                                       demos=demo_pool(item.db_id) if demos else None)
    catalogs = _PILOTFISH.setdefault("catalogs", {})
    if item.db_id not in catalogs:
        catalogs[item.db_id] = TableCatalog.for_database(f"sqlite:///{item.db_path}")
    catalog, writer = catalogs[item.db_id], _PILOTFISH[key]
    found = writer.answer(item.question, catalog)
    tables, columns = gold_schema(item.gold_sql, catalog)
    shown = {t.lower() for t in found.tables}
    linked = {t.lower() for t in (found.linked.table_names if found.linked else [])}
    wanted = len(tables) + len(columns)
    recall = (sum(t in shown for t in tables) + sum(c.split(".")[0] in shown for c in columns)) / wanted \
        if wanted else None
    result = found.result
    return {"sql": found.sql, "columns": list(result.columns) if result else [],
            "rows": [tuple(r) for r in result.rows] if result else [], "truncated": bool(result and result.truncated),
            "error": found.error, "linking_recall": recall,
            "linker_table_recall": sum(t in linked for t in tables) / len(tables) if tables else None,
            "tables_shown": found.tables, "repairs": found.repairs, "candidates": found.candidates}


def demo_pool(db_id: str) -> Any:
    """Spider dev questions and gold SQL of the other databases (leave one database out): demonstrations that
    never show the asked database's own queries."""
    from pilotfish.tables.demos import SQLDemoPool

    return SQLDemoPool([{"question": i.question, "sql": i.gold_sql} for i in spider_items(None) if i.db_id != db_id])


def gold_schema(sql: str, catalog: Any) -> tuple[set[str], set[str]]:
    """The tables (lower case) and table.columns the gold query reads, resolved against the catalog."""
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, read="sqlite")
    names = {c.name.lower() for c in catalog.cards}
    tables = {t.name.lower() for t in tree.find_all(exp.Table) if t.name.lower() in names}
    columns = set()
    for col in tree.find_all(exp.Column):
        for table in tables:
            if catalog.card(table).column(col.name) is not None:
                columns.add(f"{table}.{col.name.lower()}")
    return tables, columns


def score(item: SpiderItem, out: dict[str, Any]) -> dict[str, Any]:
    """The record of one answer: execution match against the gold rows, predicted rows cut to KEEP_ROWS."""
    from pilotfish.evaluation.tables import gold_is_ordered, spider_execution_match

    rows = [tuple(r) for r in out.get("rows") or []]
    error = out.get("error")
    correct = error is None and spider_execution_match(rows, spider_gold_rows(item)[1],
                                                       ordered=gold_is_ordered(item.gold_sql))
    extra = {k: v for k, v in out.items() if k not in ("sql", "raw", "columns", "rows", "truncated", "error")}
    return {"db_id": item.db_id, "question": item.question, "sql": out.get("sql"), "raw": out.get("raw"),
            "columns": out.get("columns") or [], "rows": [list(r) for r in rows[:KEEP_ROWS]], "n_rows": len(rows),
            "truncated": bool(out.get("truncated")), "correct": bool(correct), "error": error, **extra}


if __name__ == "__main__":
    main()
