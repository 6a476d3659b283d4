"""The one JSONL reader: streams (line number, value) pairs, plain or gzipped, with errors that name the line.

A bad line either stops the read with an error (the default) or, given `on_bad_line`, is reported and
skipped, as bulk loaders do, so one broken line does not lose the rest of the file.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "q.jsonl"
>>> _ = path.write_text('{"id": 1}\\n\\n{"id": 2\\n{"id": 3}\\n')
>>> bad = []
>>> [n for n, _ in read_jsonl(path, on_bad_line=lambda n, why: bad.append((n, why)))]
[1, 4]
>>> bad
[(3, "not valid JSON (Expecting ',' delimiter at column 9)")]
>>> list(read_jsonl(path))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
pilotfish.errors.QueryError: ... line 3: not valid JSON (Expecting ',' delimiter at column 9)
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from pilotfish.errors import PilotfishError, QueryError

__all__ = ["read_jsonl"]


def read_jsonl(path: str | Path, *, error: type[PilotfishError] = QueryError,
               on_bad_line: Callable[[int, str], None] | None = None) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) of each non-blank line of `path` (`.gz` is read decompressed).

    A missing file raises `error`; so does a line that is not JSON, unless `on_bad_line(number, reason)`
    is given: then the line is reported there and skipped."""
    path = Path(path)
    if not path.is_file():
        raise error(f"file {path} does not exist")
    with _open(path) as fh:
        try:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line.rstrip("\r\n"))
                except json.JSONDecodeError as e:
                    reason = f"not valid JSON ({e.msg} at column {e.colno})"
                    if on_bad_line is None:
                        raise error(f"{path} line {n}: {reason}") from e
                    on_bad_line(n, reason)
                    continue
                yield n, value
        except (UnicodeDecodeError, OSError, EOFError) as e:  # not text, or a truncated/corrupt .gz
            raise error(f"{path} cannot be read as UTF-8 JSON lines: {e}") from e


def _open(path: Path) -> IO[str]:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")
