"""`import pilotfish` (and the CLI, knowledge base and BM25 modules) must not pull in heavy libraries."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "faiss", "transformers", "llama_cpp", "sentence_transformers", "onnxruntime")


def test_import_does_not_load_heavy_libraries() -> None:
    code = (
        "import pilotfish, pilotfish.cli, pilotfish.knowledge.base, pilotfish.retrievers.bm25, "
        "pilotfish.llms, pilotfish.llms.llamacpp, pilotfish.llms.openai_compat, pilotfish.answer.graph; import sys; "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout


def test_constructing_components_loads_nothing_heavy() -> None:
    # __init__ validates and stores arguments; models and FAISS load on first use only
    code = (
        "import sys\n"
        "from pilotfish.retrievers.dense import DenseRetriever\n"
        "from pilotfish.retrievers.rerank import CrossEncoderReranker\n"
        "from pilotfish.retrievers.hybrid import HybridRetriever\n"
        "from pilotfish.models.embedding import Embedder\n"
        "d = DenseRetriever(model='bge-small', index='hnsw')\n"
        "HybridRetriever(retrievers=[d], fusion='weighted')\n"
        "CrossEncoderReranker(fusion='rrf'); Embedder(model='minilm-l6')\n"
        "from pilotfish.llms.llamacpp import LlamaCppLLM; LlamaCppLLM(model='qwen2.5-0.5b')\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout


def test_the_check_sees_a_heavy_import() -> None:
    code = f"import faiss, sys; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "['faiss']"
