"""Run one configuration or baseline of a comparison and return its LeaderboardEntry.

Each configuration runs `run_experiment` (its usual outputs land in --out) and is exported
to `<out>/compare_models/<run>/sentiment/`, from where its single-review latency is
measured through ONNX Runtime exactly as the server does it (SentimentPredictor). Each
entry is also saved as `<out>/<name>_compare.json`, which --reuse reads back.
"""

from __future__ import annotations

import json
import os
import shlex
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlapi.artifacts import atomic_write_json, utc_now_iso
from mlapi.compare.leaderboard import LeaderboardEntry
from mlapi.models.names import RECURRENT_ARCHS
from mlapi.training.config import ExperimentConfig, train_command

LATENCY_REVIEWS = 50


def latency_texts(
    data: str | os.PathLike | None, *, n: int, val_fraction: float, seed: int
) -> list[str]:
    """The first `n` validation reviews (raw text): the same inputs for every model."""
    from mlapi.data.imdb import find_dataset, load_split, validation_split

    reviews = load_split(find_dataset(data), "train")
    _, val_index = validation_split([r.label for r in reviews], val_fraction, seed)
    return [reviews[i].text for i in val_index[:n].tolist()]


def single_review_latency_ms(
    predict: Callable[[list[str]], Any], texts: list[str], warmup: int = 3
) -> float:
    """Median wall time (ms) of `predict([text])`, one review per call."""
    for text in texts[:warmup]:
        predict([text])
    times = []
    for text in texts:
        started = time.perf_counter()
        predict([text])
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def run_neural(
    config: ExperimentConfig,
    *,
    data: str | os.PathLike | None,
    out_dir: Path,
    texts: list[str],
    progress: bool,
    reuse: bool,
    device: str = "cpu",
    precision: str = "fp32",
    track: bool = False,
    parent_run_id: str | None = None,
) -> LeaderboardEntry:
    """Train + test + export one configuration (or reuse its finished record); with
    `track`, as an MLflow run nested under `parent_run_id`."""
    record = _record_path(out_dir, config.run_name)
    if reuse and record.is_file():
        return _read(record)
    from mlapi.tracking import tracked_experiment

    started = time.perf_counter()
    result, _ = tracked_experiment(
        config,
        track=track,
        kind="compare",
        data=data,
        device=device,
        precision=precision,
        parent_run_id=parent_run_id,
        out_dir=out_dir,
        models_dir=out_dir / "compare_models" / config.run_name,
        progress=progress,
    )
    entry = neural_entry(config, result, data, time.perf_counter() - started, texts)
    atomic_write_json(record, entry.to_dict())
    return entry


def neural_entry(config: ExperimentConfig, result, data, wall: float, texts: list[str]):
    """The LeaderboardEntry of a finished, exported run (latency measured here)."""
    from mlapi.serving.sentiment import SentimentPredictor

    predictor = SentimentPredictor.load(result.model_dir)
    m = result.metrics
    return LeaderboardEntry(
        kind="neural",
        name=config.run_name,
        arch=config.arch,
        recurrent=config.arch in RECURRENT_ARCHS,
        command=train_command(config, data),
        val_accuracy=m.val_accuracy_checkpoint,
        test_accuracy=m.test.accuracy,
        train_val_gap=m.history.train_val_gap,
        wall_seconds=wall,
        parameters=m.parameters,
        trainable_parameters=m.trainable_parameters,
        latency_ms=single_review_latency_ms(predictor.predict_proba, texts),
        created_at=utc_now_iso(),
        seconds_per_epoch=m.seconds_per_epoch,
        epochs_run=m.history.epochs_run,
        checkpoint_epoch=m.checkpoint_epoch,
        config=config.to_dict(),
        parity_max_abs_diff=result.parity_max_abs_diff,
        model_dir=str(result.model_dir),
    )


def run_baselines(
    names: list[str],
    *,
    data: str | os.PathLike | None,
    out_dir: Path,
    texts: list[str],
    reuse: bool,
) -> list[LeaderboardEntry]:
    """Fit each baseline on the seed split (C by val accuracy), test once, time it."""
    from mlapi import baselines

    entries, todo = [], []
    for name in names:
        path = _record_path(out_dir, f"baseline_{name}")
        if reuse and path.is_file():
            entries.append(_read(path))
        else:
            todo.append(name)
    if todo:
        split = ExperimentConfig()  # the neural runs' default split
        splits = baselines.load_splits(data, val_fraction=split.val_fraction, seed=split.seed)
    for name in todo:
        started = time.perf_counter()
        metrics, pipeline = baselines.run_baseline(name, splits)
        wall = time.perf_counter() - started
        data_flags = ["--data", str(data)] if data else []
        entry = LeaderboardEntry(
            kind="baseline",
            name=name,
            arch=name,
            recurrent=False,
            command=shlex.join(["mlapi", "compare", "--baselines", name, *data_flags]),
            val_accuracy=metrics["val_accuracy"],
            test_accuracy=metrics["test_accuracy"],
            train_val_gap=metrics["train_val_gap"],
            wall_seconds=wall,
            parameters=metrics["parameters"],
            trainable_parameters=metrics["parameters"],
            latency_ms=single_review_latency_ms(
                lambda batch, p=pipeline: baselines.predict_proba(p, batch), texts
            ),
            created_at=utc_now_iso(),
            description=metrics["description"],
            fit_seconds=metrics["fit_seconds"],
            c=metrics["c"],
            val_accuracy_by_c=metrics["val_accuracy_by_c"],
        )
        atomic_write_json(_record_path(out_dir, f"baseline_{name}"), entry.to_dict())
        entries.append(entry)
    return entries


def _record_path(out_dir: Path, name: str) -> Path:
    return Path(out_dir) / f"{name}_compare.json"


def _read(path: Path) -> LeaderboardEntry:
    return LeaderboardEntry.from_dict(json.loads(path.read_text(encoding="utf-8")))
