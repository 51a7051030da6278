"""Text to token ids, the same way for training and for serving.

    clean_text("Great<br /><br />FUN &amp; games")  ->  "great  fun & games"
    tokenize(...)                                   ->  ["great", "fun", "games"]
    Vocabulary(num_words=50000, maxlen=300).fit(train_texts).encode(texts)  ->  int32 [n, 300]

Ids follow Keras: 0 is padding, 1 is out-of-vocabulary, 2.. are words by falling
frequency, and `num_words` counts the whole id space (ids 0 .. num_words-1).
Padding and truncation default to 'pre', like `keras.utils.pad_sequences`; `num_words`
and `maxlen` have no default (the recipe's values live in the training config).
This module must not import torch: the server imports it.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlapi.artifacts import atomic_write_json
from mlapi.errors import ArtifactError

# Bump when clean_text/tokenize change: saved vocabularies and data caches record it,
# so ids made by an older tokenizer are never mixed with ids made by a newer one.
TOKENIZER_VERSION = 1

_TAG = re.compile(r"</?[A-Za-z][^<>]*>")  # <br />, <i>, </a href=...>; not "<3" or "a < b"
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")  # letters/digits, inner apostrophes: don't, it's

_SIDES = ("pre", "post")
_VOCABULARY_FORMAT = "mlapi.vocabulary"


def clean_text(text: str) -> str:
    """Drop HTML tags (IMDb's `<br />`), unescape entities (`&amp;`), lowercase."""
    text = _TAG.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
    return text.lower()


def tokenize(text: str) -> list[str]:
    """clean_text, then the words: runs of letters/digits, keeping inner apostrophes."""
    return _WORD.findall(clean_text(text))


class Vocabulary:
    """The top-N training words and the padding/truncation rule, saved together as JSON.

    Fit it on the training portion only; validation and test texts are only encoded.
    """

    PAD = 0
    OOV = 1

    def __init__(
        self,
        *,
        num_words: int,
        maxlen: int,
        padding: str = "pre",
        truncating: str = "pre",
    ) -> None:
        if not isinstance(num_words, int) or num_words < 3:
            raise ValueError(
                f"num_words must be an int >= 3 (0 pad, 1 OOV, 2.. words), got {num_words!r}"
            )
        if not isinstance(maxlen, int) or maxlen < 1:
            raise ValueError(f"maxlen must be a positive int, got {maxlen!r}")
        for name, value in (("padding", padding), ("truncating", truncating)):
            if value not in _SIDES:
                raise ValueError(f"{name} must be 'pre' or 'post', got {value!r}")
        self.num_words = num_words
        self.maxlen = maxlen
        self.padding = padding
        self.truncating = truncating
        self.word_index: dict[str, int] | None = None  # set by fit() or load()

    # -- fitting -------------------------------------------------------------------------

    def fit(self, texts: Iterable[str]) -> Vocabulary:
        """Keep the num_words - 2 most frequent words of `texts` (raw, uncleaned)."""
        _reject_single_string(texts)
        return self.fit_tokens(tokenize(text) for text in texts)

    def fit_tokens(self, token_lists: Iterable[list[str]]) -> Vocabulary:
        """Same as fit, from already tokenized texts."""
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            counts.update(tokens)
        return self.fit_counts(counts)

    def fit_counts(self, counts: Mapping[str, int]) -> Vocabulary:
        """Same as fit, from word counts. Ties in frequency go alphabetically."""
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        kept = ranked[: self.num_words - 2]
        self.word_index = {word: i + 2 for i, (word, _) in enumerate(kept)}
        return self

    @property
    def fitted(self) -> bool:
        return self.word_index is not None

    @property
    def size(self) -> int:
        """Embedding input_dim: real words + 2 (== num_words once fitted on enough text)."""
        return len(self._index()) + 2

    # -- encoding ------------------------------------------------------------------------

    def encode(self, texts: Sequence[str], maxlen: int | None = None) -> np.ndarray:
        """Raw texts -> int32 [len(texts), maxlen], padded and truncated."""
        _reject_single_string(texts)
        return self.encode_tokens([tokenize(text) for text in texts], maxlen=maxlen)

    def encode_tokens(self, tokens: Sequence[list[str]], maxlen: int | None = None) -> np.ndarray:
        """Tokenized texts -> int32 [len(tokens), maxlen]; unknown words become OOV (1)."""
        _reject_single_string(tokens)
        maxlen = self.maxlen if maxlen is None else maxlen
        if maxlen < 1:
            raise ValueError(f"maxlen must be positive, got {maxlen}")
        lookup = self._index().get
        out = np.full((len(tokens), maxlen), self.PAD, dtype=np.int32)
        for row, words in enumerate(tokens):
            kept = self.truncate(words, maxlen)
            if not kept:
                continue
            ids = [lookup(word, self.OOV) for word in kept]
            if self.padding == "pre":
                out[row, maxlen - len(ids) :] = ids
            else:
                out[row, : len(ids)] = ids
        return out

    def truncate(self, tokens: list[str], maxlen: int | None = None) -> list[str]:
        """The tokens that encoding keeps: the last maxlen ('pre') or the first ('post')."""
        maxlen = self.maxlen if maxlen is None else maxlen
        return tokens[-maxlen:] if self.truncating == "pre" else tokens[:maxlen]

    # -- saving --------------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        return {
            "num_words": self.num_words,
            "maxlen": self.maxlen,
            "padding": self.padding,
            "truncating": self.truncating,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _VOCABULARY_FORMAT,
            "tokenizer_version": TOKENIZER_VERSION,
            **self.settings(),
            "size": self.size,
            "word_index": self._index(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Vocabulary:
        """Rebuild a saved vocabulary; raises ArtifactError when `data` is not a valid one."""
        if not isinstance(data, dict) or data.get("format") != _VOCABULARY_FORMAT:
            raise ArtifactError("not an mlapi vocabulary (missing format marker)")
        if data.get("tokenizer_version") != TOKENIZER_VERSION:
            raise ArtifactError(
                f"vocabulary was made with tokenizer version {data.get('tokenizer_version')}, "
                f"this mlapi uses version {TOKENIZER_VERSION}; retrain to get matching ids"
            )
        try:
            vocabulary = cls(
                num_words=data["num_words"],
                maxlen=data["maxlen"],
                padding=data["padding"],
                truncating=data["truncating"],
            )
            word_index = data["word_index"]
        except (KeyError, ValueError) as exc:
            raise ArtifactError(f"vocabulary settings are invalid: {exc}") from None
        valid = (
            isinstance(word_index, dict)
            and all(type(i) is int for i in word_index.values())
            and sorted(word_index.values()) == list(range(2, len(word_index) + 2))
            and len(word_index) + 2 <= vocabulary.num_words
        )
        if not valid:
            raise ArtifactError("vocabulary word_index must map words to ids 2..size-1")
        vocabulary.word_index = dict(word_index)
        return vocabulary

    def save(self, path: str | os.PathLike) -> None:
        """Write JSON (settings + word index) atomically."""
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocabulary:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ArtifactError(f"vocabulary file not found: {path}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"cannot read vocabulary {path}: {exc}") from None
        try:
            return cls.from_dict(data)
        except ArtifactError as exc:
            raise ArtifactError(f"{path}: {exc}") from None

    # -- helpers -------------------------------------------------------------------------

    def _index(self) -> dict[str, int]:
        if self.word_index is None:
            raise RuntimeError("Vocabulary is not fitted yet: call fit() or Vocabulary.load()")
        return self.word_index

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return self.settings() == other.settings() and self.word_index == other.word_index

    def __repr__(self) -> str:
        size = self.size if self.fitted else "unfitted"
        settings = ", ".join(f"{key}={value!r}" for key, value in self.settings().items())
        return f"Vocabulary({settings}, size={size})"


def _reject_single_string(texts: object) -> None:
    # A bare string is a Sequence of characters: encoding it would silently give one row per char.
    if isinstance(texts, str | bytes):
        raise TypeError("expected a sequence of texts, got a single string; wrap it in a list")
