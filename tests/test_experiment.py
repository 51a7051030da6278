"""ExperimentConfig, run names and the CLI flags derived from them; end-to-end tiny runs."""

import argparse
import csv
import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from helpers.imdb import make_imdb_tree, tiny_counts

from mlapi import export, reporting
from mlapi.cli import main
from mlapi.data import imdb
from mlapi.training import loop
from mlapi.training.experiment import (
    OUTPUT_FILES,
    ExperimentConfig,
    add_config_arguments,
    config_from_args,
    evaluate_run,
    find_run,
    load_training_data,
    output_path,
    run_name,
    train_network,
)

SEED_RUN = "imdb_lstm__adam2e-4_clip1.0__bce__vs0.2__bs64__ep10"


def parse(argv):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    return config_from_args(parser.parse_args(argv))


def another_value(field):
    """A valid value different from the field's default."""
    choices = field.metadata.get("choices")
    if choices:
        return next((c for c in choices if c != field.default), None)
    if field.default is None:
        return 500
    if isinstance(field.default, int):
        return field.default + 1
    return field.default / 2


def test_defaults_are_the_seed_recipe_and_name():
    config = ExperimentConfig()
    assert config.run_name == SEED_RUN
    assert (config.vocab_size, config.maxlen, config.embed_dim, config.hidden_size) == (
        50000, 300, 128, 64)  # fmt: skip
    assert (config.lr, config.clipnorm, config.batch_size, config.epochs) == (2e-4, 1.0, 64, 10)
    assert parse([]) == config


def test_other_settings_get_other_names():
    assert run_name(ExperimentConfig(lr=1e-3, epochs=3)) == (
        "imdb_lstm__adam1e-3_clip1.0__bce__vs0.2__bs64__ep3")  # fmt: skip
    assert run_name(ExperimentConfig(clipnorm=0)).startswith("imdb_lstm__adam2e-4_noclip__")
    tiny = ExperimentConfig(vocab_size=200, maxlen=20, limit=300, seed=7)
    assert tiny.run_name == SEED_RUN + "__voc200_len20_n300_seed7"


# Fields with one allowed value so far (optimizer, loss) cannot change yet.
CHANGEABLE = [f for f in dataclasses.fields(ExperimentConfig) if another_value(f) is not None]


@pytest.mark.parametrize("field", CHANGEABLE, ids=lambda f: f.name)
def test_every_setting_changes_the_name_and_has_a_flag(field):
    value = another_value(field)
    config = ExperimentConfig(**{field.name: value})
    assert config.run_name != SEED_RUN
    assert "/" not in config.run_name and " " not in config.run_name
    assert parse(config.cli_args()) == config


def test_names_are_distinct_across_single_changes():
    names = {ExperimentConfig(**{f.name: another_value(f)}).run_name for f in CHANGEABLE}
    assert len(names | {SEED_RUN}) == len(CHANGEABLE) + 1


def test_config_round_trips_through_its_dict_and_rejects_unknown_keys():
    config = ExperimentConfig(limit=300, hidden_size=8)
    assert ExperimentConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown config keys: colour"):
        ExperimentConfig.from_dict({"colour": "blue"})


@pytest.mark.parametrize(
    "bad", [{"arch": "rnn"}, {"val_fraction": 1.0}, {"limit": 1}, {"maxlen": 0}]
)
def test_invalid_settings_are_refused(bad):
    with pytest.raises(ValueError):
        ExperimentConfig(**bad)


# ---------------------------------------------------------------------------------------
# End to end: `mlapi train imdb` on a tiny aclImdb tree, then evaluate and predict.

N_PER_LABEL = 100  # reviews per label in train/ and in test/
TINY = ExperimentConfig(
    limit=160, epochs=2, vocab_size=200, maxlen=20, embed_dim=8, hidden_size=4, batch_size=32
)
TINY_FLAGS = [*TINY.cli_args(), "--quiet"]
METRIC_KEYS = {
    "train_accuracy_final", "val_accuracy_final", "val_accuracy_best", "best_epoch",
    "train_val_gap", "val_loss_rises", "test_accuracy", "per_class", "roc_auc", "epochs_run",
    "seconds_per_epoch", "versions", "confusion_matrix", "checkpoint_epoch",
}  # fmt: skip


@pytest.fixture(scope="module")
def tiny_imdb(tmp_path_factory):
    """A tiny aclImdb tree, the data pipeline told to accept it, a private cache."""
    root = make_imdb_tree(tmp_path_factory.mktemp("imdb"), n_per_label=N_PER_LABEL, n_unsup=0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(imdb, "EXPECTED_COUNTS", tiny_counts(N_PER_LABEL, 0))
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        mp.delenv("IMDB_DATA", raising=False)
        yield root


@pytest.fixture(scope="module")
def tiny_run(tiny_imdb, tmp_path_factory):
    """One finished tiny run: (out dir, models dir, CLI exit code)."""
    base = tmp_path_factory.mktemp("run")
    out, models = base / "out", base / "models"
    argv = ["train", "imdb", "--data", str(tiny_imdb), "--out", str(out)]
    code = main([*argv, "--models-dir", str(models), *TINY_FLAGS])
    return out, models, code


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (hidden ones included) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_tiny_run_writes_every_output_with_the_right_keys(tiny_run):
    out, models, code = tiny_run
    assert code == 0
    name = TINY.run_name
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [output_path(out, name, kind).name for kind in OUTPUT_FILES] + [f"{name}_best.pt.json"]
    )  # and nothing half-written or left in staging
    metrics = json.loads(output_path(out, name, "metrics").read_text())
    assert set(metrics) >= METRIC_KEYS
    assert metrics["epochs_run"] == 2 and metrics["n_train"] + metrics["n_val"] == 160
    assert metrics["n_test"] == 2 * N_PER_LABEL == sum(map(sum, metrics["confusion_matrix"]))
    assert set(metrics["per_class"]) == {"negative", "positive"}
    assert set(metrics["per_class"]["positive"]) == {"precision", "recall", "f1", "support"}
    assert metrics["train_val_gap"] == pytest.approx(
        metrics["train_accuracy_final"] - metrics["val_accuracy_final"]
    )
    assert {"torch", "numpy", "scikit-learn", "onnxruntime"} <= set(metrics["versions"])

    saved = json.loads(output_path(out, name, "config").read_text())
    assert ExperimentConfig.from_dict(saved["config"]) == TINY
    assert saved["command"].startswith("mlapi train imdb --data ")

    history = list(csv.DictReader(output_path(out, name, "history").open()))
    assert [row["epoch"] for row in history] == ["1", "2"]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr"} <= set(history[0])
    matrix = list(csv.reader(output_path(out, name, "confusion_csv").open()))
    assert matrix[0] == ["true\\predicted", "negative", "positive"]
    for kind in ("curves", "confusion_png"):
        assert output_path(out, name, kind).read_bytes().startswith(b"\x89PNG")
    report = output_path(out, name, "report").read_text()
    assert f"`{name}`" in report and "## Diagnostics" in report
    assert f"| test accuracy | {metrics['test_accuracy']:.4f} |" in report

    installed = models / "sentiment"
    assert sorted(p.name for p in installed.iterdir()) == [
        "metadata.json", "model.onnx", "vocabulary.json"]  # fmt: skip
    meta = json.loads((installed / "metadata.json").read_text())
    assert meta["run_name"] == name
    assert meta["metrics"]["test_accuracy"] == metrics["test_accuracy"]


def test_evaluate_recomputes_the_recorded_test_metrics(tiny_run, capsys):
    out, _, _ = tiny_run
    saved = find_run(TINY.run_name, out)
    test = evaluate_run(saved)
    recorded = json.loads(saved.path("metrics").read_text())
    assert test.accuracy == recorded["test_accuracy"]
    assert test.confusion_matrix == recorded["confusion_matrix"]
    assert find_run(saved.path("report")).run_name == TINY.run_name  # any file of the run
    assert main(["evaluate", TINY.run_name, "--out", str(out)]) == 0
    assert f"{recorded['test_accuracy']:.4f}" in capsys.readouterr().out
    assert main(["evaluate", "no_such_run", "--out", str(out)]) == 2


def test_predict_prints_label_and_probability(tiny_run, capsys):
    _, models, _ = tiny_run
    assert main(["predict", "a great and wonderful film", "--models-dir", str(models)]) == 0
    label, probability, text = capsys.readouterr().out.strip().split("\t")
    assert label in ("positive", "negative") and 0 <= float(probability) <= 1
    assert text == "a great and wonderful film"
    assert main(["predict", "anything", "--models-dir", str(models / "none")]) == 2


@pytest.mark.parametrize("where", ["training", "writing outputs", "installing the model"])
def test_an_interrupted_run_leaves_old_outputs_and_model_untouched(
    where, tiny_imdb, tiny_run, tmp_path, monkeypatch
):
    out, models = tmp_path / "out", tmp_path / "models"
    shutil.copytree(tiny_run[0], out)  # the same run name: its files must survive as they were
    shutil.copytree(tiny_run[1], models)
    before_out, before_models = snapshot(out), snapshot(models)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    if where == "training":
        monkeypatch.setattr(loop, "_train_epoch", interrupt)  # fit turns it into interrupted
    elif where == "writing outputs":
        monkeypatch.setattr(reporting, "plot_confusion_matrix", interrupt)  # curves are done
    else:
        monkeypatch.setattr(export, "replace_directory", interrupt)
    argv = ["train", "imdb", "--data", str(tiny_imdb), "--out", str(out)]
    assert main([*argv, "--models-dir", str(models), *TINY_FLAGS]) == 130
    state = f".{TINY.run_name}.resume"
    if where != "installing the model":  # by then the run's outputs are complete
        outputs = {k: v for k, v in snapshot(out).items() if not k.startswith(state)}
        assert outputs == before_out
        assert (out / state / "config.json").is_file()  # kept for --resume
    assert sorted(p.name for p in out.iterdir() if p.name != state) == sorted(before_out)
    assert snapshot(models) == before_models


def test_training_for_model_selection_never_reads_the_test_split(tiny_imdb, tmp_path, monkeypatch):
    read_split = imdb.load_split

    def train_splits_only(root, split, *args, **kwargs):
        assert split != "test", "model selection read the test split"
        return read_split(root, split, *args, **kwargs)

    monkeypatch.setattr(imdb, "load_split", train_splits_only)
    encoded = load_training_data(TINY, tiny_imdb)
    network, history, checkpoint = train_network(TINY, encoded, tmp_path, progress=False)
    assert [e["epoch"] for e in history.epochs] == [1, 2]
    assert (tmp_path / "best.pt").is_file() and checkpoint.best_epoch in (1, 2)
    assert sum(p.numel() for p in network.parameters()) > 0
