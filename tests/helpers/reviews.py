"""The one synthetic-review generator: learnable fake reviews for tiny models.

A review is neutral filler with a few cue words from POSITIVE_WORDS (label 1) or
NEGATIVE_WORDS (label 0), none for label -1 (unlabeled). The IMDb-style shape (the
default) adds markup (`<br /><br />`, `&amp;`) as the real files have; tiny_reviews()
makes short ones without markup, for models with a short maxlen.
"""

from __future__ import annotations

import random

import numpy as np

POSITIVE_WORDS = ("great", "wonderful", "excellent", "superb", "loved", "brilliant", "masterpiece")
NEGATIVE_WORDS = ("awful", "terrible", "boring", "worst", "waste", "dull", "horrible")
NEUTRAL_WORDS = (
    "the", "movie", "film", "plot", "actor", "actress", "scene", "story", "was", "and",
    "a", "of", "this", "director", "ending", "music", "character", "script", "camera", "it",
)  # fmt: skip


def review_text(
    label: int,
    rng: random.Random,
    *,
    filler: tuple[int, int] = (12, 55),
    cues: tuple[int, int] = (3, 5),
    markup: bool = True,
) -> str:
    """One fake review: `filler` neutral words (inclusive range) and `cues` sentiment words
    placed at random (none if label is -1), IMDb markup included when `markup`."""
    words = [rng.choice(NEUTRAL_WORDS) for _ in range(rng.randint(*filler))]
    cue_words = POSITIVE_WORDS if label == 1 else NEGATIVE_WORDS
    if label in (0, 1):
        for _ in range(rng.randint(*cues)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(cue_words))
    text = " ".join(words)
    if not markup:
        return text
    cut = rng.randrange(len(text) // 2, len(text))
    return f"{text[:cut].capitalize()}.<br /><br />Sound &amp; {text[cut:]}!"


def tiny_reviews(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """`n` short labelled reviews (1-11 words, no markup) and their labels (int64, 0/1)."""
    rng = random.Random(seed)
    labels = [rng.randint(0, 1) for _ in range(n)]
    texts = [review_text(label, rng, filler=(0, 8), cues=(1, 3), markup=False) for label in labels]
    return texts, np.array(labels)
