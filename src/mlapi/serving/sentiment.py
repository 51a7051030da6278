"""Serve the exported sentiment model: ONNX Runtime + the shared tokenizer, no torch.

A model directory holds `model.onnx`, `vocabulary.json` and `metadata.json` (see
`mlapi.export`); `SentimentPredictor.load` refuses it unless every file listed in the
metadata is present and matches its sha256.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlapi.artifacts import sha256_file
from mlapi.errors import ArtifactError
from mlapi.text import Vocabulary

REQUIRED_FILES = ("model.onnx", "vocabulary.json")


class SentimentPredictor:
    """P(positive) for raw review texts, from an exported model directory."""

    def __init__(self, session: Any, vocabulary: Vocabulary, metadata: dict[str, Any]) -> None:
        self.session = session
        self.vocabulary = vocabulary
        self.metadata = metadata
        self.labels: list[str] = list(metadata.get("labels", ["negative", "positive"]))

    @classmethod
    def load(cls, directory: str | os.PathLike, intra_op_threads: int = 1) -> SentimentPredictor:
        directory = Path(directory)
        metadata = read_verified_metadata(directory)
        import onnxruntime as ort  # imported here so that importing this module stays cheap

        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(
                str(directory / "model.onnx"), options, providers=["CPUExecutionProvider"]
            )
            vocabulary = Vocabulary.load(directory / "vocabulary.json")
        except Exception as exc:  # ORT and JSON errors have many types; say one thing
            raise ArtifactError(f"cannot load the sentiment model in {directory}: {exc}") from exc
        return cls(session, vocabulary, metadata)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """float32 [n]: P(positive) for each text."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError("predict_proba expects a sequence of strings")
        if len(texts) == 0:
            return np.zeros(0, dtype=np.float32)
        ids = np.asarray(self.vocabulary.encode(list(texts)), dtype=np.int64)
        (probability,) = self.session.run(["probability"], {"input_ids": ids})
        return probability

    def predict(self, texts: Sequence[str], threshold: float = 0.5) -> list[tuple[str, float]]:
        """(label, P(positive)) per text."""
        return [(self.labels[int(p >= threshold)], float(p)) for p in self.predict_proba(texts)]


def read_verified_metadata(directory: str | os.PathLike) -> dict[str, Any]:
    """metadata.json of a model directory, after checking every listed file's sha256."""
    directory = Path(directory)
    meta_path = directory / "metadata.json"
    if not meta_path.is_file():
        raise ArtifactError(
            f"no sentiment model at {directory} (metadata.json missing); "
            "train one with `mlapi train imdb`"
        )
    try:
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
        files = metadata["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{meta_path} is not a valid model metadata file: {exc}") from exc
    for name in REQUIRED_FILES:
        if name not in files:
            raise ArtifactError(f"{meta_path} does not list {name}")
    for name, entry in files.items():
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"{path} is missing")
        expected = entry.get("sha256") if isinstance(entry, dict) else None
        if sha256_file(path) != expected:
            raise ArtifactError(f"{path} does not match the sha256 in metadata.json")
    return metadata
