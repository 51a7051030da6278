"""The confusion-matrix PNG: every count is readable on its own cell, on any matrix.

The check is independent of how the plot picks its colours: it renders the figure, reads
the background pixel of each cell beside its count, and computes the WCAG contrast ratio
of the count's text colour against it.
"""

import matplotlib.colors
import numpy as np
import pytest

from mlapi import reporting

MATRICES = {
    # near-equal counts: the smallest is the palest cell although far above max / 2
    "balanced": [[1000, 900], [950, 1100]],
    "seed-like balanced": [[2149, 351], [373, 2127]],
    "unbalanced": [[5, 1], [2, 7]],
    "one class never predicted": [[0, 2500], [0, 2500]],
    "all equal": [[7, 7], [7, 7]],
    "three classes": [[50, 3, 0], [4, 41, 9], [0, 12, 38]],
}
WCAG_AA = 4.5  # minimum contrast ratio for normal text


def luminance(rgb):
    channels = np.asarray(rgb[:3], dtype=float)
    linear = np.where(channels <= 0.04045, channels / 12.92, ((channels + 0.055) / 1.055) ** 2.4)
    return float(linear @ [0.2126, 0.7152, 0.0722])


def contrast_ratio(a, b):
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def count_contrasts(matrix):
    """(count text, contrast of its colour with the rendered pixel beside it in its cell)."""
    fig = reporting.confusion_matrix_figure(matrix, [f"c{i}" for i in range(len(matrix))])
    try:
        fig.canvas.draw()
        pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3] / 255.0
        ax = fig.axes[0]
        found = []
        for text in ax.texts:
            col, row = text.get_position()
            # a point inside the cell (cells span +-0.5) and away from the centred text
            x, y = ax.transData.transform((col - 0.4, row - 0.4))
            background = pixels[pixels.shape[0] - 1 - round(y), round(x)]
            color = matplotlib.colors.to_rgb(text.get_color())
            found.append((text.get_text(), contrast_ratio(color, background)))
        return found
    finally:
        reporting.plt.close(fig)


@pytest.mark.parametrize("name", MATRICES)
def test_every_count_contrasts_with_its_cell(name):
    matrix = MATRICES[name]
    contrasts = count_contrasts(matrix)
    assert [t for t, _ in contrasts] == [f"{c:,}" for row in matrix for c in row]
    unreadable = [(text, round(ratio, 2)) for text, ratio in contrasts if ratio < WCAG_AA]
    assert not unreadable, f"counts below {WCAG_AA}:1 contrast on {name}: {unreadable}"


def test_text_colour_follows_the_cell_shade_not_the_count():
    """In the balanced matrix, 900 is the palest cell: dark text, although 900 > max / 2."""
    fig = reporting.confusion_matrix_figure(MATRICES["balanced"], ["neg", "pos"])
    try:
        colors = {t.get_text(): matplotlib.colors.to_hex(t.get_color()) for t in fig.axes[0].texts}
    finally:
        reporting.plt.close(fig)
    assert colors["900"] == "#000000"
    assert colors["1,100"] == "#ffffff"
