"""ServeConfig: what `pilotfish serve` serves and the limits it enforces, passed to every worker process.

>>> c = ServeConfig(kb=".pilotfish", pipelines=("basic",))
>>> ServeConfig.from_json(c.to_json()) == c
True
>>> c.loopback
True
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass, field, fields

from pilotfish.errors import ConfigError

ENV_VAR = "PILOTFISH_SERVE_CONFIG"  # how `pilotfish serve --workers N` hands the config to each worker


@dataclass(frozen=True)
class ServeConfig:
    kb: str
    db: str | None = None
    pipelines: tuple[str, ...] = ("basic",)  # built-in names or pipeline files; the first is the default
    llm: str | None = None  # overrides every pipeline's answering LLM
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    auth: bool = True  # False only with --no-auth
    max_body_bytes: int = 1_000_000  # JSON requests
    max_upload_bytes: int = 50_000_000  # /api/documents
    max_messages: int = 64  # messages in one chat completion request
    max_question_chars: int = 4_000
    rate_per_minute: int = 120  # requests per key (per client address without auth), per worker
    burst: int = 20
    local_concurrency: int = 1  # answers generated at once by a local (llama.cpp) model, per worker
    api_concurrency: int = 16  # answers at once when every LLM is behind an API
    queue_size: int = 8  # answers that may wait for a slot; one more is refused with 429
    queue_wait_seconds: float = 120.0  # a request waiting longer than this is refused with 429
    cors_origins: tuple[str, ...] = ()  # CORS is off unless origins are named
    drain_seconds: float = 30.0  # on SIGTERM, in-flight requests get this long to finish
    metrics_dir: str | None = None  # Prometheus multiprocess folder, set when workers > 1
    log: bool | None = None  # --log / --no-log: the answer log on or off in every pipeline; None: each [log] decides
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        positive = ("port", "workers", "max_body_bytes", "max_upload_bytes", "max_messages", "max_question_chars",
                    "rate_per_minute", "burst", "local_concurrency", "api_concurrency")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"serve: {name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.queue_size < 0:
            raise ConfigError(f"serve: queue-size must be 0 or more, got {self.queue_size}")
        if not self.pipelines:
            raise ConfigError("serve: name at least one pipeline (--pipeline basic)")

    @property
    def loopback(self) -> bool:
        """True when only this machine can reach the server."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        data = json.loads(text)
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"serve config: unknown keys {sorted(unknown)}")
        for key in ("pipelines", "cors_origins"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)

    @classmethod
    def from_env(cls) -> ServeConfig:
        text = os.environ.get(ENV_VAR)
        if not text:
            raise ConfigError(f"{ENV_VAR} is not set: start the server with `pilotfish serve --kb DIR`")
        return cls.from_json(text)
