"""Vector-backend URLs (faiss, Milvus Lite paths, Milvus servers) and the Milvus filter expressions (no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilotfish.errors import ConfigError, QueryError
from pilotfish.retrievers.corpus import ChunkCorpus
from pilotfish.retrievers.dense import DenseRetriever
from pilotfish.retrievers.milvus import _meta, milvus_filter, row_key
from pilotfish.retrievers.vectors import collection_for, parse_url, resolve_url


def test_url_forms() -> None:
    assert parse_url("faiss").kind == "faiss"
    rel = parse_url("milvus:///kb/vectors.db")
    assert (rel.kind, rel.uri, rel.lite, rel.collection) == ("milvus", "kb/vectors.db", True, None)
    absolute = parse_url("milvus:////srv/data/v.db?collection=notes")
    assert (absolute.uri, absolute.collection) == ("/srv/data/v.db", "notes")
    server = parse_url("milvus://db.example.org:19531/papers?token_env=MILVUS_TOKEN&secure=true")
    assert (server.uri, server.collection, server.token_env, server.lite) == (
        "https://db.example.org:19531", "papers", "MILVUS_TOKEN", False)
    assert parse_url("milvus://localhost").uri == "http://localhost:19530"


@pytest.mark.parametrize("url", ["", "milvus", "qdrant://x:1", "milvus:///vectors", "milvus://:19530",
                                 "milvus://host:port", "milvus://h:1/bad-name", "milvus:///v.db?colour=red",
                                 "milvus://h:1/a?collection=b"])
def test_bad_urls_list_the_accepted_forms(url: str) -> None:
    with pytest.raises(ConfigError, match=r"Accepted forms: faiss .*milvus:///relative/path\.db.*milvus://HOST:PORT"):
        parse_url(url)
    with pytest.raises(ConfigError):
        DenseRetriever(vectors=url)


def test_resolve_makes_lite_paths_absolute_and_fills_the_collection(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    name = collection_for(tmp_path / "kb")
    assert name.startswith("pilotfish_") and len(name) == 20 and name != collection_for(tmp_path / "kb2")
    resolved = resolve_url("milvus:///sub/v.db", default_collection=name)
    assert resolved == f"milvus:///{tmp_path.resolve() / 'sub' / 'v.db'}?collection={name}"
    assert parse_url(resolved).uri == str(tmp_path.resolve() / "sub" / "v.db")
    assert resolve_url(resolved, default_collection="other") == resolved  # stable once resolved
    assert resolve_url("milvus:///v.db?collection=mine", default_collection=name).endswith("?collection=mine")
    assert resolve_url("milvus://h:1", default_collection=name) == f"milvus://h:1/{name}"
    assert resolve_url("milvus://h:1/mine?secure=true", default_collection=name) == "milvus://h:1/mine?secure=true"
    assert resolve_url("faiss", default_collection=name) == "faiss"


def test_dense_config_round_trips_the_vectors_url() -> None:
    r = DenseRetriever(vectors="milvus://localhost:19530/papers", top_k=3)
    again = DenseRetriever.from_config(r.to_config())
    assert again.to_config() == r.to_config() and again.to_config()["init"]["vectors"] == "milvus://localhost:19530/papers"
    assert DenseRetriever().to_config()["init"]["vectors"] == "faiss"


def test_filter_expressions_escape_values_and_refuse_unnameable_keys() -> None:
    assert milvus_filter(None) is None and milvus_filter({}) is None
    assert milvus_filter({"title": 'say "hi"\\now'}) == 'title in ["say \\"hi\\"\\\\now"]'
    assert milvus_filter({"n": [2, "1"]}) == ('(meta["n"] == "1" or meta["n"] == "2" or '
                                             'json_contains_any(meta["n"], ["1", "2"]))')
    assert 'meta["a key.with-dots"]' in milvus_filter({"a key.with-dots": "x"})  # type: ignore[operator]
    for key in ('say"', "back\\slash", "new\nline"):
        with pytest.raises(QueryError, match="Milvus expression cannot name"):
            milvus_filter({key: "x"})
    with pytest.raises(QueryError, match="control character"):
        milvus_filter({"k": "bell\x07"})
    with pytest.raises(QueryError, match="non-empty key"):
        milvus_filter({"": "x"})


def test_keys_change_with_text_model_and_filterable_fields_only() -> None:
    corpus = ChunkCorpus.from_texts(["same", "same"], ids=["a", "a"], metadatas=[{"k": 1}, {"k": 2}])
    one, two = corpus.rows
    base = row_key(one, "minilm-l6", "same")
    assert base.startswith("a#") and len(base) == 2 + 16
    assert row_key(one, "minilm-l6", "same") == base
    assert row_key(one, "bge-small", "same") != base
    assert row_key(one, "minilm-l6", "other") != base
    assert row_key(two, "minilm-l6", "same") != base  # metadata that filters read is part of the key
    assert _meta({"n": 3, "tags": [1, None, "x"], "gone": None, "flag": True}) == {
        "n": "3", "tags": ["1", "x"], "flag": "True"}


def test_choosing_milvus_imports_no_client_until_first_use() -> None:
    import subprocess
    import sys

    code = ("import sys, pilotfish, pilotfish.knowledge.base\n"
            "from pilotfish.retrievers.dense import DenseRetriever\n"
            "DenseRetriever(vectors='milvus://localhost:19530/papers')\n"
            "print(sorted(m for m in ('pymilvus', 'milvus_lite', 'grpc') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout
