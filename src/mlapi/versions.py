"""Model versions on disk: `MODELS_DIR/<name>/<version>/`, integers counting up from 1.

A trainer writes a version into a staging folder beside the versions and installs it with one
rename under a lock, so a version appears whole or not at all, and is never overwritten.
`<name>/PINNED` (one integer) pins the served version; without it the newest is served.

Older layouts are read as version 1 and moved by `migrate` (or by the first install):
`MODELS_DIR/sentiment/metadata.json` (the flat sentiment folder) and the seed's `./modelo.pkl`
(with its `.onnx` and sidecars) when MODELO_PATH is not set. Torch-free: serving reads it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mlapi.artifacts import atomic_write_text, current_umask
from mlapi.errors import MlapiError

PIN_FILE = "PINNED"
LOCK_FILE = ".lock"
IRIS_FILES = ("modelo.pkl", "modelo.pkl.json", "modelo.onnx", "modelo.onnx.json")
FLAT_METADATA = "metadata.json"


class VersionError(MlapiError):
    """A version that does not exist, or a bad request about versions."""


def artifact(name: str, version_dir: Path) -> Path:
    """What a predictor loads from a version: Iris's modelo.pkl, sentiment's folder."""
    return version_dir / "modelo.pkl" if name == "iris" else version_dir


def versions(models_dir: Path, name: str, legacy_iris: Path | None = None) -> dict[int, Path]:
    """Version number -> its folder, oldest first; an old flat layout counts as version 1."""
    root = Path(models_dir) / name
    found = _numbered(root)
    legacy = _legacy_dir(root, name, legacy_iris)
    if legacy is not None and 1 not in found:
        found[1] = legacy
    return dict(sorted(found.items()))


def _numbered(root: Path) -> dict[int, Path]:
    found = {}
    if root.is_dir():
        for entry in root.iterdir():
            if entry.name.isdigit() and not entry.name.startswith("0") and entry.is_dir():
                found[int(entry.name)] = entry
    return found


def pinned(models_dir: Path, name: str) -> int | None:
    try:
        text = (Path(models_dir) / name / PIN_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def served(models_dir: Path, name: str, legacy_iris: Path | None = None) -> int | None:
    """The pinned version, else the newest; None when there is none."""
    pin = pinned(models_dir, name)
    if pin is not None:
        return pin
    found = versions(models_dir, name, legacy_iris)
    return max(found) if found else None


def served_artifact(models_dir: Path, name: str, legacy_iris: Path | None = None) -> Path | None:
    """What a predictor loads for the served version (None when there is none)."""
    found = versions(models_dir, name, legacy_iris)
    version = served(models_dir, name, legacy_iris)
    return artifact(name, found[version]) if version in found else None


def pin(models_dir: Path, name: str, version: int, legacy_iris: Path | None = None) -> None:
    with _locked(models_dir, name):
        _migrate_locked(Path(models_dir), name, legacy_iris)
        _existing(models_dir, name, version)
        atomic_write_text(Path(models_dir) / name / PIN_FILE, f"{version}\n")


def unpin(models_dir: Path, name: str) -> None:
    (Path(models_dir) / name / PIN_FILE).unlink(missing_ok=True)


def prune(models_dir: Path, name: str, keep: int, legacy_iris: Path | None = None) -> list[int]:
    """Delete all but the newest `keep` versions; never the pinned one. Returns those deleted."""
    models_dir = Path(models_dir)
    with _locked(models_dir, name):
        _migrate_locked(models_dir, name, legacy_iris)
        found = versions(models_dir, name)
        spared = set(sorted(found)[-keep:]) | {pinned(models_dir, name), served(models_dir, name)}
        doomed = [v for v in found if v not in spared]
        for version in doomed:
            trash = Path(tempfile.mkdtemp(prefix=".pruned.", dir=models_dir / name))
            os.replace(found[version], trash / str(version))  # gone from view in one rename
            shutil.rmtree(trash, ignore_errors=True)
    return doomed


def migrate(models_dir: Path, name: str, legacy_iris: Path | None = None) -> int | None:
    """Move an old flat layout into version 1 (or the next free number); None if none."""
    with _locked(models_dir, name):
        return _migrate_locked(Path(models_dir), name, legacy_iris)


@dataclass
class Install:
    staging: Path  # write the version's files here
    installed: Path | None = None  # the version folder, once installed


@contextlib.contextmanager
def new_version(models_dir: Path, name: str, legacy_iris: Path | None = None) -> Iterator[Install]:
    """Yield an empty staging folder; when the block succeeds, install it as the next version.

    The caller writes every file into `install.staging`; on any error the folder is removed
    and the installed versions are untouched.
    """
    root = Path(models_dir) / name
    root.mkdir(parents=True, exist_ok=True)
    install = Install(Path(tempfile.mkdtemp(prefix=".staging.", dir=root)))
    install.staging.chmod(0o777 & ~current_umask())  # mkdtemp makes 0700; servers may differ
    try:
        yield install
        with _locked(models_dir, name):
            _migrate_locked(Path(models_dir), name, legacy_iris)
            install.installed = _install_locked(root, install.staging)
    finally:
        shutil.rmtree(install.staging, ignore_errors=True)


def _install_locked(root: Path, staging: Path) -> Path:
    target = root / str(max(_numbered(root), default=0) + 1)
    os.rename(staging, target)  # the lock makes the number ours; a reader sees all or nothing
    return target


def _migrate_locked(models_dir: Path, name: str, legacy_iris: Path | None) -> int | None:
    root = models_dir / name
    legacy = _legacy_dir(root, name, legacy_iris)
    if legacy is None:
        return None
    files = [legacy / f for f in IRIS_FILES] if name == "iris" else list(_flat_files(root))
    files = [f for f in files if f.is_file()]
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".migrating.", dir=root))
    try:
        staging.chmod(0o777 & ~current_umask())
        for path in files:
            shutil.copy2(path, staging / path.name)
        target = _install_locked(root, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for path in files:  # the copies are in place: only now do the old files go
        path.unlink(missing_ok=True)
    return int(target.name)


def _legacy_dir(root: Path, name: str, legacy_iris: Path | None) -> Path | None:
    if name == "iris":
        if legacy_iris is not None and Path(legacy_iris).is_file():
            return Path(legacy_iris).parent
        return None
    return root if (root / FLAT_METADATA).is_file() else None


def _flat_files(root: Path) -> Iterator[Path]:
    for entry in root.iterdir():
        if entry.is_file() and entry.name not in (PIN_FILE, LOCK_FILE):
            yield entry


def _existing(models_dir: Path, name: str, version: int) -> Path:
    found = versions(models_dir, name)
    if version not in found:
        have = ", ".join(map(str, found)) or "none"
        raise VersionError(f"the {name} model has no version {version} (versions: {have})")
    return found[version]


@contextlib.contextmanager
def _locked(models_dir: Path, name: str) -> Iterator[None]:
    """One writer at a time per model (trainers, pin, prune, migrate)."""
    root = Path(models_dir) / name
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
