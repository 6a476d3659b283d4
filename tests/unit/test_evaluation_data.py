"""load_dataset: QA JSONL, HotpotQA, 2WikiMultihopQA and MuSiQue JSONL, BEIR folders, and every bad-record error."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from pilotfish.errors import ConfigError
from pilotfish.evaluation import EvalDataset, load_dataset


def write_jsonl(path: Path, records: list[Any]) -> Path:
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# -- plain QA ---------------------------------------------------------------------------------------
def test_qa_jsonl_answers_answer_ids_and_metadata(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "my-set.jsonl", [
        {"id": "a", "question": "Capital of France?", "answers": ["Paris", "paris, France"],
         "doc_ids": ["d1"], "passages": ["Paris is the capital of France."], "topic": "geo"},
        "",  # blank lines are skipped but still counted
        {"question": "Who wrote Hamlet?", "answer": "Shakespeare", "metadata": {"level": "easy"}},
        {"id": 7, "question": "Which documents mention eels?", "doc_ids": ["d2", "d3"]},
    ])
    data = load_dataset(path)
    assert isinstance(data, EvalDataset) and data.name == "my-set" and data.format == "qa"
    assert data.corpus is None and len(data) == 3
    first, second, third = data.items
    assert (first.id, first.answers, first.gold_doc_ids, first.gold_passages) == (
        "a", ["Paris", "paris, France"], ["d1"], ["Paris is the capital of France."])
    assert first.metadata == {"topic": "geo"}
    assert (second.id, second.answers, second.metadata) == ("3", ["Shakespeare"], {"level": "easy"})
    assert (third.id, third.answers, third.gold_doc_ids) == ("7", [], ["d2", "d3"])


def test_qa_jsonl_gz_and_name_override(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "set.jsonl.gz", [{"question": "q?", "answers": ["x"]}])
    data = load_dataset(path, name="custom")
    assert data.name == "custom" and data.items[0].answers == ["x"]


@pytest.mark.parametrize(("line", "message"), [
    ("{not json", "not valid JSON"),
    ('["a", "list"]', "must be a JSON object"),
    ({"answers": ["x"]}, 'missing "question"'),
    ({"question": "   ", "answers": ["x"]}, '"question" is empty'),
    ({"question": 3, "answers": ["x"]}, '"question" must be a string'),
    ({"question": "q?", "answers": "Paris"}, '"answers" must be a list of strings'),
    ({"question": "q?", "answers": ["Paris", 3]}, '"answers" must be a list of strings'),
    ({"question": "q?", "answer": ["Paris"]}, '"answer" must be a string'),
    ({"question": "q?", "answer": "a", "answers": ["b"]}, "not both"),
    ({"question": "q?"}, "nothing to score against"),
    ({"question": "q?", "answers": [], "doc_ids": [1]}, '"doc_ids" must be a list of strings'),
    ({"question": "q?", "answers": ["x"], "passages": "text"}, '"passages" must be a list of strings'),
    ({"question": "q?", "answers": ["x"], "id": ""}, '"id" must be a non-empty string'),
    ({"question": "q?", "answers": ["x"], "metadata": [1]}, '"metadata" must be a JSON object'),
])
def test_qa_bad_line_names_file_and_line(tmp_path: Path, line: Any, message: str) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [{"question": "fine?", "answers": ["yes"]}, "", line])
    with pytest.raises(ConfigError) as err:
        load_dataset(path)
    assert f"{path}:3:" in str(err.value) and message in str(err.value)


def test_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "dup.jsonl", [{"id": "x", "question": "a?", "answers": ["1"]},
                                                {"id": "y", "question": "b?", "answers": ["2"]},
                                                {"id": "x", "question": "c?", "answers": ["3"]}])
    with pytest.raises(ConfigError, match=r"dup\.jsonl:3: duplicate id 'x' \(first on line 1\)"):
        load_dataset(path)


def test_non_utf8_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"question": "ok?", "answers": ["y"]}\n{"question": "caf\xe9?", "answers": ["y"]}\n')
    with pytest.raises(ConfigError, match=r"latin\.jsonl:2: not UTF-8"):
        load_dataset(path)


def test_missing_empty_and_unknown_layouts_list_accepted_formats(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no evaluation data at .*accepted formats.*BEIR folder"):
        load_dataset(tmp_path / "nowhere.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(ConfigError, match="holds no questions; accepted formats"):
        load_dataset(empty)
    csv_file = tmp_path / "data.csv"
    csv_file.write_text("question,answer\n")
    with pytest.raises(ConfigError, match="unknown layout.*accepted formats"):
        load_dataset(csv_file)
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(ConfigError, match="not a BEIR one.*accepted formats"):
        load_dataset(folder)
    not_gzip = tmp_path / "fake.jsonl.gz"
    not_gzip.write_text('{"question": "q?", "answers": ["a"]}\n')
    with pytest.raises(ConfigError, match=r"fake\.jsonl\.gz: cannot read file"):
        load_dataset(not_gzip)


# -- HotpotQA ---------------------------------------------------------------------------------------
def hotpot(qid: str, question: str, answer: str, facts: list, context: list) -> dict:
    return {"_id": qid, "question": question, "answer": answer, "supporting_facts": facts, "context": context,
            "type": "bridge", "level": "hard"}


def test_hotpotqa_gold_titles_and_deduplicated_corpus(tmp_path: Path) -> None:
    kansas = ["Kansas Song", ["The Kansas Song is a fight song.", " It is sung at KU."]]
    ku = ["University of Kansas", ["KU is in Lawrence.", " It has branch campuses."]]
    other = ["Lawrence", ["Lawrence is a city."]]
    path = write_jsonl(tmp_path / "hotpot.jsonl.gz", [
        hotpot("q1", "What is the KU fight song?", "Kansas Song",
               [["Kansas Song", 0], ["University of Kansas", 1], ["University of Kansas", 0]], [kansas, ku, other]),
        hotpot("q2", "Where is KU?", "Lawrence", [["University of Kansas", 0], ["Missing Page", 0]],
               [ku, ["Lawrence", ["A different text is ignored."]]]),
    ])
    data = load_dataset(path)
    assert data.format == "hotpotqa" and data.name == "hotpot" and len(data) == 2
    first, second = data.items
    assert (first.id, first.answers) == ("q1", ["Kansas Song"])
    assert first.gold_doc_ids == ["Kansas Song", "University of Kansas"]
    assert first.gold_passages == ["The Kansas Song is a fight song. It is sung at KU.",
                                   "KU is in Lawrence. It has branch campuses."]
    assert first.metadata["supporting_sentences"] == ["The Kansas Song is a fight song.",
                                                      "It has branch campuses.", "KU is in Lawrence."]
    assert first.metadata["type"] == "bridge" and "gold_titles_not_in_context" not in first.metadata
    # a supporting title absent from the context is still gold, and flagged
    assert second.gold_doc_ids == ["University of Kansas", "Missing Page"]
    assert second.gold_passages == ["KU is in Lawrence. It has branch campuses."]
    assert second.metadata["gold_titles_not_in_context"] == ["Missing Page"]
    assert data.corpus == [
        {"doc_id": "Kansas Song", "title": "Kansas Song", "text": "The Kansas Song is a fight song. It is sung at KU."},
        {"doc_id": "University of Kansas", "title": "University of Kansas",
         "text": "KU is in Lawrence. It has branch campuses."},
        {"doc_id": "Lawrence", "title": "Lawrence", "text": "Lawrence is a city."},
    ]


@pytest.mark.parametrize(("change", "message"), [
    ({"context": [["T", "not a list"]]}, '"context" must be a list of [title, [sentence, ...]] pairs'),
    ({"supporting_facts": [["T", "0"]]}, '"supporting_facts" must be a list of [title, sentence index]'),
    ({"answer": 42}, '"answer" must be a string'),
    ({"question": ""}, '"question" is empty'),
    ({"_id": "q1"}, "duplicate id 'q1' (first on line 1)"),
])
def test_hotpotqa_bad_line_names_file_and_line(tmp_path: Path, change: dict, message: str) -> None:
    good = hotpot("q1", "Q?", "A", [["T", 0]], [["T", ["S."]]])
    path = write_jsonl(tmp_path / "hp.jsonl", [good, {**good, "_id": "q2", **change}])
    with pytest.raises(ConfigError) as err:
        load_dataset(path)
    assert f"{path}:2:" in str(err.value) and message in str(err.value)


def test_bom_and_crlf_are_read(tmp_path: Path) -> None:
    path = tmp_path / "win.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"question": "q?", "answers": ["a"]}\r\n{"question": "r?", "answer": "b"}\r\n')
    assert [item.answers for item in load_dataset(path)] == [["a"], ["b"]]


# -- 2WikiMultihopQA --------------------------------------------------------------------------------
def two_wiki(qid: str, facts: list, context: list, **extra: Any) -> dict:
    return {"_id": qid, "type": "compositional", "question": "Where was the director of Film X born?",
            "context": context, "supporting_facts": facts, "answer": "Lyon",
            "evidences": [["Film X", "director", "Ann Roe"], ["Ann Roe", "place of birth", "Lyon"]],
            "entity_ids": "Q1_Q2", "answer_id": "Q3", "evidences_id": [], **extra}


def test_2wiki_joins_sentences_with_a_space_and_keeps_type_and_evidences(tmp_path: Path) -> None:
    film = ["Film X", ["Film X is a 1950 film.", "It was directed by Ann Roe."]]
    roe = ["Ann Roe", ["Ann Roe was a director.", "She was born in Lyon."]]
    path = write_jsonl(tmp_path / "dev_sample.jsonl.gz", [
        two_wiki("a1", [["Film X", 1], ["Ann Roe", 1]], [film, roe, roe]),  # a title twice in one context
        two_wiki("a2", [["Ann Roe", 0]], [roe, ["Lyon", ["Lyon is a city."]]], type="inference"),
    ])
    data = load_dataset(path)
    assert data.format == "2wiki" and len(data) == 2
    first, second = data.items
    assert first.gold_doc_ids == ["Film X", "Ann Roe"] and first.answers == ["Lyon"]
    assert first.gold_passages == ["Film X is a 1950 film. It was directed by Ann Roe.",
                                   "Ann Roe was a director. She was born in Lyon."]
    assert first.metadata["supporting_sentences"] == ["It was directed by Ann Roe.", "She was born in Lyon."]
    assert first.metadata["type"] == "compositional" and first.metadata["evidences"][1][2] == "Lyon"
    assert "entity_ids" not in first.metadata and second.metadata["type"] == "inference"
    assert [d["doc_id"] for d in data.corpus or []] == ["Film X", "Ann Roe", "Lyon"]


def test_2wiki_bad_line_names_file_and_line(tmp_path: Path) -> None:
    good = two_wiki("a1", [["T", 0]], [["T", ["S."]]])
    path = write_jsonl(tmp_path / "2w.jsonl", [good, {**good, "_id": "a2", "supporting_facts": [["T", -1]]}])
    with pytest.raises(ConfigError, match=r"2w\.jsonl:2: \"supporting_facts\" must be a list"):
        load_dataset(path)


# -- MuSiQue ----------------------------------------------------------------------------------------
def para(idx: int, title: str, text: str, supporting: bool = False) -> dict:
    return {"idx": idx, "title": title, "paragraph_text": text, "is_supporting": supporting}


def musique(qid: str, paragraphs: list, **extra: Any) -> dict:
    return {"id": qid, "paragraphs": paragraphs, "question": "Who founded the city where X was born?",
            "question_decomposition": [{"id": 1, "question": "X >> place of birth", "answer": "Lyon",
                                        "paragraph_support_idx": 0}],
            "answer": "Munatius Plancus", "answer_aliases": ["Plancus"], "answerable": True, **extra}


def test_musique_answers_gold_paragraphs_and_repeated_titles(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "musique_ans_dev.jsonl.gz", [
        musique("2hop__1_2", [para(0, "X", "X was born in Lyon.", True),
                              para(1, "Lyon", "Lyon was founded by Plancus.", True),
                              para(2, "Paris", "Paris is a capital.")]),
        musique("2hop__3_4", [para(0, "Lyon", "  Lyon is in France.  ", True), para(1, "X", "X was born in Lyon."),
                              para(2, "Lyon", "Lyon was founded by Plancus.")],
                answer="Plancus", answer_aliases=["Plancus", "L. Munatius Plancus"]),
    ])
    data = load_dataset(path)
    assert data.format == "musique" and data.name == "musique_ans_dev" and len(data) == 2
    first, second = data.items
    assert first.answers == ["Munatius Plancus", "Plancus"]
    assert second.answers == ["Plancus", "L. Munatius Plancus"]  # repeats dropped
    assert first.metadata["answerable"] is True and first.metadata["question_decomposition"][0]["answer"] == "Lyon"
    # "Lyon" names two texts in the file: both get the title plus a hash of their text; "X" stays plain
    founded, france = (f"Lyon [{hashlib.sha1(t.encode()).hexdigest()[:10]}]"
                       for t in ("Lyon was founded by Plancus.", "Lyon is in France."))
    assert first.gold_doc_ids == ["X", founded] and second.gold_doc_ids == [france]
    assert first.gold_passages == ["X was born in Lyon.", "Lyon was founded by Plancus."]
    assert second.gold_passages == ["Lyon is in France."]
    assert data.corpus == [
        {"doc_id": "X", "title": "X", "text": "X was born in Lyon."},
        {"doc_id": founded, "title": "Lyon", "text": "Lyon was founded by Plancus."},
        {"doc_id": france, "title": "Lyon", "text": "Lyon is in France."},
        {"doc_id": "Paris", "title": "Paris", "text": "Paris is a capital."},
    ]
    # the ids do not depend on the order of the lines
    reordered = write_jsonl(tmp_path / "reordered.jsonl", [json.loads(line) for line in
                                                          gzip.open(path, "rt").read().splitlines()][::-1])
    assert sorted(d["doc_id"] for d in load_dataset(reordered).corpus or []) == sorted(d["doc_id"] for d in data.corpus)


@pytest.mark.parametrize(("change", "message"), [
    ({"paragraphs": "none"}, '"paragraphs" must be a list of {"title": str, "paragraph_text": str'),
    ({"paragraphs": [{"idx": 0, "title": "T"}]}, '"paragraphs" must be a list'),
    ({"paragraphs": [para(0, "T", "S.", "yes")]}, '"paragraphs" must be a list'),  # type: ignore[arg-type]
    ({"paragraphs": [para(0, 7, "S.")]}, '"paragraphs" must be a list'),  # type: ignore[arg-type]
    ({"answer": None}, '"answer" must be a string'),
    ({"answer_aliases": "Plancus"}, '"answer_aliases" must be a list of strings'),
    ({"question": ""}, '"question" is empty'),
    ({"id": "m1"}, "duplicate id 'm1' (first on line 1)"),
])
def test_musique_bad_line_names_file_and_line(tmp_path: Path, change: dict, message: str) -> None:
    good = musique("m1", [para(0, "T", "S.", True)])
    path = write_jsonl(tmp_path / "mu.jsonl", [good, {**good, "id": "m2", **change}])
    with pytest.raises(ConfigError) as err:
        load_dataset(path)
    assert f"{path}:2:" in str(err.value) and message in str(err.value)


def test_musique_without_answer_is_rejected(tmp_path: Path) -> None:
    record = musique("m1", [para(0, "T", "S.", True)])
    del record["answer"]
    with pytest.raises(ConfigError, match=r"mu\.jsonl:1: missing \"answer\""):
        load_dataset(write_jsonl(tmp_path / "mu.jsonl", [record]))


# -- BEIR -------------------------------------------------------------------------------------------
def beir(tmp_path: Path, *, corpus: list | None = None, queries: list | None = None,
         qrels: str | None = None, gz: bool = True) -> Path:
    folder = tmp_path / "tiny-beir"
    (folder / "qrels").mkdir(parents=True)
    write_jsonl(folder / ("corpus.jsonl.gz" if gz else "corpus.jsonl"), corpus if corpus is not None else [
        {"_id": "d1", "title": "Eels", "text": "Eels migrate to the Sargasso Sea."},
        {"_id": "d2", "title": "", "text": "Salmon return to rivers."},
        {"_id": "d3", "text": "Sharks have cartilage."}])
    write_jsonl(folder / "queries.jsonl", queries if queries is not None else [
        {"_id": "1", "text": "Where do eels spawn?", "metadata": {}},
        {"_id": "2", "text": "Unjudged query"},
        {"_id": "3", "text": "Fish that return to rivers"}])
    (folder / "qrels" / "test.tsv").write_text(
        qrels if qrels is not None else "query-id\tcorpus-id\tscore\n1\td1\t2\n3\td2\t1\n3\td3\t0\n")
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n2\td3\t1\n")
    return folder


def test_beir_folder_items_corpus_and_splits(tmp_path: Path) -> None:
    data = load_dataset(beir(tmp_path))
    assert data.format == "beir" and data.name == "tiny-beir" and [i.id for i in data] == ["1", "3"]
    eels, fish = data.items
    assert (eels.question, eels.answers, eels.gold_doc_ids) == ("Where do eels spawn?", [], ["d1"])
    assert eels.gold_passages == ["Eels migrate to the Sargasso Sea."] and eels.metadata == {"relevance": {"d1": 2}}
    assert fish.gold_doc_ids == ["d2"] and fish.metadata["relevance"] == {"d2": 1, "d3": 0}
    assert data.corpus is not None and data.corpus[2] == {"doc_id": "d3", "title": "", "text": "Sharks have cartilage."}
    train = load_dataset(tmp_path / "tiny-beir", split="train")
    assert [(i.id, i.gold_doc_ids) for i in train] == [("2", ["d3"])]
    with pytest.raises(ConfigError, match="no qrels for split 'dev'.*available splits: test, train"):
        load_dataset(tmp_path / "tiny-beir", split="dev")


def test_beir_plain_corpus_jsonl(tmp_path: Path) -> None:
    assert len(load_dataset(beir(tmp_path, gz=False))) == 2


@pytest.mark.parametrize(("kwargs", "where", "message"), [
    ({"corpus": [{"_id": "d1", "text": "a"}, "{oops"]}, "corpus.jsonl.gz:2", "not valid JSON"),
    ({"corpus": [{"_id": "d1", "text": "a"}, {"_id": "d1", "text": "b"}]}, "corpus.jsonl.gz:2",
     "duplicate document id 'd1'"),
    ({"corpus": [{"_id": "d1", "text": "a"}, {"text": "b"}]}, "corpus.jsonl.gz:2", 'missing "_id"'),
    ({"corpus": [{"_id": "d1", "text": "a"}, {"_id": "d2", "text": 5}]}, "corpus.jsonl.gz:2", '"text" string'),
    ({"queries": [{"_id": "1", "text": "q"}, {"_id": "1", "text": "again"}]}, "queries.jsonl:2",
     "duplicate query id '1'"),
    ({"queries": [{"_id": "1", "text": "q"}, {"_id": "3", "text": " "}]}, "queries.jsonl:2", '"text" string'),
    ({"qrels": "query-id\tcorpus-id\tscore\n1\td1\n"}, "test.tsv:2", "expected 3 tab-separated columns"),
    ({"qrels": "query-id\tcorpus-id\tscore\n1\td1\thigh\n"}, "test.tsv:2", "score 'high' is not an integer"),
    ({"qrels": "query-id\tcorpus-id\tscore\n1\td1\t1\n9\td1\t1\n"}, "test.tsv:3", "query id '9' is not in"),
])
def test_beir_bad_line_names_file_and_line(tmp_path: Path, kwargs: dict, where: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_dataset(beir(tmp_path, **kwargs))
    assert where in str(err.value) and message in str(err.value)
