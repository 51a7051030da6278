"""The Iris predictor: ONNX Runtime when `modelo.onnx` exists, else the pickle.

Both files are checked against the sha256 in their sidecar before they are loaded
(`mlapi.artifacts.verified_metadata`, the check every model goes through).

Trust model (README: Trust model). The sha256 is an integrity check, not a security boundary:
it catches a file that is corrupt, half copied or swapped for another run's, but whoever can
write `modelo.pkl` can write its sidecar too, and unpickling runs whatever code the pickle
holds, in every worker. So the model files must be writable only by whom you trust to run code
on the server. ALLOW_PICKLE=0 refuses pickles: Iris is then served from `modelo.onnx` only
(ONNX holds no code), and a missing one is a model that is not available.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from mlapi.artifacts import verified_metadata
from mlapi.errors import ArtifactError

TRAIN_HINT = "Train it with: python train_model.py (or: mlapi train iris)."


class IrisPredictor:
    def __init__(self, predict_proba, metadata: dict[str, Any], backend: str):
        self._predict_proba = predict_proba
        self.metadata = metadata
        self.backend = backend
        self.class_names: list[str] = list(metadata["class_names"])

    @classmethod
    def load(cls, pickle_path: str | os.PathLike, allow_pickle: bool = True) -> IrisPredictor:
        pickle_path = Path(pickle_path)
        onnx_path = pickle_path.with_suffix(".onnx")
        if onnx_path.is_file():
            metadata = verified_metadata(onnx_path, what="Iris model", hint=TRAIN_HINT)
            return cls(_onnx_runner(onnx_path), metadata, "onnx")
        if not allow_pickle:
            raise ArtifactError(
                f"no Iris model at {onnx_path}, and ALLOW_PICKLE=0 refuses {pickle_path.name}. "
                f"{TRAIN_HINT} It writes {onnx_path.name} beside {pickle_path.name}."
            )
        metadata = verified_metadata(pickle_path, what="Iris model", hint=TRAIN_HINT)
        # Trusted because the files are (see the module docstring), not because of the sha256.
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
