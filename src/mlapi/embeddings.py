"""Pretrained word embeddings without the internet.

    --embeddings word2vec   Word2Vec (gensim, CBOW) trained on the training portion's
                            reviews + the 50,000 unlabeled ones (never val, never test),
                            cached on disk keyed on the data, the split and the settings
    --embeddings PATH       a GloVe-format text file the user has ("word v1 v2 ...", an
                            optional word2vec "COUNT DIM" header, .gz allowed)

`pretrained_matrix(config, encoded)` turns either into the [vocabulary.size, embed_dim]
matrix that initialises the network's embedding: row 0 (padding) is zero, words without
a vector (and the OOV id) get Keras' uniform(-0.05, 0.05) init from a seeded generator.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mlapi.artifacts import atomic_path, write_sidecar
from mlapi.errors import DataError
from mlapi.text import TOKENIZER_VERSION, Vocabulary, tokenize

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Word2VecSettings:
    """gensim Word2Vec settings (CBOW, one worker so that a seed gives one result)."""

    dim: int = 128
    window: int = 5
    min_count: int = 3
    negative: int = 5
    epochs: int = 5
    sample: float = 1e-3
    sg: int = 0  # 0 CBOW, 1 skip-gram
    seed: int = 42
    workers: int = 1


@dataclass(frozen=True)
class WordVectors:
    words: list[str]
    vectors: np.ndarray  # float32 [len(words), dim]

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


def _stable_hash(text: str) -> int:
    """gensim seeds each word's initial vector with this: stable across processes
    (Python's own hash() is salted per process)."""
    return zlib.crc32(text.encode("utf-8"))


def train_word2vec(
    sentences: Sequence[list[str]], settings: Word2VecSettings = Word2VecSettings()
) -> WordVectors:
    """Word2Vec on tokenized texts; the words ordered by falling frequency."""
    from gensim.models import Word2Vec

    logging.getLogger("gensim").setLevel(logging.WARNING)  # its INFO lines flood the CLI
    if not sentences:
        raise DataError("Word2Vec needs at least one tokenized text")
    model = Word2Vec(
        sentences=sentences,
        vector_size=settings.dim,
        window=settings.window,
        min_count=settings.min_count,
        negative=settings.negative,
        epochs=settings.epochs,
        sample=settings.sample,
        sg=settings.sg,
        seed=settings.seed,
        workers=settings.workers,
        hashfxn=_stable_hash,
    )
    words = list(model.wv.index_to_key)
    if not words:
        raise DataError(f"Word2Vec kept no words (min_count={settings.min_count})")
    return WordVectors(words, np.asarray(model.wv.vectors, dtype=np.float32))


def load_glove(path: str | os.PathLike, keep: Iterable[str] | None = None) -> WordVectors:
    """Vectors from a GloVe-format text file; only the words in `keep`, when given."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"embeddings file not found: {path}")
    wanted = set(keep) if keep is not None else None
    words, rows, dim = [], [], None
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, start=1):
                parts = line.rstrip("\n").rstrip().split(" ")
                if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                    continue  # word2vec text header: "COUNT DIM"
                if len(parts) < 2:
                    if line.strip():
                        raise DataError(f"{path}:{number}: expected 'word v1 v2 ...'")
                    continue
                if dim is None:
                    dim = len(parts) - 1
                elif len(parts) - 1 != dim:
                    raise DataError(
                        f"{path}:{number}: {len(parts) - 1} values, the first line had {dim}"
                    )
                if wanted is not None and parts[0] not in wanted:
                    continue
                try:
                    rows.append(np.asarray(parts[1:], dtype=np.float32))
                except ValueError:
                    raise DataError(f"{path}:{number}: not a number in the vector") from None
                words.append(parts[0])
    except (OSError, EOFError, UnicodeError) as exc:
        raise DataError(f"cannot read embeddings file {path}: {exc}") from None
    if dim is None:
        raise DataError(f"embeddings file {path} has no vectors")
    vectors = np.stack(rows) if rows else np.zeros((0, dim), np.float32)
    return WordVectors(words, vectors)


def embedding_matrix(vocabulary: Vocabulary, vectors: WordVectors, seed: int = 42) -> np.ndarray:
    """float32 [vocabulary.size, dim]: pretrained rows where the word has a vector."""
    rng = np.random.default_rng(seed)
    matrix = rng.uniform(-0.05, 0.05, (vocabulary.size, vectors.dim)).astype(np.float32)
    matrix[Vocabulary.PAD] = 0.0
    row_of = {word: i for i, word in enumerate(vectors.words)}
    found = 0
    for word, index in (vocabulary.word_index or {}).items():
        row = row_of.get(word)
        if row is not None and index < vocabulary.size:
            matrix[index] = vectors.vectors[row]
            found += 1
    log.info("pretrained vectors for %d of %d vocabulary words", found, vocabulary.size - 2)
    return matrix


def coverage(vocabulary: Vocabulary, vectors: WordVectors) -> float:
    """Share of the vocabulary's words that have a pretrained vector."""
    words = vocabulary.word_index or {}
    known = set(vectors.words)
    return sum(word in known for word in words) / max(len(words), 1)


def pretrained_matrix(config: Any, encoded: Any, progress: bool = True) -> np.ndarray:
    """The embedding matrix for `config.embeddings` ("word2vec" or a file path)."""
    vocabulary = encoded.vocabulary
    if config.embeddings == "word2vec":
        settings = Word2VecSettings(dim=config.embed_dim, seed=config.seed)
        vectors = imdb_word2vec(encoded.root, encoded.train_index, settings, progress)
    else:
        vectors = load_glove(config.embeddings, keep=(vocabulary.word_index or {}).keys())
        if len(vectors.words) == 0:
            raise DataError(f"{config.embeddings} has no vector for any vocabulary word")
        if vectors.dim != config.embed_dim:
            raise DataError(
                f"{config.embeddings} holds {vectors.dim}-d vectors: pass --embed-dim {vectors.dim}"
            )
    return embedding_matrix(vocabulary, vectors, seed=config.seed)


# -- Word2Vec on IMDb's own reviews, cached --------------------------------------------------


def imdb_word2vec(
    root: Path,
    train_index: np.ndarray,
    settings: Word2VecSettings = Word2VecSettings(),
    progress: bool = True,
) -> WordVectors:
    """Word2Vec on the training reviews at `train_index` + all unlabeled reviews."""
    from mlapi.data.imdb import check_layout, dataset_fingerprint, load_split

    check_layout(root, include_unsup=True)
    cache_file = _word2vec_cache_file(
        {
            "settings": settings.__dict__,
            "train": dataset_fingerprint(root, "train"),
            "unsup": dataset_fingerprint(root, "unsup"),
            "train_index": hashlib.sha256(np.asarray(train_index, np.int64).tobytes()).hexdigest(),
            "tokenizer_version": TOKENIZER_VERSION,
        }
    )
    cached = _read_vectors(cache_file)
    if cached is not None:
        log.info("loaded Word2Vec vectors from %s", cache_file)
        return cached
    train = load_split(root, "train")
    texts = [train[i].text for i in np.asarray(train_index).tolist()]
    texts += [review.text for review in load_split(root, "unsup")]
    bar = tqdm(texts, desc="tokenizing for word2vec", unit="reviews", disable=not progress)
    sentences = [tokenize(text) for text in bar]
    log.info("training Word2Vec on %d reviews", len(sentences))
    vectors = train_word2vec(sentences, settings)
    _write_vectors(cache_file, vectors, settings=settings.__dict__, reviews=len(sentences))
    return vectors


def _word2vec_cache_file(identity: dict[str, Any]) -> Path:
    from mlapi.data.imdb import cache_dir

    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
    return cache_dir() / "word2vec" / f"imdb-{key}.npz"


def _read_vectors(path: Path) -> WordVectors | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            words = bytes(npz["words"]).decode("utf-8").split("\n")
            return WordVectors(words, npz["vectors"])
    except Exception as exc:  # an unreadable cache is rebuilt
        log.warning("ignoring unreadable Word2Vec cache %s (%s)", path, exc)
        return None


def _write_vectors(path: Path, vectors: WordVectors, **provenance: Any) -> None:
    words = np.frombuffer("\n".join(vectors.words).encode("utf-8"), dtype=np.uint8)
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, words=words, vectors=vectors.vectors)
        write_sidecar(path, kind="mlapi word2vec vectors", **provenance)
    except OSError as exc:  # a read-only cache costs time, not correctness
        log.warning("could not write the Word2Vec cache %s: %s", path, exc)
