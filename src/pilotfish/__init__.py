"""pilotfish: small models steer large ones.

The public API, imported on first use so that `import pilotfish` stays light (no torch, FAISS or llama.cpp
until a model is needed):

>>> import pilotfish
>>> spec = pilotfish.PipelineSpec.parse("verified", llm="smollm2-135m")
>>> spec.nodes  # doctest: +NORMALIZE_WHITESPACE
('link_tables', 'link_entities', 'graph_paths', 'retrieve', 'sql', 'table_evidence', 'graph_evidence', 'generate',
 'verify')
>>> sorted(pilotfish.__all__)[:4]
['Answer', 'AnswerPipeline', 'BM25Retriever', 'Cascade']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_WHERE = {
    "KnowledgeBase": "pilotfish.knowledge.base",
    "AnswerPipeline": "pilotfish.answer.graph",
    "PipelineSpec": "pilotfish.answer.spec",
    "build": "pilotfish.answer.build",
    "resolve_llm": "pilotfish.llms",
    "evaluate": "pilotfish.evaluation.runner",
    "load_dataset": "pilotfish.evaluation.datasets",
    "Answer": "pilotfish.types",
    "Passage": "pilotfish.types",
    "Citation": "pilotfish.types",
    "BM25Retriever": "pilotfish.retrievers.bm25",
    "DenseRetriever": "pilotfish.retrievers.dense",
    "HybridRetriever": "pilotfish.retrievers.hybrid",
    "CrossEncoderReranker": "pilotfish.retrievers.rerank",
    "NLIGroundednessChecker": "pilotfish.verification.checker",
    "Cascade": "pilotfish.routing.cascade",
    "TableCatalog": "pilotfish.tables.catalog",
    "TableLinker": "pilotfish.tables.linker",
    "SQLGenerator": "pilotfish.tables.sql",
    "SQLSandbox": "pilotfish.tables.sandbox",
    "TableEvidence": "pilotfish.tables.evidence",
    "KnowledgeGraph": "pilotfish.graphs.graph",
    "EntityLinker": "pilotfish.graphs.linker",
    "PathRetriever": "pilotfish.graphs.paths",
    "TrainedPathScorer": "pilotfish.graphs.scorers",
    "GraphEvidence": "pilotfish.graphs.evidence",
}
__all__ = sorted(_WHERE)

if TYPE_CHECKING:
    from pilotfish.answer.build import build
    from pilotfish.answer.graph import AnswerPipeline
    from pilotfish.answer.spec import PipelineSpec
    from pilotfish.evaluation.datasets import load_dataset
    from pilotfish.evaluation.runner import evaluate
    from pilotfish.graphs.evidence import GraphEvidence
    from pilotfish.graphs.graph import KnowledgeGraph
    from pilotfish.graphs.linker import EntityLinker
    from pilotfish.graphs.paths import PathRetriever
    from pilotfish.graphs.scorers import TrainedPathScorer
    from pilotfish.knowledge.base import KnowledgeBase
    from pilotfish.llms import resolve_llm
    from pilotfish.retrievers.bm25 import BM25Retriever
    from pilotfish.retrievers.dense import DenseRetriever
    from pilotfish.retrievers.hybrid import HybridRetriever
    from pilotfish.retrievers.rerank import CrossEncoderReranker
    from pilotfish.routing.cascade import Cascade
    from pilotfish.tables.catalog import TableCatalog
    from pilotfish.tables.evidence import TableEvidence
    from pilotfish.tables.linker import TableLinker
    from pilotfish.tables.sandbox import SQLSandbox
    from pilotfish.tables.sql import SQLGenerator
    from pilotfish.types import Answer, Citation, Passage
    from pilotfish.verification.checker import NLIGroundednessChecker


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'pilotfish' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
