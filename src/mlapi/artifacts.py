"""Atomic writes, checksums and JSON sidecars for everything we save.

Every artifact is written to a temp file in the same directory and renamed into
place, so a crash or Ctrl-C never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path`; rename it onto `path` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~current_umask())  # mkstemp makes 0600; use normal file modes
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def utc_now_iso() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def sidecar_path(artifact: str | os.PathLike) -> Path:
    """`modelo.pkl` -> `modelo.pkl.json`."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".json")


def write_sidecar(artifact: str | os.PathLike, **fields: Any) -> dict[str, Any]:
    """Write `<artifact>.json` with the artifact's sha256, its creation time and `fields`."""
    meta = {"file": Path(artifact).name, "sha256": sha256_file(artifact), **fields}
    meta.setdefault("created_at", utc_now_iso())
    atomic_write_json(sidecar_path(artifact), meta)
    return meta


def read_sidecar(artifact: str | os.PathLike) -> dict[str, Any]:
    with open(sidecar_path(artifact), encoding="utf-8") as f:
        return json.load(f)


def replace_directory(staging: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move a fully written `staging` directory onto `target`, replacing any old one.

    The old directory is renamed aside first and removed only after the new one is
    in place, so a reader sees either the old or the new directory, never a mix.
    """
    staging, target = Path(staging), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
        os.replace(target, old / target.name)
    os.replace(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
