"""A run's outputs: history and confusion-matrix CSVs, curves and matrix PNGs, the report.

Every file is written atomically. The Markdown report reads like one screen of a Keras
example: the recipe, the results, the pictures, then what the history says in words.
Each sentence in the diagnostics is derived from a number printed beside it.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mlapi.artifacts import atomic_path, atomic_write_text  # noqa: E402
from mlapi.evaluation import History, HistoryDiagnostics, RunMetrics  # noqa: E402

# The train-val accuracy gap (final epoch) above which we call the model overfitted,
# and below which we call it not overfitted. Between them it is "mild".
OVERFIT_GAP = 0.05
NO_OVERFIT_GAP = 0.02


def write_history_csv(path: str | os.PathLike, history: History) -> None:
    columns = list(history)
    rows = zip(*(history[c] for c in columns), strict=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["epoch", *columns])
    for epoch, row in enumerate(rows, start=1):
        writer.writerow([epoch, *(_csv_number(v) for v in row)])
    atomic_write_text(path, buffer.getvalue())


def write_confusion_csv(
    path: str | os.PathLike, matrix: Sequence[Sequence[int]], labels: Sequence[str]
) -> None:
    """Rows are the true class, columns the predicted class."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["true\\predicted", *labels])
    for label, row in zip(labels, matrix, strict=True):
        writer.writerow([label, *row])
    atomic_write_text(path, buffer.getvalue())


def plot_curves(
    path: str | os.PathLike, history: History, best_epoch: int, title: str = ""
) -> None:
    """Accuracy and loss, train vs val, with the best epoch (by val accuracy) marked."""
    epochs = range(1, len(history["loss"]) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("accuracy", "loss"), strict=True):
        ax.plot(epochs, history[metric], "o-", label=f"train {metric}")
        ax.plot(epochs, history[f"val_{metric}"], "s-", label=f"val {metric}")
        ax.axvline(
            best_epoch,
            color="grey",
            linestyle="--",
            label=f"best val accuracy (epoch {best_epoch})",
        )
        ax.plot(best_epoch, history[f"val_{metric}"][best_epoch - 1], "k*", markersize=12)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_xticks(list(epochs))
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title, fontsize=9)
    _save_figure(fig, path)


def plot_confusion_matrix(
    path: str | os.PathLike, matrix: Sequence[Sequence[int]], labels: Sequence[str], title: str = ""
) -> None:
    _save_figure(confusion_matrix_figure(matrix, labels, title), path)


def confusion_matrix_figure(
    matrix: Sequence[Sequence[int]], labels: Sequence[str], title: str = ""
) -> plt.Figure:
    """The matrix as a heat map with its counts; each count is drawn in black or white,
    whichever contrasts more with its own cell's colour (readable on any matrix)."""
    fig, ax = plt.subplots(figsize=(4.5, 4))
    image = ax.imshow(matrix, cmap="Blues")
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            color = _readable_text_color(image.cmap(image.norm(count)))
            ax.text(j, i, f"{count:,}", ha="center", va="center", color=color)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix (test)", fontsize=9)
    fig.colorbar(image, ax=ax)
    return fig


def _readable_text_color(background: Sequence[float]) -> str:
    """ "black" or "white", whichever has the higher WCAG contrast ratio on `background`
    (RGB(A) in 0..1); the better of the two is always at least 4.58:1."""
    luminance = _relative_luminance(background)
    on_black = (luminance + 0.05) / 0.05
    on_white = 1.05 / (luminance + 0.05)
    return "black" if on_black >= on_white else "white"


def _relative_luminance(rgb: Sequence[float]) -> float:
    """WCAG 2 relative luminance of an sRGB colour (components in 0..1)."""
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb[:3]]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def plot_leaderboard(
    path: str | os.PathLike,
    labels: Sequence[str],
    val_accuracy: Sequence[float],
    test_accuracy: Sequence[float],
) -> None:
    """Val and test accuracy per model as paired bars, the first model at the bottom."""
    y = range(len(labels))
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.55 * len(labels)))
    ax.barh([i + 0.2 for i in y], val_accuracy, 0.4, label="val accuracy")
    ax.barh([i - 0.2 for i in y], test_accuracy, 0.4, label="test accuracy")
    for i, (val, test) in enumerate(zip(val_accuracy, test_accuracy, strict=True)):
        ax.text(val, i + 0.2, f" {val:.4f}", va="center", fontsize=8)
        ax.text(test, i - 0.2, f" {test:.4f}", va="center", fontsize=8)
    low, high = min(*val_accuracy, *test_accuracy), max(*val_accuracy, *test_accuracy)
    ax.set_xlim(max(0.0, low - 0.03), min(1.0, high + 0.02))
    ax.set_yticks(list(y), labels, fontsize=8)
    ax.set_xlabel("accuracy (sorted by val accuracy)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("IMDb: architectures and baselines on the same split")
    _save_figure(fig, path)


def _save_figure(fig: plt.Figure, path: str | os.PathLike) -> None:
    try:
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)


def diagnostics_sentences(metrics: RunMetrics, history: History) -> list[str]:
    """The history in words. Every claim is a comparison of numbers stated in it."""
    h = metrics.history
    sentences = [_gap_sentence(h), _val_loss_sentence(h), _best_epoch_sentence(h)]
    if metrics.stopped_early:
        sentences.append(
            f"Training stopped after epoch {h.epochs_run} of at most {metrics.epochs_max}: "
            f"val_loss had not improved since epoch {h.val_loss_best_epoch}."
        )
    lr_sentence = _lr_sentence(history)
    if lr_sentence:
        sentences.append(lr_sentence)
    sentences.append(_test_sentence(metrics))
    return sentences


def _gap_sentence(h: HistoryDiagnostics) -> str:
    gap = h.train_val_gap
    numbers = (
        f"At the last epoch train accuracy is {h.train_accuracy_final:.4f} and val accuracy "
        f"{h.val_accuracy_final:.4f}, a gap of {gap:+.4f}"
    )
    if gap > OVERFIT_GAP:
        verdict = (
            f"more than {OVERFIT_GAP:.2f}: the model fits the reviews it trains on clearly "
            "better than unseen ones (overfitting)."
        )
    elif gap > NO_OVERFIT_GAP:
        verdict = f"between {NO_OVERFIT_GAP:.2f} and {OVERFIT_GAP:.2f}: mild overfitting."
    elif gap >= 0:
        verdict = f"under {NO_OVERFIT_GAP:.2f}: no clear overfitting at the last epoch."
    else:
        verdict = "val accuracy is above train accuracy."
    return f"{numbers}; {verdict}"


def _val_loss_sentence(h: HistoryDiagnostics) -> str:
    steps = h.epochs_run - 1
    if steps == 0:
        return "Only one epoch ran, so val_loss has no trend to describe."
    if h.val_loss_rises == 0:
        trend = "val_loss fell at every epoch-to-epoch step"
    else:
        where = ", ".join(str(e) for e in h.val_loss_rise_epochs)
        trend = (
            f"val_loss rose in {h.val_loss_rises} of {steps} epoch-to-epoch steps "
            f"(at epochs {where})"
        )
    lowest = f"it was lowest at epoch {h.val_loss_best_epoch} ({h.val_loss_best:.4f})"
    if h.val_loss_best_epoch == h.epochs_run:
        return f"{trend}; {lowest}, the last epoch."
    rise = h.val_loss_final - h.val_loss_best
    return f"{trend}; {lowest} and ended at {h.val_loss_final:.4f} ({rise:+.4f})."


def _best_epoch_sentence(h: HistoryDiagnostics) -> str:
    best, last = h.val_accuracy_best_epoch, h.epochs_run
    text = f"The best val accuracy, {h.val_accuracy_best:.4f}, came at epoch {best} of {last}"
    if best == last:
        return f"{text}, the last epoch run."
    drop = h.val_accuracy_best - h.val_accuracy_final
    if round(drop, 4) == 0:
        return f"{text} (first reached there; the last epoch ties it)."
    return f"{text}; the last epoch's val accuracy is {drop:.4f} lower."


def _lr_sentence(history: History) -> str | None:
    rates = list(history.get("lr", []))
    if len(rates) < 2 or rates[-1] >= rates[0]:
        return None
    first_cut = next(i for i, r in enumerate(rates) if r < rates[0]) + 1
    return (
        f"The learning rate was lowered on a val_loss plateau from {rates[0]:g} to "
        f"{rates[-1]:g}, first at epoch {first_cut}."
    )


def _test_sentence(m: RunMetrics) -> str:
    val = m.val_accuracy_checkpoint
    diff = m.test.accuracy - val
    return (
        f"Test metrics use the weights of epoch {m.checkpoint_epoch} (best "
        f"{m.checkpoint_monitor}); test accuracy {m.test.accuracy:.4f} is {diff:+.4f} "
        f"from that epoch's val accuracy ({val:.4f})."
    )


def render_report(
    metrics: RunMetrics,
    history: History,
    recipe: Mapping[str, Any],
    command: str,
    files: Mapping[str, str],
) -> str:
    """The seed's report for one run in Markdown; `files` names the curves and matrix PNGs."""
    test = metrics.test
    lines = [
        f"# IMDb sentiment run `{metrics.run_name}`",
        "",
        "```",
        command,
        "```",
        "",
        "## Recipe",
        "",
        "| setting | value |",
        "| --- | --- |",
        *(f"| {key} | {_cell(value)} |" for key, value in recipe.items()),
        "",
        "## Results",
        "",
        "| metric | value |",
        "| --- | --- |",
        *(f"| {label} | {value} |" for label, value in _result_rows(metrics)),
        "",
        "| class (test) | precision | recall | F1 | support |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| {label} | {v['precision']:.4f} | {v['recall']:.4f} | {v['f1']:.4f} "
            f"| {v['support']:,} |"
            for label, v in test.per_class.items()
        ),
        "",
        "## Curves",
        "",
        f"![accuracy and loss, train vs val]({files['curves']})",
        "",
        "## Confusion matrix (test)",
        "",
        *_matrix_table(test.confusion_matrix, test.labels),
        "",
        f"![confusion matrix]({files['confusion_png']})",
        "",
        "## Diagnostics",
        "",
        *(f"- {s}" for s in diagnostics_sentences(metrics, history)),
        "",
    ]
    return "\n".join(lines)


def _result_rows(m: RunMetrics) -> list[tuple[str, str]]:
    h, test = m.history, m.test
    auc = "n/a" if test.roc_auc is None else f"{test.roc_auc:.4f}"
    best = f"{h.val_accuracy_best:.4f} (epoch {h.val_accuracy_best_epoch})"
    return [
        ("train accuracy (final)", f"{h.train_accuracy_final:.4f}"),
        ("val accuracy (final)", f"{h.val_accuracy_final:.4f}"),
        ("best val accuracy", best),
        ("train–val gap", f"{h.train_val_gap:.4f}"),
        ("val_loss rises", str(h.val_loss_rises)),
        ("test accuracy", f"{test.accuracy:.4f}"),
        ("test ROC-AUC", auc),
        ("epochs run", str(h.epochs_run)),
        ("seconds per epoch", f"{m.seconds_per_epoch:.1f}"),
        ("reviews train / val / test", f"{m.n_train:,} / {m.n_val:,} / {test.n:,}"),
    ]


def _matrix_table(matrix: Sequence[Sequence[int]], labels: Sequence[str]) -> list[str]:
    header = "| true \\ predicted | " + " | ".join(labels) + " |"
    rule = "| --- |" + " --- |" * len(labels)
    rows = [
        f"| {label} | " + " | ".join(f"{c:,}" for c in row) + " |"
        for label, row in zip(labels, matrix, strict=True)
    ]
    return [header, rule, *rows]


def _cell(value: Any) -> str:
    return "all" if value is None else str(value)


def _csv_number(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value
