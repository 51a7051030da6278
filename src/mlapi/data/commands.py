"""`mlapi data ...` commands."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="inspect datasets")
    kinds = data.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    imdb = kinds.add_parser("imdb", help="find the IMDb dataset and describe it")
    imdb.add_argument("--data", metavar="PATH", help="aclImdb folder or .tar.gz archive")
    imdb.set_defaults(handler=_describe_imdb)


def _describe_imdb(args: argparse.Namespace) -> int:
    raise NotImplementedError("being built in the IMDb data pipeline issue")
