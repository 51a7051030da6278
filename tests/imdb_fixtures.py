"""Tiny aclImdb-layout datasets for tests (a plain module: `from imdb_fixtures import ...`).

    root = make_imdb_tree(tmp_path, n_per_label=40, n_unsup=10)   # -> tmp_path/aclImdb
    archive = make_imdb_archive(tmp_path / "imdb.tar.gz", n_per_label=40)
    use_tiny_counts(monkeypatch, n_per_label=40, n_unsup=10)      # so the layout check passes

Reviews are learnable: each positive review holds several words from POSITIVE_WORDS,
each negative one from NEGATIVE_WORDS, among shared neutral filler and IMDb-style
markup (`<br /><br />`, `&amp;`), so a 2-epoch model can beat chance on them.
"""

from __future__ import annotations

import io
import random
import tarfile
from pathlib import Path

import pytest

POSITIVE_WORDS = ("great", "wonderful", "excellent", "superb", "loved", "brilliant", "masterpiece")
NEGATIVE_WORDS = ("awful", "terrible", "boring", "worst", "waste", "dull", "horrible")
NEUTRAL_WORDS = (
    "the", "movie", "film", "plot", "actor", "actress", "scene", "story", "was", "and",
    "a", "of", "this", "director", "ending", "music", "character", "script", "camera", "it",
)  # fmt: skip

FOLDERS = ("train/neg", "train/pos", "test/neg", "test/pos")


def review_text(label: int, rng: random.Random) -> str:
    """One fake review: 15-60 words, 3-5 of them carrying its sentiment (none if label -1)."""
    words = [rng.choice(NEUTRAL_WORDS) for _ in range(rng.randint(12, 55))]
    cues = POSITIVE_WORDS if label == 1 else NEGATIVE_WORDS
    if label in (0, 1):
        for _ in range(rng.randint(3, 5)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(cues))
    text = " ".join(words)
    cut = rng.randrange(len(text) // 2, len(text))
    return f"{text[:cut].capitalize()}.<br /><br />Sound &amp; {text[cut:]}!"


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
