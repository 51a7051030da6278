"""The one command-line entry: `mlapi train|evaluate|predict|serve|data|bundle|compare ...`.

Each area registers its own subcommands (see COMMAND_MODULES); a module's
`register(subparsers)` adds parsers whose `handler` is called with the parsed
args. Heavy imports (torch, ONNX Runtime) happen inside handlers, so
`mlapi --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading

from mlapi import __version__
from mlapi.errors import MlapiError

# Modules that define `register(subparsers)`; each owns its commands' flags.
COMMAND_MODULES = (
    "mlapi.data.commands",
    "mlapi.training.commands",
    "mlapi.serving.commands",
    "mlapi.delivery",
    "mlapi.compare.command",
    "mlapi.versions_commands",
    "mlapi.tuning.command",
)


class OneLineErrors(argparse.ArgumentParser):
    """A usage error (unknown flag, missing value) is one line, like our other errors;
    subcommand parsers inherit it."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrors(
        prog="mlapi", description="Train honest models and serve them over a validated REST API."
    )
    parser.add_argument("--version", action="version", version=f"mlapi {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    previous = _stop_on_sigterm()
    try:
        return int(args.handler(args) or 0)
    except MlapiError as exc:
        print(f"mlapi: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, permission denied...: the atomic writes left nothing
        where = f" ({exc.filename})" if exc.filename else ""
        print(
            f"mlapi: error: {exc.strerror or exc}{where}; nothing was half-written", file=sys.stderr
        )
        return 1
    except KeyboardInterrupt:
        print("mlapi: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _stop_on_sigterm():
    """Make SIGTERM stop a command as Ctrl-C does (cleanly); return the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


if __name__ == "__main__":
    raise SystemExit(main())
