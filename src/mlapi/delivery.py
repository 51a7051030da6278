"""`mlapi bundle`: the seed's delivery zip (being built in the production-serving issue)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    pass
