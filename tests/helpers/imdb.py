"""Tiny aclImdb-layout datasets for tests.

    root = make_imdb_tree(tmp_path, n_per_label=40, n_unsup=10)   # -> tmp_path/aclImdb
    archive = make_imdb_archive(tmp_path / "imdb.tar.gz", n_per_label=40)
    use_tiny_counts(monkeypatch, n_per_label=40, n_unsup=10)      # so the layout check passes
    offline(url, timeout)                    # a fetch._http_stream that finds no network
    cache_files()                            # what a failure must not leave in the cache
    load_tiny(root, maxlen=10)               # load_encoded with TINY_ENCODING, changes applied

The `imdb_sandbox` fixture (tests/conftest.py) uses N_PER_LABEL and N_UNSUP, as do its
`imdb_tree` and `imdb_archive`.

Reviews come from helpers.reviews.review_text (IMDb-style, with markup), so a 2-epoch
model can beat chance on them.
"""

from __future__ import annotations

import contextlib
import io
import random
import tarfile
from pathlib import Path

import pytest
import requests

from helpers.reviews import review_text

FOLDERS = ("train/neg", "train/pos", "test/neg", "test/pos")
N_PER_LABEL = 20  # reviews per label per split in the sandbox's tiny trees
N_UNSUP = 5


@contextlib.contextmanager
def offline(url, timeout):
    """A `fetch._http_stream` for a machine without network."""
    raise requests.ConnectionError(f"Failed to resolve host for {url}")
    yield  # pragma: no cover


# Encoding settings for the tiny trees: load_encoded has no defaults (the recipe's live in
# the training config), so the tests spell theirs out once, here.
TINY_ENCODING = {
    "num_words": 50,
    "maxlen": 30,
    "padding": "pre",
    "truncating": "pre",
    "val_fraction": 0.2,
    "seed": 42,
}


def load_tiny(data, **changes):
    """mlapi.data.imdb.load_encoded(data) with TINY_ENCODING, `changes` applied."""
    from mlapi.data import imdb

    return imdb.load_encoded(data, **{**TINY_ENCODING, **changes})


def cache_files() -> list[Path]:
    """Every file or non-empty folder under the cache: what a failure must not leave behind."""
    from mlapi.data.cache import cache_dir

    cache = cache_dir()
    if not cache.exists():
        return []
    return [p for p in cache.rglob("*") if p.is_file() or any(p.iterdir())]


def tiny_counts(n_per_label: int, n_unsup: int = 0) -> dict[str, int]:
    """EXPECTED_COUNTS for a tree made with these sizes."""
    counts = dict.fromkeys(FOLDERS, n_per_label)
    counts["train/unsup"] = n_unsup
    return counts


def use_tiny_counts(monkeypatch: pytest.MonkeyPatch, n_per_label: int, n_unsup: int = 0) -> None:
    """Make mlapi.data.imdb accept a tiny tree (the real check stays 12,500 / 50,000)."""
    from mlapi.data import imdb

    monkeypatch.setattr(imdb, "EXPECTED_COUNTS", tiny_counts(n_per_label, n_unsup))


def imdb_files(n_per_label: int = 20, n_unsup: int = 5, seed: int = 0) -> dict[str, str]:
    """{'aclImdb/train/pos/3_8.txt': text, ...}; ids 0.., ratings 1-4 neg, 7-10 pos, 0 unsup."""
    rng = random.Random(seed)
    files = {"aclImdb/README": "Tiny test copy of the Large Movie Review Dataset layout.\n"}
    for folder in FOLDERS:
        label = 1 if folder.endswith("pos") else 0
        for review_id in range(n_per_label):
            rating = rng.randint(7, 10) if label else rng.randint(1, 4)
            files[f"aclImdb/{folder}/{review_id}_{rating}.txt"] = review_text(label, rng)
    for review_id in range(n_unsup):
        files[f"aclImdb/train/unsup/{review_id}_0.txt"] = review_text(-1, rng)
    return files


def make_imdb_tree(root: Path, n_per_label: int = 20, n_unsup: int = 5, seed: int = 0) -> Path:
    """Write a tiny aclImdb tree under `root`; return the aclImdb folder."""
    for name, text in imdb_files(n_per_label, n_unsup, seed).items():
        path = Path(root) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return Path(root) / "aclImdb"


def make_imdb_archive(
    path: Path,
    n_per_label: int = 20,
    n_unsup: int = 5,
    seed: int = 0,
    extra_members: list[tarfile.TarInfo] | None = None,
) -> Path:
    """Write a tiny aclImdb .tar.gz at `path` (plus raw `extra_members`, e.g. unsafe ones)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, text in imdb_files(n_per_label, n_unsup, seed).items():
            add_file(tar, name, text.encode("utf-8"))
        for member in extra_members or []:
            data = b"x" * member.size if member.isfile() else None
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return Path(path)


def add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 1_300_000_000
    tar.addfile(info, io.BytesIO(data))


def unsafe_member(kind: str, absolute_target: Path | None = None) -> tarfile.TarInfo:
    """A member never to extract: 'absolute', 'dotdot', 'symlink', 'hardlink' or 'device'.

    An 'absolute' member points at `absolute_target` (give one under a tmp dir, so even
    a broken extractor writes nowhere that matters).
    """
    if kind == "absolute":
        if absolute_target is None or not Path(absolute_target).is_absolute():
            raise ValueError("an 'absolute' member needs an absolute_target path")
        info = tarfile.TarInfo(str(absolute_target))
    elif kind == "dotdot":
        info = tarfile.TarInfo("aclImdb/../../mlapi-evil.txt")
    elif kind == "symlink":
        info = tarfile.TarInfo("aclImdb/train/evil-link")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    elif kind == "hardlink":
        info = tarfile.TarInfo("aclImdb/train/evil-hardlink")
        info.type, info.linkname = tarfile.LNKTYPE, "aclImdb/README"
    elif kind == "device":
        info = tarfile.TarInfo("aclImdb/train/evil-device")
        info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    else:
        raise ValueError(kind)
    if info.isfile():
        info.size = 4
    return info
