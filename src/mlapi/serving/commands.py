"""`mlapi serve`: the production server (gunicorn with the repo's settings)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

GUNICORN_CONFIG = "python:mlapi.serving.gunicorn_conf"
WSGI_APP = "mlapi.serving.wsgi:app"


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser("serve", help="serve the API with gunicorn")
    serve.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5000")))
    serve.add_argument("--workers", type=int, default=None, help="default: one per core")
    serve.add_argument(
        "--modelo-path", default=os.environ.get("MODELO_PATH", "modelo.pkl"), help="Iris model"
    )
    serve.add_argument(
        "--models-dir", default=os.environ.get("MODELS_DIR", "models"), help="holds sentiment/"
    )
    serve.add_argument(
        "--train-missing", action="store_true", help="first train any model that is not there"
    )
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    if args.train_missing:
        train_missing_models(Path(args.modelo_path))
    os.environ["MODELO_PATH"] = str(args.modelo_path)
    os.environ["MODELS_DIR"] = str(args.models_dir)
    command = [sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONFIG]
    command += ["--bind", f"{args.host}:{args.port}"]
    if args.workers:
        command += ["--workers", str(args.workers)]
    print(f"Serving on http://{args.host}:{args.port}/ (Ctrl-C to stop)", flush=True)
    os.execv(sys.executable, [*command, WSGI_APP])


def train_missing_models(modelo_path: Path) -> None:
    if not modelo_path.exists():
        from mlapi.iris_model import train_and_save

        accuracy = train_and_save(modelo_path)["holdout_accuracy"]
        print(f"Trained the Iris model: {modelo_path} (hold-out accuracy {accuracy:.3f})")
