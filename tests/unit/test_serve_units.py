"""The server's rules that need no server: filters narrowed to a key's collections, config checks."""

from __future__ import annotations

import datetime as dt

import pytest

from pilotfish.errors import ConfigError
from pilotfish.serve.config import ServeConfig
from pilotfish.serve.keys import ApiKey
from pilotfish.serve.service import RequestError, Service
from pilotfish.serve.views import hide_paths


def _key(collections: list[str] | None) -> ApiKey:
    return ApiKey(1, "k", "ask", collections, "pf_abc", dt.datetime(2026, 1, 1))


def test_a_limited_key_reads_only_its_collections_whatever_the_client_asks() -> None:
    limited = _key(["manuals", "faq"])
    assert Service.filters(limited, None) == {"collection": ["manuals", "faq"]}
    assert Service.filters(limited, {"lang": "en"}) == {"lang": "en", "collection": ["manuals", "faq"]}
    assert Service.filters(limited, {"collection": ["faq", "secret"]}) == {"collection": ["faq"]}
    with pytest.raises(RequestError) as refused:
        Service.filters(limited, {"collection": "secret"})
    assert refused.value.status == 403 and "manuals" in refused.value.message
    assert Service.filters(_key(None), {"collection": "secret"}) == {"collection": "secret"}
    assert Service.filters(None, None) is None


def test_config_refuses_impossible_limits_and_knows_loopback() -> None:
    with pytest.raises(ConfigError, match="workers"):
        ServeConfig(kb="kb", workers=0)
    with pytest.raises(ConfigError, match="at least one pipeline"):
        ServeConfig(kb="kb", pipelines=())
    assert ServeConfig(kb="kb", host="::1").loopback and ServeConfig(kb="kb", host="localhost").loopback
    assert not ServeConfig(kb="kb", host="0.0.0.0").loopback and not ServeConfig(kb="kb", host="example.org").loopback
    with pytest.raises(ConfigError, match="unknown keys"):
        ServeConfig.from_json('{"kb": "kb", "prot": 1}')


def test_clients_see_file_names_not_server_paths() -> None:
    data = {"evidence": [{"source": "/srv/data/docs/a.md", "doc_id": "docs/a.md"}, {"source": "https://x.org/p"}],
            "source": "C:\\data\\b.txt"}
    assert hide_paths(data) == {"evidence": [{"source": "a.md", "doc_id": "docs/a.md"}, {"source": "https://x.org/p"}],
                                "source": "b.txt"}


def test_concurrent_searches_share_a_batch_and_get_their_own_results(text_kb) -> None:  # noqa: ANN001
    import asyncio

    from pilotfish.serve.batcher import SearchBatcher

    kb = text_kb(bread_md="Sourdough bread rises with wild yeast.", tea_md="Green tea is steamed, black tea is "
                 "oxidised.", rust_md="Rust prevents data races with ownership.")
    calls: list[int] = []
    real = kb.search_documents_batch

    def counted(queries, **kw):  # noqa: ANN001, ANN003, ANN202
        calls.append(len(queries))
        if any(q == "boom" for q in queries):
            raise ValueError("a bad query")
        return real(queries, **kw)

    kb.search_documents_batch = counted
    batcher = SearchBatcher(kb)
    queries = ["wild yeast bread", "oxidised tea", "ownership data races", "boom", "steamed tea"]

    async def run() -> list:  # noqa: ANN401
        return await asyncio.gather(*[batcher.search(q, mode="bm25", top_k=1, filters=None) for q in queries],
                                    return_exceptions=True)

    found = asyncio.run(run())
    assert [r[0].doc_id for r in found if isinstance(r, list)] == ["docs/bread.md", "docs/tea.md", "docs/rust.md",
                                                                   "docs/tea.md"]
    assert isinstance(found[3], ValueError)  # only the bad query fails
    assert calls == [5, 1, 1, 1, 1, 1]  # the five went as one batch; when it failed, each ran alone
