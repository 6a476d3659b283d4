"""Project settings from `pilotfish.toml` (current folder, or the file named by PILOTFISH_CONFIG).

    [llms.local-vllm]            # a named endpoint: pilotfish ask --llm local-vllm
    type = "openai"
    base_url = "http://127.0.0.1:8000/v1"
    model = "Qwen/Qwen2.5-7B-Instruct"
    api_key_env = "VLLM_KEY"     # the NAME of the variable holding the key, never the key

>>> load_settings(Path("/nonexistent.toml"))
{}
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pilotfish.errors import ConfigError


def config_path() -> Path:
    return Path(os.environ.get("PILOTFISH_CONFIG", "pilotfish.toml"))


def load_settings(path: Path | None = None) -> dict[str, Any]:
    """The parsed TOML, or {} when the file does not exist; a malformed file is a ConfigError."""
    path = path or config_path()
    if not path.is_file():
        return {}
    return read_toml(path)


def read_toml(path: Path) -> dict[str, Any]:
    """The one TOML loader: the parsed file, or a ConfigError that names the file and the problem."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror or err}") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path} is not valid TOML: {err}") from err
