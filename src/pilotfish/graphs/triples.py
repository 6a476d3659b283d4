"""Reading triples files: `subject|relation|object` lines (MetaQA's layout), TSV or CSV with three columns, and
RDF (N-Triples, Turtle, RDF/XML, JSON-LD) through rdflib. Plain or gzipped.

A line with the wrong number of fields is reported with its line number and skipped; the rest is read. A
relation in `ALIAS_RELATIONS` (`alias`, `rdfs:label`, `skos:altLabel`, ...) gives its subject another name
instead of an edge. A file in which no line reads as a triple is an error, not an empty graph.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "movies.txt"
>>> _ = path.write_text("Forrest Gump|directed_by|Robert Zemeckis\\nBig|directed_by\\nBig|alias|Big (1988)\\n")
>>> found = read_triples(path)
>>> found.triples, found.aliases, found.bad
([(1, 'Forrest Gump', 'directed_by', 'Robert Zemeckis')], [(3, 'Big', 'Big (1988)')], [(2, 'expected 3 fields \
separated by "|", found 2: \\'Big|directed_by\\'')])
"""

from __future__ import annotations

import csv
import gzip
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from pilotfish.errors import GraphError

__all__ = ["ALIAS_RELATIONS", "RDF_SUFFIXES", "TRIPLE_SUFFIXES", "TriplesFile", "read_triples"]

RDF_SUFFIXES = {".nt": "nt", ".ttl": "turtle", ".n3": "n3", ".rdf": "xml", ".owl": "xml", ".jsonld": "json-ld"}
TRIPLE_SUFFIXES = (".txt", ".tsv", ".csv", *RDF_SUFFIXES)
ALIAS_RELATIONS = frozenset({"alias", "also_known_as", "aka", "label", "alt_label", "rdfs:label", "skos:altlabel",
                             "skos:preflabel", "altlabel", "preflabel"})
# RDF predicates whose literal names the subject (local names, lower case), in order of preference; an
# altLabel is only ever an alias
_LABELS = {"preflabel": 0, "label": 1, "name": 2, "altlabel": 3}
_HEADERS = ({"subject", "relation", "object"}, {"subject", "predicate", "object"}, {"head", "relation", "tail"},
            {"s", "p", "o"}, {"source", "relation", "target"}, {"from", "relation", "to"})


@dataclass
class TriplesFile:
    """What one file holds: (line, subject, relation, object) edges, (line, entity, alias) names, and
    (line, reason) for every line that was skipped."""

    triples: list[tuple[int, str, str, str]] = field(default_factory=list)
    aliases: list[tuple[int, str, str]] = field(default_factory=list)
    bad: list[tuple[int, str]] = field(default_factory=list)

    def add(self, line: int, subject: str, relation: str, obj: str) -> None:
        if relation.lower() in ALIAS_RELATIONS:
            self.aliases.append((line, subject, obj))
        else:
            self.triples.append((line, subject, relation, obj))


def suffix_of(path: Path) -> str:
    """The suffix that says the format, under a `.gz`."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def read_triples(path: str | Path) -> TriplesFile:
    """The triples of `path`; `GraphError` when the file cannot be read or holds no triple at all."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if path.suffix.lower() == ".gz":
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8-sig")
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise GraphError(f"{path}: cannot read it ({err})") from err
    except UnicodeDecodeError as err:
        raise GraphError(f"{path}: not UTF-8 text (byte {err.start}); save it as UTF-8") from err
    kind = suffix_of(path)
    found = _read_rdf(text, RDF_SUFFIXES[kind], path) if kind in RDF_SUFFIXES else _read_delimited(text, kind)
    if not found.triples and not found.aliases:
        first = f"; line {found.bad[0][0]}: {found.bad[0][1]}" if found.bad else ""
        raise GraphError(f"{path}: no triples found{first}. Give lines subject|relation|object (or TSV/CSV with "
                         "three columns, or N-Triples/Turtle)")
    return found


def _read_delimited(text: str, kind: str) -> TriplesFile:
    found = TriplesFile()
    lines = text.split("\n")
    delimiter = "\t" if kind == ".tsv" else "," if kind == ".csv" else _guess_delimiter(lines)
    shown = {"\t": "tabs", ",": "commas"}.get(delimiter, f'"{delimiter}"')
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        # CSV fields may be quoted to hold commas (still one record per line)
        fields = next(csv.reader([line])) if delimiter == "," else line.rstrip("\r").split(delimiter)
        fields = [f.strip() for f in fields]
        if number == _first_line(lines) and {f.lower() for f in fields} in _HEADERS:
            continue
        if len(fields) != 3:
            found.bad.append((number, f"expected 3 fields separated by {shown}, found {len(fields)}: "
                                      f"{line.strip()[:80]!r}"))
        elif not all(fields):
            found.bad.append((number, f"an empty field: {line.strip()[:80]!r}"))
        else:
            found.add(number, *fields)
    return found


def _first_line(lines: list[str]) -> int:
    return next((n for n, line in enumerate(lines, 1) if line.strip()), 0)


def _guess_delimiter(lines: list[str]) -> str:
    """"|" (MetaQA's layout) unless the first lines have tabs and no "|"."""
    head = [line for line in lines[:50] if line.strip() and not line.lstrip().startswith("#")]
    if head and all("|" not in line for line in head) and any("\t" in line for line in head):
        return "\t"
    return "|"


def _read_rdf(text: str, fmt: str, path: Path) -> TriplesFile:
    """RDF through rdflib. N-Triples is read line by line (a bad line is skipped with its number, and triples keep
    the file's order); other syntaxes are not line-based, parse as a whole, and are taken in sorted order. An
    entity's name is its `skos:prefLabel`, else `rdfs:label`, else `name` (the smallest, when there are several),
    else its IRI's local name; every other label is an alias."""
    import rdflib

    found = TriplesFile()
    statements: list[tuple[int, Any, Any, Any]] = []
    if fmt == "nt":
        from rdflib.plugins.parsers.ntriples import W3CNTriplesParser

        sink = _Sink()
        parser = W3CNTriplesParser(sink)
        for number, line in enumerate(text.split("\n"), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                parser.parsestring(line)
            except Exception as err:  # rdflib's ParseError, or a bad escape
                found.bad.append((number, f"not an N-Triples statement ({_short(err)})"))
                continue
            statements += [(number, *t) for t in sink.take()]
    else:
        graph = rdflib.Graph()
        try:
            graph.parse(data=text, format=fmt)
        except Exception as err:  # rdflib raises its parsers' own error types
            raise GraphError(f"{path}: not valid {fmt} ({_short(err)})") from err
        statements = [(0, *t) for t in sorted(graph, key=lambda t: tuple(str(x) for x in t))]
    labels: dict[Any, list[tuple[int, str]]] = {}
    for _, s, p, o in statements:
        kind = _local(p).lower()
        if kind in _LABELS and isinstance(o, rdflib.Literal):
            labels.setdefault(s, []).append((_LABELS[kind], str(o)))
    names = {s: min(found_labels)[1] for s, found_labels in labels.items()
             if min(found_labels)[0] < _LABELS["altlabel"]}
    for number, s, p, o in statements:
        relation = _local(p)
        subject = names.get(s) or _local(s)
        if relation.lower() in _LABELS and isinstance(o, rdflib.Literal):
            if str(o) != subject:
                found.aliases.append((number, subject, str(o)))
            continue
        obj = str(o) if isinstance(o, rdflib.Literal) else names.get(o) or _local(o)
        if subject and relation and obj:
            found.add(number, subject, relation, obj)
    return found


class _Sink:
    """Collects what rdflib's N-Triples parser reads from one line."""

    def __init__(self) -> None:
        self.triples: list[tuple[Any, Any, Any]] = []

    def triple(self, s: Any, p: Any, o: Any) -> None:
        self.triples.append((s, p, o))

    def take(self) -> list[tuple[Any, Any, Any]]:
        out, self.triples = self.triples, []
        return out


def _local(term: object) -> str:
    """An IRI's local name, readable: `http://x.org/Forrest_Gump` -> `Forrest Gump`."""
    value = str(term)
    tail = re.split(r"[#/:]", value.rstrip("/#"))[-1] or value
    return unquote(tail).replace("_", " ") if tail != value or "://" not in value else value


def _short(err: Exception) -> str:
    return " ".join(str(err).split())[:200]
