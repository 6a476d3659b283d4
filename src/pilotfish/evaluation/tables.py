"""Scores for answers over tables: WikiTableQuestions denotation accuracy and Spider execution accuracy.

>>> from pilotfish.evaluation.tables import spider_execution_match, values_of, wtq_denotation_match
>>> wtq_denotation_match(["1000"], ["1,000"]), wtq_denotation_match(["Paris", "Rome"], ["rome", "Paris."])
(True, True)
>>> values_of(["year", "n"], [(2012.0, 3), (2004, 1)])
['2012', '2004']
>>> spider_execution_match([(3, "b"), (1, "a")], [("a", 1), ("b", 3)], ordered=False)
True
>>> spider_execution_match([(3, "b"), (1, "a")], [("a", 1), ("b", 3)], ordered=True)
False
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from typing import Any

__all__ = ["wtq_denotation_match", "wtq_canonical", "values_of", "spider_execution_match", "gold_is_ordered"]


# -- WikiTableQuestions ---------------------------------------------------------------------------------
# A port of the official evaluator, evaluator.py of ppasupat/WikiTableQuestions by Panupong Pasupat
# (github.com/ppasupat/WikiTableQuestions): normalize, StringValue / NumberValue / DateValue, to_value,
# to_value_list and check_denotation keep its rules. Python 2's int()/float() refused "1_000", so the port
# refuses underscores too.

def normalize(x: str) -> str:
    """The official string normalisation: diacritics dropped, quotes and dashes unified, trailing
    citations, parenthesised details and outer quotes removed, a final '.' dropped, lower case."""
    x = "".join(c for c in unicodedata.normalize("NFKD", x) if unicodedata.category(c) != "Mn")
    x = re.sub(r"[‘’´`]", "'", x)
    x = re.sub(r"[“”]", '"', x)
    x = re.sub(r"[‐‑‒–—−]", "-", x)
    while True:
        old_x = x
        x = re.sub(r"((?<!^)\[[^\]]*\]|\[\d+\]|[•♦†‡*#+])*$", "", x.strip())  # citations
        x = re.sub(r"(?<!^)( \([^)]*\))*$", "", x.strip())  # details in parentheses
        x = re.sub(r'^"([^"]*)"$', r"\1", x.strip())  # outermost quotation marks
        if x == old_x:
            break
    if x and x[-1] == ".":
        x = x[:-1]
    return re.sub(r"\s+", " ", x, flags=re.U).lower().strip()


class _Value:
    normalized: str

    def match(self, other: _Value) -> bool:
        return self.normalized == other.normalized


class _StringValue(_Value):
    def __init__(self, content: str) -> None:
        self.normalized = normalize(content)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _StringValue) and self.normalized == other.normalized

    def __hash__(self) -> int:
        return hash(self.normalized)


class _NumberValue(_Value):
    def __init__(self, amount: float, original: str | None = None) -> None:
        self.amount: float = int(amount) if abs(amount - round(amount)) < 1e-6 else float(amount)
        self.normalized = normalize(original) if original else str(self.amount)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _NumberValue) and self.amount == other.amount

    def __hash__(self) -> int:
        return hash(self.amount)

    def match(self, other: _Value) -> bool:
        if self.normalized == other.normalized:
            return True
        return isinstance(other, _NumberValue) and abs(self.amount - other.amount) < 1e-6

    @staticmethod
    def parse(text: str) -> float | None:
        if "_" in text:
            return None
        try:
            return int(text)
        except ValueError:
            try:
                amount = float(text)
            except ValueError:
                return None
            return None if math.isnan(amount) or math.isinf(amount) else amount


class _DateValue(_Value):
    def __init__(self, year: int, month: int, day: int, original: str | None = None) -> None:
        self.ymd = (year, month, day)
        self.normalized = (normalize(original) if original else
                           "-".join("xx" if v == -1 else str(v) for v in self.ymd))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _DateValue) and self.ymd == other.ymd

    def __hash__(self) -> int:
        return hash(self.ymd)

    def match(self, other: _Value) -> bool:
        if self.normalized == other.normalized:
            return True
        return isinstance(other, _DateValue) and self.ymd == other.ymd

    @staticmethod
    def parse(text: str) -> tuple[int, int, int] | None:
        parts = text.lower().split("-")
        if len(parts) != 3 or "_" in text:
            return None
        try:
            year = -1 if parts[0] in ("xx", "xxxx") else int(parts[0])
            month = -1 if parts[1] == "xx" else int(parts[1])
            day = -1 if parts[2] == "xx" else int(parts[2])
        except ValueError:
            return None
        if year == month == day == -1 or not (month == -1 or 1 <= month <= 12) or not (day == -1 or 1 <= day <= 31):
            return None
        return year, month, day


def _to_value(original: str, canonical: str | None = None) -> _Value:
    """A number when the (canonical) string parses as one, then a date yyyy-mm-dd (xx for unknown parts;
    a bare year is a number), else a string."""
    canonical = canonical or original
    amount = _NumberValue.parse(canonical)
    if amount is not None:
        return _NumberValue(amount, original)
    ymd = _DateValue.parse(canonical)
    if ymd is not None:
        if ymd[1] == ymd[2] == -1:
            return _NumberValue(ymd[0], original)
        return _DateValue(*ymd, original)
    return _StringValue(original)


def _to_value_list(originals: Sequence[str], canonicals: Sequence[str | None] | None = None) -> list[_Value]:
    canon = list(canonicals) if canonicals is not None else [None] * len(originals)
    return list({_to_value(x, y) for x, y in zip(originals, canon)})


def _check_denotation(target_values: list[_Value], predicted_values: list[_Value]) -> bool:
    if len(target_values) != len(predicted_values):
        return False
    return all(any(target.match(pred) for pred in predicted_values) for target in target_values)


_MONTHS = {m: i + 1 for i, m in enumerate(["january", "february", "march", "april", "may", "june", "july",
                                            "august", "september", "october", "november", "december"])}
_MONTHS.update({m[:3]: i for m, i in list(_MONTHS.items())}, sept=9)
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"


def wtq_canonical(gold: str) -> str | None:
    """A stand-in for the CoreNLP value the official evaluator reads for each gold answer (`targetCanon`
    of the tagged data, which the plain training.tsv lacks): numbers with thousands separators
    ("12,467" -> "12467") and dates in words ("May 5, 2004", "5 May 2004" -> "2004-05-05";
    "May 2004" -> "2004-05-xx"); None when the string is kept as it is.

    >>> wtq_canonical("12,467"), wtq_canonical("May 5, 2004"), wtq_canonical("March 1999"), wtq_canonical("Bangkok")
    ('12467', '2004-05-05', '1999-03-xx', None)
    """
    text = gold.strip()
    if re.fullmatch(r"[-+]?\d{1,3}(,\d{3})+(\.\d+)?", text):
        return text.replace(",", "")
    low = text.lower()
    patterns = (rf"{_MONTH} (?P<day>\d{{1,2}}),? (?P<year>\d{{4}})",
                rf"(?P<day>\d{{1,2}}) {_MONTH},? (?P<year>\d{{4}})", rf"{_MONTH},? (?P<year>\d{{4}})")
    for pattern in patterns:
        found = re.fullmatch(pattern, low)
        if found:
            parts = found.groupdict()
            day = int(parts["day"]) if parts.get("day") else -1
            if day == -1 or 1 <= day <= 31:
                return f"{parts['year']}-{_MONTHS[parts['month']]:02d}-{'xx' if day == -1 else f'{day:02d}'}"
    return None


def wtq_denotation_match(predicted: Sequence[str], gold: Sequence[str]) -> bool:
    """WikiTableQuestions denotation accuracy of one answer, by the official evaluator's rules: after
    removing duplicates both lists hold the same number of values and every gold value matches a predicted
    one (a number matches within 1e-6, "2012" and "2012.0" alike; a date matches on year, month and day;
    anything else on the normalised string). Gold values are read with `wtq_canonical`, as the official
    evaluator reads them with their CoreNLP value; predicted values are read as they are.

    >>> wtq_denotation_match(["2004-05-05"], ["May 5, 2004"]), wtq_denotation_match(["Wolfe Tones"], ["Crettyard"])
    (True, False)
    """
    targets = _to_value_list(list(gold), [wtq_canonical(g) for g in gold])
    return _check_denotation(targets, _to_value_list(list(predicted)))


def _cell_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        if math.isfinite(value) and value == round(value) and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def values_of(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A SQL result as WikiTableQuestions predicted values: the first column's cell of every row, in
    order (NULLs skipped; integral floats written without ".0").

    Only the first column counts, whatever the number of columns: the SQL prompt asks for the answer column
    first, and a query that adds a supporting column ("SELECT name, MAX(points)") should not be read as two
    answers. Taking every cell instead would credit queries that dump whole rows, and would fail the
    right answer when a support column is added; taking the first column is the usual reading of SQL
    baselines on this dataset. `columns` only fixes the width (an empty result has no first cell).

    >>> values_of(["city"], [("Bangkok",), ("Rome",), (None,)]), values_of(["x"], [(1.5,)]), values_of([], [])
    (['Bangkok', 'Rome'], ['1.5'], [])
    """
    if not columns and not rows:
        return []
    return [_cell_text(row[0]) for row in rows if len(row) and row[0] is not None]


# -- Spider ---------------------------------------------------------------------------------------------
def gold_is_ordered(sql: str) -> bool:
    """Whether a query's outermost level has ORDER BY (string literals and subqueries ignored), so its
    row order is part of the answer. The test-suite evaluation checks `'order by' in sql.lower()`, which
    also counts an ORDER BY inside a subquery (`WHERE id = (SELECT ... ORDER BY x LIMIT 1)`).

    >>> gold_is_ordered("SELECT a FROM t ORDER BY a"), gold_is_ordered("SELECT a FROM t WHERE b = 'order by'")
    (True, False)
    >>> gold_is_ordered("SELECT a FROM t WHERE id = (SELECT id FROM s ORDER BY x LIMIT 1)")
    False
    """
    depth, outer, i = 0, [], 0
    while i < len(sql):
        c = sql[i]
        if c in "'\"`":
            end = sql.find(c, i + 1)
            while end != -1 and end + 1 < len(sql) and sql[end + 1] == c:  # doubled quote inside a literal
                end = sql.find(c, end + 2)
            outer.append(" ")
            i = len(sql) if end == -1 else end + 1
            continue
        depth += (c == "(") - (c == ")")
        outer.append(c if depth == 0 and c != ")" else " ")
        i += 1
    return re.search(r"\border\s+by\b", "".join(outer), flags=re.I) is not None


def _cell(value: Any) -> Any:
    """A cell as compared: an integral float is the integer, other floats are rounded to 9 significant
    digits (AVG(x) and SUM(x) / COUNT(x) differ in the last bits), bytes are decoded."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return value
        if value == round(value) and abs(value) < 2**53:
            return int(value)
        return float(f"{value:.9g}")
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="ignore")
    return value


def spider_execution_match(predicted: Sequence[Sequence[Any]], gold: Sequence[Sequence[Any]], *,
                           ordered: bool) -> bool:
    """Execution accuracy of one query as in the Spider test-suite evaluation (`result_eq`): the same
    number of rows and columns, and some order of the predicted columns (the same for every row) under
    which the rows are equal: as lists when `ordered` (the gold query ends in ORDER BY), else as
    multisets, duplicates counted. Two empty results are equal. Cells compare after `_cell` (2.0 == 2,
    floats rounded to 9 significant digits).

    Column orders are searched column by column, each kept only while the rows restricted to the columns
    placed so far still agree (as lists or multisets), so wide results do not cost n! tries.

    >>> spider_execution_match([(1,), (1,), (2,)], [(1,), (2,), (2,)], ordered=False)
    False
    """
    pred = [tuple(_cell(v) for v in row) for row in predicted]
    want = [tuple(_cell(v) for v in row) for row in gold]
    if not pred and not want:
        return True
    if len(pred) != len(want):
        return False
    width = len(want[0])
    if any(len(row) != width for row in pred) or any(len(row) != width for row in want):
        return False
    pred_cols = [[row[i] for row in pred] for i in range(width)]
    want_cols = [[row[i] for row in want] for i in range(width)]

    def agree(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> bool:
        return a == b if ordered else Counter(a) == Counter(b)

    # candidates[j]: predicted columns that could stand in gold column j (same cells, as lists or multisets)
    candidates = [[i for i in range(width) if agree([(v,) for v in pred_cols[i]], [(v,) for v in want_cols[j]])]
                  for j in range(width)]

    def search(chosen: list[int]) -> bool:
        j = len(chosen)
        if j == width:
            return True
        tried: list[list[Any]] = []
        for i in candidates[j]:
            if i in chosen or pred_cols[i] in tried:  # an identical column placed here gives the same rows
                continue
            tried.append(pred_cols[i])
            order = [*chosen, i]
            if agree([tuple(row[k] for k in order) for row in pred], [row[: j + 1] for row in want]) and search(order):
                return True
        return False

    return search([])
