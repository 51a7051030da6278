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
        "--train-missing",
        action="store_true",
        help="first train any missing model (the sentiment model only if IMDb data is reachable)",
    )
    serve.add_argument("--data", metavar="PATH", help="IMDb data for --train-missing")
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    if args.train_missing:
        train_missing_models(Path(args.modelo_path), Path(args.models_dir), args.data)
    os.environ["MODELO_PATH"] = str(args.modelo_path)
    os.environ["MODELS_DIR"] = str(args.models_dir)
    command = [sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONFIG]
    command += ["--bind", f"{args.host}:{args.port}"]
    if args.workers:
        command += ["--workers", str(args.workers)]
    print(f"Serving on http://{args.host}:{args.port}/ (Ctrl-C to stop)", flush=True)
    os.execv(sys.executable, [*command, WSGI_APP])


def train_missing_models(modelo_path: Path, models_dir: Path, data: str | None) -> None:
    """Train the Iris model if absent; the sentiment model too if absent and IMDb is reachable."""
    if not modelo_path.exists():
        from mlapi.iris_model import train_and_save

        accuracy = train_and_save(modelo_path)["holdout_accuracy"]
        print(f"Trained the Iris model: {modelo_path} (hold-out accuracy {accuracy:.3f})")
    if not (models_dir / "sentiment" / "metadata.json").exists():
        _train_sentiment_model(models_dir, data)


def _train_sentiment_model(models_dir: Path, data: str | None) -> None:
    from mlapi.cli import main
    from mlapi.data.imdb import find_dataset
    from mlapi.errors import MlapiError

    try:
        root = find_dataset(data)
    except MlapiError as exc:
        print(f"No sentiment model and no IMDb data, serving Iris only ({exc})", flush=True)
        return
    print(f"Training the sentiment model with the seed recipe on {root} ...", flush=True)
    data_args = ["--data", str(root)]
    if main(["train", "imdb", *data_args, "--models-dir", str(models_dir)]) != 0:
        print("Sentiment training failed (see above); serving Iris only.", flush=True)
