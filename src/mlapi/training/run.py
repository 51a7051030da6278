"""One IMDb run: train, test once, write the outputs, then export and install the model.

    result = run_experiment(ExperimentConfig(), data=None, out_dir="outputs_imdb",
                            models_dir="models", progress=True, resume=False)
    result.metrics.test.accuracy

The run's outputs are listed in `training.saved.OUTPUT_FILES`; its numbers travel as an
`evaluation.RunMetrics`. Threads and seeds are set here, once: `use_torch_threads()`
(MLAPI_TORCH_THREADS) and `seed_everything(config.seed)` before the network is built
(`fit` reseeds from the same seed for dropout masks and batch order).
`device`/`precision` (training.device) say where it computes; extra `callbacks` (MLflow
tracking, a sweep's per-epoch report) run in the same fit loop after the run's own.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlapi.artifacts import (
    atomic_write_json,
    atomic_write_text,
    read_sidecar,
    utc_now_iso,
    write_sidecar,
)
from mlapi.errors import ArtifactError, ConfigError, MlapiError
from mlapi.evaluation import RunMetrics, classify, diagnose_history
from mlapi.training.callbacks import Callback, EarlyStopping, ModelCheckpoint, ReduceLROnPlateau
from mlapi.training.config import ExperimentConfig, format_value, train_command
from mlapi.training.device import use_deterministic_kernels
from mlapi.training.loop import FitConfig, History, fit, predict_proba, seed_everything
from mlapi.training.saved import HISTORY_COLUMNS, OUTPUT_FILES, output_path

# MLAPI_TORCH_THREADS=1 is much faster when the cores are shared (OpenMP regions wait for a
# descheduled thread at every small op).
THREADS_VARIABLE, DEFAULT_THREADS = "MLAPI_TORCH_THREADS", 2


def use_torch_threads() -> int:
    """Set torch's thread count for training and evaluation from MLAPI_TORCH_THREADS."""
    text = os.environ.get(THREADS_VARIABLE, str(DEFAULT_THREADS))
    if not text.strip().isdigit() or int(text) < 1:
        raise ConfigError(f"{THREADS_VARIABLE} must be a positive integer, got {text!r}")
    torch.set_num_threads(int(text))
    return int(text)


@dataclass(frozen=True)
class InstalledModel:
    """The sentiment model found at `<models_dir>/sentiment` before a run replaced it."""

    run_name: str
    test_accuracy: float | None


@dataclass(frozen=True)
class RunResult:
    run_name: str
    out_dir: Path
    metrics: RunMetrics
    model_dir: Path | None  # None: not exported
    parity_max_abs_diff: float | None
    replaced: InstalledModel | None = None  # the model this run's install replaced


def run_experiment(
    config: ExperimentConfig,
    *,
    data: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    models_dir: str | os.PathLike | None,
    progress: bool,
    resume: bool = False,
    device: str = "cpu",
    precision: str = "fp32",
    callbacks: Sequence[Callback] = (),
) -> RunResult:
    """Train, test once, write the run's outputs, then export and install the model.

    The outputs are written into a hidden staging folder inside `out_dir` and moved into
    place only when all of them exist; an interrupt or error removes the staging folder
    and leaves `out_dir` and `models_dir` as they were. `models_dir=None` skips export.
    The training state after each epoch and the best checkpoint live in
    `out_dir/.<run>.resume/` until the run's outputs are published: `resume=True`
    continues an interrupted run from there.
    """
    from mlapi.data.imdb import load_encoded, load_encoded_test
    from mlapi.models.registry import count_parameters

    name = config.run_name
    encoded = load_encoded(data, **config.encoding())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state_dir = _training_state_dir(out_dir, config, resume)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.staging.", dir=out_dir))
    try:
        network, history, checkpoint = train_network(
            config,
            encoded,
            state_dir,
            progress=progress,
            resume=resume,
            device=device,
            precision=precision,
            callbacks=callbacks,
        )
        if history.interrupted:
            print(
                f"interrupted after epoch {len(history.epochs)}; the state is kept in "
                f"{state_dir}: add --resume to the same command to continue",
                file=sys.stderr,
            )
            raise KeyboardInterrupt
        if checkpoint.saved_epoch is None:
            monitor = config.checkpoint_monitor
            raise ArtifactError(f"no checkpoint was saved: {monitor} never improved")
        network.load_state_dict(torch.load(checkpoint.path, weights_only=True))
        _copy_checkpoint(checkpoint.path, output_path(staging, name, "checkpoint"))

        _say(progress, f"testing epoch {checkpoint.saved_epoch}'s weights on the test split")
        x_test, y_test, _ = load_encoded_test(encoded.root, encoded.vocabulary)  # once, here
        test = classify(y_test, predict_proba(network, x_test))
        columns = {c: history.metric(c) for c in HISTORY_COLUMNS}
        counts = count_parameters(network)
        metrics = RunMetrics(
            run_name=name,
            history=diagnose_history(columns),
            test=test,
            checkpoint_monitor=config.checkpoint_monitor,
            checkpoint_epoch=checkpoint.saved_epoch,
            val_accuracy_checkpoint=columns["val_accuracy"][checkpoint.saved_epoch - 1],
            epochs_max=config.epochs,
            seconds_per_epoch=float(np.mean(columns["seconds"])),
            seconds_training=float(np.sum(columns["seconds"])),
            n_train=len(encoded.y_train),
            n_val=len(encoded.y_val),
            vocab_ids=encoded.vocabulary.size,
            parameters=counts["total"],
            trainable_parameters=counts["trainable"],
            versions=library_versions(),
        )
        encoded.vocabulary.save(output_path(staging, name, "vocabulary"))
        _say(progress, f"writing the report and outputs to {out_dir}")
        where = {"device": device, "precision": precision}
        _write_outputs(staging, config, data, encoded.root, columns, metrics, where)
        _publish(staging, out_dir)
        shutil.rmtree(state_dir, ignore_errors=True)  # the run is complete
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    if models_dir is None:
        return RunResult(name, out_dir, metrics, None, None)
    network.cpu()  # ONNX export and its parity check run on CPU
    return _export(network, encoded, config, metrics, out_dir, Path(models_dir), progress)


def train_network(
    config: ExperimentConfig,
    encoded: Any,
    state_dir: Path,
    *,
    progress: bool,
    resume: bool = False,
    device: str = "cpu",
    precision: str = "fp32",
    callbacks: Sequence[Callback] = (),
) -> tuple[torch.nn.Module, History, ModelCheckpoint]:
    """Build `config`'s network and fit it on the train split, validating on the val split,
    with the run's callbacks. The best checkpoint (`best.pt`) and the state after each epoch
    (`last.pt`) go to `state_dir`. Returns (network, history, checkpoint callback); the
    network holds the last epoch's weights. Never reads the test split."""
    from mlapi.models.registry import build_network

    use_torch_threads()
    use_deterministic_kernels(torch.device(device))
    pretrained = None
    if config.embeddings != "none":
        from mlapi.embeddings import pretrained_matrix

        pretrained = pretrained_matrix(config, encoded, progress=progress)
    seed_everything(config.seed)  # the network's initial weights
    network = build_network(config, encoded.vocabulary.size, pretrained)
    monitor = config.checkpoint_monitor
    mode = "max" if monitor == "val_accuracy" else "min"
    checkpoint = ModelCheckpoint(state_dir / "best.pt", monitor=monitor, mode=mode)
    callbacks = [
        *_run_callbacks(config, checkpoint),
        *callbacks,
    ]
    fit_config = FitConfig(
        batch_size=config.batch_size,
        epochs=config.epochs,
        learning_rate=config.lr,
        clipnorm=config.clipnorm or None,
        clip_mode=config.clip_mode,
        seed=config.seed,
        device=device,
        precision=precision,
    )
    history = fit(
        network,
        (encoded.x_train, encoded.y_train),
        (encoded.x_val, encoded.y_val),
        fit_config,
        callbacks=callbacks,
        progress=progress,
        snapshot=state_dir / "last.pt",
        resume=resume and (state_dir / "last.pt").is_file(),  # else no epoch had finished
    )
    return network, history, checkpoint


def _run_callbacks(config: ExperimentConfig, checkpoint: ModelCheckpoint) -> list[Callback]:
    return [
        # The run tests the checkpoint's weights, so EarlyStopping need not keep a copy.
        EarlyStopping(
            "val_loss", patience=config.early_stopping_patience, restore_best_weights=False
        ),
        ReduceLROnPlateau(
            "val_loss",
            factor=config.reduce_lr_factor,
            patience=config.reduce_lr_patience,
            min_lr=config.min_lr,
        ),
        checkpoint,
    ]


def _say(progress: bool, text: str) -> None:
    """One progress line on stderr (the bars' stream) for a step that has no bar."""
    if progress:
        print(f"{text}...", file=sys.stderr, flush=True)


def _export(
    network: torch.nn.Module,
    encoded: Any,
    config: ExperimentConfig,
    metrics: RunMetrics,
    out_dir: Path,
    models_dir: Path,
    progress: bool,
) -> RunResult:
    from mlapi.export import export_sentiment_model

    replaced = installed_model(models_dir)
    _say(progress, f"exporting to ONNX, checking parity, installing in {models_dir}")
    try:
        exported = export_sentiment_model(
            network,
            encoded.vocabulary,
            encoded.x_val,
            models_dir,
            run_name=metrics.run_name,
            arch=config.arch,
            metrics=_serving_metrics(metrics),
            versions=metrics.versions,
        )
    except MlapiError as exc:
        raise ArtifactError(f"run outputs are in {out_dir}, but {exc}") from exc
    return RunResult(
        metrics.run_name, out_dir, metrics, exported.directory, exported.max_abs_diff, replaced
    )


def installed_model(models_dir: str | os.PathLike) -> InstalledModel | None:
    """The run name and test accuracy of the sentiment version served from `models_dir`."""
    from mlapi.export import METADATA_FILE
    from mlapi.versions import served, versions

    version = served(Path(models_dir), "sentiment")
    if version not in versions(Path(models_dir), "sentiment"):
        return None
    path = versions(Path(models_dir), "sentiment")[version] / METADATA_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        return InstalledModel(str(meta["run_name"]), meta.get("metrics", {}).get("test_accuracy"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _serving_metrics(m: RunMetrics) -> dict[str, Any]:
    """What the installed model's metadata says about its run."""
    return {
        "test_accuracy": m.test.accuracy,
        "roc_auc": m.test.roc_auc,
        "val_accuracy_best": m.history.val_accuracy_best,
        "val_accuracy_best_epoch": m.history.val_accuracy_best_epoch,
        "checkpoint_epoch": m.checkpoint_epoch,
        "val_accuracy_checkpoint": m.val_accuracy_checkpoint,
    }


def _write_outputs(
    staging: Path,
    config: ExperimentConfig,
    data: str | os.PathLike | None,
    dataset_root: Path,
    columns: dict[str, list[float]],
    metrics: RunMetrics,
    where: dict[str, str],
) -> None:
    from mlapi import reporting

    name = config.run_name
    path = functools.partial(output_path, staging, name)
    command = train_command(config, data)
    atomic_write_json(
        path("config"),
        {
            "run_name": name,
            "config": config.to_dict(),
            "data": None if data is None else str(Path(data).expanduser().resolve()),
            "dataset_root": str(dataset_root),
            "command": command,
            "created_at": utc_now_iso(),
            **where,
            "versions": metrics.versions,
        },
    )
    reporting.write_history_csv(path("history"), columns)
    reporting.plot_curves(
        path("curves"), columns, metrics.history.val_accuracy_best_epoch, title=name
    )
    test = metrics.test
    reporting.write_confusion_csv(path("confusion_csv"), test.confusion_matrix, test.labels)
    reporting.plot_confusion_matrix(path("confusion_png"), test.confusion_matrix, test.labels)
    atomic_write_json(path("metrics"), metrics.to_dict())
    report = reporting.render_report(
        metrics,
        columns,
        recipe=describe_recipe(config, metrics),
        command=command,
        files={k: path(k).name for k in ("curves", "confusion_png")},
    )
    atomic_write_text(path("report"), report)


def _copy_checkpoint(source: Path, target: Path) -> None:
    """Copy a checkpoint and its sidecar (renamed for the new file) into the run's outputs."""
    shutil.copy2(source, target)
    meta = {k: v for k, v in read_sidecar(source).items() if k not in ("file", "sha256")}
    write_sidecar(target, **meta)


def _training_state_dir(out_dir: Path, config: ExperimentConfig, resume: bool) -> Path:
    """`out_dir/.<run>.resume/`: kept across an interrupt, fresh unless resuming."""
    state_dir = out_dir / f".{config.run_name}.resume"
    saved_config = state_dir / "config.json"
    if resume:
        if not saved_config.is_file():
            raise ArtifactError(f"nothing to resume for {config.run_name}: {state_dir} is empty")
        if json.loads(saved_config.read_text()) != config.to_dict():
            raise ArtifactError(f"the state in {state_dir} was saved with other settings")
        return state_dir
    shutil.rmtree(state_dir, ignore_errors=True)
    state_dir.mkdir(parents=True)
    atomic_write_json(saved_config, config.to_dict())
    return state_dir


def _publish(staging: Path, out_dir: Path) -> None:
    """Move the finished files into `out_dir`, the metrics and the report last."""
    last = (OUTPUT_FILES["metrics"], OUTPUT_FILES["report"])
    files = sorted(staging.iterdir(), key=lambda p: p.name.endswith(last))
    for file in files:
        os.replace(file, out_dir / file.name)


def describe_recipe(config: ExperimentConfig, metrics: RunMetrics) -> dict:
    """The recipe in the seed's (Keras) words, for the report."""
    from mlapi.models.registry import describe_network, uses_seed_lstm

    ids = metrics.vocab_ids
    clip = "none" if not config.clipnorm else f"{config.clipnorm} ({config.clip_mode})"
    model = (
        f"Embedding({ids}, {config.embed_dim}) → LSTM({config.hidden_size}, "
        f"dropout={config.dropout}, recurrent_dropout={config.recurrent_dropout}, "
        f"kernel_regularizer=L2({format_value(config.l2)})) → Dense(1, sigmoid)"
    )
    if not uses_seed_lstm(config) or config.embeddings != "none":
        model = describe_network(config).replace("vocab", f"{ids}", 1)
    text = (
        f"top {config.vocab_size:,} ids (0 = padding, 1 = out-of-vocabulary), "
        f"maxlen {config.maxlen}, padding {config.padding}, truncating {config.truncating}"
    )
    if ids < config.vocab_size:
        text += (
            f"; the {metrics.n_train:,} training reviews hold only {ids - 2:,} distinct words, "
            f"so the vocabulary (and the embedding) has {ids:,} ids"
        )
    return {
        "model": model,
        "text": text,
        "optimizer": f"Adam(lr={format_value(config.lr)}), gradient clipnorm {clip}",
        "loss": "binary cross-entropy (+ L2 penalty)",
        "batch size / max epochs": f"{config.batch_size} / {config.epochs}",
        "split": (
            f"{metrics.n_train:,} train / {metrics.n_val:,} val (stratified "
            f"{config.val_fraction:g} of the training reviews, seed {config.seed}) / "
            f"{metrics.test.n:,} test, read once after training"
        ),
        "callbacks": (
            f"EarlyStopping(val_loss, patience={config.early_stopping_patience}), "
            f"ReduceLROnPlateau(val_loss, factor={config.reduce_lr_factor:g}, "
            f"patience={config.reduce_lr_patience}, min_lr={format_value(config.min_lr)}), "
            f"ModelCheckpoint({config.checkpoint_monitor}, best only)"
        ),
        "parameters": f"{metrics.parameters:,} ({metrics.trainable_parameters:,} trainable)",
        "seed": config.seed,
    }


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("mlapi", "torch", "numpy", "scikit-learn", "onnx", "onnxruntime"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions
