"""The IMDb movie reviews: find -> verify -> extract -> load -> split -> encode -> cache.

Where the data comes from (first match wins):
  1. the `data` argument (`--data PATH`): an aclImdb folder (or the folder holding it)
     or a .tar.gz archive;
  2. $IMDB_DATA, same forms;
  3. the cache: <cache>/aclImdb, <cache> being $XDG_CACHE_HOME/mlapi, else ~/.cache/mlapi;
  4. a download of URL, verified against SHA256 and extracted into <cache>/aclImdb.

What lives in <cache>:
  aclImdb/                              the downloaded dataset (step 3 finds it)
  imdb-archives/<sha256[:16]>/aclImdb/  a local archive from step 1 or 2, extracted once
  imdb-encoded/{train,test}-<key>.npz   encoded arrays, keyed on settings + dataset files
Everything is staged under a temp name and renamed into place, so an error or Ctrl-C
leaves nothing partial behind. mlapi.data.cache keeps the cache in bounds: it removes
staging folders of killed processes and evicts the least recently used encoded arrays
beyond $MLAPI_ENCODED_CACHE_MB (2048 by default).

The validation split and the stratified sample come from mlapi.data.splits.

A local folder or archive is checked by layout and file counts (EXPECTED_COUNTS),
a download by its sha256. Tests shrink EXPECTED_COUNTS to fit their tiny fixtures.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mlapi.artifacts import replace_directory, sha256_file
from mlapi.data import fetch
from mlapi.data.cache import (
    cache_dir,
    encoded_budget_bytes,
    encoded_file,
    read_arrays,
    staging_dir,
    write_arrays,
)
from mlapi.data.splits import stratified_sample, validation_split
from mlapi.errors import DataError
from mlapi.text import Vocabulary, tokenize

log = logging.getLogger(__name__)

URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
ARCHIVE_NAME = "aclImdb_v1.tar.gz"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")

# split -> (folder under aclImdb/, label); neg 0, pos 1, unlabeled -1
SPLIT_FOLDERS: dict[str, tuple[tuple[str, int], ...]] = {
    "train": (("train/neg", 0), ("train/pos", 1)),
    "test": (("test/neg", 0), ("test/pos", 1)),
    "unsup": (("train/unsup", -1),),
}
# Review files per folder in the real dataset. Kept strict; tests monkeypatch it.
EXPECTED_COUNTS: dict[str, int] = {
    "train/neg": 12_500,
    "train/pos": 12_500,
    "test/neg": 12_500,
    "test/pos": 12_500,
    "train/unsup": 50_000,
}
USE_LOCAL_COPY = (
    "To use a local copy, pass --data PATH or set IMDB_DATA=PATH "
    "(an aclImdb folder or the aclImdb_v1.tar.gz archive)."
)

_REVIEW_FILE = re.compile(r"(\d+)_(\d+)\.txt")  # <id>_<rating>.txt
_CACHE_FORMAT = 1  # bump when the encoded cache's content changes


# -- 1. find --------------------------------------------------------------------------------


def find_dataset(
    data: str | os.PathLike | None = None, *, include_unsup: bool = False, download: bool = True
) -> Path:
    """Return a verified aclImdb folder: from `data`, $IMDB_DATA, the cache, or a download."""
    if data is not None and str(data):
        return _local_dataset(Path(data), include_unsup, source=str(data))
    if env := os.environ.get("IMDB_DATA"):
        return _local_dataset(Path(env), include_unsup, source=f"IMDB_DATA={env}")
    cached = cache_dir() / "aclImdb"
    if cached.is_dir():
        try:
            check_layout(cached, include_unsup=include_unsup)
            return cached
        except DataError as exc:
            log.warning("ignoring the cached copy: %s", exc)
    if not download:
        raise DataError(
            f"IMDb dataset not found: no --data, no IMDB_DATA, nothing in {cached}. "
            + USE_LOCAL_COPY
        )
    return download_dataset()


def _local_dataset(path: Path, include_unsup: bool, source: str) -> Path:
    path = path.expanduser()
    if path.is_dir():
        root = path
        if not _looks_like_root(path) and (path / "aclImdb").is_dir():
            root = path / "aclImdb"  # the user pointed at the folder holding aclImdb/
        check_layout(root, include_unsup=include_unsup)
        return root
    if path.is_file():
        if not path.name.endswith(ARCHIVE_SUFFIXES):
            raise DataError(f"{source}: expected an aclImdb folder or a .tar.gz archive")
        return _extracted_archive(path, include_unsup)
    raise DataError(f"IMDb data not found at {source}: no such file or folder. {USE_LOCAL_COPY}")


def _looks_like_root(path: Path) -> bool:
    return (path / "train").is_dir() or (path / "test").is_dir()


# -- 2. verify ------------------------------------------------------------------------------


def count_reviews(root: Path, folders: Iterable[str] | None = None) -> dict[str, int]:
    """Review files (`<id>_<rating>.txt`) per folder (default: all five), where they exist."""
    counts = {}
    for folder in EXPECTED_COUNTS if folders is None else folders:
        if (root / folder).is_dir():
            with os.scandir(root / folder) as entries:
                counts[folder] = sum(1 for e in entries if _REVIEW_FILE.fullmatch(e.name))
    return counts


def check_layout(root: Path, *, include_unsup: bool = False, name: str | None = None) -> None:
    """Raise DataError naming every missing folder or wrong count (unsup only if asked)."""
    expected_counts = {
        folder: expected
        for folder, expected in EXPECTED_COUNTS.items()
        if include_unsup or folder != "train/unsup"
    }
    counts = count_reviews(root, expected_counts)
    problems = []
    for folder, expected in expected_counts.items():
        found = counts.get(folder)
        if found is None:
            problems.append(f"{folder}/ is missing")
        elif found != expected:
            problems.append(f"{folder}/ has {found:,} review files, expected {expected:,}")
    if problems:
        raise DataError(f"the IMDb data in {name or root} is incomplete: {'; '.join(problems)}")


# -- 3. extract (a local archive) or download then extract ----------------------------------


def _extracted_archive(archive: Path, include_unsup: bool) -> Path:
    """Extract a local archive into the cache once (keyed by its sha256); reuse it after."""
    target = cache_dir() / "imdb-archives" / sha256_file(archive)[:16] / "aclImdb"
    if target.is_dir():
        try:
            check_layout(target, include_unsup=include_unsup)
            return target
        except DataError as exc:
            log.info("extracting %s again (%s)", archive, exc)
    log.info("extracting %s into %s (once; later runs reuse it)", archive, target)
    with staging_dir(target.parent.parent) as staging:  # the key folder appears on success
        _install_from_archive(archive, target, staging, include_unsup=include_unsup)
    return target


def download_dataset() -> Path:
    """Download URL into the cache, verify SHA256, extract to <cache>/aclImdb."""
    target = cache_dir() / "aclImdb"
    log.info("downloading the IMDb dataset from %s", URL)
    with staging_dir(target.parent) as staging:
        archive = staging / ARCHIVE_NAME
        try:
            fetch.download_file(URL, archive, sha256=SHA256)
        except fetch.DownloadError as exc:
            raise DataError(
                f"could not download the IMDb dataset from {URL}: {exc}. Nothing was kept. "
                f"{USE_LOCAL_COPY}"
            ) from None
        _install_from_archive(archive, target, staging, include_unsup=True)
    return target


def _install_from_archive(
    archive: Path, target: Path, staging: Path, *, include_unsup: bool
) -> None:
    """Extract into `staging`, check, then move aclImdb/ onto `target`."""
    extracted = staging / "extracted"
    fetch.safe_extract(archive, extracted)
    root = extracted / "aclImdb"
    if not root.is_dir():
        raise DataError(f"{archive} has no aclImdb/ folder at its top level")
    check_layout(root, include_unsup=include_unsup, name=f"archive {archive}")
    if _is_complete(target, include_unsup):
        return  # another process installed it meanwhile; keep theirs, ours is thrown away
    replace_directory(root, target)


def _is_complete(root: Path, include_unsup: bool) -> bool:
    try:
        check_layout(root, include_unsup=include_unsup)
        return True
    except DataError:
        return False


# -- 4. load --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Review:
    id: int  # unique within its folder only: train/neg/0_3.txt and train/pos/0_9.txt both exist
    rating: int  # 1-4 neg, 7-10 pos, 0 unlabeled
    label: int  # neg 0, pos 1, unsup -1
    text: str  # as in the file (markup included); mlapi.text cleans it


def load_split(root: Path, split: str) -> list[Review]:
    """All reviews of `split` ("train", "test", "unsup"), neg before pos, by id."""
    if split not in SPLIT_FOLDERS:
        raise ValueError(f"split must be one of {sorted(SPLIT_FOLDERS)}, got {split!r}")
    reviews = []
    for folder, label in SPLIT_FOLDERS[split]:
        path = Path(root) / folder
        if not path.is_dir():
            raise DataError(f"the IMDb data in {root} is incomplete: {folder}/ is missing")
        for review_id, rating, file in _review_files(path):
            with open(file, encoding="utf-8", errors="replace") as f:
                reviews.append(Review(review_id, rating, label, f.read()))
    return reviews


def _review_files(folder: Path) -> list[tuple[int, int, str]]:
    """(id, rating, path) of the review files in `folder`, sorted by id."""
    with os.scandir(folder) as entries:
        found = [
            (int(match[1]), int(match[2]), entry.path)
            for entry in entries
            if (match := _REVIEW_FILE.fullmatch(entry.name)) and entry.is_file()
        ]
    return sorted(found)


# -- 5. encode (+ 6. cache) -----------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class EncodedImdb:
    """The training portion and the validation split, encoded; the test split on request."""

    vocabulary: Vocabulary  # fitted on x_train's reviews only
    x_train: np.ndarray  # int32 [n_train, maxlen]
    y_train: np.ndarray  # int32 [n_train], neg 0 / pos 1
    x_val: np.ndarray
    y_val: np.ndarray
    train_index: np.ndarray  # row i of x_train is load_split(root, "train")[train_index[i]]
    val_index: np.ndarray
    root: Path  # the aclImdb folder it came from
    settings: dict[str, Any] = field(default_factory=dict)
    from_cache: bool = False
    texts_test: list[str] | None = None  # filled by with_test(), for the report only
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None

    def with_test(self) -> EncodedImdb:
        """A copy holding the encoded test split (read it once per run, for the report)."""
        x_test, y_test, texts = load_encoded_test(self.root, self.vocabulary)
        return replace(self, x_test=x_test, y_test=y_test, texts_test=texts)


def load_encoded(
    data: str | os.PathLike | None = None,
    *,
    num_words: int,
    maxlen: int,
    padding: str,
    truncating: str,
    val_fraction: float,
    seed: int,
    limit: int | None = None,
    cache: bool = True,
) -> EncodedImdb:
    """Encode the training reviews: stratified val split, vocabulary fitted on the rest.

    Every setting is the caller's: the recipe's values live in one place, the training
    config (mlapi.training). `limit=N` keeps a stratified sample of N training reviews
    (quick runs). The result is cached on disk, keyed on every setting and on the
    dataset's files.
    """
    vocabulary = Vocabulary(  # checks settings first
        num_words=num_words, maxlen=maxlen, padding=padding, truncating=truncating
    )
    budget = encoded_budget_bytes() if cache else 0
    root = find_dataset(data)
    settings = {**vocabulary.settings(), "val_fraction": val_fraction, "seed": seed, "limit": limit}
    cache_file = _cache_file("train", settings, dataset_fingerprint(root, "train"))
    arrays = read_arrays(cache_file, budget=budget) if cache else None
    from_cache = arrays is not None
    if arrays is None:
        arrays = _encode_train(root, vocabulary, val_fraction=val_fraction, seed=seed, limit=limit)
        if cache:
            write_arrays(cache_file, arrays, budget=budget, settings=settings, dataset=str(root))
    else:
        log.info("loaded the encoded IMDb training data from %s", cache_file)
    return EncodedImdb(
        vocabulary=Vocabulary.from_dict(json.loads(str(arrays["vocabulary"]))),
        x_train=arrays["x_train"],
        y_train=arrays["y_train"],
        x_val=arrays["x_val"],
        y_val=arrays["y_val"],
        train_index=arrays["train_index"],
        val_index=arrays["val_index"],
        root=root,
        settings=settings,
        from_cache=from_cache,
    )


def load_encoded_test(
    data: str | os.PathLike | None, vocabulary: Vocabulary, *, cache: bool = True
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(x_test int32 [25000, maxlen], y_test int32, raw texts) with a fitted vocabulary."""
    budget = encoded_budget_bytes() if cache else 0
    root = find_dataset(data)
    vocabulary_id = hashlib.sha256(json.dumps(vocabulary.to_dict(), sort_keys=True).encode())
    settings = {"vocabulary_sha256": vocabulary_id.hexdigest()}
    cache_file = _cache_file("test", settings, dataset_fingerprint(root, "test"))
    arrays = read_arrays(cache_file, budget=budget) if cache else None
    if arrays is None:
        reviews = load_split(root, "test")
        texts = [review.text for review in reviews]
        arrays = {
            "x_test": _encode_in_batches(vocabulary, texts),
            "y_test": np.array([review.label for review in reviews], dtype=np.int32),
            **_pack_texts(texts),
        }
        if cache:
            write_arrays(cache_file, arrays, budget=budget, settings=settings, dataset=str(root))
    return arrays["x_test"], arrays["y_test"], _unpack_texts(arrays)


def _encode_train(
    root: Path, vocabulary: Vocabulary, *, val_fraction: float, seed: int, limit: int | None
) -> dict[str, np.ndarray]:
    reviews = load_split(root, "train")
    labels = np.array([review.label for review in reviews], dtype=np.int32)
    chosen = np.arange(len(reviews))
    if limit is not None:
        if not 2 <= limit <= len(reviews):
            raise DataError(f"limit must be between 2 and {len(reviews):,} (the training reviews)")
        chosen = stratified_sample(labels, limit, seed)
    train_part, val_part = validation_split(labels[chosen], val_fraction, seed)
    train_index, val_index = chosen[train_part], chosen[val_part]

    # One pass: count the training portion's words (never val's, never test's), and keep
    # of each review only the maxlen tokens that encoding will use (memory stays small).
    counts: Counter[str] = Counter()
    in_training_portion = set(train_index.tolist())
    kept: dict[int, list[str]] = {}
    for i in _progress(chosen.tolist(), "train"):
        words = tokenize(reviews[i].text)
        if i in in_training_portion:
            counts.update(words)
        kept[i] = [sys.intern(word) for word in vocabulary.truncate(words)]  # one str per word
    vocabulary.fit_counts(counts)

    def encode(index: np.ndarray) -> np.ndarray:
        return vocabulary.encode_tokens([kept[i] for i in index.tolist()])

    return {
        "x_train": encode(train_index),
        "y_train": labels[train_index],
        "x_val": encode(val_index),
        "y_val": labels[val_index],
        "train_index": train_index,
        "val_index": val_index,
        "vocabulary": np.array(json.dumps(vocabulary.to_dict())),
    }


def _encode_in_batches(vocabulary: Vocabulary, texts: list[str], batch: int = 1000) -> np.ndarray:
    """vocabulary.encode(texts), a batch at a time so the token lists never pile up."""
    starts = range(0, len(texts), batch)
    parts = [
        vocabulary.encode(texts[start : start + batch])
        for start in _progress(starts, "test", unit=f"x{batch} reviews")
    ]
    return np.concatenate(parts) if parts else vocabulary.encode([])


def _progress(items: Any, split: str, unit: str = "reviews") -> Any:
    return tqdm(items, desc=f"tokenizing {split}", unit=unit, disable=None)


def dataset_fingerprint(root: Path, split: str) -> str:
    """sha256 over the names, sizes and mtimes of a split's review files: cheap, and
    it changes when a file is added, removed or rewritten."""
    digest = hashlib.sha256()
    for folder, _ in SPLIT_FOLDERS[split]:
        for review_id, rating, file in _review_files(Path(root) / folder):
            stat = os.stat(file)
            digest.update(
                f"{folder}/{review_id}_{rating} {stat.st_size} {stat.st_mtime_ns}\n".encode()
            )
    return digest.hexdigest()


def _cache_file(kind: str, settings: dict[str, Any], fingerprint: str) -> Path:
    return encoded_file(
        kind, {"format": _CACHE_FORMAT, "settings": settings, "dataset": fingerprint}
    )


def _pack_texts(texts: list[str]) -> dict[str, np.ndarray]:
    encoded = [text.encode("utf-8") for text in texts]
    return {
        "text_bytes": np.frombuffer(b"".join(encoded), dtype=np.uint8),
        "text_ends": np.cumsum([len(b) for b in encoded], dtype=np.int64),
    }


def _unpack_texts(arrays: dict[str, np.ndarray]) -> list[str]:
    blob = arrays["text_bytes"].tobytes()
    ends = arrays["text_ends"].tolist()
    starts = [0, *ends[:-1]] if ends else []
    return [blob[start:end].decode("utf-8") for start, end in zip(starts, ends, strict=True)]
