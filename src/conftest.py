"""pytest set-up for the doctests in src/ (collected by `--doctest-modules`; see pyproject.toml).

Some examples load a test model (minilm-l6, bge-small, ms-marco-l12, smollm2-135m; nli-small ships in
the package). `make test` pulls them first; on a checkout without them such an example is skipped
with the `pilotfish models pull` command that would let it run, instead of failing."""

from __future__ import annotations

import doctest
from collections.abc import Iterator

import pytest

from pilotfish.errors import MissingModelError


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    try:
        return (yield)
    except doctest.UnexpectedException as failure:
        if isinstance(failure.exc_info[1], MissingModelError):
            pytest.skip(f"{item.name}: {failure.exc_info[1]}")
        raise
