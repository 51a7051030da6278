"""The Iris predictor: ONNX Runtime when `modelo.onnx` exists, else the pickle.

Both files are checked against the sha256 in their sidecar before they are
loaded (`mlapi.artifacts.verified_metadata`, the check every model goes through): a
pickle can run code when it is loaded, so we only load what our own training wrote.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from mlapi.artifacts import verified_metadata

TRAIN_HINT = "Train it with: python train_model.py (or: mlapi train iris)."


class IrisPredictor:
    def __init__(self, predict_proba, metadata: dict[str, Any], backend: str):
        self._predict_proba = predict_proba
        self.metadata = metadata
        self.backend = backend
        self.class_names: list[str] = list(metadata["class_names"])

    @classmethod
    def load(cls, pickle_path: str | os.PathLike) -> IrisPredictor:
        pickle_path = Path(pickle_path)
        onnx_path = pickle_path.with_suffix(".onnx")
        if onnx_path.is_file():
            metadata = verified_metadata(onnx_path, what="Iris model", hint=TRAIN_HINT)
            return cls(_onnx_runner(onnx_path), metadata, "onnx")
        metadata = verified_metadata(pickle_path, what="Iris model", hint=TRAIN_HINT)
        with open(pickle_path, "rb") as f:
            model = pickle.load(f)
        return cls(model.predict_proba, metadata, "pickle")

    def predict(self, rows: list[list[float]]) -> list[dict[str, Any]]:
        """One {"prediction", "probabilities"} per row; the label is the most probable class."""
        probabilities = np.asarray(self._predict_proba(np.asarray(rows, dtype=np.float32)))
        best = probabilities.argmax(axis=1)
        return [
            {
                "prediction": self.class_names[i],
                "probabilities": dict(zip(self.class_names, map(float, row), strict=True)),
            }
            for i, row in zip(best, probabilities, strict=True)
        ]

    def info(self) -> dict[str, Any]:
        keys = ("sha256", "class_names", "feature_names", "holdout_accuracy", "created_at", "model")
        return {"backend": self.backend, **{k: self.metadata.get(k) for k in keys}}


def _onnx_runner(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    probabilities_output = session.get_outputs()[1].name

    def predict_proba(x: np.ndarray) -> np.ndarray:
        return session.run([probabilities_output], {input_name: x})[0]

    return predict_proba
