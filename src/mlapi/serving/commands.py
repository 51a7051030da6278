"""`mlapi serve`: the production server (gunicorn with the repo's settings).

It says what it will serve before it starts, trains the Iris model first when asked
(`--train-missing`: seconds, no download), and never trains or downloads the sentiment
model: that is `mlapi train imdb`, which the plan names when no sentiment model is installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from mlapi.errors import MlapiError
from mlapi.serving.settings import (
    DEFAULT_HOST,
    DEFAULT_MODELO_PATH,
    DEFAULT_MODELS_DIR,
    DEFAULT_PORT,
    ServingSettings,
    default_host,
    default_modelo_path,
    default_models_dir,
    default_port,
    listen_port,
)

GUNICORN_CONFIG = "python:mlapi.serving.gunicorn_conf"
WSGI_APP = "mlapi.serving.wsgi:app"


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="serve the API with gunicorn",
        description="Serve the Iris model and, when one is installed, the sentiment model. "
        "The sentiment model is never trained here: `mlapi train imdb` installs one.",
    )
    serve.add_argument("--host", default=None, help=f"default: $HOST or {DEFAULT_HOST}")
    serve.add_argument("--port", default=None, help=f"1-65535 (default: $PORT or {DEFAULT_PORT})")
    serve.add_argument("--workers", default=None, help="at least 1 (default: one per core)")
    serve.add_argument(
        "--modelo-path",
        default=None,
        help=f"Iris model (default: $MODELO_PATH or {DEFAULT_MODELO_PATH})",
    )
    serve.add_argument(
        "--models-dir",
        default=None,
        help=f"holds sentiment/ (default: $MODELS_DIR or {DEFAULT_MODELS_DIR})",
    )
    serve.add_argument(
        "--train-missing",
        action="store_true",
        help="first train the Iris model if it is missing (seconds, no download)",
    )
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    host, port, workers = _listen_address(args)
    os.environ.update(HOST=host, PORT=str(port))  # what gunicorn's config reads, now checked
    _check_gunicorn_settings()
    modelo_path = _file_flag("--modelo-path", args.modelo_path, default_modelo_path())
    models_dir = _folder_flag("--models-dir", args.models_dir, default_models_dir())
    settings = ServingSettings.from_env(modelo_path=modelo_path, models_dir=models_dir)
    if args.train_missing and "iris" in settings.models_to_serve():
        train_missing_iris(settings)
    for line in serving_plan(settings):
        print(line, flush=True)
    os.environ.update(MODELO_PATH=str(modelo_path), MODELS_DIR=str(models_dir))
    command = [sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONFIG, "--bind", f"{host}:{port}"]
    if workers:
        command += ["--workers", str(workers)]
    print(f"Serving on http://{host}:{port}/ with gunicorn (Ctrl-C to stop)", flush=True)
    os.execv(sys.executable, [*command, WSGI_APP])


def _check_gunicorn_settings() -> None:
    """The gunicorn settings read from the environment (WEB_CONCURRENCY, GUNICORN_THREADS...),
    checked here, so that a bad one is one line before gunicorn starts."""
    import importlib

    name = GUNICORN_CONFIG.removeprefix("python:")
    try:
        if name in sys.modules:
            importlib.reload(sys.modules[name])
        else:
            importlib.import_module(name)
    except SystemExit as exc:  # the config's own one-line error
        raise MlapiError(str(exc).removeprefix("mlapi: error: ")) from None


def _listen_address(args: argparse.Namespace) -> tuple[str, int, int | None]:
    host = args.host if args.host is not None else default_host()
    if not host.strip():
        raise MlapiError(f"--host must be a host name or address, got {host!r}")
    port_flag = "--port" if args.port is not None else "PORT"
    port = listen_port(args.port if args.port is not None else default_port(), port_flag)
    workers = None
    if args.workers is not None:
        try:
            workers = int(args.workers)
        except ValueError:
            workers = 0
        if workers < 1:
            raise MlapiError(f"--workers must be an integer of at least 1, got {args.workers!r}")
    return host, port, workers


def _file_flag(flag: str, raw: str | None, default: Path) -> Path:
    path = Path(raw) if raw is not None else default
    if path.is_dir():
        raise MlapiError(f"{flag} must be a model file, got {str(path)!r}, which is a folder")
    return path


def _folder_flag(flag: str, raw: str | None, default: Path) -> Path:
    path = Path(raw) if raw is not None else default
    if path.exists() and not path.is_dir():
        raise MlapiError(f"{flag} must be a folder (it holds sentiment/), got file {str(path)!r}")
    return path


def iris_model_file(settings: ServingSettings) -> Path | None:
    """The Iris file the server will load: MODELO_PATH's, else the served version's."""
    if settings.iris_versioned:
        from mlapi.versions import served_artifact

        return served_artifact(settings.models_dir, "iris", settings.modelo_path)
    return settings.modelo_path if settings.modelo_path.exists() else None


def train_missing_iris(settings: ServingSettings) -> None:
    """Train the Iris model if it is absent: seconds, from scikit-learn's bundled data."""
    if iris_model_file(settings) is not None:
        return
    where = settings.modelo_path
    if settings.iris_versioned:
        where = settings.models_dir / "iris"
    print(f"No Iris model at {where}: training it now (--train-missing) ...", flush=True)
    from mlapi.iris_model import train_and_save, train_new_version

    if settings.iris_versioned:
        where, summary = train_new_version(settings.models_dir)
    else:
        summary = train_and_save(where)
    accuracy = summary["holdout_accuracy"]
    print(f"Trained the Iris model: {where} (hold-out accuracy {accuracy:.3f})", flush=True)


def serving_plan(settings: ServingSettings) -> list[str]:
    """What this server will serve, and the one command that adds what is missing."""
    to_serve = settings.models_to_serve()
    mlapi = mlapi_command()
    lines = []
    if "iris" in to_serve:
        iris_file = iris_model_file(settings)
        if iris_file is not None:
            lines.append(f"Iris model: {iris_file}")
        elif settings.iris_versioned:
            lines.append(
                f"Iris model: none at {settings.modelo_path} or in {settings.models_dir / 'iris'} "
                f"(the server will not be ready). To train it: {mlapi} train iris"
            )
        else:
            lines.append(
                f"Iris model: none at {settings.modelo_path} (the server will not be ready). "
                f"To train it: {mlapi} train iris --out {settings.modelo_path}"
            )
    if "sentiment" in to_serve:
        lines.append(f"Sentiment model: {settings.sentiment_dir}")
    elif settings.serve_models is None:
        lines.append(
            f"Sentiment model: none at {settings.sentiment_dir}; serving Iris only. To add it "
            f"(it is picked up without a restart): {mlapi} train imdb --data PATH "
            f"--models-dir {settings.models_dir}"
        )
    return lines


def mlapi_command() -> str:
    """How to run mlapi from this shell: `mlapi` when it is on PATH, else its path."""
    exe = Path(sys.argv[0])
    on_path = shutil.which("mlapi")
    if exe.name == "mlapi" and on_path and Path(on_path).resolve() == exe.resolve():
        return "mlapi"
    if exe.name == "mlapi":
        return _short_path(exe)
    return f"{_short_path(Path(sys.executable))} -m mlapi"


def _short_path(path: Path) -> str:
    """Relative to here when it is below here (.venv/bin/mlapi), else absolute."""
    relative = os.path.relpath(path.absolute())
    return str(path.absolute()) if relative.startswith("..") else relative
