"""`mlapi tune`: the space file's one-line errors, and sweeps on the real engines (Ray Tune,
Optuna, MLflow; no mocks) over a ~500-review synthetic IMDb: ASHA stops a trial, a failing
trial is reported and the sweep goes on, a two-node cluster runs trials on both nodes, an
interrupted sweep resumes."""

import json
import os
import signal
import threading
import time

import pytest
from helpers.imdb import make_imdb_tree, tiny_counts
from mlflow.tracking import MlflowClient

from mlapi.cli import main
from mlapi.data import imdb
from mlapi.errors import ConfigError
from mlapi.tracking import EXPERIMENT
from mlapi.tuning.space import parse_space
from mlapi.tuning.sweep import SweepOptions, resume_sweep, run_sweep

N_PER_LABEL = 250  # 500 training reviews: 400 train / 100 val
BASE = ("--maxlen 20 --embed-dim 8 --hidden-size 4 --epochs 2 "
        "--batch-size 16 --lr 0.03 --recurrent-dropout 0")  # fmt: skip


def space(**search) -> dict:
    return {"base": BASE, "metric": "val_accuracy", "mode": "max", "search": search}


@pytest.mark.parametrize(
    "raw, message",
    [
        ({**space(lr={"uniform": [0.1, 0.2]}), "colour": 1}, "unknown key 'colour'"),
        ({**space(dropout={"uniform": [0.1, 0.2]}), "metric": "f1"},
         "metric: must be one of val_accuracy, val_loss, got 'f1'"),
        ({**space(dropout={"uniform": [0.1, 0.2]}), "mode": "up"}, "mode: must be max or min"),
        (space(colour={"choice": [1]}), "search.colour: not a flag of `mlapi train imdb`"),
        (space(lr={"choice": [0.1]}), "search.lr: is also fixed in base"),
        (space(dropout={"normal": [0, 1]}), "search.dropout: expected one of {loguniform"),
        (space(dropout={"uniform": [0.1, 1.5]}),
         "search.dropout: uniform value 1.5: dropout must be in [0, 1), got 1.5"),
        (space(l2={"loguniform": [0, 1e-3]}), "search.l2: loguniform: bounds must be positive"),
        (space(num_layers={"randint": [3, 2]}),
         "search.num_layers: randint: low must be below high"),
        (space(num_layers={"randint": [1.5, 3]}),
         "search.num_layers: randint: expected integer bounds"),
        (space(num_layers={"uniform": [1, 3]}),
         "search.num_layers: uniform value 1.0: num_layers must be an integer"),
        (space(arch={"choice": ["lstm", "rnn"]}),
         "search.arch: choice value 'rnn': arch must be one of lstm"),
        (space(dropout={"uniform": "0.1-0.5"}), "search.dropout: uniform: expected a list"),
        ({**space(dropout={"uniform": [0.1, 0.2]}), "base": "--epochs 0"},
         "base: --epochs must be a positive integer, got 0"),
        (space(), "search: expected a mapping of flag -> distribution"),
        ([1, 2], "expected a mapping with keys base, metric, mode, search"),
    ],
)  # fmt: skip
def test_bad_space_files_are_one_line_naming_the_key(raw, message):
    with pytest.raises(ConfigError) as raised:
        parse_space(raw)
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)


def test_a_space_file_reads_flags_and_distributions(tmp_path):
    parsed = parse_space(
        {**space(**{"num-layers": {"choice": [1, 2]}, "dropout": {"uniform": [0.1, 0.5]}})}
    )
    assert parsed.base["lr"] == 0.03 and parsed.base["epochs"] == 2
    assert parsed.search == {"num_layers": ("choice", [1, 2]), "dropout": ("uniform", [0.1, 0.5])}
    assert parsed.config({"num_layers": 2}).num_layers == 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--num-samples", "2"], "--space is required (or --resume DIR)"),
        (["--resume", "nowhere"], "no sweep there (sweep.json is missing)"),
        (["--space", "SPACE", "--num-samples", "0"], "--num-samples must be at least 1, got 0"),
        (["--space", "SPACE", "--limit", "ten"], "--limit must be a number of reviews, got 'ten'"),
        (["--space", "missing.yaml"], "--space missing.yaml: cannot read it"),
        (["--space", "SPACE", "--device", "tpu"], "--device must be one of auto, cpu, cuda"),
        (["--space", "SPACE", "--scheduler", "pbt"], "--scheduler must be asha or fifo, got 'pbt'"),
    ],
)
def test_bad_tune_flags_are_one_line_before_ray_starts(argv, message, tmp_path, capsys):
    import ray

    path = tmp_path / "space.yaml"
    path.write_text(json.dumps(space(dropout={"uniform": [0.1, 0.5]})))
    argv = [str(path) if a == "SPACE" else a for a in argv]
    assert main(["tune", "--out", str(tmp_path / "sweep"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mlapi: error: ") and message in err and err.count("\n") == 1
    assert not ray.is_initialized()


# -- sweeps on the real engines ---------------------------------------------------------------


def tiny_counts_hook(counts: dict):
    """A worker_process_setup_hook that makes every Ray worker accept the tiny tree (a
    nested function: Ray pickles it by value, the workers cannot import this module)."""

    def hook():
        from mlapi.data import imdb

        imdb.EXPECTED_COUNTS = counts

    return hook


HOOK = {"worker_process_setup_hook": tiny_counts_hook(tiny_counts(N_PER_LABEL))}


@pytest.fixture()
def sweep_env(tmp_path, monkeypatch):
    root = make_imdb_tree(tmp_path / "data", n_per_label=N_PER_LABEL, n_unsup=0)
    monkeypatch.setattr(imdb, "EXPECTED_COUNTS", tiny_counts(N_PER_LABEL))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # workers inherit it
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("IMDB_DATA", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return root


def write_space(tmp_path, search) -> str:
    path = tmp_path / "space.yaml"
    path.write_text(json.dumps(space(**search)))  # JSON is YAML
    return str(path)


@pytest.mark.slow
def test_a_sweep_stops_a_bad_trial_reports_a_failed_one_and_tracks_all(sweep_env, tmp_path):
    import ray

    # vocab_size 3: every review is the same row of out-of-vocabulary ids, val accuracy 0.5,
    # clearly worse than 100 words. A missing embeddings file fails its trials. The TPE
    # sampler with seed 4 draws (100, none), (100, none), (3, none), (3, missing): with one
    # trial at a time, ASHA stops the third after epoch 1 (below the rung's median).
    missing = str(tmp_path / "no-such-vectors.txt")
    path = write_space(tmp_path, {"vocab_size": {"choice": [100, 3]},
                                  "embeddings": {"choice": ["none", missing]}})  # fmt: skip
    options = SweepOptions(
        space=path, num_samples=4, out=str(tmp_path / "sweep"), data=str(sweep_env),
        device="cpu", max_concurrent=1, seed=4, install_best=True,
        models_dir=str(tmp_path / "models"),
    )  # fmt: skip
    result = run_sweep(options, runtime_env=HOOK)
    assert not ray.is_initialized()  # embedded Ray started and stopped by the sweep
    statuses = sorted(e.status for e in result.entries)
    assert statuses == ["failed", "finished", "finished", "stopped"]
    stopped = next(e for e in result.entries if e.status == "stopped")
    assert stopped.note == "by ASHA after epoch 1" and stopped.test_accuracy is None
    assert stopped.config["vocab_size"] == 3 and stopped.val_accuracy == 0.5
    failed = next(e for e in result.entries if e.status == "failed")
    assert "no-such-vectors.txt" in failed.note
    board = json.loads(result.leaderboard["json"].read_text())
    assert [e["status"] for e in board["entries"]] == ["finished", "finished", "stopped", "failed"]
    assert board["selected_by_val_accuracy"] == board["entries"][0]["name"]
    markdown = result.leaderboard["md"].read_text()
    assert "(stopped: by ASHA after epoch 1)" in markdown and "(failed: " in markdown
    assert result.leaderboard["png"].is_file()
    assert (result.installed / "model.onnx").is_file()
    for entry in (e for e in result.entries if e.status == "finished"):  # normal run folders
        run_dir = result.directory / "trials"
        assert len(list(run_dir.glob(f"*/{entry.name}_report.md"))) >= 1
        assert (run_dir.glob("*/model/sentiment/model.onnx")) is not None

    client = MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.info.run_name == "tune sweep" and parent.data.params["num_samples"] == "4"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    statuses = sorted(r.info.status for r in children)
    assert statuses == ["FAILED", "FINISHED", "FINISHED", "KILLED"]  # failed, ..., stopped
    finished = [r for r in children if "test_accuracy" in r.data.metrics]
    assert len(finished) == 2
    steps = client.get_metric_history(finished[0].info.run_id, "val_accuracy")
    assert [m.step for m in steps] == [1, 2]
    assert "leaderboard.md" in {a.path for a in client.list_artifacts(parent.info.run_id)}


@pytest.mark.slow
def test_a_two_node_cluster_runs_trials_on_both_nodes(sweep_env, tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        path = write_space(tmp_path, {"dropout": {"choice": [0.1, 0.2]}})
        options = SweepOptions(
            space=path, num_samples=2, out=str(tmp_path / "sweep"), data=str(sweep_env),
            device="cpu", address=cluster.address, track=False,
        )  # fmt: skip
        result = run_sweep(options, runtime_env=HOOK)
        ray.init(address=cluster.address)
        cluster_nodes = ray.nodes()
    finally:
        ray.shutdown()
        cluster.shutdown()
    # Both 1-CPU trials run at once, one per node (ASHA may stop the worse one).
    assert {e.status for e in result.entries} <= {"finished", "stopped"}
    assert "finished" in {e.status for e in result.entries}
    nodes = {node["NodeID"] for node in cluster_nodes}
    assert len(result.trial_nodes) == 2 and set(result.trial_nodes.values()) == nodes


@pytest.mark.slow
def test_an_interrupted_sweep_keeps_finished_trials_and_resumes(sweep_env, tmp_path):
    path = write_space(tmp_path, {"dropout": {"choice": [0.1, 0.2, 0.3]}})
    out = tmp_path / "sweep"
    options = SweepOptions(space=path, num_samples=3, out=str(out), data=str(sweep_env),
                           device="cpu", max_concurrent=1, track=False)  # fmt: skip

    def interrupt_after_first_trial():  # Ctrl-C once the first trial has finished
        deadline = time.monotonic() + 600
        while not list(out.glob("trials/*/trial.json")) and time.monotonic() < deadline:
            time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_after_first_trial, daemon=True).start()
    first = run_sweep(options, runtime_env=HOOK)
    assert first.interrupted
    kept = list(out.glob("trials/*/trial.json"))
    assert len(kept) >= 1 and all(e.status == "finished" for e in first.entries)
    stamps = {p: p.stat().st_mtime_ns for p in kept}

    resumed = resume_sweep(out, runtime_env=HOOK)
    assert not resumed.interrupted
    assert len(resumed.entries) == 3 and all(e.status == "finished" for e in resumed.entries)
    assert {p: p.stat().st_mtime_ns for p in kept} == stamps  # finished trials not rerun
