"""`mlapi data ...` commands."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="inspect datasets")
    kinds = data.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    imdb = kinds.add_parser(
        "imdb",
        help="find the IMDb dataset and describe it",
        description="Find the IMDb dataset (--data, $IMDB_DATA, the cache, else download it), "
        "check it and print reviews per split and label and token-length percentiles.",
    )
    imdb.add_argument("--data", metavar="PATH", help="aclImdb folder or .tar.gz archive")
    imdb.add_argument(
        "--maxlen", type=int, default=200, help="report the share of reviews longer than this"
    )
    imdb.add_argument("--json", action="store_true", help="print the summary as JSON")
    imdb.set_defaults(handler=_describe_imdb)


def _describe_imdb(args: argparse.Namespace) -> int:
    from mlapi.data.imdb import find_dataset
    from mlapi.data.imdb_summary import format_summary, summarize

    summary = summarize(find_dataset(args.data), maxlen=args.maxlen)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0
