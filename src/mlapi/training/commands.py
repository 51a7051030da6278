"""`mlapi train ...`, `mlapi evaluate`, `mlapi predict` commands."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from mlapi.errors import ConfigError
from mlapi.training.config import add_config_arguments, config_from_args
from mlapi.training.device import add_device_arguments, resolve_device


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train", help="train a model")
    models = train.add_subparsers(dest="model", required=True, metavar="MODEL")

    iris = models.add_parser("iris", help="train the RandomForest on Iris -> modelo.pkl")
    iris.add_argument(
        "--out",
        default=None,
        help="model file (default: $MODELO_PATH, else a new version in $MODELS_DIR/iris/)",
    )
    iris.set_defaults(handler=_train_iris)

    imdb = models.add_parser(
        "imdb",
        help="train the IMDb sentiment LSTM (the seed's recipe) and install it for serving",
        description="Train on IMDb, test once, write the run's report and outputs to --out, "
        "export the model to ONNX and install it at <models-dir>/sentiment/.",
    )
    imdb.add_argument("--data", metavar="PATH", help="aclImdb folder or .tar.gz archive")
    imdb.add_argument("--out", default="outputs_imdb", help="run outputs (default: outputs_imdb/)")
    _add_models_dir(imdb)
    imdb.add_argument("--no-export", action="store_true", help="skip the ONNX export and install")
    imdb.add_argument(
        "--install",
        action="store_true",
        help="install the model of a --limit run too (by default only full runs replace "
        "the installed model)",
    )
    imdb.add_argument("--quiet", action="store_true", help="no progress bars")
    imdb.add_argument(
        "--resume", action="store_true", help="continue an interrupted run of the same settings"
    )
    add_tracking_argument(imdb)
    add_device_arguments(imdb)
    add_config_arguments(imdb)
    imdb.set_defaults(handler=_train_imdb)

    evaluate = subparsers.add_parser(
        "evaluate", help="recompute the test metrics of a saved IMDb run"
    )
    evaluate.add_argument("run", metavar="RUN", help="run name, or any file of the run")
    evaluate.add_argument(
        "--out", default="outputs_imdb", help="where runs are (default: %(default)s)"
    )
    evaluate.add_argument("--data", metavar="PATH", help="dataset (default: the run's own)")
    add_device_arguments(evaluate, precision=False)
    evaluate.set_defaults(handler=_evaluate)

    predict = subparsers.add_parser("predict", help="sentiment of reviews from the installed model")
    predict.add_argument("texts", nargs="+", metavar="TEXT", help="review text(s)")
    _add_models_dir(predict)
    predict.set_defaults(handler=_predict)


def add_tracking_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-track",
        action="store_true",
        help="no MLflow record (default: $MLFLOW_TRACKING_URI, else ./mlflow.db + ./mlruns/)",
    )


def _add_models_dir(parser: argparse.ArgumentParser) -> None:
    from mlapi.serving.settings import default_models_dir  # torch-free, Flask-free

    parser.add_argument(
        "--models-dir",
        default=str(default_models_dir()),
        help="installed models (default: $MODELS_DIR or models/)",
    )


def _check_embeddings_file(embeddings: str) -> None:
    """A --embeddings PATH must exist before the data is loaded (minutes earlier)."""
    if embeddings not in ("none", "word2vec") and not Path(embeddings).expanduser().is_file():
        raise ConfigError(
            f"--embeddings must be none, word2vec or the PATH of a GloVe-format text file, "
            f"got {embeddings!r} (no such file)"
        )


def _train_iris(args: argparse.Namespace) -> int:
    from mlapi.iris_model import train_and_save, train_new_version
    from mlapi.serving.settings import default_models_dir

    if args.out or os.environ.get("MODELO_PATH"):  # an explicit file: this Iris file
        flag, out = ("--out", args.out) if args.out else ("MODELO_PATH", os.environ["MODELO_PATH"])
        if Path(out).is_dir():
            raise ConfigError(f"{flag} must be the model file to write, got {out!r}, a folder")
        print(train_and_save(out))
        return 0
    path, summary = train_new_version(default_models_dir())
    print(summary)
    print(f"installed Iris version {path.parent.name}: {path}")
    return 0


def _train_imdb(args: argparse.Namespace) -> int:
    from mlapi.tracking import tracked_experiment
    from mlapi.training.saved import output_path

    config = config_from_args(args)
    _check_embeddings_file(config.embeddings)
    if args.install and args.no_export:
        raise ConfigError("--install and --no-export exclude each other: give one of them")
    device = resolve_device(args.device, args.precision)
    skip_install = config.limit is not None and not args.install
    print(f"run: {config.run_name} (on {device}, {args.precision})")
    result, tracker = tracked_experiment(
        config,
        track=not args.no_track,
        kind="train",
        data=args.data,
        device=str(device),
        precision=args.precision,
        out_dir=args.out,
        models_dir=None if args.no_export or skip_install else args.models_dir,
        progress=not args.quiet,
        resume=args.resume,
    )
    m, h = result.metrics, result.metrics.history
    print(
        f"train accuracy {h.train_accuracy_final:.4f}"
        f" | val accuracy {h.val_accuracy_final:.4f}"
        f" | best val accuracy {h.val_accuracy_best:.4f} (epoch {h.val_accuracy_best_epoch})"
        f" | gap {h.train_val_gap:.4f} | val_loss rises {h.val_loss_rises}"
    )
    print(f"test accuracy {m.test.accuracy:.4f} (weights of epoch {m.checkpoint_epoch})")
    print(f"report: {output_path(result.out_dir, result.run_name, 'report')}")
    if tracker.active:
        print(f"MLflow run {tracker.run_id} in {tracker.uri}")
    if result.model_dir is not None:
        print(
            f"model installed: {result.model_dir} "
            f"(ONNX parity max |diff| {result.parity_max_abs_diff:.1e}); {_replaced(result)}"
        )
    elif skip_install and not args.no_export:
        print(
            f"model NOT installed: a --limit run keeps the installed model in "
            f"{args.models_dir}; add --install to install this one"
        )
    return 0


def _replaced(result) -> str:
    old = result.replaced
    if old is None:
        return "no model was installed before"
    accuracy = "unknown" if old.test_accuracy is None else f"{old.test_accuracy:.4f}"
    return f"it replaced {old.run_name} (test accuracy {accuracy})"


def _evaluate(args: argparse.Namespace) -> int:
    import json

    from mlapi.training.saved import evaluate_run, find_run

    if args.data is not None and not Path(args.data).expanduser().exists():
        raise ConfigError(
            f"--data must be an aclImdb folder or archive, got {args.data!r} (no such path)"
        )
    device = resolve_device(args.device)
    saved = find_run(args.run, args.out)
    test = evaluate_run(saved, args.data, device=str(device))
    recorded = {}
    if saved.path("metrics").is_file():
        recorded = json.loads(saved.path("metrics").read_text(encoding="utf-8"))
    print(f"run: {saved.run_name} ({test.n:,} test reviews)")
    rows = [("accuracy", test.accuracy, recorded.get("test_accuracy"))]
    rows.append(("ROC-AUC", test.roc_auc, recorded.get("roc_auc")))
    for label, values in test.per_class.items():
        saved_class = recorded.get("per_class", {}).get(label, {})
        for name in ("precision", "recall", "f1"):
            rows.append((f"{name} {label}", values[name], saved_class.get(name)))
    print(f"{'metric':<20} {'recomputed':>10} {'recorded':>10}")
    for name, now, before in rows:
        print(f"{name:<20} {_fmt(now):>10} {_fmt(before):>10}")
    print(f"confusion matrix (rows true, columns predicted {test.labels}): {test.confusion_matrix}")
    return 0


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _predict(args: argparse.Namespace) -> int:
    from mlapi.serving.sentiment import SentimentPredictor
    from mlapi.versions import served_artifact

    models_dir = Path(args.models_dir)
    predictor = SentimentPredictor.load(
        served_artifact(models_dir, "sentiment") or models_dir / "sentiment"
    )
    for text, answer in zip(args.texts, predictor.predict(args.texts), strict=True):
        snippet = text if len(text) <= 60 else text[:57] + "..."
        print(f"{answer['label']}\t{answer['score']:.4f}\t{snippet}")
    return 0
