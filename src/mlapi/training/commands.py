"""`mlapi train ...`, `mlapi evaluate`, `mlapi predict` commands."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train", help="train a model")
    models = train.add_subparsers(dest="model", required=True, metavar="MODEL")

    iris = models.add_parser("iris", help="train the RandomForest on Iris -> modelo.pkl")
    iris.add_argument("--out", default=None, help="model path (default: $MODELO_PATH or ./modelo.pkl)")
    iris.set_defaults(handler=_train_iris)
    # `train imdb`, `evaluate` and `predict` are added by the LSTM experiment issue.


def _train_iris(args: argparse.Namespace) -> int:
    from mlapi.iris_model import default_model_path, train_and_save

    summary = train_and_save(args.out or default_model_path())
    print(summary)
    return 0
