"""Metrics and history diagnostics, on numbers small enough to check by hand."""

import numpy as np
import pytest

from mlapi.evaluation import classify, diagnose_history


def seed_like_history():
    # val_loss: down, up (3), down, up (5), up (6) -> 3 rises; val_accuracy best at epoch 4
    return {
        "loss": [0.69, 0.50, 0.40, 0.30, 0.20, 0.10],
        "accuracy": [0.55, 0.75, 0.85, 0.90, 0.95, 0.97],
        "val_loss": [0.60, 0.45, 0.47, 0.40, 0.42, 0.50],
        "val_accuracy": [0.70, 0.80, 0.82, 0.88, 0.87, 0.86],
    }


def test_diagnose_history_matches_the_seed_definitions():
    d = diagnose_history(seed_like_history())
    assert d.epochs_run == 6
    assert d.train_accuracy_final == 0.97
    assert d.val_accuracy_final == 0.86
    assert d.val_accuracy_best == 0.88
    assert d.val_accuracy_best_epoch == 4  # 1-based, like Keras' "Epoch 4/10"
    assert d.train_val_gap == pytest.approx(0.97 - 0.86)
    assert d.val_loss_rises == 3
    assert d.val_loss_rise_epochs == (3, 5, 6)
    assert (d.val_loss_best, d.val_loss_best_epoch, d.val_loss_final) == (0.40, 4, 0.50)


def test_best_epoch_is_the_first_on_ties_and_equal_losses_are_not_rises():
    history = {"accuracy": [0.5, 0.6, 0.7], "val_accuracy": [0.6, 0.8, 0.8],
               "val_loss": [0.5, 0.5, 0.5]}  # fmt: skip
    d = diagnose_history(history)
    assert d.val_accuracy_best_epoch == 2
    assert d.val_loss_rises == 0


def test_diagnose_history_needs_validation_values():
    with pytest.raises(ValueError, match="val_loss"):
        diagnose_history({"accuracy": [0.5], "val_accuracy": [0.5], "val_loss": []})


def test_classify_counts_and_per_class_scores():
    y_true = [0, 0, 0, 1, 1, 1, 1]
    probs = [0.1, 0.6, 0.2, 0.9, 0.4, 0.8, 0.7]  # one false positive, one false negative
    m = classify(y_true, probs)
    assert m.confusion_matrix == [[2, 1], [1, 3]]
    assert m.accuracy == pytest.approx(5 / 7)
    assert m.per_class["negative"]["precision"] == pytest.approx(2 / 3)
    assert m.per_class["negative"]["recall"] == pytest.approx(2 / 3)
    assert m.per_class["positive"]["precision"] == pytest.approx(3 / 4)
    assert m.per_class["positive"]["recall"] == pytest.approx(3 / 4)
    assert m.per_class["positive"]["f1"] == pytest.approx(3 / 4)
    assert m.per_class["positive"]["support"] == 4
    # ROC-AUC: 12 (neg, pos) pairs, the positive ranks higher in 11 of them
    assert m.roc_auc == pytest.approx(11 / 12)


def test_threshold_is_inclusive_and_one_class_has_no_auc():
    m = classify(np.ones(3, dtype=int), np.array([0.5, 0.49, 0.9]))
    assert m.confusion_matrix == [[0, 0], [1, 2]]
    assert m.roc_auc is None


def test_classify_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="as many"):
        classify([0, 1], [0.5])
