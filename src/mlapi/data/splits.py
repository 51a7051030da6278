"""Seeded, stratified index splits: the validation split and the `--limit` sample.

Both take every setting from the caller (the recipe's values live in the training config).
"""

from __future__ import annotations

import numpy as np


def validation_split(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, stratified (train_idx, val_idx), each in shuffled order.

    round(fraction * n) positions go to validation, shared between the classes in
    proportion to their sizes (25,000 reviews, 0.2 -> 2,500 neg + 2,500 pos).
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    val_idx = _stratified_pick(labels, round(fraction * len(labels)), rng)
    rest = np.ones(len(labels), dtype=bool)
    rest[val_idx] = False
    train_idx = rng.permutation(np.flatnonzero(rest))
    return train_idx, val_idx


def stratified_sample(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """`size` positions of `labels`, classes kept in proportion, in seeded shuffled order."""
    labels = np.asarray(labels)
    if not 0 <= size <= len(labels):
        raise ValueError(f"size must be between 0 and {len(labels)}, got {size}")
    return _stratified_pick(labels, size, np.random.default_rng(seed))


def _stratified_pick(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    classes, counts = np.unique(labels, return_counts=True)
    quotas = counts * size / max(len(labels), 1)
    take = np.floor(quotas).astype(np.int64)
    largest_remainders = np.argsort(-(quotas - take), kind="stable")
    take[largest_remainders[: size - int(take.sum())]] += 1
    picked = [
        rng.permutation(np.flatnonzero(labels == cls))[:k]
        for cls, k in zip(classes, take, strict=True)
    ]
    return rng.permutation(np.concatenate(picked or [np.empty(0, np.int64)])).astype(np.int64)
