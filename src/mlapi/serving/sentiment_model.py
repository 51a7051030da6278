"""The sentiment predictor in the API's answer shape (what /sentiment and /v1 return)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from mlapi.serving.sentiment import SentimentPredictor

THRESHOLD = 0.5
TRAIN_HINT = "Train one with `mlapi train imdb` (it installs into MODELS_DIR/sentiment)."


class SentimentModel:
    def __init__(self, predictor: SentimentPredictor):
        self.predictor = predictor

    @classmethod
    def load(cls, directory: str | os.PathLike) -> SentimentModel:
        return cls(SentimentPredictor.load(directory))

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        negative, positive = self.predictor.labels
        answers = []
        for p in self.predictor.predict_proba(texts).tolist():
            answers.append(
                {
                    "label": positive if p >= THRESHOLD else negative,
                    "score": p,
                    "probabilities": {negative: 1.0 - p, positive: p},
                }
            )
        return answers

    def info(self) -> dict[str, Any]:
        meta = self.predictor.metadata
        metrics = meta.get("metrics", {})
        return {
            "run_name": meta.get("run_name"),
            "arch": meta.get("arch"),
            "sha256": meta.get("files", {}).get("model.onnx", {}).get("sha256"),
            "labels": self.predictor.labels,
            "maxlen": self.predictor.vocabulary.maxlen,
            "test_accuracy": metrics.get("test_accuracy"),
            "val_accuracy_best": metrics.get("val_accuracy_best"),
            "created_at": meta.get("created_at"),
        }
