"""MLflow tracking of `mlapi train`: params, every epoch's metrics, tags and artifacts read
back through MlflowClient; an unreachable tracking server warns once and loses nothing."""

import socket

import pytest
from helpers.imdb import make_imdb_tree, tiny_counts
from mlflow.tracking import MlflowClient

from mlapi.cli import main
from mlapi.data import imdb
from mlapi.tracking import EXPERIMENT, Tracker
from mlapi.training.config import ExperimentConfig

TINY = ExperimentConfig(
    vocab_size=100, maxlen=20, embed_dim=8, hidden_size=4, epochs=2, batch_size=16, lr=1e-2,
    limit=60,
)  # fmt: skip


@pytest.fixture()
def tiny_imdb(tmp_path, monkeypatch):
    root = make_imdb_tree(tmp_path / "data", n_per_label=40, n_unsup=0)
    monkeypatch.setattr(imdb, "EXPECTED_COUNTS", tiny_counts(40))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("MLAPI_TORCH_THREADS", "1")
    monkeypatch.delenv("IMDB_DATA", raising=False)
    return root


@pytest.fixture()
def store(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def train(tiny_imdb, tmp_path, *extra):
    argv = ["train", "imdb", "--data", str(tiny_imdb), "--out", str(tmp_path / "out"),
            "--models-dir", str(tmp_path / "models"), "--quiet", "--install"]  # fmt: skip
    return main([*argv, *TINY.cli_args(), *extra])


def test_a_train_run_is_read_back_from_mlflow(tiny_imdb, tmp_path, store, capsys):
    assert train(tiny_imdb, tmp_path) == 0
    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_id in capsys.readouterr().out
    assert run.info.run_name == TINY.run_name and run.info.status == "FINISHED"
    params = run.data.params
    assert params["lr"] == "0.01" and params["hidden_size"] == "4" and params["limit"] == "60"
    assert params["precision"] == "fp32"
    tags = run.data.tags
    assert tags["device"] == "cpu" and tags["recipe"] == TINY.run_name
    assert tags["machine"] and tags["git_commit"] and tags["mlapi_kind"] == "train"
    assert tags["command"].startswith("mlapi train imdb --data")
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"):
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in history] == [1, 2], key
    assert 0 <= run.data.metrics["test_accuracy"] <= 1
    files = {a.path for a in client.list_artifacts(run.info.run_id)}
    for suffix in ("report.md", "curves.png", "confusion_matrix.csv", "confusion_matrix.png",
                   "history.csv", "config.json", "metrics.json"):  # fmt: skip
        assert f"{TINY.run_name}_{suffix}" in files
    model = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert "model/model.onnx" in model


def test_no_track_records_nothing(tiny_imdb, tmp_path, store):
    assert train(tiny_imdb, tmp_path, "--no-track") == 0
    assert not (tmp_path / "mlflow.db").exists()
    assert (tmp_path / "out" / f"{TINY.run_name}_report.md").is_file()


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed on exit: nothing listens there


def test_an_unreachable_tracking_server_warns_once_and_loses_nothing(
    tiny_imdb, tmp_path, monkeypatch, capsys
):
    uri = f"http://127.0.0.1:{free_loopback_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert train(tiny_imdb, tmp_path) == 0
    err = capsys.readouterr().err
    assert err.count(f"MLflow tracking to {uri} failed") == 1, err
    out = tmp_path / "out"
    for suffix in ("report.md", "curves.png", "history.csv", "metrics.json"):
        assert (out / f"{TINY.run_name}_{suffix}").is_file()
    assert (tmp_path / "models" / "sentiment" / "1" / "model.onnx").is_file()


def test_a_tracker_that_failed_stays_quiet_and_a_disabled_one_does_nothing(tmp_path, capsys):
    broken = Tracker.start("x", uri=f"http://127.0.0.1:{free_loopback_port()}")
    for epoch in (1, 2, 3):
        broken.log_metrics({"loss": 1.0}, step=epoch)
    broken.log_artifact(__file__)
    broken.end("FINISHED")
    assert capsys.readouterr().err.count("warning: MLflow tracking") == 1
    assert not broken.active
    off = Tracker.start("x", enabled=False)
    off.log_metrics({"loss": 1.0})
    off.end()
    assert not off.active and capsys.readouterr().err == ""


def test_a_failed_run_is_marked_failed(tmp_path, store):
    with pytest.raises(RuntimeError), Tracker.start("doomed") as tracker:
        tracker.log_metrics({"loss": 0.5}, step=1)
        raise RuntimeError("boom")
    run = MlflowClient(tracking_uri=store).get_run(tracker.run_id)
    assert run.info.status == "FAILED" and run.data.metrics["loss"] == 0.5


def test_compare_is_a_parent_run_with_one_nested_run_per_configuration(tiny_imdb, tmp_path, store):
    flags = " ".join(TINY.cli_args())
    argv = ["compare", "--data", str(tiny_imdb), "--out", str(tmp_path / "out"), "--quiet",
            "--run", flags, "--run", f"{flags} --hidden-size 6", "--baselines", "none",
            "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    client = MlflowClient(tracking_uri=store)
    runs = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.data.params["hidden_size"] for r in children) == ["4", "6"]
    assert all(r.data.tags["mlapi_kind"] == "compare" for r in children)
    assert "leaderboard.md" in {a.path for a in client.list_artifacts(parent.info.run_id)}
