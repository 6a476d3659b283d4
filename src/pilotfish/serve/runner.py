"""run_server: checks what `pilotfish serve` was asked for, then runs uvicorn with one app per worker.

Each worker builds its own `Service` from the config in an environment variable (`uvicorn --workers`
starts fresh processes). SIGTERM (or Ctrl-C) stops accepting connections and lets in-flight requests,
streams included, finish for up to `drain_seconds`.
"""

from __future__ import annotations

import logging
import os
import tempfile

from fastapi import FastAPI

from pilotfish.errors import ConfigError
from pilotfish.knowledge.base import KnowledgeBase
from pilotfish.serve.config import ENV_VAR, ServeConfig
from pilotfish.serve.keys import KeyStore

log = logging.getLogger("pilotfish.serve")


def check_serving(config: ServeConfig) -> list[str]:
    """Refuse what must not start (an open port without keys); return warnings to print loudly."""
    kb = KnowledgeBase.open(config.kb, db=config.db)
    keys = len(KeyStore(kb.store).list())  # revoked keys count: revoking every key must not open the server
    warnings = []
    if not config.auth:
        warnings.append(f"AUTH IS OFF (--no-auth): anyone who can reach {config.host}:{config.port} may ask, "
                        "read every collection and upload documents. Use it only behind a gateway of your own.")
    elif keys == 0:
        if not config.loopback:
            raise ConfigError(f"refusing to serve on {config.host} without an API key: create one with "
                              f"`pilotfish keys create --name NAME --kb {config.kb}`, or pass --no-auth to serve "
                              "without keys on purpose")
        warnings.append("no API key was created yet: serving without keys on loopback only; once a key is "
                        "created (`pilotfish keys create`), every request needs one")
    from pilotfish.answer.build import build

    for pipeline in config.pipelines:  # a bad pipeline name or file fails here, before any worker starts
        build(pipeline, kb, llm=config.llm, log=config.log)
    return warnings


def run_server(config: ServeConfig) -> None:
    import uvicorn

    if config.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = config.metrics_dir or tempfile.mkdtemp(prefix="pilotfish-metrics-")
    os.environ[ENV_VAR] = config.to_json()
    uvicorn.run("pilotfish.serve.runner:worker_app", factory=True, host=config.host, port=config.port,
                workers=config.workers, timeout_graceful_shutdown=int(config.drain_seconds), log_level="info",
                access_log=False)


def worker_app() -> FastAPI:
    """The app of one worker process (uvicorn's factory)."""
    from pilotfish.serve.app import create_app

    return create_app(ServeConfig.from_env())
