"""Serving settings: one frozen dataclass, read from the environment, overridable in code."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlapi.errors import MlapiError

# Environment variable for each setting (the README's "Limits and settings" table lists them).
ENV_VARS = {
    "modelo_path": "MODELO_PATH",
    "models_dir": "MODELS_DIR",
    "max_body_bytes": "MAX_BODY_BYTES",
    "max_batch": "MAX_BATCH",
    "sentiment_max_batch": "SENTIMENT_MAX_BATCH",
    "sentiment_max_chars": "SENTIMENT_MAX_CHARS",
    "api_key": "API_KEY",
}


@dataclass(frozen=True)
class ServingSettings:
    modelo_path: Path = Path("modelo.pkl")  # Iris model; modelo.onnx beside it is preferred
    models_dir: Path = Path("models")  # holds sentiment/ (ONNX + vocabulary + metadata)
    max_body_bytes: int = 1 << 20  # larger bodies get 413 before they are read
    max_batch: int = 1000  # rows per Iris `instances` request
    sentiment_max_batch: int = 256  # texts per sentiment request
    sentiment_max_chars: int = 20_000  # characters per review
    api_key: str | None = None  # when set, prediction endpoints require it

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> ServingSettings:
        """Defaults, then environment variables, then explicit `overrides`."""
        env = os.environ if env is None else env
        values = {}
        for field in dataclasses.fields(cls):
            raw = env.get(ENV_VARS[field.name])
            if raw not in (None, ""):
                values[field.name] = _parse(field.name, raw)
        values.update({k: _parse(k, v) for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings._check()
        return settings

    def _check(self) -> None:
        for name in ("max_body_bytes", "max_batch", "sentiment_max_batch", "sentiment_max_chars"):
            if getattr(self, name) < 1:
                raise MlapiError(f"{ENV_VARS[name]} must be a positive integer")


def _parse(name: str, raw):
    """A setting's value from a string (environment) or an already typed override."""
    if name in ("modelo_path", "models_dir"):
        return Path(raw)
    if name == "api_key" or not isinstance(raw, str):
        return raw
    try:
        return int(raw)
    except ValueError:
        raise MlapiError(f"{ENV_VARS[name]} must be an integer, got {raw!r}") from None
