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


def verified_metadata(
    artifact: str | os.PathLike, *, what: str = "model", hint: str = ""
) -> dict[str, Any]:
    """The metadata of a saved model, after checking the sha256 of every file it covers.

    One check for both layouts: a file with a JSON sidecar (`modelo.pkl` + `modelo.pkl.json`,
    whose `sha256` covers the file) and a folder with `metadata.json` (whose `files` maps each
    file name to {"sha256": ...}). Anything missing, unreadable or not matching raises
    ArtifactError that names `what` is missing ("Iris model") and ends with `hint` (how to make
    a good one): a pickle can run
    code when it is loaded, so only files that our own training wrote get loaded.
    """
    from mlapi.errors import ArtifactError

    artifact = Path(artifact)
    tail = f" {hint}" if hint else ""
    folder = artifact.is_dir()
    metadata_file = artifact / "metadata.json" if folder else sidecar_path(artifact)
    if not folder and not artifact.is_file():
        raise ArtifactError(f"no {what} at {artifact} (not found).{tail}")
    if folder and not metadata_file.is_file():
        raise ArtifactError(f"no {what} at {artifact} ({metadata_file.name} missing).{tail}")
    try:
        metadata = json.loads(metadata_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtifactError(
            f"{metadata_file} is missing or unreadable ({exc}); refusing to load {artifact}.{tail}"
        ) from None
    expected = _covered_sha256(artifact, metadata, folder)
    if isinstance(expected, str):
        raise ArtifactError(f"{metadata_file} is not valid model metadata: {expected}.{tail}")
    for path, sha256 in expected.items():
        if not path.is_file():
            raise ArtifactError(f"{path} is missing (listed in {metadata_file.name}).{tail}")
        if sha256_file(path) != sha256:
            raise ArtifactError(
                f"{path} does not match the sha256 in {metadata_file.name}; "
                f"refusing to load it.{tail}"
            )
    return metadata


def _covered_sha256(artifact: Path, metadata: Any, folder: bool) -> dict[Path, str] | str:
    """File -> the sha256 its metadata records, or what is wrong with the metadata."""
    if not isinstance(metadata, dict):
        return "not a JSON object"
    if not folder:
        sha256 = metadata.get("sha256")
        return {artifact: sha256} if isinstance(sha256, str) else "no sha256"
    files = metadata.get("files")
    if not isinstance(files, dict) or not files:
        return "no files listed"
    expected = {}
    for name, entry in files.items():
        sha256 = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(sha256, str) or Path(name).name != name:
            return f"bad entry for {name!r}"
        expected[artifact / name] = sha256
    return expected
