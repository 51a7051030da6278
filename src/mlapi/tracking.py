"""MLflow records of the training-side commands (`train`, `compare`, `tune`).

    with Tracker.start("imdb_lstm__...", params=config.to_dict(), tags=run_tags(...)) as run:
        result = run_experiment(..., callbacks=[run.callback()])   # every epoch's metrics
        run.log_result(result)                                     # report, curves, model...

Where: $MLFLOW_TRACKING_URI (a team server, `http://host:5000`), else a local store in the
working folder: `mlflow.db` (SQLite: runs, params, metrics) and `mlruns/` (artifacts),
which `mlflow ui` run in the same folder opens. A sweep is a parent run and its trials
are runs nested under it (`parent_run_id`).

Tracking never costs a run its own outputs: the first MLflow call that fails (server down,
unreachable URI, read-only store) prints one warning and turns tracking off for the rest of
the run. HTTP calls get short timeouts and no retries unless MLFLOW_HTTP_REQUEST_TIMEOUT /
MLFLOW_HTTP_REQUEST_MAX_RETRIES say otherwise. Serving never imports this module.
"""

from __future__ import annotations

import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mlapi.training.callbacks import Callback, Trainer

EXPERIMENT = "mlapi-imdb"
LOCAL_DB, LOCAL_ARTIFACTS = "mlflow.db", "mlruns"
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "5", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
RUN_FILES = ("config", "report", "metrics", "history", "curves", "confusion_csv", "confusion_png")


def _quiet_mlflow() -> None:
    """MLflow's INFO lines (creating its tables...) are not the command's output."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    import mlflow  # noqa: F401  (configures its loggers on import; then we lower them)

    logging.getLogger("mlflow").setLevel(logging.WARNING)


def tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI, else the SQLite store `mlflow.db` in the working folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / LOCAL_DB}"


def run_tags(*, device: str, recipe: str, command: str, kind: str) -> dict[str, str]:
    """The tags every run carries: git commit, machine, device, recipe, command, kind."""
    commit = git_commit()
    tags = {"git_commit": commit, "machine": platform.node(), "device": device}
    tags |= {"recipe": recipe, "command": command, "mlapi_kind": kind}
    if commit != "unknown":
        tags["mlflow.source.git.commit"] = commit
    return tags


def git_commit() -> str:
    """The commit of the mlapi source tree (`+dirty` when it has changes), or "unknown"."""
    here = Path(__file__).resolve().parent
    try:
        head = _git(here, "rev-parse", "HEAD")
        dirty = _git(here, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "") if head else "unknown"


def _git(where: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(where), *args], capture_output=True, text=True, timeout=5, check=True
    )
    return done.stdout.strip()


class Tracker:
    """One MLflow run, or nothing (tracking off, or off since a failure): every method is
    safe to call either way."""

    def __init__(self, uri: str | None) -> None:
        self.uri = uri
        self.run_id: str | None = None
        self._client = None

    @classmethod
    def start(
        cls,
        name: str,
        *,
        enabled: bool = True,
        uri: str | None = None,
        params: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        parent_run_id: str | None = None,
        experiment: str = EXPERIMENT,
        run_id: str | None = None,
    ) -> Tracker:
        """Start a run named `name` (nested under `parent_run_id` if given), or reopen the
        run `run_id` (a resumed sweep's parent)."""
        if not enabled:
            return cls(None)
        _quiet_mlflow()
        tracker = cls(uri or tracking_uri())
        if run_id is not None:
            tracker._safely(tracker._reopen, run_id)
        else:
            args = (name, params or {}, tags or {}, parent_run_id, experiment)
            tracker._safely(tracker._create, *args)
        return tracker

    @property
    def active(self) -> bool:
        """True while the run is recorded (it keeps its run_id after `end`)."""
        return self.run_id is not None

    def _create(self, name, params, tags, parent_run_id, experiment) -> None:
        for variable, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(variable, value)
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.uri)
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            experiment_id = found.experiment_id
        else:
            experiment_id = client.create_experiment(experiment, self._artifact_location())
        all_tags = dict(tags) | ({"mlflow.parentRunId": parent_run_id} if parent_run_id else {})
        run = client.create_run(experiment_id, run_name=name, tags=all_tags)
        self._client, self.run_id = client, run.info.run_id
        self.log_params(params)

    def _reopen(self, run_id: str) -> None:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.uri)
        client.update_run(run_id, status="RUNNING")
        self._client, self.run_id = client, run_id

    def _artifact_location(self) -> str | None:
        """Artifacts of the local SQLite store go to `mlruns/` beside it (as `mlflow ui`)."""
        if not self.uri.startswith("sqlite:///"):
            return None
        return (Path(self.uri.removeprefix("sqlite:///")).parent / LOCAL_ARTIFACTS).as_uri()

    def _safely(self, action, *args) -> None:
        """Run one MLflow call; on the first failure warn once and stop tracking."""
        if self.uri is None or (self.run_id is not None and self._client is None):
            return
        try:
            action(*args)
        except Exception as exc:  # noqa: BLE001 - any tracking failure must spare the run
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            print(
                f"mlapi: warning: MLflow tracking to {self.uri} failed ({reason}); the run "
                "goes on and writes its outputs as usual, untracked from here on",
                file=sys.stderr,
                flush=True,
            )
            self.uri, self.run_id, self._client = None, None, None

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, "none" if v is None else str(v)) for k, v in params.items()]
        for start in range(0, len(items), 100):  # MLflow's limit per batch
            self._safely(lambda chunk: self._client.log_batch(self.run_id, params=chunk),
                         items[start : start + 100])  # fmt: skip

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None]
        self._safely(lambda: self._client.log_batch(self.run_id, metrics=batch))

    def set_tags(self, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self._safely(lambda k, v: self._client.set_tag(self.run_id, k, v), key, str(value))

    def log_artifact(self, path: str | os.PathLike, folder: str | None = None) -> None:
        path = Path(path)
        if not path.exists():
            return
        if path.is_dir():
            self._safely(lambda: self._client.log_artifacts(self.run_id, str(path), folder))
        else:
            self._safely(lambda: self._client.log_artifact(self.run_id, str(path), folder))

    def log_result(self, result) -> None:
        """A finished run's test metrics and files: report, curves, confusion matrix,
        history, config, metrics, and the exported model (folder `model/`)."""
        from mlapi.training.saved import output_path

        m = result.metrics
        self.log_metrics(
            {
                "test_accuracy": m.test.accuracy,
                "test_roc_auc": m.test.roc_auc,
                "val_accuracy_checkpoint": m.val_accuracy_checkpoint,
                "checkpoint_epoch": m.checkpoint_epoch,
                "seconds_per_epoch": m.seconds_per_epoch,
                "parameters": m.parameters,
            }
        )
        for kind in RUN_FILES:
            self.log_artifact(output_path(result.out_dir, result.run_name, kind))
        if result.model_dir is not None:
            self.log_artifact(result.model_dir, "model")

    def end_running_children(self, status: str = "KILLED") -> None:
        """Mark nested runs still RUNNING as `status`: trials the scheduler stopped (their
        process was ended before it could close its run)."""

        def close() -> None:
            run = self._client.get_run(self.run_id)
            query = f"tags.mlflow.parentRunId = '{self.run_id}' and attributes.status = 'RUNNING'"
            for child in self._client.search_runs([run.info.experiment_id], query):
                self._client.set_terminated(child.info.run_id, status)

        if self.active and self._client is not None:
            self._safely(close)

    def end(self, status: str = "FINISHED") -> None:
        if self.active and self._client is not None:
            self._safely(lambda: self._client.set_terminated(self.run_id, status))
        self._client = None  # later calls do nothing

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.end("FINISHED")
        else:
            # Ctrl-C, or Tune ending a trial its scheduler stopped (SystemExit)
            stopped = issubclass(kind, KeyboardInterrupt | SystemExit)
            self.end("KILLED" if stopped else "FAILED")

    def callback(self) -> TrackingCallback:
        return TrackingCallback(self)


class TrackingCallback(Callback):
    """Logs each finished epoch's logs (loss, accuracy, val_*, lr, seconds) at step=epoch."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker

    def on_epoch_end(self, epoch: int, logs: dict[str, Any], trainer: Trainer) -> None:
        self.tracker.log_metrics({k: v for k, v in logs.items() if k != "epoch"}, step=epoch)


def tracked_experiment(
    config,
    *,
    track: bool,
    kind: str,
    data,
    device: str = "cpu",
    precision: str = "fp32",
    uri: str | None = None,
    parent_run_id: str | None = None,
    callbacks=(),
    **run_options,
):
    """`training.run.run_experiment` as one MLflow run (nested under `parent_run_id`):
    params, each epoch, tags, and the outputs once the run is complete.
    Returns (RunResult, Tracker)."""
    from mlapi.training.config import train_command
    from mlapi.training.run import run_experiment

    command = train_command(config, data)
    tags = run_tags(device=device, recipe=config.run_name, command=command, kind=kind)
    tracker = Tracker.start(
        config.run_name,
        enabled=track,
        uri=uri,
        params=config.to_dict() | {"precision": precision},
        tags=tags,
        parent_run_id=parent_run_id,
    )
    with tracker:
        result = run_experiment(
            config,
            data=data,
            device=device,
            precision=precision,
            callbacks=[tracker.callback(), *callbacks],
            **run_options,
        )
        tracker.log_result(result)
    return result, tracker
