"""OpenAICompatLLM against a real OpenAI-compatible server: llama.cpp's, serving SmolLM2-135M."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from pilotfish.errors import LLMError
from pilotfish.llms.openai_compat import OpenAICompatLLM
from pilotfish.models import model_path

pytestmark = pytest.mark.integration

MESSAGES = [{"role": "user", "content": "Name one colour of the rainbow."}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(model_path("smollm2-135m")),
                             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
                             "--n_threads", str(max(1, (os.cpu_count() or 2) - 1))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 90
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("llama_cpp.server exited at start")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("llama_cpp.server did not come up within 90 s")


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = _free_port()
    proc = _start(port)
    yield f"http://127.0.0.1:{port}/v1", proc
    proc.kill()
    proc.wait()


def _llm(base_url: str, **kwargs: object) -> OpenAICompatLLM:
    return OpenAICompatLLM(model="smollm2-135m", base_url=base_url, api_key_env=None, **kwargs)  # type: ignore[arg-type]


def test_completion_with_usage(server: tuple[str, subprocess.Popen[bytes]]) -> None:
    gen = _llm(server[0]).generate(MESSAGES, max_tokens=16)[0]
    assert gen.text.strip() and gen.usage.prompt_tokens > 5 and 0 < gen.usage.completion_tokens <= 16
    assert gen.usage.seconds > 0 and gen.usage.cost == 0.0


def test_streaming_matches_pieces(server: tuple[str, subprocess.Popen[bytes]]) -> None:
    pieces = list(_llm(server[0]).stream(MESSAGES, max_tokens=16))
    assert len(pieces) > 1 and "".join(pieces).strip()


def test_n_greater_than_one(server: tuple[str, subprocess.Popen[bytes]]) -> None:
    gens = _llm(server[0]).generate(MESSAGES, n=3, temperature=0.9, max_tokens=12)
    assert len(gens) == 3 and all(g.text.strip() for g in gens)


def test_json_output_follows_schema(server: tuple[str, subprocess.Popen[bytes]]) -> None:
    schema = {"type": "object", "properties": {"colour": {"type": "string"}}, "required": ["colour"]}
    gen = _llm(server[0], json_mode="json_object").generate(MESSAGES, json_schema=schema, max_tokens=40)[0]
    assert isinstance(gen.json()["colour"], str)


def test_async_generation(server: tuple[str, subprocess.Popen[bytes]]) -> None:
    gens = asyncio.run(_llm(server[0]).agenerate(MESSAGES, max_tokens=8))
    assert gens[0].text.strip()


def test_server_stopped_mid_run_gives_llm_error_within_timeout() -> None:
    from concurrent.futures import ThreadPoolExecutor

    port = _free_port()
    proc = _start(port)
    llm = _llm(f"http://127.0.0.1:{port}/v1", timeout=5, max_retries=1)
    long_request = [{"role": "user", "content": "Count from 1 to 500, one number per line."}]
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(llm.generate, long_request, max_tokens=1500)
        time.sleep(1.0)  # the generation is under way
        killed_at = time.time()
        proc.kill()
        proc.wait()
        with pytest.raises(LLMError, match="cannot reach|did not answer|failed"):
            future.result(timeout=30)
    assert time.time() - killed_at < 20  # the timeout bounds the wait, with one retry
