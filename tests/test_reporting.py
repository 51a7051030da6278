"""Run outputs: CSVs, PNGs and the report's sentences, each checked against its numbers."""

import csv
import dataclasses
import json

import pytest

from mlapi import reporting
from mlapi.evaluation import RunMetrics, classify, diagnose_history

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def history(val_loss, accuracy=None, val_accuracy=None, lr=None):
    n = len(val_loss)
    columns = {
        "loss": [0.7 - 0.05 * i for i in range(n)],
        "accuracy": accuracy or [0.6 + 0.03 * i for i in range(n)],
        "val_loss": val_loss,
        "val_accuracy": val_accuracy or [0.6 + 0.02 * i for i in range(n)],
    }
    if lr:
        columns["lr"] = lr
    return columns


def metrics_for(columns, test_accuracy=0.85, max_epochs=None):
    d = diagnose_history(columns)
    epoch = d.val_accuracy_best_epoch
    test = classify([0, 0, 1, 1], [0.2, 0.7, 0.8, 0.9])
    return RunMetrics(
        run_name="imdb_lstm__test",
        history=d,
        test=dataclasses.replace(test, accuracy=test_accuracy),
        checkpoint_monitor="val_accuracy",
        checkpoint_epoch=epoch,
        val_accuracy_checkpoint=columns["val_accuracy"][epoch - 1],
        epochs_max=max_epochs or d.epochs_run,
        seconds_per_epoch=1.5,
        seconds_training=1.5 * d.epochs_run,
        n_train=80,
        n_val=20,
        vocab_ids=100,
        parameters=1000,
        trainable_parameters=1000,
        versions={},
    )


def test_run_metrics_serialise_to_the_flat_metrics_json_and_back():
    m = metrics_for(history([0.6, 0.5, 0.55]), max_epochs=10)
    flat = json.loads(json.dumps(m.to_dict()))
    assert flat["test_accuracy"] == 0.85 and flat["n_test"] == 4
    assert flat["val_accuracy_best_epoch"] == 3 and flat["checkpoint_epoch"] == 3
    assert flat["val_loss_best_epoch"] == 2 and "best_epoch" not in flat
    assert RunMetrics.from_dict(flat) == m and m.stopped_early


def test_history_csv_has_one_row_per_epoch(tmp_path):
    columns = history([0.6, 0.5, 0.55], lr=[2e-4, 2e-4, 1e-4])
    path = tmp_path / "h.csv"
    reporting.write_history_csv(path, columns)
    rows = list(csv.DictReader(path.open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert set(rows[0]) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert float(rows[2]["val_loss"]) == 0.55
    assert float(rows[2]["lr"]) == 1e-4


def test_confusion_csv_rows_are_true_classes(tmp_path):
    path = tmp_path / "cm.csv"
    reporting.write_confusion_csv(path, [[5, 1], [2, 7]], ["negative", "positive"])
    rows = list(csv.reader(path.open()))
    assert rows == [["true\\predicted", "negative", "positive"], ["negative", "5", "1"],
                    ["positive", "2", "7"]]  # fmt: skip


def test_plots_are_complete_pngs_and_leave_no_temp_files(tmp_path):
    columns = history([0.6, 0.5, 0.55])
    reporting.plot_curves(tmp_path / "curves.png", columns, best_epoch=2, title="run")
    reporting.plot_confusion_matrix(tmp_path / "cm.png", [[5, 1], [2, 7]], ["neg", "pos"])
    reporting.plot_leaderboard(tmp_path / "board.png", ["gru", "nbsvm"], [0.8, 0.9], [0.79, 0.88])
    for name in ("curves.png", "cm.png", "board.png"):
        assert (tmp_path / name).read_bytes().startswith(PNG_MAGIC)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["board.png", "cm.png", "curves.png"]


def test_diagnostics_name_overfitting_rises_and_best_epoch():
    columns = history(
        [0.60, 0.45, 0.47, 0.40, 0.42, 0.50],
        accuracy=[0.55, 0.75, 0.85, 0.90, 0.95, 0.97],
        val_accuracy=[0.70, 0.80, 0.82, 0.88, 0.87, 0.86],
        lr=[2e-4, 2e-4, 1e-4, 1e-4, 5e-5, 2.5e-5],
    )
    m = metrics_for(columns, max_epochs=6)
    gap, rises, best, lr, test = reporting.diagnostics_sentences(m, columns)
    assert "+0.1100" in gap and "(overfitting)" in gap
    assert "rose in 3 of 5" in rises and "epochs 3, 5, 6" in rises
    assert "lowest at epoch 4 (0.4000)" in rises and "ended at 0.5000 (+0.1000)" in rises
    assert "0.8800, came at epoch 4 of 6" in best and "0.0200 lower" in best
    assert "from 0.0002 to 2.5e-05, first at epoch 3" in lr
    assert "weights of epoch 4" in test and "-0.0300" in test


def test_diagnostics_of_a_clean_run_claim_no_overfitting_and_no_stop():
    columns = history([0.6, 0.5, 0.4], accuracy=[0.6, 0.7, 0.8], val_accuracy=[0.62, 0.71, 0.79])
    m = metrics_for(columns, max_epochs=3)
    sentences = reporting.diagnostics_sentences(m, columns)
    text = " ".join(sentences)
    assert "no clear overfitting" in text
    assert "fell at every epoch-to-epoch step" in text
    assert "the last epoch run" in text
    assert "stopped" not in text and "learning rate" not in text


def test_diagnostics_report_an_early_stop():
    columns = history([0.5, 0.4, 0.45, 0.46, 0.47])
    m = metrics_for(columns, max_epochs=10)
    text = " ".join(reporting.diagnostics_sentences(m, columns))
    assert "stopped after epoch 5 of at most 10" in text
    assert "not improved since epoch 2" in text


@pytest.mark.parametrize("gap_accuracy, word", [(0.83, "mild overfitting"), (0.70, "above train")])
def test_gap_wording_follows_the_thresholds(gap_accuracy, word):
    columns = history([0.6, 0.5], accuracy=[0.6, gap_accuracy], val_accuracy=[0.7, 0.8])
    gap = reporting.diagnostics_sentences(metrics_for(columns), columns)[0]
    assert word in gap


def test_report_holds_recipe_results_pictures_and_diagnostics():
    columns = history([0.6, 0.5, 0.55])
    m = metrics_for(columns)
    text = reporting.render_report(
        m,
        columns,
        recipe={"model": "Embedding → LSTM → Dense", "seed": 42},
        command="mlapi train imdb --epochs 3",
        files={"curves": "run_curves.png", "confusion_png": "run_cm.png"},
    )
    for expected in (
        "# IMDb sentiment run `imdb_lstm__test`",
        "mlapi train imdb --epochs 3",
        "| model | Embedding → LSTM → Dense |",
        "| best val accuracy | 0.6400 (epoch 3) |",
        "| val_loss rises | 1 |",
        "| test accuracy | 0.8500 |",
        "| negative | 1.0000 | 0.5000 | 0.6667 | 2 |",
        "![accuracy and loss, train vs val](run_curves.png)",
        "| positive | 0 | 2 |",
        "![confusion matrix](run_cm.png)",
        "## Diagnostics",
    ):
        assert expected in text


def test_a_best_val_accuracy_tied_by_the_last_epoch_is_not_called_lower():
    columns = history([0.6, 0.5, 0.55], val_accuracy=[0.70, 0.86, 0.86])
    best = reporting.diagnostics_sentences(metrics_for(columns, max_epochs=3), columns)[2]
    assert "came at epoch 2 of 3" in best and "the last epoch ties it" in best
    assert "lower" not in best
