"""The real IMDb dataset (../shared/data/aclImdb_v1.tar.gz or $IMDB_DATA): counts, the first
review, and `mlapi data imdb` on it. Skipped when the archive is absent.

On purpose not a tmp dir: extracting its 100,000 files takes ~40 s and deleting them minutes
on this disk, so they are extracted once per machine into the real cache ($XDG_CACHE_HOME/mlapi
or ~/.cache/mlapi), the same place `mlapi train imdb --data <archive>` uses.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlapi.cli import main
from mlapi.data import imdb
from mlapi.data.commands import recipe_maxlen

pytestmark = pytest.mark.slow

REAL_ARCHIVE = Path(
    os.environ.get("IMDB_DATA")
    or Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "aclImdb_v1.tar.gz"
)
REAL_COUNTS = {
    "train/neg": 12_500,
    "train/pos": 12_500,
    "test/neg": 12_500,
    "test/pos": 12_500,
    "train/unsup": 50_000,
}


@pytest.fixture(scope="module")
def real_root():
    if not REAL_ARCHIVE.exists():
        pytest.skip(f"the real IMDb data is not here ({REAL_ARCHIVE}); set IMDB_DATA to run this")
    return imdb.find_dataset(REAL_ARCHIVE, include_unsup=True)


def test_real_dataset_counts_and_first_review(real_root):
    assert imdb.count_reviews(real_root) == REAL_COUNTS
    train = imdb.load_split(real_root, "train")
    assert len(train) == 25_000
    first_pos = next(r for r in train if r.label == 1)
    assert (first_pos.id, first_pos.rating) == (0, 9)
    assert first_pos.text.startswith("Bromwell High is a cartoon comedy.")
    assert (train[0].id, train[0].label) == (0, 0)
    assert all(r.rating <= 4 for r in train if r.label == 0)
    assert all(r.rating >= 7 for r in train if r.label == 1)


def test_real_dataset_cli(real_root, capsys):
    assert main(["data", "imdb", "--data", str(real_root)]) == 0
    out = capsys.readouterr().out
    assert "train    12,500   12,500          -   25,000" in out
    assert "test     12,500   12,500          -   25,000" in out
    assert "unsup         -        -     50,000   50,000" in out
    assert f"> maxlen={recipe_maxlen()}" in out  # the recipe's maxlen
