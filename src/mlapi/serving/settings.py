"""Serving settings: one frozen dataclass, read from the environment, overridable in code.

Every serving default lives here once (where the models are, where the server listens); the
commands, app.py, gunicorn's settings and the Iris trainer import them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlapi.errors import MlapiError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
IRIS_MODEL_FILE = "modelo.pkl"  # the seed's name; modelo.onnx beside it is preferred
DEFAULT_MODELO_PATH = Path(IRIS_MODEL_FILE)
DEFAULT_MODELS_DIR = Path("models")
MODEL_NAMES = ("iris", "sentiment")

# Environment variable for each setting (the README's "Limits and settings" table lists them).
ENV_VARS = {
    "modelo_path": "MODELO_PATH",
    "models_dir": "MODELS_DIR",
    "max_body_bytes": "MAX_BODY_BYTES",
    "max_batch": "MAX_BATCH",
    "sentiment_max_batch": "SENTIMENT_MAX_BATCH",
    "sentiment_max_chars": "SENTIMENT_MAX_CHARS",
    "api_key": "API_KEY",
    "serve_models": "SERVE_MODELS",
    # Hostile clients and the trust model (issue 16)
    "trusted_hosts": "TRUSTED_HOSTS",
    "allow_pickle": "ALLOW_PICKLE",
    "sentiment_max_total_chars": "SENTIMENT_MAX_TOTAL_CHARS",
    "max_concurrent_large": "MAX_CONCURRENT_LARGE_REQUESTS",
    "metrics": "METRICS",
    "log_format": "LOG_FORMAT",
    "cors_origins": "CORS_ORIGINS",
    "model_poll_seconds": "MODEL_POLL_SECONDS",
    "keep_versions": "KEEP_VERSIONS",
}
LOG_FORMATS = ("text", "json")
_BOOLEANS = {"1": True, "true": True, "on": True, "0": False, "false": False, "off": False}


@dataclass(frozen=True)
class ServingSettings:
    modelo_path: Path = DEFAULT_MODELO_PATH  # Iris model; modelo.onnx beside it is preferred
    models_dir: Path = DEFAULT_MODELS_DIR  # holds sentiment/ (ONNX + vocabulary + metadata)
    max_body_bytes: int = 1 << 20  # larger bodies get 413 before they are read
    max_batch: int = 1000  # rows per Iris `instances` request
    sentiment_max_batch: int = 256  # texts per sentiment request
    sentiment_max_chars: int = 20_000  # characters per review
    api_key: str | None = None  # when set, prediction endpoints require it
    # The models the server must load to be ready; None: Iris, and sentiment when installed.
    serve_models: tuple[str, ...] | None = None
    # Hostile clients and the trust model (README: Limits and settings, Trust model).
    trusted_hosts: tuple[str, ...] | None = None  # Host names served; None: any, never reflected
    allow_pickle: bool = True  # False: Iris only from modelo.onnx, a pickle is never loaded
    sentiment_max_total_chars: int = 300_000  # all texts of one request together
    max_concurrent_large: int = 1  # requests over 64 KiB a worker runs at once; others wait
    metrics: bool = True  # GET /metrics (Prometheus); METRICS=0 turns it off
    log_format: str = "text"  # "json": one JSON object per access and error line
    cors_origins: tuple[str, ...] = ()  # browser origins allowed to call the API; none by default
    model_poll_seconds: float = 2.0  # each worker looks for a new served version this often; 0: off
    keep_versions: int = 2  # older versions a worker keeps loaded per model (asked for by number)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> ServingSettings:
        """Defaults, then environment variables, then explicit `overrides`."""
        env = os.environ if env is None else env
        values = {}
        for field in dataclasses.fields(cls):
            raw = env.get(ENV_VARS[field.name])
            if raw not in (None, "") or (field.name == "api_key" and raw is not None):
                values[field.name] = _parse(field.name, raw)
        values.update({k: _parse(k, v) for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings._check()
        return settings

    def _check(self) -> None:
        positive = ("max_body_bytes", "max_batch", "sentiment_max_batch", "sentiment_max_chars")
        limits = ("sentiment_max_total_chars", "max_concurrent_large", "keep_versions")
        for name in (*positive, *limits):
            if getattr(self, name) < 1:
                raise MlapiError(f"{ENV_VARS[name]} must be a positive integer")
        if self.api_key is not None and not self.api_key.strip():
            raise MlapiError(
                "API_KEY is set but empty: set a key, or unset API_KEY to serve without one"
            )
        if not 0 <= self.model_poll_seconds <= 3600:
            raise MlapiError(
                f"MODEL_POLL_SECONDS must be seconds from 0 (off) to 3600, "
                f"got {self.model_poll_seconds!r}"
            )
        if self.log_format not in LOG_FORMATS:
            allowed = " or ".join(LOG_FORMATS)
            raise MlapiError(f"LOG_FORMAT must be {allowed}, got {self.log_format!r}")

    @property
    def iris_versioned(self) -> bool:
        """Iris from MODELS_DIR/iris/<version>/ unless MODELO_PATH names another file."""
        return self.modelo_path == DEFAULT_MODELO_PATH

    @property
    def sentiment_dir(self) -> Path:
        return self.models_dir / "sentiment"

    def models_to_serve(self) -> tuple[str, ...]:
        """SERVE_MODELS, or by default Iris plus sentiment when MODELS_DIR/sentiment exists.

        A sentiment folder that exists but fails to load (tampered, half copied) is a model
        meant to be served that is not: /ready says 503. No folder at all means none was
        installed, and the server is ready with Iris alone.
        """
        if self.serve_models is not None:
            return self.serve_models
        return ("iris", "sentiment") if self.sentiment_dir.exists() else ("iris",)


def _parse(name: str, raw):
    """A setting's value from a string (environment) or an already typed override."""
    if name in ("modelo_path", "models_dir"):
        return Path(raw)
    if name == "serve_models":
        return _model_names(raw)
    if name == "trusted_hosts":
        return _host_names(raw)
    if name == "allow_pickle":
        return _flag(name, raw)
    if name == "cors_origins" and isinstance(raw, str):
        return tuple(origin.strip() for origin in raw.split(",") if origin.strip())
    if name == "metrics" and isinstance(raw, str):
        if raw.strip().lower() not in _BOOLEANS:
            raise MlapiError(f"METRICS must be 1 or 0 (on or off), got {raw!r}")
        return _BOOLEANS[raw.strip().lower()]
    if name == "model_poll_seconds" and isinstance(raw, str):
        try:
            return float(raw)
        except ValueError:
            raise MlapiError(
                f"MODEL_POLL_SECONDS must be a number of seconds, got {raw!r}"
            ) from None
    if name == "log_format" and isinstance(raw, str):
        return raw.strip().lower()
    if name == "api_key" or not isinstance(raw, str):
        return raw
    try:
        return int(raw)
    except ValueError:
        raise MlapiError(f"{ENV_VARS[name]} must be an integer, got {raw!r}") from None


def _model_names(raw) -> tuple[str, ...]:
    names = tuple(n.strip() for n in raw.split(",")) if isinstance(raw, str) else tuple(raw)
    unknown = [n for n in names if n not in MODEL_NAMES]
    if unknown or not names:
        allowed = ", ".join(MODEL_NAMES)
        raise MlapiError(f"SERVE_MODELS must be a comma-separated list of {allowed}, got {raw!r}")
    return tuple(dict.fromkeys(names))


def _host_names(raw) -> tuple[str, ...]:
    names = tuple(n.strip() for n in raw.split(",")) if isinstance(raw, str) else tuple(raw)
    if not names or not all(names):
        raise MlapiError(f"TRUSTED_HOSTS must be a comma-separated list of host names, got {raw!r}")
    return names


def _flag(name: str, raw) -> bool:
    if isinstance(raw, bool):
        return raw
    value = str(raw).strip().lower()
    if value not in ("0", "1", "true", "false"):
        raise MlapiError(f"{ENV_VARS[name]} must be 0 or 1, got {raw!r}")
    return value in ("1", "true")


def default_host(env: Mapping[str, str] | None = None) -> str:
    """$HOST, else DEFAULT_HOST: where app.py, `mlapi serve` and gunicorn listen."""
    env = os.environ if env is None else env
    return env.get("HOST") or DEFAULT_HOST


def default_port(env: Mapping[str, str] | None = None) -> str:
    """$PORT as written (checked by `listen_port`), else DEFAULT_PORT."""
    env = os.environ if env is None else env
    return env.get("PORT") or str(DEFAULT_PORT)


def listen_port(raw: str | int, flag: str = "--port") -> int:
    """A TCP port from a flag or $PORT, or one line saying what is allowed."""
    try:
        port = int(raw)
    except (TypeError, ValueError):
        port = None
    if port is None or not 1 <= port <= 65535:
        raise MlapiError(f"{flag} must be an integer from 1 to 65535, got {raw!r}")
    return port


def default_modelo_path(env: Mapping[str, str] | None = None) -> Path:
    """$MODELO_PATH, else ./modelo.pkl: where the Iris model is written and read."""
    env = os.environ if env is None else env
    return Path(env.get("MODELO_PATH") or DEFAULT_MODELO_PATH)


def default_models_dir(env: Mapping[str, str] | None = None) -> Path:
    """$MODELS_DIR, else ./models: the folder that holds sentiment/."""
    env = os.environ if env is None else env
    return Path(env.get("MODELS_DIR") or DEFAULT_MODELS_DIR)
