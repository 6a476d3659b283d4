"""LlamaCppLLM: an in-process GGUF model through llama-cpp-python, loaded lazily from the registry.

>>> from pilotfish.llms.llamacpp import LlamaCppLLM
>>> llm = LlamaCppLLM(model="smollm2-135m", n_ctx=512)             # nothing loads yet
>>> reply = llm.generate([{"role": "user", "content": "Say hi"}], max_tokens=8)[0]
>>> type(reply.text).__name__, reply.usage.completion_tokens <= 8, reply.usage.calls
('str', True, 1)
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

from pilotfish.component import Component
from pilotfish.errors import ConfigError, LLMError
from pilotfish.llms.base import Generation, Message, Usage, parse_json

logger = logging.getLogger(__name__)


def default_threads() -> int:
    """All cores but one on small machines, so the caller's own work does not stall generation
    (BENCHMARKS.md: on 2 cores with one busy, 2 llama.cpp threads decode at less than half the speed of 1)."""
    cores = os.cpu_count() or 1
    return cores if cores >= 8 else max(1, cores - 1)


def looks_like_path(model: str) -> bool:
    """Whether a model name is meant as a file: it holds a path separator or ends in .gguf.

    >>> looks_like_path("qwen2.5-0.5b"), looks_like_path("models/my.gguf"), looks_like_path("my.gguf")
    (False, True, True)
    """
    return model.endswith(".gguf") or "/" in model or os.sep in model


def check_model_file(model: str) -> None:
    """ConfigError saying what is wrong when `model`, a path, is not an existing .gguf file.

    >>> check_model_file("missing/model.gguf")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pilotfish.errors.ConfigError: model file missing/model.gguf does not exist; give an existing .gguf file or ...
    """
    path = Path(model).expanduser()
    what = "give an existing .gguf file or a packaged model name (pilotfish models list)"
    if not path.exists():
        raise ConfigError(f"model file {model} does not exist; {what}")
    if path.is_dir():
        raise ConfigError(f"{model} is a folder, not a model file; {what}")
    if path.suffix.lower() != ".gguf":
        raise ConfigError(f"{model} is not a .gguf file (llama.cpp reads GGUF models); {what}")


def _eval_after_cache(llama: Any, tokens: list[int]) -> None:
    """Evaluate `tokens`, reusing the longest prefix already in the context (the same prompt is often
    scored or judged several times), so the last position's logits are ready."""
    shared, cached = 0, llama.input_ids[:llama.n_tokens]
    while shared < min(len(cached), len(tokens) - 1) and cached[shared] == tokens[shared]:
        shared += 1
    llama.n_tokens = shared
    llama.eval(tokens[shared:])


def _last_logits(llama: Any) -> Any:
    """The logits at the last evaluated position (the only ones kept without `logits_all`)."""
    import numpy as np

    return np.ctypeslib.as_array(llama._ctx.get_logits(), shape=(llama.n_vocab(),)).astype(np.float64)


class LlamaCppLLM(Component):
    """A registry GGUF (`qwen2.5-0.5b`, `qwen2.5-1.5b`, `smollm2-135m`) or a path to a .gguf file."""

    def __init__(self, *, model: str = "qwen2.5-0.5b", n_ctx: int = 4096, threads: int | None = None,
                 seed: int = 0, price_per_mtok_in: float = 0.0, price_per_mtok_out: float = 0.0) -> None:
        if n_ctx < 256:
            raise ConfigError(f"n_ctx must be at least 256 tokens, got {n_ctx}")
        if threads is not None and threads < 1:
            raise ConfigError(f"threads must be >= 1, got {threads}")
        self._config = {"model": model, "n_ctx": n_ctx, "threads": threads, "seed": seed,
                        "price_per_mtok_in": price_per_mtok_in, "price_per_mtok_out": price_per_mtok_out}
        self.name = model
        self._lock = threading.Lock()
        self._llama: Any = None

    @property
    def passage_order(self) -> str:
        """The evidence order this model answers best from ("best_first" or "best_last"), as measured and
        kept in its registry entry's options; "best_first" for models without one."""
        from pilotfish.models import get_spec

        try:
            return str(get_spec(self._config["model"]).options.get("passage_order", "best_first"))
        except ConfigError:  # a path to a GGUF, not a registry name
            return "best_first"

    def _load(self) -> Any:
        with self._lock:
            if self._llama is None:
                from pilotfish.models import load_registry, model_path

                model = self._config["model"]
                if model not in load_registry() and looks_like_path(model):
                    check_model_file(model)  # a clear error, rather than "unknown model", for a mistyped path
                path = Path(model_path(model))
                try:
                    from llama_cpp import Llama
                except ImportError as err:
                    raise LLMError("llama-cpp-python is not installed; run `make install` "
                                   "(or pip install llama-cpp-python)") from err
                self._llama = Llama(model_path=str(path), n_ctx=self._config["n_ctx"], verbose=False,
                                    n_threads=self._config["threads"] or default_threads(),
                                    seed=self._config["seed"])
                logger.info("loaded %s from %s", self.name, path)
        return self._llama

    def _cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self._config["price_per_mtok_in"]
                + completion_tokens * self._config["price_per_mtok_out"]) / 1e6

    def generate(self, messages: Sequence[Message], *, n: int = 1, temperature: float = 0.0, max_tokens: int = 256,
                 stop: Sequence[str] | None = None, json_schema: dict[str, Any] | None = None) -> list[Generation]:
        llama = self._load()
        kwargs: dict[str, Any] = {"temperature": temperature, "max_tokens": max_tokens, "stop": list(stop or [])}
        if json_schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": json_schema}  # grammar-constrained
        out: list[Generation] = []
        for i in range(n):
            start = time.perf_counter()
            with self._lock:  # a Llama context is not thread-safe
                try:
                    reply = llama.create_chat_completion(messages=list(messages), seed=self._config["seed"] + i,
                                                         **kwargs)
                except ValueError as err:  # e.g. prompt longer than the context window
                    raise LLMError(f"{self.name}: {err}") from err
            choice, usage = reply["choices"][0], reply["usage"]
            text = choice["message"]["content"] or ""
            u = Usage(prompt_tokens=usage["prompt_tokens"], completion_tokens=usage["completion_tokens"],
                      seconds=time.perf_counter() - start, calls=1,
                      cost=self._cost(usage["prompt_tokens"], usage["completion_tokens"]))
            if json_schema is not None:
                parse_json(text, json_schema, usage=u)
            out.append(Generation(text=text, finish_reason=choice.get("finish_reason") or "stop", usage=u,
                                  model=self.name))
        return out

    async def agenerate(self, messages: Sequence[Message], **kwargs: Any) -> list[Generation]:
        return await asyncio.to_thread(self.generate, messages, **kwargs)

    def stream(self, messages: Sequence[Message], *, temperature: float = 0.0, max_tokens: int = 256,
               stop: Sequence[str] | None = None) -> Generator[str, None, Usage]:
        llama = self._load()
        start, pieces = time.perf_counter(), 0
        with self._lock:
            for chunk in llama.create_chat_completion(messages=list(messages), temperature=temperature,
                                                      max_tokens=max_tokens, stop=list(stop or []), stream=True,
                                                      seed=self._config["seed"]):
                delta = chunk["choices"][0].get("delta", {}).get("content")
                if delta:
                    pieces += 1
                    yield delta
            # llama.cpp's stream reports no usage: the context now holds exactly prompt + completion
            in_context = llama.n_tokens
        prompt = self._prompt_tokens(llama, messages)
        prompt = prompt if prompt is not None else max(0, in_context - pieces)
        completion = max(pieces, in_context - prompt)
        return Usage(prompt_tokens=prompt, completion_tokens=completion, seconds=time.perf_counter() - start,
                     calls=1, cost=self._cost(prompt, completion))

    def option_probs(self, messages: Sequence[Message], options: Sequence[str]) -> tuple[dict[str, float], Usage]:
        """The probability that the reply starts with each option (renormalised over the options), from one
        forward pass over the prompt: a calibrated yes/no judge without sampling.

        >>> msgs = [{"role": "user", "content": "Is Paris in France? Answer Yes or No."}]
        >>> probs, usage = LlamaCppLLM(model="smollm2-135m", n_ctx=512).option_probs(msgs, ["Yes", "No"])
        >>> sorted(probs), round(sum(probs.values()), 6), usage.completion_tokens
        (['No', 'Yes'], 1.0, 0)

        (A 135M model is a poor judge; qwen2.5-1.5b gives about {'Yes': 0.9, 'No': 0.1} here.)
        """
        import numpy as np

        llama = self._load()
        start = time.perf_counter()
        with self._lock:
            tokens = self._checked_prompt(llama, messages, 0, "its option probabilities are undefined")
            firsts = [llama.tokenize(o.encode("utf-8"), add_bos=False, special=False)[:1] for o in options]
            if any(not f for f in firsts) or len({f[0] for f in firsts}) < len(options):
                raise ConfigError(f"options {list(options)} must start with distinct tokens")
            _eval_after_cache(llama, tokens)
            logits = _last_logits(llama)
        chosen = np.array([logits[f[0]] for f in firsts])
        probs = np.exp(chosen - chosen.max())
        probs /= probs.sum()
        usage = Usage(prompt_tokens=len(tokens), completion_tokens=0, seconds=time.perf_counter() - start, calls=1,
                      cost=self._cost(len(tokens), 0))
        return {o: float(p) for o, p in zip(options, probs)}, usage

    def score_completion(self, messages: Sequence[Message], completion: str) -> tuple[list[tuple[str, float]], Usage]:
        """Log-probability of each token of `completion` as the reply to `messages` (teacher-forced), the
        token log-probabilities llama.cpp does not return without keeping every position's logits."""
        import numpy as np

        llama = self._load()
        start = time.perf_counter()
        with self._lock:
            answer = list(llama.tokenize(completion.encode("utf-8"), add_bos=False, special=False))
            prompt = self._checked_prompt(llama, messages, len(answer), "completions cannot be scored")
            _eval_after_cache(llama, prompt)
            scored = []
            for token in answer:
                logits = _last_logits(llama)
                top = logits.max()
                logprob = logits[token] - top - np.log(np.exp(logits - top).sum())
                scored.append((llama.detokenize([token]).decode("utf-8", errors="replace"), float(logprob)))
                llama.eval([token])
        usage = Usage(prompt_tokens=len(prompt) + len(answer), completion_tokens=0,
                      seconds=time.perf_counter() - start, calls=1, cost=self._cost(len(prompt) + len(answer), 0))
        return scored, usage

    def _checked_prompt(self, llama: Any, messages: Sequence[Message], extra: int, purpose: str) -> list[int]:
        """The chat prompt's tokens, refused without a chat template or when it and `extra` tokens
        would not fit the context."""
        tokens = self._prompt_token_ids(llama, messages)
        if tokens is None:
            raise LLMError(f"{self.name} has no chat template, so {purpose}")
        if len(tokens) + extra >= self._config["n_ctx"]:
            raise LLMError(f"{self.name}: the prompt ({len(tokens)} tokens, plus {extra} to score) exceeds n_ctx "
                           f"({self._config['n_ctx']}); shorten the evidence")
        return tokens

    @staticmethod
    def _prompt_token_ids(llama: Any, messages: Sequence[Message]) -> list[int] | None:
        """The chat prompt's tokens as the GGUF's own template formats it; None without a template."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            return None
        model = llama._model
        formatter = Jinja2ChatFormatter(template=template, eos_token=model.token_get_text(llama.token_eos()),
                                        bos_token=model.token_get_text(llama.token_bos()))
        prompt = formatter(messages=list(messages)).prompt
        return list(llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))

    @classmethod
    def _prompt_tokens(cls, llama: Any, messages: Sequence[Message]) -> int | None:
        """How many tokens the chat prompt takes; None without a template."""
        tokens = cls._prompt_token_ids(llama, messages)
        return None if tokens is None else len(tokens)
