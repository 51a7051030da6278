"""`mlapi compare`: plans from YAML or flags, the leaderboard writer (selection by val
accuracy only), --reuse, --install-best, and a tiny end-to-end comparison."""

import json

import pytest
from helpers.imdb import make_imdb_tree, tiny_counts

from mlapi.cli import main
from mlapi.compare.leaderboard import LeaderboardEntry, install_best, write_leaderboard
from mlapi.compare.plan import load_plan
from mlapi.compare.runner import single_review_latency_ms
from mlapi.data import imdb
from mlapi.errors import ConfigError, DataError
from mlapi.serving.sentiment import SentimentPredictor
from mlapi.training.config import ExperimentConfig
from mlapi.versions import served_artifact


def entry(name, val, test, kind="neural", recurrent=True, **extra):
    values = {
        "kind": kind, "name": name, "arch": name, "recurrent": recurrent, "val_accuracy": val,
        "test_accuracy": test, "train_val_gap": 0.05, "seconds_per_epoch": 12.0,
        "wall_seconds": 600.0, "parameters": 1234, "trainable_parameters": 1234,
        "latency_ms": 1.5, "created_at": "now", "command": f"mlapi train imdb --x {name}",
    }  # fmt: skip
    return LeaderboardEntry(**(values | extra))


def test_plan_from_yaml_merges_defaults_and_reads_flag_strings(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text(
        "data: some/where\n"
        "baselines: [nbsvm]\n"
        "defaults: {maxlen: 40, lr: 1e-3, epochs: 2}\n"
        "runs:\n"
        "  - {arch: gru, pooling: maxmean}\n"
        "  - '--arch cnn --epochs 3'\n"
        "notes: Measured on a busy machine.\n"
    )
    plan = load_plan(path)
    assert plan.notes == "Measured on a busy machine."
    assert plan.data == "some/where" and plan.baselines == ["nbsvm"]
    gru, cnn = plan.configs
    assert gru == ExperimentConfig(arch="gru", pooling="maxmean", maxlen=40, lr=1e-3, epochs=2)
    assert cnn == ExperimentConfig(arch="cnn", maxlen=40, lr=1e-3, epochs=3)
    assert isinstance(gru.lr, float)  # YAML reads 1e-3 as text


@pytest.mark.parametrize(
    "text, error, message",
    [
        ("runs: [{}, {arch: rnn}]", ConfigError,
         "run 2: arch must be one of lstm, bilstm, gru, bigru, cnn, transformer, got 'rnn'"),
        ("runs: [{val_fraction: 1.5}]", ConfigError,
         "run 1: val_fraction must be between 0 and 1, got 1.5"),
        ("runs: [{lr: fast}]", ConfigError, "run 1: lr must be a number, got 'fast'"),
        ("defaults: {epochs: 0}\nruns: [{}]", ConfigError,
         "defaults: epochs must be a positive integer, got 0"),
        ("runs: ['--dropout 1.5']", ConfigError, "run 1: --dropout must be in [0, 1), got 1.5"),
        ("runs: [{colour: blue}]", ConfigError, "run 1: unknown config keys: colour"),
        ("runs: ['--no-such-flag 3']", ConfigError,
         "run 1: unrecognized arguments: --no-such-flag 3"),
        ("runs: [7]", ConfigError, "run 1: expected config keys or a flag string, got 7"),
        ("baselines: [svm]", ConfigError, "baselines must be among tfidf_lr, nbsvm, got 'svm'"),
        ("colour: blue", DataError, "unknown keys colour"),
        ("[1, 2]", DataError, "expected a mapping"),
    ],
)  # fmt: skip
def test_bad_plans_raise_one_clear_error(tmp_path, text, error, message):
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    with pytest.raises(error) as raised:
        load_plan(path)
    assert str(raised.value).startswith(f"{path}: {message}") and "\n" not in str(raised.value)


def test_a_bad_plan_value_is_one_line_at_the_command_line(tmp_path, capsys):
    path = tmp_path / "plan.yaml"
    path.write_text("runs: [{arch: gru}, {arch: gru, dropout: 2}]\n")
    assert main(["compare", "--config", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"mlapi: error: {path}: run 2: dropout must be in [0, 1), got 2.0\n"
    )
    assert main(["compare", "--run", "--lr -1"]) == 2
    err = capsys.readouterr().err
    assert err == "mlapi: error: --run '--lr -1': --lr must be a positive number, got -1.0\n"


def test_leaderboard_selects_by_val_accuracy_never_by_test(tmp_path):
    entries = [
        entry("high_test", val=0.88, test=0.93),
        entry("high_val", val=0.91, test=0.90),
        entry("nbsvm", val=0.90, test=0.91, kind="baseline", recurrent=False,
              seconds_per_epoch=None),
    ]  # fmt: skip
    board = tmp_path / "board" / "leaderboard"
    paths = write_leaderboard(board, entries, "mlapi compare", notes="Busy machine.")
    assert {p.name for p in paths.values()} == {f"leaderboard.{k}" for k in ("md", "png", "json")}
    saved = json.loads(paths["json"].read_text())
    assert [e["name"] for e in saved["entries"]] == ["high_val", "nbsvm", "high_test"]
    assert saved["selected_by_val_accuracy"] == "high_val"
    assert saved["command"] == "mlapi compare"
    assert LeaderboardEntry.from_dict(saved["entries"][0]) == entries[1]

    table = paths["md"].read_text()
    rows = [line for line in table.splitlines() if line.startswith(("| 1 ", "| 2 "))]
    assert "`high_val` (selected)" in rows[0] and "| 0.9100 | 0.9000 |" in rows[0]
    assert "`nbsvm`" in rows[1] and "| — |" in rows[1]  # no epochs for a baseline
    for header in ("val acc", "test acc", "gap", "s/epoch", "params", "latency ms"):
        assert header in table
    assert "Reproduce: `mlapi compare`" in table and "mlapi train imdb --x high_val" in table
    assert "\nBusy machine.\n" in table and saved["notes"] == "Busy machine."
    assert paths["png"].read_bytes().startswith(b"\x89PNG")

    with pytest.raises(DataError, match="nothing to compare"):
        write_leaderboard(tmp_path / "empty", [], "mlapi compare")


def test_install_best_copies_the_best_neural_model_by_val(tmp_path):
    models = {}
    for name in ("a", "b"):
        folder = tmp_path / "exported" / name
        folder.mkdir(parents=True)
        (folder / "model.onnx").write_text(name)
        models[name] = folder
    entries = [
        entry("a", val=0.80, test=0.95, model_dir=str(models["a"])),
        entry("b", val=0.85, test=0.80, model_dir=str(models["b"])),
        entry("nbsvm", val=0.99, test=0.99, kind="baseline", recurrent=False),
    ]
    installed = install_best(entries, tmp_path / "models")
    assert installed == tmp_path / "models" / "sentiment" / "1"  # a new version
    assert (installed / "model.onnx").read_text() == "b"
    with pytest.raises(DataError, match="at least one neural"):
        install_best(entries[2:], tmp_path / "models")


def test_latency_is_the_median_single_review_call():
    calls = []
    assert single_review_latency_ms(calls.append, ["a", "b", "c"], warmup=1) >= 0
    assert calls == [["a"], ["a"], ["b"], ["c"]]


@pytest.fixture()
def tiny_imdb(tmp_path, monkeypatch):
    root = make_imdb_tree(tmp_path / "data", n_per_label=40, n_unsup=0)
    monkeypatch.setattr(imdb, "EXPECTED_COUNTS", tiny_counts(40))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("IMDB_DATA", raising=False)
    return root


TINY_FLAGS = (
    "--vocab-size 100 --maxlen 20 --embed-dim 8 --hidden-size 4 --epochs 2 --batch-size 16 "
    "--lr 1e-2 --heads 2"
)


def test_compare_end_to_end_on_a_tiny_dataset(tiny_imdb, tmp_path, monkeypatch, capsys):
    out, models = tmp_path / "out", tmp_path / "models"
    argv = [
        "compare", "--data", str(tiny_imdb), "--out", str(out), "--quiet",
        "--run", f"--arch gru --pooling max {TINY_FLAGS}",
        "--run", f"--arch transformer {TINY_FLAGS}",
        "--baselines", "nbsvm", "--models-dir", str(models),
    ]  # fmt: skip
    assert main(argv) == 0
    board = json.loads((out / "leaderboard.json").read_text())
    assert [e["kind"] for e in board["entries"]].count("neural") == 2
    assert {e["name"] for e in board["entries"]} >= {"nbsvm"}
    vals = [e["val_accuracy"] for e in board["entries"]]
    assert vals == sorted(vals, reverse=True)
    neural = [e for e in board["entries"] if e["kind"] == "neural"]
    for e in neural:
        assert e["parameters"] > 0 and e["latency_ms"] > 0 and e["parity_max_abs_diff"] <= 1e-4
        assert SentimentPredictor.load(e["model_dir"]).metadata["run_name"] == e["name"]
        metrics = json.loads((out / f"{e['name']}_metrics.json").read_text())
        assert e["parameters"] == metrics["parameters"]  # counted by the run itself
    assert (out / "leaderboard.md").is_file() and (out / "leaderboard.png").is_file()
    assert not models.exists()  # nothing installed unless asked
    assert "selected by val accuracy" in capsys.readouterr().out

    def no_training(*args, **kwargs):
        raise AssertionError("--reuse must not train again")

    monkeypatch.setattr("mlapi.training.run.run_experiment", no_training)
    monkeypatch.setattr("mlapi.baselines.run_baseline", no_training)
    assert main([*argv, "--reuse", "--install-best", "--leaderboard", str(tmp_path / "lb")]) == 0
    again = json.loads((tmp_path / "lb.json").read_text())
    assert [e["name"] for e in again["entries"]] == [e["name"] for e in board["entries"]]
    best_neural = neural[0]["name"]
    installed = SentimentPredictor.load(served_artifact(models, "sentiment"))
    assert installed.metadata["run_name"] == best_neural
    assert main(["compare", "--data", str(tiny_imdb), "--out", str(out)]) == 2  # nothing to do
