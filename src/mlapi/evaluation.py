"""Metrics, confusion matrix and overfitting diagnostics (numpy + scikit-learn, no torch).

A training history is a Keras-style column mapping: `{"loss": [...], "accuracy": [...],
"val_loss": [...], "val_accuracy": [...], ...}`, one value per epoch, epoch 1 first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score

LABELS = ("negative", "positive")

History = Mapping[str, Sequence[float]]


@dataclass(frozen=True)
class HistoryDiagnostics:
    """What the seed reported about its learning curves. Epochs are numbered from 1."""

    epochs_run: int
    train_accuracy_final: float
    val_accuracy_final: float
    val_accuracy_best: float
    val_accuracy_best_epoch: int  # first epoch reaching val_accuracy_best
    train_val_gap: float  # train_accuracy_final - val_accuracy_final
    val_loss_rises: int  # epochs whose val_loss is above the previous epoch's
    val_loss_rise_epochs: tuple[int, ...]
    val_loss_best: float
    val_loss_best_epoch: int  # first epoch reaching val_loss_best (what EarlyStopping watches)
    val_loss_final: float

    def to_dict(self) -> dict:
        return asdict(self)


def diagnose_history(history: History) -> HistoryDiagnostics:
    """Summarise a training history the way the seed's report did."""
    for key in ("accuracy", "val_accuracy", "val_loss"):
        if not history.get(key):
            raise ValueError(f"history has no {key!r} values")
    train_acc = np.asarray(history["accuracy"], dtype=float)
    val_acc = np.asarray(history["val_accuracy"], dtype=float)
    val_loss = np.asarray(history["val_loss"], dtype=float)
    rises = tuple(int(i) + 2 for i in np.flatnonzero(np.diff(val_loss) > 0))
    return HistoryDiagnostics(
        epochs_run=len(val_loss),
        train_accuracy_final=float(train_acc[-1]),
        val_accuracy_final=float(val_acc[-1]),
        val_accuracy_best=float(val_acc.max()),
        val_accuracy_best_epoch=int(np.argmax(val_acc)) + 1,
        train_val_gap=float(train_acc[-1] - val_acc[-1]),
        val_loss_rises=len(rises),
        val_loss_rise_epochs=rises,
        val_loss_best=float(val_loss.min()),
        val_loss_best_epoch=int(np.argmin(val_loss)) + 1,
        val_loss_final=float(val_loss[-1]),
    )


@dataclass(frozen=True)
class ClassificationMetrics:
    """Binary classification metrics at a fixed threshold, per class and overall."""

    n: int
    threshold: float
    accuracy: float
    roc_auc: float | None  # None when only one class is present
    confusion_matrix: list[list[int]]  # rows = true class, columns = predicted class
    per_class: dict[str, dict[str, float]]  # label -> precision, recall, f1, support
    labels: tuple[str, ...] = LABELS

    def to_dict(self) -> dict:
        return asdict(self)


def classify(
    y_true: Sequence[int] | np.ndarray,
    probabilities: Sequence[float] | np.ndarray,
    threshold: float = 0.5,
    labels: Sequence[str] = LABELS,
) -> ClassificationMetrics:
    """Metrics of P(positive) `probabilities` against 0/1 `y_true`."""
    y_true = np.asarray(y_true).astype(int).ravel()
    probabilities = np.asarray(probabilities, dtype=float).ravel()
    if y_true.shape != probabilities.shape or y_true.size == 0:
        raise ValueError(
            f"need as many probabilities as labels, got {probabilities.size} and {y_true.size}"
        )
    y_pred = (probabilities >= threshold).astype(int)
    classes = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=classes, zero_division=0
    )
    per_class = {
        label: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }
    both_classes = len(np.unique(y_true)) == 2
    return ClassificationMetrics(
        n=int(y_true.size),
        threshold=float(threshold),
        accuracy=float(np.mean(y_pred == y_true)),
        roc_auc=float(roc_auc_score(y_true, probabilities)) if both_classes else None,
        confusion_matrix=confusion_matrix(y_true, y_pred, labels=classes).tolist(),
        per_class=per_class,
        labels=tuple(labels),
    )


# metrics.json names of ClassificationMetrics' fields (the others keep theirs)
_TEST_KEYS = {"accuracy": "test_accuracy", "n": "n_test"}


@dataclass(frozen=True)
class RunMetrics:
    """What one training run measured, read by the report, the leaderboard and the CLI.

    Three epochs, one purpose each: `checkpoint_epoch` (the weights that were tested and
    exported, picked by `checkpoint_monitor`), `history.val_loss_best_epoch` (what
    EarlyStopping and ReduceLROnPlateau watch) and `history.val_accuracy_best_epoch`.
    `to_dict()` is the run's flat metrics.json.
    """

    run_name: str
    history: HistoryDiagnostics
    test: ClassificationMetrics  # the test split, read once, with the checkpoint's weights
    checkpoint_monitor: str
    checkpoint_epoch: int
    val_accuracy_checkpoint: float  # the val accuracy of the tested weights
    epochs_max: int
    seconds_per_epoch: float
    seconds_training: float
    n_train: int
    n_val: int
    vocab_ids: int  # ids of the fitted vocabulary: at most the vocab_size setting
    parameters: int
    trainable_parameters: int
    versions: dict[str, str]

    @property
    def stopped_early(self) -> bool:
        return self.history.epochs_run < self.epochs_max

    def to_dict(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        history, test = values.pop("history").to_dict(), values.pop("test").to_dict()
        test = {_TEST_KEYS.get(k, k): v for k, v in test.items()}
        test["labels"] = list(test["labels"])
        history["val_loss_rise_epochs"] = list(history["val_loss_rise_epochs"])
        return {"run_name": values.pop("run_name"), **history, **test, **values}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunMetrics:
        """Read back a metrics.json written by `to_dict`."""
        history = {f.name: values[f.name] for f in fields(HistoryDiagnostics)}
        history["val_loss_rise_epochs"] = tuple(history["val_loss_rise_epochs"])
        test = {
            f.name: values[_TEST_KEYS.get(f.name, f.name)] for f in fields(ClassificationMetrics)
        }
        test["labels"] = tuple(test["labels"])
        rest = {f.name: values[f.name] for f in fields(cls) if f.name not in ("history", "test")}
        return cls(
            history=HistoryDiagnostics(**history), test=ClassificationMetrics(**test), **rest
        )
