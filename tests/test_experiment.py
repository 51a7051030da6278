"""ExperimentConfig, run names and the CLI flags derived from them; end-to-end tiny runs."""

import argparse
import csv
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.imdb import make_imdb_tree, tiny_counts

from mlapi import reporting, versions
from mlapi.cli import main
from mlapi.data import imdb
from mlapi.errors import ConfigError
from mlapi.training import loop
from mlapi.training.config import (
    ExperimentConfig,
    add_config_arguments,
    config_from_args,
    run_name,
)
from mlapi.training.run import train_network
from mlapi.training.saved import OUTPUT_FILES, evaluate_run, find_run, output_path
from mlapi.versions import served_artifact

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
    if isinstance(field.default, str):
        return "word2vec"
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
    with pytest.raises(ConfigError, match="unknown config keys: colour"):
        ExperimentConfig.from_dict({"colour": "blue"})


ARCH_NAMES = "lstm, bilstm, gru, bigru, cnn, transformer"
# (flags, the one line `mlapi train imdb FLAGS` must print): every checked setting.
BAD_FLAGS = [
    (["--arch", "foo"], f"--arch must be one of {ARCH_NAMES}, got 'foo'"),
    (["--vocab-size", "2"], "--vocab-size must be at least 3 (0 padding, 1 out-of-vocabulary, "
     "2.. words), got 2"),
    (["--vocab-size", "many"], "--vocab-size must be an integer, got 'many'"),
    (["--maxlen", "0"], "--maxlen must be a positive integer, got 0"),
    (["--padding", "middle"], "--padding must be one of pre, post, got 'middle'"),
    (["--truncating", "end"], "--truncating must be one of pre, post, got 'end'"),
    (["--val-fraction", "1.5"], "--val-fraction must be between 0 and 1, got 1.5"),
    (["--val-fraction", "0"], "--val-fraction must be between 0 and 1, got 0.0"),
    (["--limit", "1"], "--limit must be at least 2 reviews, or none for all, got 1"),
    (["--limit", "lots"], "--limit must be an integer, got 'lots'"),
    (["--embed-dim", "-8"], "--embed-dim must be a positive integer, got -8"),
    (["--hidden-size", "0"], "--hidden-size must be a positive integer, got 0"),
    (["--dropout", "1"], "--dropout must be in [0, 1), got 1.0"),
    (["--recurrent-dropout", "-0.1"], "--recurrent-dropout must be in [0, 1), got -0.1"),
    (["--l2=-1e-4"], "--l2 must be 0 or more, got -0.0001"),
    (["--pooling", "median"], "--pooling must be one of auto, last, max, mean, maxmean, "
     "got 'median'"),
    (["--num-layers", "0"], "--num-layers must be a positive integer, got 0"),
    (["--heads", "0"], "--heads must be a positive integer, got 0"),
    (["--arch", "transformer", "--heads", "5"],
     "--heads must be a divisor of --embed-dim (128) for the transformer, got 5"),
    (["--embeddings", " "], "--embeddings must be none, word2vec or the PATH of a file, got ' '"),
    (["--embeddings-mode", "thawed"], "--embeddings-mode must be one of finetune, frozen, "
     "got 'thawed'"),
    (["--optimizer", "sgd"], "--optimizer must be one of adam, got 'sgd'"),
    (["--lr", "0"], "--lr must be a positive number, got 0.0"),
    (["--lr", "nan"], "--lr must be a finite number, got nan"),
    (["--clipnorm", "-1"], "--clipnorm must be 0 or more, got -1.0"),
    (["--clip-mode", "local"], "--clip-mode must be one of per_parameter, global, got 'local'"),
    (["--loss", "mse"], "--loss must be one of bce, got 'mse'"),
    (["--batch-size", "0"], "--batch-size must be a positive integer, got 0"),
    (["--epochs", "ten"], "--epochs must be an integer, got 'ten'"),
    (["--early-stopping-patience", "-1"], "--early-stopping-patience must be 0 or more, got -1"),
    (["--reduce-lr-patience", "-2"], "--reduce-lr-patience must be 0 or more, got -2"),
    (["--reduce-lr-factor", "1.5"], "--reduce-lr-factor must be between 0 and 1, got 1.5"),
    (["--min-lr", "1e-3"], "--min-lr must be at most --lr (2e-4), got 0.001"),
    (["--checkpoint-monitor", "val_auc"], "--checkpoint-monitor must be one of val_accuracy, "
     "val_loss, got 'val_auc'"),
    (["--seed", "-1"], "--seed must be an integer in [0, 2**32), got -1"),
    (["--install", "--no-export"], "--install and --no-export exclude each other: give one of "
     "them"),
]  # fmt: skip


def test_every_setting_has_a_bad_value_case():
    flags = {argv[-2] if len(argv) > 1 else argv[0].split("=")[0] for argv, _ in BAD_FLAGS}
    assert flags >= {"--" + f.name.replace("_", "-") for f in dataclasses.fields(ExperimentConfig)}


@pytest.mark.parametrize("argv, message", BAD_FLAGS, ids=lambda v: " ".join(v)[:40])
def test_a_bad_flag_is_one_line_naming_flag_value_and_what_is_allowed(argv, message, capsys):
    assert main(["train", "imdb", "--data", "/nowhere", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"mlapi: error: {message}\n" and captured.out == ""


def test_the_command_line_prints_one_line_and_no_traceback():
    done = subprocess.run(
        [sys.executable, "-m", "mlapi", "train", "imdb", "--val-fraction", "1.5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "mlapi: error: --val-fraction must be between 0 and 1, got 1.5\n"


def test_saved_and_yaml_configs_are_checked_by_key_and_parsed_like_flags():
    assert ExperimentConfig.from_dict({"lr": "1e-3", "limit": "none"}) == ExperimentConfig(lr=1e-3)
    assert ExperimentConfig.from_dict({"epochs": 3}).epochs == 3
    with pytest.raises(ConfigError, match=r"^val_fraction must be between 0 and 1, got 1.5$"):
        ExperimentConfig.from_dict({"val_fraction": 1.5})
    with pytest.raises(ConfigError, match=r"^min_lr must be at most lr \(2e-4\), got 0.1$"):
        ExperimentConfig.from_dict({"min_lr": 0.1})
    with pytest.raises(ConfigError, match="^dropout must be a number, got True$"):
        ExperimentConfig.from_dict({"dropout": True})
    with pytest.raises(ConfigError, match="^epochs must be an integer, got 2.5$"):
        ExperimentConfig.from_dict({"epochs": 2.5})


# ---------------------------------------------------------------------------------------
# End to end: `mlapi train imdb` on a tiny aclImdb tree, then evaluate and predict.

N_PER_LABEL = 100  # reviews per label in train/ and in test/
TINY = ExperimentConfig(
    limit=160, epochs=2, vocab_size=200, maxlen=20, embed_dim=8, hidden_size=4, batch_size=32
)
TINY_FLAGS = [*TINY.cli_args(), "--quiet", "--install"]  # a --limit run: installs if asked
METRIC_KEYS = {
    "train_accuracy_final", "val_accuracy_final", "val_accuracy_best", "val_accuracy_best_epoch",
    "train_val_gap", "val_loss_rises", "test_accuracy", "per_class", "roc_auc", "epochs_run",
    "seconds_per_epoch", "versions", "confusion_matrix", "checkpoint_epoch",
    "val_loss_best_epoch", "parameters", "trainable_parameters",
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
    ids = metrics["vocab_ids"]  # fewer words in 160 tiny reviews than the cap of 200 ids
    assert ids < TINY.vocab_size and f"Embedding({ids}, 8)" in report
    assert f"hold only {ids - 2:,} distinct words, so the vocabulary" in report

    installed = served_artifact(models, "sentiment")
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
        monkeypatch.setattr(versions, "_install_locked", interrupt)
    argv = ["train", "imdb", "--data", str(tiny_imdb), "--out", str(out)]
    assert main([*argv, "--models-dir", str(models), *TINY_FLAGS]) == 130
    state = f".{TINY.run_name}.resume"
    if where != "installing the model":  # by then the run's outputs are complete
        outputs = {k: v for k, v in snapshot(out).items() if not k.startswith(state)}
        assert outputs == before_out
        assert (out / state / "config.json").is_file()  # kept for --resume
    assert sorted(p.name for p in out.iterdir() if p.name != state) == sorted(before_out)
    assert snapshot(models) == before_models


class SplitReadRecorder:
    """Records every file of the test split, or of its encoded cache, opened while armed.

    A Python audit hook sees each `open()`, so a read is caught whether the reviews come
    from the aclImdb tree or from the cache that an earlier run filled."""

    def __init__(self):
        self.test_dir, self.opened = None, []
        sys.addaudithook(self._hook)  # hooks cannot be removed: disarmed, it does nothing

    def _hook(self, event, args):
        if event != "open" or self.test_dir is None or not isinstance(args[0], str | Path):
            return
        path = os.path.abspath(os.fspath(args[0]))
        in_tree = path.startswith(self.test_dir + os.sep)
        in_cache = "imdb-encoded" in path and Path(path).name.startswith("test-")
        if in_tree or in_cache:
            self.opened.append(path)

    def arm(self, root):
        self.test_dir, self.opened = os.path.abspath(root / "test"), []

    def disarm(self):
        self.test_dir = None


TEST_SPLIT_READS = SplitReadRecorder()


@pytest.fixture
def test_split_reads(tiny_imdb):
    TEST_SPLIT_READS.arm(tiny_imdb)
    yield TEST_SPLIT_READS
    TEST_SPLIT_READS.disarm()


def encode_tiny(data):
    return imdb.load_encoded(data, **TINY.encoding())


def test_training_for_model_selection_never_reads_the_test_split(
    tiny_imdb, tiny_run, test_split_reads, tmp_path
):
    encoded = encode_tiny(tiny_imdb)
    network, history, checkpoint = train_network(TINY, encoded, tmp_path, progress=False)
    assert [e["epoch"] for e in history.epochs] == [1, 2]
    assert (tmp_path / "best.pt").is_file() and checkpoint.saved_epoch in (1, 2)
    assert test_split_reads.opened == []
    # The guard sees a test-split read even when it comes from the cache (tiny_run filled it).
    imdb.load_encoded_test(tiny_imdb, encoded.vocabulary)
    assert test_split_reads.opened and all("imdb-encoded" in p for p in test_split_reads.opened)
    imdb.load_encoded_test(tiny_imdb, encoded.vocabulary, cache=False)
    assert any(p.startswith(str(tiny_imdb / "test")) for p in test_split_reads.opened)


def test_a_limit_run_keeps_the_installed_model_unless_told(tiny_imdb, tiny_run, tmp_path, capsys):
    out, models = tmp_path / "out", tmp_path / "models"
    shutil.copytree(tiny_run[1], models)
    before = snapshot(models)
    argv = ["train", "imdb", "--data", str(tiny_imdb), "--out", str(out)]
    flags = [*argv, "--models-dir", str(models), *TINY.cli_args(), "--seed", "3"]
    capsys.readouterr()
    assert main(flags) == 0
    captured = capsys.readouterr()
    assert snapshot(models) == before
    assert "model NOT installed: a --limit run" in captured.out and "add --install" in captured.out
    assert "testing epoch" in captured.err and "exporting" not in captured.err

    assert main([*flags, "--install", "--quiet"]) == 0
    recorded = json.loads(output_path(tiny_run[0], TINY.run_name, "metrics").read_text())
    replaced = f"it replaced {TINY.run_name} (test accuracy {recorded['test_accuracy']:.4f})"
    assert replaced in capsys.readouterr().out
    installed = json.loads((served_artifact(models, "sentiment") / "metadata.json").read_text())
    assert installed["run_name"] == dataclasses.replace(TINY, seed=3).run_name


def test_a_full_run_says_what_it_replaced_and_shows_progress_after_training(
    tiny_imdb, tmp_path, capsys
):
    out, models = tmp_path / "out", tmp_path / "models"
    config = dataclasses.replace(TINY, limit=None, epochs=1)
    argv = ["train", "imdb", "--data", str(tiny_imdb), "--out", str(out)]
    flags = [*argv, "--models-dir", str(models), *config.cli_args()]
    assert main(flags) == 0
    captured = capsys.readouterr()
    assert "no model was installed before" in captured.out
    for step in ("testing epoch 1's weights", "writing the report", "exporting to ONNX"):
        assert step in captured.err
    assert main([*flags, "--seed", "5", "--quiet"]) == 0
    assert f"it replaced {config.run_name}" in capsys.readouterr().out
