"""One trial of a sweep, run by a Ray worker: a normal `mlapi train imdb` run in the
trial's own folder `<sweep>/trials/<trial_id>/` (the same files as any run, the exported
model under `model/`), each epoch reported to Tune by a callback of the fit loop, the run
tracked in MLflow under the sweep's parent run. The trial writes `node.txt` (the Ray node
it runs on) first, `trial.json` (its leaderboard entry) when it finished, `error.txt` when
it failed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlapi.training.callbacks import Callback, Trainer
from mlapi.tuning.space import SearchSpace

RECORD, ERROR, NODE = "trial.json", "error.txt", "node.txt"
REPORTED = ("loss", "accuracy", "val_loss", "val_accuracy")


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of a sweep shares (pickled to the workers)."""

    space: SearchSpace
    data: str | None  # a path every node can read, or None: each node finds the dataset
    trials_dir: str
    device: str  # auto|cpu|cuda, resolved on the trial's node
    precision: str
    threads: int  # torch threads = the trial's CPUs
    tracking_uri: str | None  # None: not tracked
    parent_run_id: str | None
    latency_texts: list[str]


class ReportToTune(Callback):
    """Each finished epoch's metrics to Tune (what ASHA and the searcher read)."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any], trainer: Trainer) -> None:
        from ray import tune

        tune.report({"epoch": epoch, **{k: float(logs[k]) for k in REPORTED if k in logs}})


def run_trial(sampled: dict[str, Any], settings: TrialSettings) -> None:
    """The Tune trainable (with `tune.with_parameters(run_trial, settings=...)`)."""
    import ray
    from ray import tune

    out_dir = Path(settings.trials_dir) / tune.get_context().get_trial_id()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / NODE).write_text(ray.get_runtime_context().get_node_id(), encoding="utf-8")
    try:
        entry = _train(sampled, settings, out_dir)
    except SystemExit:  # Tune ends a trial that its scheduler stopped
        raise
    except BaseException as exc:
        (out_dir / ERROR).write_text(f"{type(exc).__name__}: {exc}\n", encoding="utf-8")
        raise
    from mlapi.artifacts import atomic_write_json

    atomic_write_json(out_dir / RECORD, {"entry": entry.to_dict()})


def _train(sampled: dict[str, Any], settings: TrialSettings, out_dir: Path):
    from mlapi.compare.runner import neural_entry
    from mlapi.tracking import tracked_experiment
    from mlapi.training.device import resolve_device
    from mlapi.training.run import THREADS_VARIABLE

    os.environ[THREADS_VARIABLE] = str(settings.threads)
    plain = {k: v.item() if hasattr(v, "item") else v for k, v in sampled.items()}
    config = settings.space.config(plain)
    device = resolve_device(settings.device, settings.precision)
    started = time.perf_counter()
    result, _ = tracked_experiment(
        config,
        track=settings.tracking_uri is not None,
        uri=settings.tracking_uri,
        parent_run_id=settings.parent_run_id,
        kind="tune",
        data=settings.data,
        device=str(device),
        precision=settings.precision,
        out_dir=out_dir,
        models_dir=out_dir / "model",
        progress=False,
        callbacks=[ReportToTune()],
    )
    wall = time.perf_counter() - started
    return neural_entry(config, result, settings.data, wall, settings.latency_texts)
