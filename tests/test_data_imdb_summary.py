"""`mlapi data imdb`: counts per split and label, token lengths, the share of reviews longer
than maxlen (the recipe's by default); user errors in one line.

Every test runs in `imdb_sandbox` (tests/conftest.py): its own cache dir, tiny expected
counts, no network.
"""

from __future__ import annotations

import json

import pytest
from helpers.imdb import (
    N_PER_LABEL,
    N_UNSUP,
    cache_files,
)

from mlapi.cli import main
from mlapi.data import imdb
from mlapi.text import tokenize
from mlapi.training.config import ExperimentConfig

pytestmark = pytest.mark.usefixtures("imdb_sandbox")


def test_cli_prints_counts_and_token_lengths(imdb_tree, capsys):
    assert main(["data", "imdb", "--data", str(imdb_tree)]) == 0
    out = capsys.readouterr().out
    assert f"IMDb dataset: {imdb_tree}" in out
    rows: dict[str, list[str]] = {}
    for line in filter(str.strip, out.splitlines()):
        rows.setdefault(line.split()[0], line.split()[1:])  # first table: counts
    assert rows["train"][:4] == [str(N_PER_LABEL), str(N_PER_LABEL), "-", str(2 * N_PER_LABEL)]
    assert rows["test"][:4] == [str(N_PER_LABEL), str(N_PER_LABEL), "-", str(2 * N_PER_LABEL)]
    assert rows["unsup"][:4] == ["-", "-", str(N_UNSUP), str(N_UNSUP)]
    assert "tokens per review" in out and "p50" in out


def test_cli_describes_unsup_only_when_present_and_then_strictly(imdb_tree, capsys):
    files = sorted((imdb_tree / "train" / "unsup").iterdir())
    files[0].unlink()
    assert main(["data", "imdb", "--data", str(imdb_tree)]) == 2
    assert f"train/unsup/ has {N_UNSUP - 1} review files" in capsys.readouterr().err
    for file in files[1:]:
        file.unlink()
    (imdb_tree / "train" / "unsup").rmdir()
    assert main(["data", "imdb", "--data", str(imdb_tree)]) == 0
    out = capsys.readouterr().out
    assert "train " in out and "unsup " not in out


def test_cli_json_summary_matches_the_reviews(imdb_tree, capsys):
    assert main(["data", "imdb", "--data", str(imdb_tree), "--json", "--maxlen", "20"]) == 0
    summary = json.loads(capsys.readouterr().out)
    lengths = [len(tokenize(r.text)) for r in imdb.load_split(imdb_tree, "train")]
    train = summary["splits"]["train"]
    assert train["counts"] == {"neg": N_PER_LABEL, "pos": N_PER_LABEL}
    assert train["tokens"]["max"] == max(lengths)
    assert train["longer_than_maxlen"] == round(sum(n > 20 for n in lengths) / len(lengths), 4)


def test_cli_user_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert main(["data", "imdb", "--data", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mlapi: error: IMDb data not found at") and "\n" not in err


def test_cli_offline_without_data(capsys):
    assert main(["data", "imdb"]) == 2
    err = capsys.readouterr().err
    assert imdb.URL in err and "IMDB_DATA" in err
    assert cache_files() == []


def test_cli_reports_the_recipe_maxlen_unless_told_another(imdb_tree, capsys):
    recipe = ExperimentConfig().maxlen
    assert main(["data", "imdb", "--data", str(imdb_tree), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["maxlen"] == recipe
    assert main(["data", "imdb", "--data", str(imdb_tree)]) == 0
    assert f"> maxlen={recipe}" in capsys.readouterr().out
    assert main(["data", "imdb", "--data", str(imdb_tree), "--maxlen", "7"]) == 0
    assert "> maxlen=7" in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["0", "-5", "abc", "2.5", ""])
def test_cli_bad_maxlen_is_one_line_naming_the_flag_before_any_work(bad, capsys, monkeypatch):
    monkeypatch.setattr(imdb, "find_dataset", lambda *a, **k: pytest.fail("looked for data"))
    assert main(["data", "imdb", "--maxlen", bad]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"mlapi: error: --maxlen must be a whole number of tokens, 1 or more, got {bad!r}"
    )
