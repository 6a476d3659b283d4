"""OpenAICompatLLM: any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp's server).

The API key is named by an environment variable (never stored); retries with exponential backoff on
429, 5xx, timeouts and dropped connections come from the official client.

>>> from pilotfish.llms.openai_compat import OpenAICompatLLM
>>> llm = OpenAICompatLLM(model="gpt-4o-mini", api_key_env="OPENAI_API_KEY")   # no I/O yet
>>> llm.generate([{"role": "user", "content": "Say hi"}])[0].text              # doctest: +SKIP
'Hi!'
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Generator, Sequence
from typing import Any

from pilotfish.component import Component
from pilotfish.errors import ConfigError, LLMError
from pilotfish.llms.base import Generation, Message, Usage, parse_json

JSON_MODES = ("json_schema", "json_object", "none")


class OpenAICompatLLM(Component):
    """Chat completions against `base_url` (None: OpenAI's own)."""

    def __init__(self, *, model: str, base_url: str | None = None, api_key_env: str | None = "OPENAI_API_KEY",
                 timeout: float = 60.0, max_retries: int = 3, json_mode: str = "json_schema",
                 price_per_mtok_in: float = 0.0, price_per_mtok_out: float = 0.0) -> None:
        if not model:
            raise ConfigError("OpenAICompatLLM needs a model name, e.g. model='gpt-4o-mini'")
        if timeout <= 0 or max_retries < 0:
            raise ConfigError(f"need timeout > 0 and max_retries >= 0, got {timeout}, {max_retries}")
        if json_mode not in JSON_MODES:
            raise ConfigError(f"unknown json_mode {json_mode!r}; choose one of {', '.join(JSON_MODES)}")
        self._config = {"model": model, "base_url": base_url, "api_key_env": api_key_env, "timeout": timeout,
                        "max_retries": max_retries, "json_mode": json_mode,
                        "price_per_mtok_in": price_per_mtok_in, "price_per_mtok_out": price_per_mtok_out}
        self.name = model
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}

    def _api_key(self) -> str:
        env = self._config["api_key_env"]
        if env is None:
            return "sk-no-key-needed"
        key = os.environ.get(env)
        if not key:
            raise LLMError(f"environment variable {env} is not set: export it with your API key "
                           "(or set api_key_env to none for a local server that needs no key)")
        return key

    def _client(self, kind: str = "sync") -> Any:
        with self._lock:
            if kind not in self._clients:
                import openai

                cls = openai.OpenAI if kind == "sync" else openai.AsyncOpenAI
                self._clients[kind] = cls(base_url=self._config["base_url"], api_key=self._api_key(),
                                          timeout=self._config["timeout"], max_retries=self._config["max_retries"])
            return self._clients[kind]

    def _request(self, messages: Sequence[Message], n: int, temperature: float, max_tokens: int,
                 stop: Sequence[str] | None, json_schema: dict[str, Any] | None) -> dict[str, Any]:
        request: dict[str, Any] = {"model": self.name, "messages": list(messages), "temperature": temperature,
                                   "max_tokens": max_tokens}
        if n != 1:
            request["n"] = n
        if stop:
            request["stop"] = list(stop)
        mode = self._config["json_mode"]
        if json_schema is not None and mode == "json_schema":
            request["response_format"] = {"type": "json_schema",
                                          "json_schema": {"name": "output", "schema": json_schema}}
        elif json_schema is not None and mode == "json_object":
            request["response_format"] = {"type": "json_object", "schema": json_schema}
        return request

    def _generations(self, reply: Any, seconds: float, json_schema: dict[str, Any] | None) -> list[Generation]:
        usage = reply.usage
        prompt = usage.prompt_tokens if usage else 0
        completion = usage.completion_tokens if usage else 0
        cost = (prompt * self._config["price_per_mtok_in"] + completion * self._config["price_per_mtok_out"]) / 1e6
        shared = Usage(prompt_tokens=prompt, completion_tokens=completion, seconds=seconds, cost=cost, calls=1)
        out = []
        for i, choice in enumerate(reply.choices):
            text = choice.message.content or ""
            if json_schema is not None:
                parse_json(text, json_schema, usage=shared)
            out.append(Generation(text=text, finish_reason=choice.finish_reason or "stop",
                                  usage=shared if i == 0 else Usage(), model=self.name))
        return out

    def generate(self, messages: Sequence[Message], *, n: int = 1, temperature: float = 0.0, max_tokens: int = 256,
                 stop: Sequence[str] | None = None, json_schema: dict[str, Any] | None = None) -> list[Generation]:
        import openai

        out: list[Generation] = []
        while len(out) < n:  # some servers (llama.cpp's) return one choice whatever n asks for
            start = time.perf_counter()
            try:
                reply = self._client().chat.completions.create(
                    **self._request(messages, n - len(out), temperature, max_tokens, stop, json_schema))
            except openai.APIError as err:
                raise self._error(err) from err
            out.extend(self._generations(reply, time.perf_counter() - start, json_schema))
        return out[:n]

    def option_probs(self, messages: Sequence[Message], options: Sequence[str]) -> tuple[dict[str, float], Usage]:
        """The probability that the reply starts with each option, renormalised over the options, from the
        first token's top log-probabilities (servers without `logprobs` raise LLMError)."""
        import math

        import openai

        start = time.perf_counter()
        try:
            reply = self._client().chat.completions.create(
                **self._request(messages, 1, 0.0, 1, None, None), logprobs=True, top_logprobs=20)
        except openai.APIError as err:
            raise self._error(err) from err
        seconds = time.perf_counter() - start
        content = reply.choices[0].logprobs.content if reply.choices and reply.choices[0].logprobs else None
        if not content:
            raise LLMError(f"{self.name} returned no log-probabilities; use a server that supports logprobs")
        mass = {o: 0.0 for o in options}
        for top in content[0].top_logprobs:
            for option in options:
                if top.token.strip() and option.lower().startswith(top.token.strip().lower()):
                    mass[option] += math.exp(top.logprob)
        total = sum(mass.values())
        if total <= 0:
            raise LLMError(f"{self.name} gave none of {list(options)} among its top 20 first tokens")
        usage = self._generations(reply, seconds, None)[0].usage
        return {o: m / total for o, m in mass.items()}, usage

    async def agenerate(self, messages: Sequence[Message], *, n: int = 1, temperature: float = 0.0,
                        max_tokens: int = 256, stop: Sequence[str] | None = None,
                        json_schema: dict[str, Any] | None = None) -> list[Generation]:
        import openai

        start = time.perf_counter()
        try:
            reply = await self._client("async").chat.completions.create(
                **self._request(messages, n, temperature, max_tokens, stop, json_schema))
        except openai.APIError as err:
            raise self._error(err) from err
        return self._generations(reply, time.perf_counter() - start, json_schema)

    def stream(self, messages: Sequence[Message], *, temperature: float = 0.0, max_tokens: int = 256,
               stop: Sequence[str] | None = None) -> Generator[str, None, Usage]:
        import httpx
        import openai

        start, pieces, reported = time.perf_counter(), 0, None
        try:
            chunks = self._client().chat.completions.create(
                **self._request(messages, 1, temperature, max_tokens, stop, None), stream=True,
                stream_options={"include_usage": True})
            for chunk in chunks:
                if getattr(chunk, "usage", None):  # the last chunk, from servers that honour include_usage
                    reported = chunk.usage
                if chunk.choices and chunk.choices[0].delta.content:
                    pieces += 1
                    yield chunk.choices[0].delta.content
        except openai.APIError as err:
            raise self._error(err) from err
        except httpx.HTTPError as err:  # the connection broke while the answer streamed in
            where = self._config["base_url"] or "the OpenAI API"
            raise LLMError(f"lost the connection to {where} while streaming: {err}") from err
        prompt = reported.prompt_tokens if reported else 0
        completion = reported.completion_tokens if reported else pieces  # no report: one token a piece
        return Usage(prompt_tokens=prompt, completion_tokens=completion, seconds=time.perf_counter() - start,
                     calls=1, cost=(prompt * self._config["price_per_mtok_in"]
                                    + completion * self._config["price_per_mtok_out"]) / 1e6)

    def _error(self, err: Exception) -> LLMError:
        import openai

        where = self._config["base_url"] or "the OpenAI API"
        if isinstance(err, openai.APITimeoutError):
            return LLMError(f"{self.name} at {where} did not answer within {self._config['timeout']}s "
                            f"(after {self._config['max_retries']} retries)")
        if isinstance(err, openai.APIConnectionError):
            return LLMError(f"cannot reach {where}: is the server running and the URL right?")
        if isinstance(err, openai.AuthenticationError):
            return LLMError(f"{where} refused the API key from {self._config['api_key_env']}")
        if isinstance(err, openai.NotFoundError):
            return LLMError(f"{where} does not serve model {self.name!r}")
        return LLMError(f"{self.name} at {where} failed: {err}")
