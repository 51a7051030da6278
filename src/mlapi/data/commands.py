"""`mlapi data ...` commands."""

from __future__ import annotations

import argparse
import dataclasses
import json

from mlapi.errors import MlapiError


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="inspect datasets")
    kinds = data.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    imdb = kinds.add_parser(
        "imdb",
        help="find the IMDb dataset and describe it",
        description="Find the IMDb dataset (--data, $IMDB_DATA, the cache, else download it), "
        "check it and print reviews per split and label, token-length percentiles and the "
        "share of reviews longer than maxlen.",
    )
    imdb.add_argument("--data", metavar="PATH", help="aclImdb folder or .tar.gz archive")
    imdb.add_argument(
        "--maxlen",
        metavar="N",
        help="report the share of reviews longer than N tokens "
        f"(default: the training recipe's maxlen, {recipe_maxlen()})",
    )
    imdb.add_argument("--json", action="store_true", help="print the summary as JSON")
    imdb.set_defaults(handler=_describe_imdb)


def recipe_maxlen() -> int:
    """The training recipe's maxlen: the config's default, defined there once."""
    from mlapi.training.config import ExperimentConfig  # torch-free

    (maxlen,) = (f.default for f in dataclasses.fields(ExperimentConfig) if f.name == "maxlen")
    return maxlen


def _maxlen(value: str | None) -> int:
    if value is None:
        return recipe_maxlen()
    try:
        maxlen = int(value)
    except ValueError:
        maxlen = 0
    if maxlen < 1:
        raise MlapiError(f"--maxlen must be a whole number of tokens, 1 or more, got {value!r}")
    return maxlen


def _describe_imdb(args: argparse.Namespace) -> int:
    from mlapi.data.imdb import find_dataset
    from mlapi.data.imdb_summary import format_summary, summarize

    maxlen = _maxlen(args.maxlen)  # before any work
    summary = summarize(find_dataset(args.data), maxlen=maxlen)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0
