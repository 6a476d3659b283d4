"""read_jsonl: the one JSONL reader every module uses (plain or gzipped, line-numbered errors)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from pilotfish.errors import ConfigError, IngestError, QueryError
from pilotfish.jsonl import read_jsonl


def test_plain_and_gzipped_files_give_numbered_values(tmp_path: Path) -> None:
    records = [{"id": 1, "text": "a"}, {"id": 2, "text": "b"}]
    plain = tmp_path / "r.jsonl"
    plain.write_text(json.dumps(records[0]) + "\n\n   \n" + json.dumps(records[1]) + "\n")
    zipped = tmp_path / "r.jsonl.gz"
    with gzip.open(zipped, "wt", encoding="utf-8") as fh:
        fh.write(plain.read_text())
    assert list(read_jsonl(plain)) == list(read_jsonl(zipped)) == [(1, records[0]), (4, records[1])]


def test_bom_crlf_and_unicode_line_separators_inside_strings(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    # a byte-order mark (Windows editors write one), CRLF endings, and U+2028 / U+0085 inside a string,
    # which str.splitlines() would wrongly treat as line breaks
    path.write_bytes(b"\xef\xbb\xbf" + '{"t": "a\u2028b\u0085c"}\r\n[1, 2]\r\n'.encode())
    assert list(read_jsonl(path)) == [(1, {"t": "a\u2028b\u0085c"}), (2, [1, 2])]


def test_bad_lines_are_named_or_reported_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"ok": 1}\n{"latin": "caf\xe9"}\n{"broken": \n{"ok": 2}\n')
    with pytest.raises(QueryError, match=r"bad\.jsonl line 2: not UTF-8 text \(invalid continuation byte at byte 15\)"):
        list(read_jsonl(path))
    reported: list[tuple[int, str]] = []
    values = [v for _, v in read_jsonl(path, on_bad_line=lambda n, why: reported.append((n, why)))]
    assert values == [{"ok": 1}, {"ok": 2}]
    assert [n for n, _ in reported] == [2, 3] and reported[1][1].startswith("not valid JSON (Expecting value")


def test_the_callers_error_class_and_own_line_format(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"ok": 1}\nnope\n')
    with pytest.raises(IngestError, match=r"bad\.jsonl line 2: not valid JSON \(Expecting value at column 1\)"):
        list(read_jsonl(path, error=IngestError))

    def stop(n: int, why: str) -> None:
        raise ConfigError(f"{path}:{n}: {why}")

    with pytest.raises(ConfigError, match=r"bad\.jsonl:2: not valid JSON"):
        list(read_jsonl(path, on_bad_line=stop))


def test_json_messages_that_end_in_at_are_not_doubled(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl"
    path.write_text('{"text": "no closing quote}\n{"text": "tab\there"}\n')
    reported: list[tuple[int, str]] = []
    assert list(read_jsonl(path, on_bad_line=lambda n, why: reported.append((n, why)))) == []
    assert reported == [(1, "not valid JSON (Unterminated string starting at column 10)"),
                        (2, "not valid JSON (Invalid control character at column 14)")]
    assert not any("at at" in why for _, why in reported)


def test_missing_folder_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing.jsonl does not exist"):
        list(read_jsonl(tmp_path / "missing.jsonl", error=ConfigError))
    with pytest.raises(QueryError, match="is a folder, not a JSONL file"):
        list(read_jsonl(tmp_path))
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(b"not gzip at all")
    with pytest.raises(IngestError, match=r"broken\.jsonl\.gz: cannot read file: Not a gzipped file"):
        list(read_jsonl(broken, error=IngestError))
    truncated = tmp_path / "cut.jsonl.gz"
    truncated.write_bytes(gzip.compress(b"".join(b'{"n": %d}\n' % i for i in range(2000)))[:-40])
    seen: list[int] = []
    with pytest.raises(QueryError, match=r"cut\.jsonl\.gz: cannot read file: Compressed file ended"):
        for n, _ in read_jsonl(truncated):
            seen.append(n)
    assert seen == list(range(1, len(seen) + 1))  # what was readable came first, in order
