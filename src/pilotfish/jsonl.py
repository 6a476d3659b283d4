"""The one JSONL reader: streams (line number, value) pairs, plain or gzipped, with errors that name the line.

A bad line (not UTF-8, or not JSON) either stops the read with an error (the default) or, given
`on_bad_line`, is reported and skipped, as bulk loaders do, so one broken line does not lose the rest of
the file. A module whose messages name lines its own way can raise from `on_bad_line` instead.

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

    Lines end at "\\n" only (so a U+2028 inside a JSON string does not split a record), and a UTF-8
    byte-order mark at the start of the file is ignored. A missing or unreadable file (a truncated or
    corrupt `.gz`) raises `error`; so does a line that is not UTF-8 or not JSON, unless
    `on_bad_line(number, reason)` is given: then the line is reported there and skipped."""
    path = Path(path)
    if path.is_dir():
        raise error(f"{path} is a folder, not a JSONL file")
    if not path.is_file():
        raise error(f"file {path} does not exist")
    for n, raw in _raw_lines(path, error):
        try:
            line = raw.decode("utf-8-sig" if n == 1 else "utf-8").rstrip("\r\n")  # columns count on one line
            if not line.strip():
                continue
            value = json.loads(line)
        except UnicodeDecodeError as e:
            reason, cause = f"not UTF-8 text ({e.reason} at byte {e.start + 1})", e
        except json.JSONDecodeError as e:
            at = "" if e.msg.endswith(" at") else " at"  # "Unterminated string starting at" has its own
            reason, cause = f"not valid JSON ({e.msg}{at} column {e.colno})", e
        else:
            yield n, value
            continue
        if on_bad_line is None:
            raise error(f"{path} line {n}: {reason}") from cause
        on_bad_line(n, reason)


def _raw_lines(path: Path, error: type[PilotfishError]) -> Iterator[tuple[int, bytes]]:
    """Numbered lines as bytes; a file that cannot be opened or read (a truncated or corrupt .gz) raises `error`."""
    try:
        with _open(path) as fh:
            yield from enumerate(fh, 1)
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
        detail = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise error(f"{path}: cannot read file: {detail}") from e


def _open(path: Path) -> IO[bytes]:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")
