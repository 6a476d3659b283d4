"""What spider_sql.py and wtq_tables.py share: their questions, gold results, SQL taken from a reply and run
in pilotfish's read-only sandbox, the resumable per-question record files, and the summary row.

Spider dev (DATA/spider): the 1,034 dev questions less the 62 on `wta_1`, whose database is not in
DATA/spider/database, leave 972 answerable questions, ids `dev-NNNN` by their place in dev.json.
WikiTableQuestions (DATA/wtq): a fixed sample of the 14,152 training questions (random.Random(seed).sample
over the file's rows, kept in id order, nt-0 before nt-10), each with its table as a standard CSV file:
the archive's .csv files (not the .tsv variants with their \\n and \\p escapes), extracted once into
benchmarks/out/wtq/ and rewritten without their backslash escapes. Gold answers are the `targetValue`
field split on "|", unescaped as the official evaluator does.
"""

from __future__ import annotations

import csv
import functools
import gzip
import json
import math
import random
import re
import sqlite3
import statistics
import tarfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared import DATA, OUT, markdown_table

SPIDER = DATA / "spider"
WTQ = DATA / "wtq"
WTQ_OUT = OUT / "wtq"
WTQ_SAMPLE = 500
KEEP_ROWS = 20  # predicted rows kept in a record (correctness is decided on all of them)


# -- Spider ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpiderItem:
    id: str
    db_id: str
    question: str
    gold_sql: str
    db_path: Path


def spider_items(limit: int | None = None, seed: int = 0) -> list[SpiderItem]:
    """The answerable Spider dev questions in dev.json order; with `limit`, a uniform random sample of
    that many (random.Random(seed).sample over the 972), still in dev.json order."""
    records = json.loads(gzip.open(SPIDER / "dev.json.gz", "rt", encoding="utf-8").read())
    items = []
    for index, record in enumerate(records):
        path = SPIDER / "database" / record["db_id"] / f"{record['db_id']}.sqlite"
        if path.is_file():
            items.append(SpiderItem(f"dev-{index:04d}", record["db_id"], record["question"], record["query"], path))
    if limit is not None and limit < len(items):
        chosen = set(random.Random(seed).sample(range(len(items)), limit))
        items = [item for n, item in enumerate(items) if n in chosen]
    return items


def _read_only(db_path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    conn.text_factory = lambda b: b.decode(errors="ignore")  # as the test-suite evaluation reads them
    return conn


@functools.cache
def spider_gold_rows(item: SpiderItem) -> tuple[list[str], list[tuple[Any, ...]]]:
    """(column names, rows) of the gold query, run read-only with sqlite3 (cached per question)."""
    conn = _read_only(item.db_path)
    try:
        cursor = conn.execute(item.gold_sql)
        return [d[0] for d in cursor.description or []], [tuple(r) for r in cursor.fetchall()]
    finally:
        conn.close()


@functools.cache
def spider_schema(db_path: Path) -> str:
    """The database's CREATE TABLE statements as stored in sqlite_master, nothing else."""
    conn = _read_only(db_path)
    try:
        rows = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL "
                            "AND name NOT LIKE 'sqlite_%' ORDER BY rowid").fetchall()
    finally:
        conn.close()
    return "\n\n".join(r[0].strip() + ";" for r in rows)


# -- WikiTableQuestions ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class WtqItem:
    id: str
    question: str
    context: str  # the table as the dataset names it, e.g. csv/204-csv/590.csv
    table_path: Path
    gold: tuple[str, ...]


def _tsv_unescape(text: str) -> str:
    return text.replace(r"\n", "\n").replace(r"\p", "|").replace("\\\\", "\\")


def wtq_tables() -> Path:
    """The folder holding csv/NNN-csv/NNN.csv, extracted from the archive on first use and rewritten as
    standard CSV: the dataset writes a quote inside a quoted cell as \\" (and a backslash as \\\\), which
    standard CSV readers (pandas, pilotfish's loader) misread as extra fields (the tables of 20 of the 500
    sampled questions)."""
    done = WTQ_OUT / "csv" / ".extracted"
    if not done.is_file():
        WTQ_OUT.mkdir(parents=True, exist_ok=True)
        with tarfile.open(WTQ / "csv_tables.tar.gz") as tar:
            members = [m for m in tar.getmembers() if m.name.endswith(".csv")]
            tar.extractall(WTQ_OUT, members=members, filter="data")
        for member in members:
            path = WTQ_OUT / member.name
            with path.open(encoding="utf-8", newline="") as fh:
                rows = list(csv.reader(fh, escapechar="\\", doublequote=False))
            with path.open("w", encoding="utf-8", newline="") as fh:
                csv.writer(fh, lineterminator="\n").writerows(rows)
        done.write_text("extracted from csv_tables.tar.gz, rewritten as standard CSV\n")
    return WTQ_OUT


def wtq_items(limit: int | None = WTQ_SAMPLE, seed: int = 0) -> list[WtqItem]:
    """The fixed sample: random.Random(seed).sample of WTQ_SAMPLE (500) training questions, in id order, its
    ids written to benchmarks/out/wtq/sample-500-seed-SEED-ids.txt; a smaller `limit` keeps the first
    questions of that sample (so a smoke run is a prefix of the full run), a larger one samples that
    many the same way, and None takes all 14,152."""
    folder = wtq_tables()
    rows = []
    with (WTQ / "training.tsv").open(encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        for line in fh:
            rows.append(dict(zip(header, line.rstrip("\n").split("\t"))))
    if limit is not None and limit < len(rows):
        size = max(limit, WTQ_SAMPLE)
        rows = sorted(random.Random(seed).sample(rows, size), key=lambda r: int(r["id"].split("-")[1]))
        (WTQ_OUT / f"sample-{size}-seed-{seed}-ids.txt").write_text("".join(r["id"] + "\n" for r in rows))
        rows = rows[:limit]
    return [WtqItem(r["id"], _tsv_unescape(r["utterance"]), r["context"], folder / r["context"],
                    tuple(_tsv_unescape(v) for v in r["targetValue"].split("|"))) for r in rows]


# -- SQL from a reply, run in the sandbox ---------------------------------------------------------------
_FENCE = re.compile(r"```[ \t]*(?:sqlite|sql)?[ \t]*\n?(.*?)(?:```|$)", re.S | re.I)


def first_statement(sql: str) -> str:
    """The text up to the first ';' outside quotes."""
    quote = ""
    for i, c in enumerate(sql):
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"`[":
            quote = "]" if c == "[" else c
        elif c == ";":
            return sql[:i]
    return sql


def extract_sql(reply: str) -> str:
    """The SQL of a model's reply, read the same way for every configuration: the first ``` fenced block if
    there is one; a leading "SQLQuery:" label dropped and anything from a "SQLResult:" or "Answer:" line on
    (LangChain's prompt format); the text from its first SELECT or WITH; the first statement; quotes around
    the whole query removed.

    >>> extract_sql('Here you go:\\n```sql\\nSELECT a FROM t; SELECT 2\\n```')
    'SELECT a FROM t'
    >>> extract_sql('SQLQuery: "SELECT count(*) FROM singer"\\nSQLResult: 6')
    'SELECT count(*) FROM singer'
    """
    text = reply.strip()
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1)
    text = re.split(r"\n\s*(?:SQLResult|Answer)\s*:", text, maxsplit=1)[0]
    text = re.sub(r"^\s*(?:SQLQuery|SQL)\s*:\s*", "", text, flags=re.I).strip()
    if text.startswith('"'):
        text = text[1:].rstrip().removesuffix('"')
    found = re.search(r"\b(SELECT|WITH)\b", text, flags=re.I)
    text = text[found.start():] if found else text
    return first_statement(text).strip().rstrip('"').strip()


def execute(db_path: Path, sql: str) -> dict[str, Any]:
    """Run `sql` in pilotfish's SQL sandbox (read-only, 10,000 rows, 10 s): {"columns", "rows", "truncated",
    "error"}, the error "refused: ..." (the sandbox's rules) or "failed: ..." (the database's error)."""
    from pilotfish.errors import SQLExecutionError, SQLRefusedError
    from pilotfish.tables.sandbox import SQLSandbox

    out: dict[str, Any] = {"columns": [], "rows": [], "truncated": False, "error": None}
    if not sql:
        out["error"] = "failed: no SQL in the reply"
        return out
    sandbox = SQLSandbox(url=f"sqlite:///{db_path}", row_limit=10_000, time_limit=10.0)
    try:
        result = sandbox.run(sql)
    except SQLRefusedError as err:
        out["error"] = f"refused: {err}"
    except SQLExecutionError as err:
        out["error"] = f"failed: {err}"
    else:
        out.update(columns=list(result.columns), rows=[tuple(r) for r in result.rows], truncated=result.truncated)
    finally:
        sandbox.close()
    return out


# -- records and the summary row ------------------------------------------------------------------------
def partial_path(script: str, config: str, llm: str) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    return OUT / f"{script}-{config}-{llm}.partial.jsonl"


def run_resumable(items: Sequence[Any], path: Path, answer: Callable[[Any], dict[str, Any]],
                  score: Callable[[Any, dict[str, Any]], dict[str, Any]],
                  warm: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """One record per item, in item order: those already in `path` (by id) are kept, the others are
    answered (timed: `seconds` is the answer call, the model already loaded by `warm`), scored and
    appended to `path` as they come, so a killed run resumes where it stopped. A failed LLM call is that
    question's failure ("failed: ..."); any other exception stops the run."""
    done: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                done[record["id"]] = record
    from pilotfish.errors import PilotfishError

    todo = [item for item in items if item.id not in done]
    if todo and warm is not None:
        warm()
    with path.open("a", encoding="utf-8") as fh:
        for n, item in enumerate(todo, 1):
            start = time.perf_counter()
            try:
                out = answer(item)
            except (PilotfishError, ValueError) as err:  # an LLM call failed (llama.cpp: prompt over n_ctx)
                out = {"error": f"failed: {type(err).__name__}: {err}"}
            seconds = time.perf_counter() - start
            record = {"id": item.id, **score(item, out), "seconds": round(seconds, 3)}
            fh.write(json.dumps(record, default=str) + "\n")
            fh.flush()
            done[item.id] = record
            if n % 25 == 0:
                print(f"  {path.name}: {n}/{len(todo)} new", flush=True)
    return [done[item.id] for item in items]


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion k/n.

    >>> [round(x, 3) for x in wilson(5, 10)]
    [0.237, 0.763]
    """
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def summary_row(config: str, llm: str, records: Sequence[dict[str, Any]]) -> list[str]:
    """config, model, n, accuracy [95% Wilson CI], refused / failed shares, p50 seconds, linking recall."""
    n = len(records)
    k = sum(bool(r.get("correct")) for r in records)
    low, high = wilson(k, n)
    errors = [str(r.get("error") or "") for r in records]
    refused = sum(e.startswith("refused") for e in errors) / n if n else 0.0
    failed = sum(e.startswith("failed") for e in errors) / n if n else 0.0
    p50 = statistics.median(r["seconds"] for r in records) if records else 0.0
    recalls = [r["linking_recall"] for r in records if r.get("linking_recall") is not None]
    recall = f"{statistics.mean(recalls):.3f}" if recalls else "–"
    accuracy = f"{k / n:.3f} [{low:.3f}, {high:.3f}]" if n else "–"
    return [config, llm, str(n), accuracy, f"{refused:.3f} / {failed:.3f}", f"{p50:.2f}", recall]


def chosen_configs(text: str, known: Sequence[str]) -> list[str]:
    """The --configs list, each checked against `known`."""
    configs = text.split(",")
    unknown = [c for c in configs if c not in known]
    if unknown:
        raise SystemExit(f"unknown configs {unknown}; choose from {', '.join(known)}")
    return configs


def run_configs(script: str, items: Sequence[Any], configs: Sequence[str], llm: str,
                answerer: Callable[[str], tuple[Callable[[Any], dict[str, Any]], Callable[[], None] | None]],
                score: Callable[[Any, dict[str, Any]], dict[str, Any]], header: Sequence[str]) -> str:
    """Each config run (resumably) over `items`, its summary row printed as it finishes; the whole table."""
    rows = []
    for config in configs:
        answer, warm = answerer(config)
        records = run_resumable(items, partial_path(script, config, llm), answer, score, warm)
        rows.append(summary_row(config, llm, records))
        print(markdown_table(header, rows[-1:]), flush=True)
    table = markdown_table(header, rows)
    print(f"\n{table}")
    return table
