"""The graphs package on a small hand-written graph: triples files, the graph, linking, paths and path labels.

No model loads here: the linker runs without spaCy and MiniLM (`ner=False, context=False`) and paths are
scored from a table (`FixedPathScorer`).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from pilotfish.errors import ConfigError, GraphError
from pilotfish.graphs.graph import KnowledgeGraph, normalise
from pilotfish.graphs.linker import EntityLinker
from pilotfish.graphs.paths import FixedPathScorer, PathRetriever, enumerate_paths, mask_mention
from pilotfish.graphs.scorers import TrainedPathScorer, load_scorer, verbalise
from pilotfish.graphs.triples import read_triples
from pilotfish.training.paths import label_questions

# line numbers are the triple ids: Heat|directed_by|Michael Mann is triple 1
KB = """\
Heat|directed_by|Michael Mann
Heat|starred_actors|Al Pacino
Heat|release_year|1995
Heat|has_genre|Drama
Collateral|directed_by|Michael Mann
Body Heat|directed_by|Lawrence Kasdan
Body Heat|has_tags|heat
Chinatown|has_tags|heat
Michael Mann|alias|Mann
Michael E. Mann|studies|Climate
Rock|beats|Scissors
Scissors|beats|Paper
Paper|beats|Rock
Socrates|influenced|Plato
Plato|influenced|Aristotle
Marx|influenced|Engels
Engels|influenced|Marx
"""
HUB_SIZE = 10_000  # "Film 0" .. "Film 9999", all has_genre Drama (so is Heat): Drama has 10,001 edges


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeGraph:
    path = tmp_path_factory.mktemp("kb") / "movies.txt"
    path.write_text(KB)
    found = read_triples(path)
    assert not found.bad
    hub = [(1000 + i, f"Film {i}", "has_genre", "Drama") for i in range(HUB_SIZE)]
    aliases = [(entity, alias) for _, entity, alias in found.aliases] + [("Michael E. Mann", "Mann")]
    return KnowledgeGraph.from_triples([*found.triples, *hub], aliases=aliases)


@pytest.fixture()
def linker() -> EntityLinker:
    return EntityLinker(ner=False, context=False)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _retrieve(graph: KnowledgeGraph, question: str, scores: dict[tuple[str, ...], float],
              **options: int) -> tuple[list[tuple[str, ...]], list[str], list[int]]:
    """(every path's steps, the answers, the best path's triple ids) of a retrieval scored from a table."""
    found = PathRetriever(scorer=FixedPathScorer(scores), **options).retrieve(
        question, graph, EntityLinker(ner=False, context=False))
    best = [t["id"] for t in found.paths[0].triples] if found.paths else []
    return [p.steps for p in found.paths], found.answers, best


# -- read_triples ------------------------------------------------------------------------------------------
def test_pipe_tsv_and_guessed_tabs(tmp_path: Path) -> None:
    pipe = read_triples(_write(tmp_path / "kb.txt", KB))
    assert pipe.triples[0] == (1, "Heat", "directed_by", "Michael Mann")
    assert pipe.aliases == [(9, "Michael Mann", "Mann")]
    assert len(pipe.triples) == KB.count("\n") - 1
    tsv = read_triples(_write(tmp_path / "kb.tsv", "Heat\tdirected_by\tMichael Mann\r\nHeat\trelease_year\t1995\n"))
    assert tsv.triples == [(1, "Heat", "directed_by", "Michael Mann"), (2, "Heat", "release_year", "1995")]
    guessed = read_triples(_write(tmp_path / "tabs.txt", "Heat\tdirected_by\tMichael Mann\n"))
    assert guessed.triples == [(1, "Heat", "directed_by", "Michael Mann")] and not guessed.bad


def test_csv_with_header_and_quoted_commas(tmp_path: Path) -> None:
    text = 'subject,relation,object\r\n"Crouching Tiger, Hidden Dragon",directed_by,Ang Lee\r\nHeat,aka,"Heat, 1995"\n'
    found = read_triples(_write(tmp_path / "kb.csv", text))
    assert found.triples == [(2, "Crouching Tiger, Hidden Dragon", "directed_by", "Ang Lee")]
    assert found.aliases == [(3, "Heat", "Heat, 1995")]
    assert not found.bad


def test_gzipped_file(tmp_path: Path) -> None:
    path = tmp_path / "kb.txt.gz"
    path.write_bytes(gzip.compress(KB.encode()))
    assert read_triples(path).triples == read_triples(_write(tmp_path / "kb.txt", KB)).triples


def test_wrong_field_counts_and_empty_fields_are_reported_and_skipped(tmp_path: Path) -> None:
    text = "Heat|directed_by|Michael Mann\nHeat|directed_by\n\nHeat|a|b|c\nHeat||Michael Mann\n |x| y\nBig|year|1988\n"
    found = read_triples(_write(tmp_path / "kb.txt", text))
    assert [t[0] for t in found.triples] == [1, 7]
    assert [line for line, _ in found.bad] == [2, 4, 5, 6]
    assert "found 2" in found.bad[0][1] and "found 4" in found.bad[1][1]
    assert all("empty field" in why for _, why in found.bad[2:])
    tsv = read_triples(_write(tmp_path / "kb.tsv", "Heat\t\tMichael Mann\nBig\tyear\t1988\n"))
    assert tsv.bad[0][0] == 1 and "empty field" in tsv.bad[0][1] and len(tsv.triples) == 1


def test_ntriples_with_one_bad_line(tmp_path: Path) -> None:
    text = ("<http://x.org/Heat> <http://x.org/directed_by> <http://x.org/Michael_Mann> .\n"
            "this is not a statement\n"
            '<http://x.org/Heat> <http://x.org/release_year> "1995" .\n')
    found = read_triples(_write(tmp_path / "kb.nt", text))
    assert found.triples == [(1, "Heat", "directed by", "Michael Mann"), (3, "Heat", "release year", "1995")]
    assert [line for line, _ in found.bad] == [2] and "N-Triples" in found.bad[0][1]


def test_valid_ntriples_keeps_line_numbers(tmp_path: Path) -> None:
    text = "".join(f'<http://x.org/F{i}> <http://x.org/year> "{1990 + i}" .\n' for i in range(3))
    assert [t[0] for t in read_triples(_write(tmp_path / "kb.nt", text)).triples] == [1, 2, 3]


TURTLE = """@prefix ex: <http://x.org/> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix skos: <http://www.w3.org/2004/02/skos/core#> .
"""


def test_turtle_labels_name_subjects_and_objects(tmp_path: Path) -> None:
    text = TURTLE + ('ex:h95 rdfs:label "Heat" ; ex:directed_by ex:mm .\n'
                     'ex:mm rdfs:label "Michael Mann" ; ex:born "1943" .\n')
    found = read_triples(_write(tmp_path / "kb.ttl", text))
    assert sorted(t[1:] for t in found.triples) == [("Heat", "directed by", "Michael Mann"),
                                                   ("Michael Mann", "born", "1943")]
    assert found.aliases == [] and found.bad == []


def test_turtle_label_wins_over_alt_label(tmp_path: Path) -> None:
    text = TURTLE + "".join(f'ex:f{i} rdfs:label "Film {i}" ; skos:altLabel "Alt {i}" ; ex:genre ex:Drama .\n'
                            for i in range(20))
    found = read_triples(_write(tmp_path / "kb.ttl", text))
    assert sorted(s for _, s, _, _ in found.triples) == sorted(f"Film {i}" for i in range(20))
    assert sorted(found.aliases) == sorted((0, f"Film {i}", f"Alt {i}") for i in range(20))


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("notes.txt", "Some prose about films.\nNothing here is a triple.\n", "subject|relation|object"),
    ("kb.csv", "just,two\n", "three columns"),
    ("kb.ttl", "this is not turtle at all", "not valid turtle"),
    ("kb.txt.gz", "not gzip", "cannot read it"),
])
def test_not_triples_is_an_error(tmp_path: Path, name: str, text: str, expected: str) -> None:
    with pytest.raises(GraphError) as err:
        read_triples(_write(tmp_path / name, text))
    assert expected in str(err.value) and name in str(err.value)


# -- KnowledgeGraph ----------------------------------------------------------------------------------------
def test_ambiguous_names_and_shared_alias(graph: KnowledgeGraph) -> None:
    film, tag = graph.index_of["Heat"], graph.index_of["heat"]
    assert film != tag and sorted(graph.by_key["heat"]) == sorted([film, tag])
    assert graph.entity("Heat") == film and graph.entity("heat") == tag  # exact names first
    assert graph.entity("HEAT!") == film  # normalised: the better connected one (4 edges against 2)
    mann, scientist = graph.index_of["Michael Mann"], graph.index_of["Michael E. Mann"]
    assert graph.aliases[mann] == ["Mann"] and graph.aliases[scientist] == ["Mann"]  # from the file, from aliases=
    assert sorted(graph.by_key["mann"]) == sorted([mann, scientist])
    assert graph.entity("mann") == mann  # two films against one field
    assert normalise("Michèle  Mercier's Film!") == "michele mercier s film"


def test_edges_both_directions_and_step_names(graph: KnowledgeGraph) -> None:
    plato = graph.entity("Plato")
    edges = {(graph.step_name(s), graph.names[o], int(graph.triple_ids[r])) for s, o, r in graph.edges(plato)}
    assert edges == {("influenced", "Aristotle", 15), ("~influenced", "Socrates", 14)}
    assert graph.step_of("~influenced") == graph.step_of("influenced") + 1
    with pytest.raises(GraphError, match="no relation 'wrote'"):
        graph.step_of("~wrote")
    assert graph.degree(graph.entity("Drama")) == HUB_SIZE + 1
    assert graph.triple(graph.row_of(1)) == {"id": 1, "subject": "Heat", "relation": "directed_by",
                                             "object": "Michael Mann"}


def test_unknown_entity_names_close_ones(graph: KnowledgeGraph) -> None:
    with pytest.raises(GraphError, match=r"no entity 'nope' .*closest: \w"):
        graph.entity("nope")
    with pytest.raises(GraphError, match="closest: Socrates"):
        graph.entity("Socrtes")


def test_neighbourhood_shows_every_step() -> None:
    g = KnowledgeGraph.from_triples([(i, "X", "crowded", f"Y{i}") for i in range(10)] + [(99, "X", "rare", "Z")])
    near = g.neighbourhood(g.entity("X"), limit=4)
    assert len(near) == 4 and {"step": "rare", "entity": "Z", "triple": 99} in near


# -- EntityLinker ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("question", "expected"), [
    ("which films did Al Pacino star in", [("Al Pacino", "Al Pacino")]),
    ("which films did al pacino star in", [("al pacino", "Al Pacino")]),
    ("who directed Heat", [("Heat", "Heat")]),
    ("what movies are tagged heat", [("heat", "heat")]),  # the tag's exact name beats the film's
    ("who directed Body Heat", [("Body Heat", "Body Heat")]),  # not the film Heat inside it
    ("who directed body Heat", [("body Heat", "Body Heat")]),  # even where only "Heat" is capitalised
    ("what does Michael E. Mann study", [("Michael E. Mann", "Michael E. Mann")]),  # not the alias Mann
    ("who was influenced by Socrates and Plato", [("Plato", "Plato"), ("Socrates", "Socrates")]),
    ("what is the weather like", []),
])
def test_link_without_brackets(graph: KnowledgeGraph, linker: EntityLinker, question: str,
                               expected: list[tuple[str, str]]) -> None:
    found = linker.link(question, graph)
    assert [(e.mention, e.entity) for e in found] == expected
    assert all(question[e.start:e.end] == e.mention for e in found)


def test_shared_alias_gives_both_candidates(graph: KnowledgeGraph, linker: EntityLinker) -> None:
    mann = [c for c in linker.candidates_of("what does Mann study", graph) if c["mention"] == "Mann"]
    assert {c["entity"] for c in mann} == {"Michael Mann", "Michael E. Mann"}
    assert mann[0]["entity"] == "Michael Mann" and mann[0]["score"] > mann[1]["score"]


@pytest.mark.parametrize(("question", "entity", "why"), [
    ("who directed [Heat]", "Heat", "exact name"),
    ("which films are tagged [heat]", "heat", "exact name"),
    ("who is [MANN]", "Michael Mann", "normalised name"),
])
def test_brackets_link_directly(graph: KnowledgeGraph, linker: EntityLinker, question: str, entity: str,
                                why: str) -> None:
    [found] = linker.link(question, graph)
    assert (found.entity, found.score) == (entity, 1.0) and why in found.why
    assert mask_mention(question, found).endswith("[ENT]") and "[" not in mask_mention(question, found)[:-5]
    assert linker.link("who made [Nope]", graph) == []


def test_bracket_span_matches_mention(graph: KnowledgeGraph, linker: EntityLinker) -> None:
    question = "who directed [ Heat ]"
    [found] = linker.link(question, graph)
    assert question[found.start:found.end] == found.mention == "Heat"


# -- PathRetriever -----------------------------------------------------------------------------------------
def test_two_hop_answer_with_supporting_triples(graph: KnowledgeGraph) -> None:
    steps, answers, triples = _retrieve(graph, "who directed the films Al Pacino starred in",
                                        {("~starred_actors", "directed_by"): 1.0})
    assert steps[0] == ("~starred_actors", "directed_by")
    assert answers == ["Michael Mann"] and triples == [2, 1]


def test_relation_in_both_directions(graph: KnowledgeGraph) -> None:
    assert _retrieve(graph, "who influenced Plato", {("~influenced",): 1.0})[1:] == (["Socrates"], [14])
    assert _retrieve(graph, "who did Plato influence", {("influenced",): 1.0})[1:] == (["Aristotle"], [15])
    # Marx and Engels influenced each other: every two-step path leads back to Marx, who is never an answer
    assert enumerate_paths(graph, graph.entity("Marx"), hops=2) == {("influenced",): {"Engels"},
                                                                    ("~influenced",): {"Engels"}}


def test_cycle_ends_and_topic_is_never_an_answer(graph: KnowledgeGraph) -> None:
    found = PathRetriever(scorer=FixedPathScorer({("beats", "beats", "beats"): 1.0, ("beats", "beats"): 0.5}),
                          top_paths=50).retrieve("what does [Rock] beat", graph)
    assert found.paths and ("beats", "beats", "beats") not in [p.steps for p in found.paths]  # Rock again
    assert found.paths[0].steps == ("beats", "beats") and found.answers == ["Paper"]
    assert all("Rock" not in p.answers for p in found.paths)
    assert [t["id"] for t in found.paths[0].triples] == [11, 12]


def test_hub_is_not_a_way_through(graph: KnowledgeGraph) -> None:
    through = {("has_genre", "~has_genre"): 1.0}
    steps, answers, _ = _retrieve(graph, "which films share a genre with [Heat]", through)
    assert ("has_genre", "~has_genre") not in steps and len(answers) < 5
    assert ("has_genre", "~has_genre") not in enumerate_paths(graph, graph.entity("Heat"), hops=2)
    # the same path is found once the hub is allowed through (so the pruning is what removed it)
    steps, answers, _ = _retrieve(graph, "which films share a genre with [Heat]", through, max_fanout=20_000)
    assert steps[0] == ("has_genre", "~has_genre") and len(answers) == HUB_SIZE and "Heat" not in answers


def test_hub_can_be_the_topic(graph: KnowledgeGraph, linker: EntityLinker) -> None:
    assert [e.entity for e in linker.link("which films are Drama", graph)] == ["Drama"]
    steps, answers, _ = _retrieve(graph, "which films are [Drama]", {("~has_genre",): 1.0})
    assert steps[0] == ("~has_genre",) and len(answers) == HUB_SIZE + 1 and "Heat" in answers
    _, answers, triples = _retrieve(graph, "who directed the [Drama] films", {("~has_genre", "directed_by"): 1.0},
                                    max_frontier=20_000)
    assert answers == ["Michael Mann"] and triples == [4, 1]


def test_retrieve_with_no_entity_and_bad_settings(graph: KnowledgeGraph, linker: EntityLinker) -> None:
    found = PathRetriever(scorer=FixedPathScorer({})).retrieve("what is the weather like", graph, linker)
    assert (found.answers, found.paths, found.best) == ([], [], None)
    for bad in ({"hops": 0}, {"hops": 4}, {"beam": 0}):
        with pytest.raises(ConfigError):
            PathRetriever(**bad)


# -- label_questions ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("splash", "expected"), [
    (("who directed [Splash]", ["Ron Howard"]), ("directed_by",)),
    (("who wrote [Splash]", ["Lowell Ganz"]), ("written_by",)),
])
def test_label_ties_broken_by_global_frequency(splash: tuple[str, list[str]], expected: tuple[str, ...]) -> None:
    g = KnowledgeGraph.from_triples([
        (1, "Big", "written_by", "Penny Marshall"), (2, "Big", "directed_by", "Penny Marshall"),
        (3, "Heat", "written_by", "Michael Mann"), (4, "Heat", "directed_by", "Michael Mann"),
        (5, "Splash", "written_by", "Lowell Ganz"), (6, "Splash", "directed_by", "Ron Howard")])
    records = [(1, "who made [Big]", ["Penny Marshall"]), (2, "who made [Heat]", ["Michael Mann"]),
               (3, *splash), (4, "who made [Big]", ["Nobody"])]
    found = label_questions(records, g, linker=EntityLinker(ner=False, context=False))
    assert found.examples[:2] == [("who made [ENT]", expected)] * 2  # Big and Heat tie; Splash decides
    assert found.f1 == [1.0, 1.0, 1.0]
    assert [line for line, _ in found.skipped] == [4] and "best F1 0.00" in found.skipped[0][1]


# -- scorers -----------------------------------------------------------------------------------------------
def test_trained_scorer_load_without_a_model(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pilotfish train paths"):
        TrainedPathScorer.load(tmp_path)
    with pytest.raises(ConfigError, match="pilotfish train paths"):
        load_scorer(str(tmp_path / "no-such-scorer"))


def test_trained_scorer_round_trip(tmp_path: Path) -> None:
    classes = [("directed_by",), ("~starred_actors", "directed_by")]
    saved = TrainedPathScorer(classes, np.ones((2, 4)), np.zeros(2), card={"questions": 9})
    saved.save(tmp_path)
    loaded = TrainedPathScorer.load(tmp_path)
    assert loaded.classes == classes and loaded.card == {"questions": 9}
    np.testing.assert_array_equal(loaded.coef, saved.coef)
    loaded.probabilities = lambda questions: np.array([[0.25, 0.75]])  # type: ignore[method-assign]
    assert loaded.score("who directed [ENT]", [("directed_by",), ("~starred_actors",)], prefix=True) == [0.25, 0.75]
    assert verbalise(classes[1]) == "starred actors of, then directed by"
