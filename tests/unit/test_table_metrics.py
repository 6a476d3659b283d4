"""Table scores on cases a naive comparison gets wrong: WikiTableQuestions denotations (the official
evaluator's rules) and Spider execution results (the test-suite's result_eq)."""

from __future__ import annotations

import pytest

from pilotfish.evaluation.tables import (
    gold_is_ordered,
    spider_execution_match,
    values_of,
    wtq_canonical,
    wtq_denotation_match,
)


# -- WikiTableQuestions ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("predicted", "gold"), [
    (["1000"], ["1,000"]),                           # thousands separator in the gold answer
    (["1,000"], ["1,000"]),                          # ... or in both
    (["12467.0"], ["12,467"]),
    (["2012.0"], ["2012"]),                          # a float result of SQL
    (["2012"], ["2012.0"]),
    (["3.50"], ["3.5"]),
    (["2004-05-05"], ["May 5, 2004"]),               # a date as SQL or the model writes it
    (["2004-05-05"], ["5 May 2004"]),
    (["1999-03-xx"], ["March 1999"]),
    (["2004"], ["2004-xx-xx"]),                      # a bare year is the number
    (["rome", "PARIS"], ["Paris", "Rome"]),          # several gold values, another order, another case
    (["Paris", "Paris", "Rome"], ["Paris", "Rome"]),  # duplicates count once
    (["Wolfe Tones."], ["Wolfe Tones"]),              # a final full stop
    (['"Wolfe Tones"'], ["Wolfe Tones"]),             # outer quotes
    (["Wolfe  Tones"], ["wolfe tones"]),              # spaces collapse
    (["Bangkok, Thailand"], ["Bangkok, Thailand"]),
    (["Jose"], ["José"]),                             # diacritics
    (["Smith (footballer)"], ["Smith"]),              # a parenthesised detail at the end
    (["Smith[1]"], ["Smith"]),                        # a citation mark
    (["1998-2000"], ["1998–2000"]),                   # dashes
])
def test_wtq_matches(predicted: list[str], gold: list[str]) -> None:
    assert wtq_denotation_match(predicted, gold)


@pytest.mark.parametrize(("predicted", "gold"), [
    (["Paris"], ["Paris", "Rome"]),                   # one of two answers
    (["Paris", "Rome", "Oslo"], ["Paris", "Rome"]),   # one too many
    (["Paris", "Oslo"], ["Paris", "Rome"]),
    (["1001"], ["1,000"]),
    (["2012.5"], ["2012"]),
    (["2004-05-06"], ["May 5, 2004"]),
    (["Bangkok"], ["Bangkok, Thailand"]),             # commas are not stripped like punctuation
    (["1_000"], ["1000"]),                            # Python 2 did not read underscores in numbers
    ([], ["0"]),
    (["12 km"], ["12"]),                              # units are kept: a string, not the number
])
def test_wtq_mismatches(predicted: list[str], gold: list[str]) -> None:
    assert not wtq_denotation_match(predicted, gold)


def test_wtq_gold_number_is_matched_by_its_own_text_too() -> None:
    # The official NumberValue matches a predicted string whose normalised text equals the gold's
    assert wtq_denotation_match(["12,467 "], ["12,467"])
    assert wtq_canonical("Bangkok, Thailand") is None and wtq_canonical("-1,250.5") == "-1250.5"


def test_values_of_reads_the_first_column_and_writes_numbers_plainly() -> None:
    assert values_of(["n"], [(2012.0,), (3,), (2.5,), (None,)]) == ["2012", "3", "2.5"]
    assert values_of(["name", "points"], [("Ann", 12), ("Bob", 9)]) == ["Ann", "Bob"]
    assert values_of(["city"], []) == []
    assert wtq_denotation_match(values_of(["avg"], [(1000.0,)]), ["1,000"])


# -- Spider ---------------------------------------------------------------------------------------------
def test_columns_in_another_order_match() -> None:
    gold = [("Ann", 30, "UK"), ("Bob", 25, "US")]
    predicted = [(30, "UK", "Ann"), (25, "US", "Bob")]
    assert spider_execution_match(predicted, gold, ordered=False)
    assert spider_execution_match(predicted, gold, ordered=True)


def test_a_column_order_must_hold_for_every_row() -> None:
    # each row can be matched by swapping its own cells, but no one column order fits both rows
    gold = [(1, 2), (3, 4)]
    predicted = [(2, 1), (3, 4)]
    assert not spider_execution_match(predicted, gold, ordered=False)


def test_duplicate_rows_count() -> None:
    assert not spider_execution_match([(1,), (1,), (2,)], [(1,), (2,), (2,)], ordered=False)
    assert not spider_execution_match([(1,), (2,)], [(1,), (1,), (2,)], ordered=False)
    assert spider_execution_match([(2,), (1,), (1,)], [(1,), (2,), (1,)], ordered=False)


def test_row_order_matters_only_when_ordered() -> None:
    gold, predicted = [("a",), ("b",)], [("b",), ("a",)]
    assert spider_execution_match(predicted, gold, ordered=False)
    assert not spider_execution_match(predicted, gold, ordered=True)


def test_numbers_and_shapes() -> None:
    assert spider_execution_match([(2.0,)], [(2,)], ordered=False)
    assert spider_execution_match([(1 / 3,)], [(0.33333333333333337,)], ordered=False)
    assert not spider_execution_match([(0.34,)], [(1 / 3,)], ordered=False)
    assert not spider_execution_match([(1, 2)], [(1,)], ordered=False)           # an extra column
    assert not spider_execution_match([("2",)], [(2,)], ordered=False)          # text is not a number
    assert spider_execution_match([], [], ordered=True)
    assert not spider_execution_match([(0,)], [], ordered=False)
    assert spider_execution_match([[1, "x"]], [(1, "x")], ordered=False)       # lists or tuples alike


def test_identical_columns_do_not_blow_up() -> None:
    gold = [tuple([1] * 12) for _ in range(50)]
    assert spider_execution_match(list(gold), gold, ordered=False)
    wide = [tuple(range(i, i + 10)) for i in range(40)]
    assert spider_execution_match([tuple(reversed(r)) for r in wide], wide, ordered=True)
    assert not spider_execution_match([tuple(reversed(r)) for r in wide][::-1], wide, ordered=True)


@pytest.mark.parametrize(("sql", "ordered"), [
    ("SELECT name FROM singer ORDER BY age DESC", True),
    ("select name from singer order  by age", True),
    ("SELECT name FROM singer", False),
    ("SELECT name FROM singer WHERE note = 'order by'", False),
    ("SELECT name FROM singer WHERE age = (SELECT max(age) FROM singer ORDER BY age LIMIT 1)", False),
    ("SELECT a FROM t UNION SELECT b FROM s ORDER BY 1", True),
    ("SELECT \"order by\" FROM t", False),
    ("SELECT border, bytes FROM t", False),
])
def test_gold_is_ordered(sql: str, ordered: bool) -> None:
    assert gold_is_ordered(sql) is ordered
