"""What `mlapi data imdb` prints: reviews per split and label, and token lengths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlapi.data.imdb import check_layout, load_split
from mlapi.text import tokenize

PERCENTILES = (50, 90, 95, 99)
LABEL_NAMES = {0: "neg", 1: "pos", -1: "unlabeled"}


def summarize(root: Path, *, maxlen: int) -> dict[str, Any]:
    """Counts and token-length statistics of train, test and (when present) unsup."""
    splits = ["train", "test"]
    if (root / "train" / "unsup").is_dir():
        check_layout(root, include_unsup=True)  # a partial unsup folder means a broken copy
        splits.append("unsup")
    summary: dict[str, Any] = {"root": str(root), "maxlen": maxlen, "splits": {}}
    for split in splits:
        reviews = load_split(root, split)
        lengths = np.array([len(tokenize(review.text)) for review in reviews])
        labels = [review.label for review in reviews]
        summary["splits"][split] = {
            "counts": {LABEL_NAMES[label]: labels.count(label) for label in sorted(set(labels))},
            "total": len(reviews),
            "tokens": {
                "mean": round(float(lengths.mean()), 1),
                **{f"p{q}": int(np.percentile(lengths, q)) for q in PERCENTILES},
                "max": int(lengths.max()),
            },
            "longer_than_maxlen": round(float((lengths > maxlen).mean()), 4),
        }
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    splits = summary["splits"]
    lines = [f"IMDb dataset: {summary['root']}", ""]
    lines.append(f"{'split':<6} {'neg':>8} {'pos':>8} {'unlabeled':>10} {'total':>8}")
    for split, info in splits.items():
        cells = [
            f"{info['counts'][k]:,}" if k in info["counts"] else "-" for k in LABEL_NAMES.values()
        ]
        lines.append(f"{split:<6} {cells[0]:>8} {cells[1]:>8} {cells[2]:>10} {info['total']:>8,}")
    lines += ["", "tokens per review (mlapi.text.tokenize)"]
    stats = ["mean", *(f"p{q}" for q in PERCENTILES), "max"]
    lines.append(
        f"{'split':<6} " + " ".join(f"{s:>7}" for s in stats) + f"  > maxlen={summary['maxlen']}"
    )
    for split, info in splits.items():
        values = " ".join(f"{info['tokens'][s]:>7}" for s in stats)
        lines.append(f"{split:<6} {values}  {info['longer_than_maxlen']:>8.1%}")
    return "\n".join(lines)
