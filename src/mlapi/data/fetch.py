"""Download a file with retries and a checksum; extract a tar archive safely.

Both raise DataError with one readable message. Both write only inside the
destination the caller gives; cleaning that up on failure is the caller's job
(mlapi.data.imdb stages everything in one temp folder and removes it).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import logging
import os
import re
import shutil
import tarfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from mlapi.errors import DataError

log = logging.getLogger(__name__)

RETRY_DELAYS = (2.0, 5.0)  # seconds before the 2nd and 3rd attempt
TIMEOUT_S = 30.0
CHUNK_BYTES = 1 << 20


# -- download -----------------------------------------------------------------------------


class DownloadError(DataError):
    """The file could not be fetched (network) or failed its checksum."""


class ChecksumError(DownloadError):
    pass


@contextlib.contextmanager
def _http_stream(url: str, timeout: float) -> Iterator[tuple[int | None, Iterator[bytes]]]:
    """Yield (content length or None, byte chunks). Tests replace this to inject failures."""
    import requests  # imported here: only a download needs it

    with requests.get(url, stream=True, timeout=timeout) as response:
        response.raise_for_status()
        length = response.headers.get("Content-Length")
        yield (int(length) if length else None), response.iter_content(CHUNK_BYTES)


def _network_errors() -> tuple[type[BaseException], ...]:
    import requests

    return (OSError, requests.RequestException)


def download_file(url: str, dest: Path, *, sha256: str, desc: str | None = None) -> None:
    """Fetch `url` into `dest`, retrying network errors, then verify its sha256."""
    attempts = len(RETRY_DELAYS) + 1
    for attempt in range(1, attempts + 1):
        try:
            _download_once(url, dest, desc or dest.name)
            break
        except _network_errors() as exc:
            dest.unlink(missing_ok=True)
            reason = _short_reason(exc)
            if attempt == attempts:
                raise DownloadError(f"{reason} (after {attempts} attempts)") from exc
            delay = RETRY_DELAYS[attempt - 1]
            log.warning(
                "download attempt %d/%d failed (%s); retrying in %.0fs",
                attempt,
                attempts,
                reason,
                delay,
            )
            time.sleep(delay)
    actual = _sha256(dest)
    if actual != sha256:
        dest.unlink(missing_ok=True)
        raise ChecksumError(f"sha256 mismatch: got {actual}, expected {sha256}")


def _short_reason(exc: BaseException) -> str:
    """`ConnectionError: [Errno -2] Name or service not known` rather than urllib3's essay."""
    text = str(exc)
    errno = re.search(r"\[Errno -?\d+\] [^)\"']+", text)
    if errno:
        text = errno.group(0).strip()
    elif len(text) > 200:
        text = text[:200] + "..."
    return f"{type(exc).__name__}: {text}"


def _download_once(url: str, dest: Path, desc: str) -> None:
    with (
        _http_stream(url, TIMEOUT_S) as (total, chunks),
        open(dest, "wb") as out,
        tqdm(
            total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, disable=None
        ) as bar,
    ):
        for chunk in chunks:
            out.write(chunk)
            bar.update(len(chunk))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


# -- safe extraction ----------------------------------------------------------------------


# Size caps for extraction, so that a small archive cannot fill the disk (a "tar bomb"). The real
# IMDb archive: 100,016 members adding up to 138.6 MB, the largest 2.45 MB (urls_unsup.txt).
MAX_MEMBER_BYTES = 64 * 1024 * 1024
MAX_TOTAL_BYTES = 1024 * 1024 * 1024


def safe_extract(
    archive: Path,
    dest: Path,
    *,
    max_member_bytes: int | None = None,
    max_total_bytes: int | None = None,
) -> None:
    """Extract the regular files and folders of a (compressed) tar into `dest`.

    Refuses the whole archive when a member is absolute, climbs out with `..`, is a
    link, a device or any other special file: such members could write outside
    `dest`. tarfile's own "data" filter checks every member again, as a second line.
    Refuses it too, before writing the member at fault, when a member is larger than
    `max_member_bytes` or the members add up to more than `max_total_bytes` (each
    member's size is in its header, and tarfile never reads past it); the defaults are
    MAX_MEMBER_BYTES and MAX_TOTAL_BYTES.
    """
    max_member_bytes = max_member_bytes or MAX_MEMBER_BYTES
    max_total_bytes = max_total_bytes or MAX_TOTAL_BYTES
    dest.mkdir(parents=True, exist_ok=True)
    made_dirs: set[Path] = set()
    total = 0
    try:
        with (
            open(archive, "rb") as raw,
            tarfile.open(fileobj=raw, mode="r|*") as tar,  # streaming: one forward pass
            tqdm(
                total=archive.stat().st_size,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"extracting {archive.name}",
                disable=None,
            ) as bar,
        ):
            for member in tar:
                _check_member(member, archive)
                total += member.size
                _check_size(member, total, archive, max_member_bytes, max_total_bytes)
                member = tarfile.data_filter(member, str(dest))  # may raise FilterError
                _write_member(tar, member, dest / member.name, made_dirs)
                bar.update(raw.tell() - bar.n)
    except tarfile.FilterError as exc:
        raise DataError(f"refusing to extract {archive}: {exc}") from None
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(
            f"{archive} is not a readable tar archive (corrupt or truncated?): {exc}"
        ) from None


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    name = member.name
    path = PurePosixPath(name)
    if path.is_absolute() or (len(name) > 1 and name[1] == ":"):
        problem = "has an absolute path"
    elif ".." in path.parts:
        problem = "climbs out of the target folder with '..'"
    elif "\\" in name:
        problem = "contains a backslash (a path separator on Windows)"
    elif member.issym() or member.islnk():
        problem = f"is a link (to {member.linkname!r})"
    elif not (member.isfile() or member.isdir()):
        problem = "is a device or other special file"
    else:
        return
    raise DataError(f"refusing to extract {archive}: member {name!r} {problem}")


def _check_size(member, total: int, archive: Path, max_member: int, max_total: int) -> None:
    if member.size > max_member:
        raise DataError(
            f"refusing to extract {archive}: member {member.name!r} is {member.size:,} bytes, "
            f"over the limit of {max_member:,} per file"
        )
    if total > max_total:
        raise DataError(
            f"refusing to extract {archive}: its files add up to more than the limit of "
            f"{max_total:,} bytes (at member {member.name!r})"
        )


def _write_member(
    tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path, made_dirs: set[Path]
) -> None:
    # Links were refused, so no path below `dest` can lead outside it.
    folder = target if member.isdir() else target.parent
    if folder not in made_dirs:
        folder.mkdir(parents=True, exist_ok=True)
        made_dirs.add(folder)
    if member.isfile():
        source = tar.extractfile(member)
        assert source is not None  # regular files always have a data stream
        with source, open(target, "wb") as out:
            shutil.copyfileobj(source, out)
        os.utime(target, ns=(member.mtime * 10**9, member.mtime * 10**9))
