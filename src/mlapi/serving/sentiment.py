"""Serve the exported sentiment model: ONNX Runtime + the shared tokenizer, no torch.

A model folder holds `model.onnx`, `vocabulary.json` and `metadata.json` (see
`mlapi.export`); `SentimentPredictor.load` refuses it unless every file listed in the
metadata is present and matches its sha256 (`mlapi.artifacts.verified_metadata`).
This one class serves the API, `mlapi predict` and the comparison of runs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlapi.artifacts import verified_metadata
from mlapi.errors import ArtifactError
from mlapi.text import Vocabulary

REQUIRED_FILES = ("model.onnx", "vocabulary.json")
DEFAULT_LABELS = ("negative", "positive")
DEFAULT_THRESHOLD = 0.5  # P(positive) at or above it is "positive", unless metadata says otherwise
# Batches larger than this give ONNX Runtime's memory arena back after their run, so that a
# worker's RSS returns near its baseline (benchmarks/hostile_clients.py --memory); smaller ones
# keep it, which is faster.
SHRINK_ARENA_ABOVE_TEXTS = 16
TRAIN_HINT = "Train one with: mlapi train imdb --data PATH (it installs into MODELS_DIR/sentiment)."


class SentimentPredictor:
    """P(positive) for raw review texts, and the API's answer for each, from a model folder."""

    def __init__(self, session: Any, vocabulary: Vocabulary, metadata: dict[str, Any]) -> None:
        self.session = session
        self.vocabulary = vocabulary
        self.metadata = metadata
        self.labels: list[str] = list(metadata.get("labels", DEFAULT_LABELS))
        self.threshold = float(metadata.get("threshold", DEFAULT_THRESHOLD))

    @classmethod
    def load(cls, directory: str | os.PathLike, intra_op_threads: int = 1) -> SentimentPredictor:
        directory = Path(directory)
        metadata = verified_metadata(directory, what="sentiment model", hint=TRAIN_HINT)
        for name in REQUIRED_FILES:
            if name not in metadata["files"]:
                raise ArtifactError(f"{directory / 'metadata.json'} does not list {name}")
        if len(metadata.get("labels", DEFAULT_LABELS)) != 2:
            raise ArtifactError(f"{directory / 'metadata.json'} must list two labels")
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
        run_options = _shrink_arena_options() if len(texts) > SHRINK_ARENA_ABOVE_TEXTS else None
        (probability,) = self.session.run(["probability"], {"input_ids": ids}, run_options)
        return probability

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """The API's answer per text: {"label", "score" (P(positive)), "probabilities"}."""
        negative, positive = self.labels
        return [
            {
                "label": positive if p >= self.threshold else negative,
                "score": p,
                "probabilities": {negative: 1.0 - p, positive: p},
            }
            for p in self.predict_proba(texts).tolist()
        ]

    def info(self) -> dict[str, Any]:
        meta = self.metadata
        metrics = meta.get("metrics", {})
        return {
            "run_name": meta.get("run_name"),
            "arch": meta.get("arch"),
            "sha256": meta["files"]["model.onnx"]["sha256"],
            "labels": self.labels,
            "threshold": self.threshold,
            "maxlen": self.vocabulary.maxlen,
            "test_accuracy": metrics.get("test_accuracy"),
            "val_accuracy_best": metrics.get("val_accuracy_best"),
            "created_at": meta.get("created_at"),
        }


def _shrink_arena_options():
    import onnxruntime as ort

    options = ort.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options
