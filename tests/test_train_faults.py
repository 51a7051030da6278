"""Faults at train time: Ctrl-C or SIGTERM, --resume, disk full, permission denied."""

import csv
import errno
import json
import queue
import signal
import subprocess
import sys
import threading

import pytest
from helpers.imdb import tiny_counts
from test_experiment import N_PER_LABEL, TINY, TINY_FLAGS, snapshot, tiny_imdb  # noqa: F401

from mlapi import reporting, versions
from mlapi.cli import main
from mlapi.training import loop
from mlapi.versions import served_artifact

EPOCHS = ["--epochs", "3"]  # overrides TINY's 2: the interrupt lands in the last epoch
STATE = f".{TINY.run_name.replace('ep2', 'ep3')}.resume"


def train(tiny_imdb, out, models, *extra):  # noqa: F811
    argv = ["train", "imdb", "--data", str(tiny_imdb), "--out", str(out)]
    return main([*argv, "--models-dir", str(models), *TINY_FLAGS, *EPOCHS, *extra])


def history(out):
    (path,) = out.glob("*_history.csv")
    with open(path) as f:
        return list(csv.DictReader(f))


def stop_in_epoch(monkeypatch, epoch):
    """Make the fit loop stop while training `epoch`, as Ctrl-C does."""
    real = loop._train_epoch
    calls = []

    def train_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == epoch:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "_train_epoch", train_epoch)


# A real `mlapi train imdb` process that says when it is inside epoch N, then waits for a
# signal there: the test sends SIGTERM only once it has read that line (no sleeps).
WAIT_IN_EPOCH = """
import json, signal, sys
from mlapi.cli import main
from mlapi.data import imdb
from mlapi.training import loop

epoch, counts, argv = int(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3:]
imdb.EXPECTED_COUNTS = counts
real, calls = loop._train_epoch, []

def train_epoch(*args, **kwargs):
    calls.append(1)
    if len(calls) == epoch:
        print("in epoch", epoch, flush=True)
        signal.pause()  # SIGTERM's handler raises KeyboardInterrupt here
    return real(*args, **kwargs)

loop._train_epoch = train_epoch
sys.exit(main(argv))
"""


def sigterm_in_epoch(tiny_imdb, out, models, epoch):  # noqa: F811
    argv = ["train", "imdb", "--data", str(tiny_imdb), "--out", str(out)]
    argv += ["--models-dir", str(models), *TINY_FLAGS, *EPOCHS]
    counts = json.dumps(tiny_counts(N_PER_LABEL, 0))
    command = [sys.executable, "-c", WAIT_IN_EPOCH, str(epoch), counts, *argv]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as child:
        lines = _lines_of(child.stdout)
        try:
            run_line = f"run: {TINY.run_name.replace('ep2', 'ep3')} "
            assert lines.get(timeout=120).startswith(run_line)
            assert lines.get(timeout=120) == f"in epoch {epoch}\n"
            child.send_signal(signal.SIGTERM)
            _, err = child.communicate(timeout=120)
        finally:
            child.kill()
    return child.returncode, err


def _lines_of(stream) -> queue.Queue:
    """The stream's lines as they come, read by a thread: a child that hangs fails the test
    at `get(timeout=...)` instead of hanging it."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in stream], daemon=True).start()
    return lines


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_resume_continues_an_interrupted_run_to_the_same_result(
    tiny_imdb,  # noqa: F811
    tmp_path,
    monkeypatch,
    how,
):
    straight = tmp_path / "straight"
    assert train(tiny_imdb, straight / "out", straight / "models") == 0

    out, models = tmp_path / "out", tmp_path / "models"
    if how == "sigterm":
        code, err = sigterm_in_epoch(tiny_imdb, out, models, 3)
        assert code == 130, err
        assert err.strip().splitlines()[-1] == "mlapi: interrupted" and "Traceback" not in err
    else:
        with monkeypatch.context() as patch:
            stop_in_epoch(patch, 3)
            assert train(tiny_imdb, out, models) == 130
    assert not models.exists()  # nothing installed by an interrupted run
    assert sorted(p.name for p in out.iterdir()) == [STATE]  # no staging, no partial output
    assert sorted(p.name for p in (out / STATE).iterdir()) == [
        "best.pt", "best.pt.json", "config.json", "last.pt", "last.pt.json"]  # fmt: skip
    assert train(tiny_imdb, out, models, "--resume") == 0

    resumed, reference = history(out), history(straight / "out")
    assert [row["epoch"] for row in resumed] == ["1", "2", "3"]
    for a, b in zip(resumed, reference, strict=True):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-5, abs=1e-7)
    assert not (out / STATE).exists()  # removed once the run is complete
    assert (served_artifact(models, "sentiment") / "model.onnx").is_file()


def test_resume_refuses_other_settings(tiny_imdb, tmp_path, monkeypatch, capsys):  # noqa: F811
    out, models = tmp_path / "out", tmp_path / "models"
    with monkeypatch.context() as patch:
        stop_in_epoch(patch, 2)
        assert train(tiny_imdb, out, models) == 130
    capsys.readouterr()
    assert train(tiny_imdb, out, models, "--resume", "--seed", "7") == 2
    assert "nothing to resume" in capsys.readouterr().err  # another seed: another run name


def test_resume_with_nothing_saved_says_so(tiny_imdb, tmp_path, capsys):  # noqa: F811
    assert train(tiny_imdb, tmp_path / "out", tmp_path / "models", "--resume") == 2
    assert "nothing to resume" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ((reporting, "write_history_csv"), OSError(errno.ENOSPC, "No space left on device")),
        ((versions, "_install_locked"), PermissionError(errno.EACCES, "Permission denied")),
    ],
    ids=["disk full while writing outputs", "permission denied installing the model"],
)
def test_write_failures_leave_no_partial_artifact_and_one_clear_line(
    tiny_imdb,  # noqa: F811
    tmp_path,
    monkeypatch,
    capsys,
    target,
    error,
):
    out, models = tmp_path / "out", tmp_path / "models"
    assert train(tiny_imdb, out, models) == 0
    before_out, before_models = snapshot(out), snapshot(models)

    def fail(*args, **kwargs):
        error.filename = str(tmp_path / "where")
        raise error

    monkeypatch.setattr(*target, fail)
    capsys.readouterr()
    assert train(tiny_imdb, out, models, "--seed", "3") == 1
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith("mlapi: error: ")
    assert error.strerror in message and "nothing was half-written" in message
    assert snapshot(models) == before_models
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".") and "staging" in p.name]
    assert leftovers == []
    if target[1] == "write_history_csv":  # the run's outputs never appeared
        assert {k: v for k, v in snapshot(out).items() if ".resume" not in k} == before_out
