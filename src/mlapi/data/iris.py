"""The Iris dataset bundled with scikit-learn (no download needed)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.datasets import load_iris as _sklearn_load_iris

FEATURE_NAMES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


@dataclass(frozen=True)
class IrisData:
    x: np.ndarray  # float32 [150, 4], in FEATURE_NAMES order (cm)
    y: np.ndarray  # int64 [150], index into class_names
    class_names: tuple[str, ...]
    feature_names: tuple[str, ...] = FEATURE_NAMES


def load_iris() -> IrisData:
    bunch = _sklearn_load_iris()
    return IrisData(
        x=bunch.data.astype(np.float32),
        y=bunch.target.astype(np.int64),
        class_names=tuple(str(name) for name in bunch.target_names),
    )
