"""The on-disk cache (<cache> = $XDG_CACHE_HOME/mlapi, else ~/.cache/mlapi) and its upkeep.

Staging folders. Work that fills a folder (a download, an extraction) happens in a
`.partial-<pid>-*` folder beside its target, holding an `owner.json` ({"pid", "host"}; host
is the hostname and the pid namespace) and is renamed into place at the end. A process
killed outright (SIGKILL, power loss) leaves its staging folder behind; `staging_dir` first
removes the dead ones beside it:
  - owner on this host: removed when that process is gone (os.kill(pid, 0));
  - no owner file, or another host's (a cache shared between machines or containers):
    removed only when older than STALE_AFTER_S, since its owner cannot be checked.
A live one, or any of this process, is never touched.

Encoded arrays. `<cache>/imdb-encoded/` holds one .npz per settings and dataset (25-75 MB
each); every new vocabulary, maxlen or seed adds one. After each write, `evict_encoded`
keeps the most recently used files (a read refreshes a file's mtime) that fit in
$MLAPI_ENCODED_CACHE_MB (default 2048) and removes the others, least recently used first,
logging each. The file just read or written is never evicted, whatever the budget;
temp files of writes killed midway are removed once older than STALE_AFTER_S.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mlapi import __version__
from mlapi.artifacts import atomic_path, write_sidecar
from mlapi.errors import DataError
from mlapi.text import TOKENIZER_VERSION

log = logging.getLogger(__name__)

PARTIAL_PREFIX = ".partial-"
OWNER_FILE = "owner.json"
STALE_AFTER_S = 24 * 3600  # a staging folder or temp file this old has no live owner
ENCODED_BUDGET_ENV = "MLAPI_ENCODED_CACHE_MB"
ENCODED_BUDGET_MB = 2048
ENCODED_DIR = "imdb-encoded"
ENCODED_FILE = re.compile(r"(train|test)-[0-9a-f]{20}\.npz")  # what encoded_file names
_WRITE_TEMP = re.compile(r"\..+\.npz(\.json)?\..+\.tmp")  # what atomic_path leaves if killed


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/mlapi, else ~/.cache/mlapi."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "mlapi"


# -- staging folders --------------------------------------------------------------------------


@contextlib.contextmanager
def staging_dir(parent: Path) -> Iterator[Path]:
    """A temp folder beside the target, removed on the way out whatever happens.

    Dead staging folders left in `parent` by killed processes are removed first.
    """
    parent.mkdir(parents=True, exist_ok=True)
    remove_dead_partials(parent)
    staging = Path(tempfile.mkdtemp(prefix=f"{PARTIAL_PREFIX}{os.getpid()}-", dir=parent))
    try:
        owner = {"pid": os.getpid(), "host": this_host()}
        (staging / OWNER_FILE).write_text(json.dumps(owner), encoding="utf-8")
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def remove_dead_partials(parent: Path, now: float | None = None) -> list[Path]:
    """Remove the `.partial-*` folders in `parent` whose owner is gone; return them."""
    removed = []
    for folder in _partials(parent):
        reason = _why_dead(folder, time.time() if now is None else now)
        if reason is None:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            log.info("removed the unfinished %s (%s)", folder, reason)
            removed.append(folder)
    return removed


def _partials(parent: Path) -> list[Path]:
    try:
        with os.scandir(parent) as entries:
            return [
                Path(e.path)
                for e in entries
                if e.name.startswith(PARTIAL_PREFIX) and e.is_dir(follow_symlinks=False)
            ]
    except FileNotFoundError:
        return []


def _why_dead(folder: Path, now: float) -> str | None:
    """Why `folder` belongs to nobody alive, or None when it may still be in use."""
    owner = _read_owner(folder)
    if owner is not None and owner["host"] == this_host():
        if owner["pid"] == os.getpid() or _process_alive(owner["pid"]):
            return None
        return f"its process {owner['pid']} is gone"
    try:
        age = now - folder.stat().st_mtime
    except FileNotFoundError:
        return None  # its owner finished meanwhile
    if age < STALE_AFTER_S:
        return None
    whose = "no owner recorded" if owner is None else f"owned by host {owner['host']}"
    return f"{whose}, {age / 3600:.0f} h old"


def this_host() -> str:
    """Where a pid means something: the hostname and, on Linux, the pid namespace."""
    try:
        return f"{socket.gethostname()} {os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return socket.gethostname()


def _read_owner(folder: Path) -> dict | None:
    try:
        owner = json.loads((folder / OWNER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not (isinstance(owner, dict) and isinstance(owner.get("pid"), int)):
        return None
    if not isinstance(owner.get("host"), str):
        return None
    return owner


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


# -- encoded arrays ---------------------------------------------------------------------------


def encoded_file(kind: str, identity: dict[str, Any]) -> Path:
    """<cache>/imdb-encoded/<kind>-<key>.npz, the key hashing `identity` and the tokenizer."""
    identity = {"kind": kind, "tokenizer_version": TOKENIZER_VERSION, **identity}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
    return cache_dir() / ENCODED_DIR / f"{kind}-{key}.npz"


def read_arrays(path: Path, *, budget: int) -> dict[str, np.ndarray] | None:
    """The arrays cached at `path`, or None when absent or unreadable (then rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except Exception as exc:  # any unreadable cache file is just rebuilt
        log.warning("ignoring unreadable cache file %s (%s); rebuilding it", path, exc)
        return None
    touch(path)
    evict_encoded(path.parent, keep=[path], budget=budget)
    return arrays


def write_arrays(path: Path, arrays: dict[str, np.ndarray], *, budget: int, **provenance) -> None:
    """Write `arrays` atomically with a sidecar, then evict beyond `budget` (never `path`)."""
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)  # uncompressed: loads in a blink
        write_sidecar(path, kind="mlapi imdb encoded cache", **provenance, versions=_versions())
    except OSError as exc:  # a read-only or full cache costs speed, not correctness
        log.warning("could not write the cache file %s: %s", path, exc)
    evict_encoded(path.parent, keep=[path], budget=budget)


def _versions() -> dict[str, str]:
    return {"mlapi": __version__, "numpy": np.__version__, "tokenizer": str(TOKENIZER_VERSION)}


# -- encoded arrays: least recently used first, within a budget -------------------------------


def encoded_budget_bytes() -> int:
    """$MLAPI_ENCODED_CACHE_MB (whole megabytes, 0 or more) in bytes; 2048 MB if unset."""
    raw = os.environ.get(ENCODED_BUDGET_ENV, "").strip()
    if not raw:
        return ENCODED_BUDGET_MB * 2**20
    if not (raw.isascii() and raw.isdigit()):
        raise DataError(
            f"{ENCODED_BUDGET_ENV} must be a whole number of megabytes (0 or more), got {raw!r}"
        )
    return int(raw) * 2**20


def touch(path: Path) -> None:
    """Mark `path` as just used (its mtime orders eviction)."""
    with contextlib.suppress(OSError):  # a read-only cache still serves reads
        os.utime(path)


def evict_encoded(
    folder: Path, *, keep: Iterable[Path], budget: int | None = None, now: float | None = None
) -> list[Path]:
    """Remove the least recently used encoded files beyond `budget` bytes; return them.

    Files in `keep` (the one being read or written) stay whatever their size.
    """
    budget = encoded_budget_bytes() if budget is None else budget
    now = time.time() if now is None else now
    keep = {Path(path).resolve() for path in keep}
    evicted = []
    used, full = 0, False
    for path, size, mtime in sorted(_encoded_files(folder), key=lambda f: -f[2]):
        if path.resolve() in keep or (not full and used + size <= budget):
            used += size
        else:
            full = True  # this one and every less recently used one go
            if not _remove_with_sidecar(path):
                continue
            days = (now - mtime) / 86400
            log.info(
                "evicted %s from the encoded cache (%.0f MB, last used %.1f days ago; "
                "budget %s=%d)",
                path.name,
                size / 2**20,
                days,
                ENCODED_BUDGET_ENV,
                budget // 2**20,
            )
            evicted.append(path)
    _remove_stale_write_temps(folder, now)
    return evicted


def _encoded_files(folder: Path) -> list[tuple[Path, int, float]]:
    """(path, bytes incl. sidecar, mtime) of the encoded files in `folder`."""
    found = []
    with contextlib.suppress(FileNotFoundError), os.scandir(folder) as entries:
        for entry in entries:
            if not ENCODED_FILE.fullmatch(entry.name):
                continue
            try:
                stat = entry.stat()
            except FileNotFoundError:
                continue  # evicted by another process meanwhile
            sidecar = Path(entry.path + ".json")
            size = stat.st_size + (sidecar.stat().st_size if sidecar.is_file() else 0)
            found.append((Path(entry.path), size, stat.st_mtime))
    return found


def _remove_with_sidecar(path: Path) -> bool:
    try:
        path.unlink(missing_ok=True)
        Path(f"{path}.json").unlink(missing_ok=True)
    except OSError as exc:  # a read-only cache is used as it is
        log.warning("could not evict %s from the encoded cache: %s", path, exc)
        return False
    return True


def _remove_stale_write_temps(folder: Path, now: float) -> None:
    with contextlib.suppress(FileNotFoundError), os.scandir(folder) as entries:
        for entry in entries:
            if not _WRITE_TEMP.fullmatch(entry.name):
                continue
            with contextlib.suppress(OSError):  # gone meanwhile, or a read-only cache
                if now - entry.stat().st_mtime >= STALE_AFTER_S:
                    Path(entry.path).unlink()
                    log.info("removed %s, left by an unfinished write", entry.path)
