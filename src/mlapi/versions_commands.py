"""`mlapi models list|pin|unpin|prune|migrate`: the model versions in MODELS_DIR.

A running server follows these within MODEL_POLL_SECONDS (each worker's watcher): a pin or
unpin changes the served version live; prune never deletes the pinned or the served one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mlapi import versions
from mlapi.artifacts import verified_metadata
from mlapi.errors import MlapiError
from mlapi.serving.settings import (
    DEFAULT_MODELO_PATH,
    MODEL_NAMES,
    default_modelo_path,
    default_models_dir,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    models = subparsers.add_parser(
        "models",
        help="list, pin, unpin, prune or migrate model versions",
        description="Model versions live in MODELS_DIR/<name>/<version>/; the server serves "
        "the pinned version, else the newest, and follows changes without a restart.",
    )
    actions = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, help_text, handler in (
        ("list", "each version: served, pinned, integrity, created", _list),
        ("pin", "serve this version (until unpin)", _pin),
        ("unpin", "serve the newest version again", _unpin),
        ("prune", "delete old versions (never the pinned or served one)", _prune),
        ("migrate", "move the old flat layout (and ./modelo.pkl) into version 1", _migrate),
    ):
        parser = actions.add_parser(action, help=help_text)
        required = action in ("pin", "unpin", "prune")
        parser.add_argument(
            "name",
            nargs=None if required else "?",
            choices=MODEL_NAMES,
            help="the model" + ("" if required else " (default: all)"),
        )
        if action == "pin":
            parser.add_argument("version", type=_version, help="the version to serve")
        if action == "prune":
            parser.add_argument(
                "--keep", type=_keep, default=3, help="newest versions to keep (default: 3)"
            )
        parser.add_argument(
            "--models-dir",
            type=Path,
            default=default_models_dir(),
            help="where the versions are (default: $MODELS_DIR or models/)",
        )
        parser.set_defaults(handler=handler)


def _version(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a version is a positive integer, got {text!r}")
    return int(text)


def _keep(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"--keep must be a positive integer, got {text!r}")
    return int(text)


def _legacy_iris() -> Path | None:
    """./modelo.pkl counts as Iris version 1 unless MODELO_PATH names a file of its own."""
    return DEFAULT_MODELO_PATH if default_modelo_path() == DEFAULT_MODELO_PATH else None


def _models_dir(args: argparse.Namespace, must_exist: bool = True) -> Path:
    directory = args.models_dir
    if directory.exists() and not directory.is_dir():
        raise MlapiError(f"--models-dir must be a folder, got {str(directory)!r} (a file)")
    if must_exist and not directory.is_dir():
        raise MlapiError(f"--models-dir {str(directory)!r} does not exist")
    return directory


def _names(args: argparse.Namespace) -> tuple[str, ...]:
    return (args.name,) if args.name else MODEL_NAMES


def _list(args: argparse.Namespace) -> int:
    models_dir = _models_dir(args, must_exist=False)
    print(f"{'MODEL':<10} {'VERSION':>7}  {'STATE':<15} {'CHECK':<6} {'CREATED':<26} PATH")
    for name in _names(args):
        legacy = _legacy_iris() if name == "iris" else None
        found = versions.versions(models_dir, name, legacy)
        served, pinned = (
            versions.served(models_dir, name, legacy),
            versions.pinned(models_dir, name),
        )
        if not found:
            print(f"{name:<10} {'-':>7}  none installed")
        for version, folder in found.items():
            state = ",".join(
                word
                for word, on in (("served", version == served), ("pinned", version == pinned))
                if on
            )
            check, created = _check(name, versions.artifact(name, folder))
            print(f"{name:<10} {version:>7}  {state:<15} {check:<6} {created:<26} {folder}")
        if pinned is not None and pinned not in found:
            print(f"{name:<10} {pinned:>7}  pinned, MISSING: the server keeps its current version")
    return 0


def _check(name: str, artifact: Path) -> tuple[str, str]:
    """("ok", created_at) when every sha256 matches, else ("BROKEN", "")."""
    try:
        metadata = verified_metadata(artifact, what=f"{name} model")
    except MlapiError:
        return "BROKEN", ""
    except (OSError, json.JSONDecodeError):
        return "BROKEN", ""
    return "ok", str(metadata.get("created_at", ""))


def _pin(args: argparse.Namespace) -> int:
    models_dir = _models_dir(args)
    legacy = _legacy_iris() if args.name == "iris" else None
    versions.pin(models_dir, args.name, args.version, legacy)
    print(f"{args.name}: version {args.version} pinned; servers follow within seconds")
    return 0


def _unpin(args: argparse.Namespace) -> int:
    models_dir = _models_dir(args)
    versions.unpin(models_dir, args.name)
    newest = versions.served(models_dir, args.name)
    print(f"{args.name}: unpinned; the newest version ({newest}) is served")
    return 0


def _prune(args: argparse.Namespace) -> int:
    models_dir = _models_dir(args)
    legacy = _legacy_iris() if args.name == "iris" else None
    deleted = versions.prune(models_dir, args.name, args.keep, legacy)
    kept = ", ".join(map(str, versions.versions(models_dir, args.name))) or "none"
    gone = ", ".join(map(str, deleted)) or "nothing"
    print(f"{args.name}: deleted {gone}; kept {kept}")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    models_dir = _models_dir(args, must_exist=False)
    for name in _names(args):
        legacy = _legacy_iris() if name == "iris" else None
        version = versions.migrate(models_dir, name, legacy)
        done = "nothing to migrate" if version is None else f"old layout is now version {version}"
        print(f"{name}: {done}")
    return 0
