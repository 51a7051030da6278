"""The IMDb sentiment experiment: one config, one run name, one run.

`ExperimentConfig` holds every setting that changes the result; its defaults are the
seed's recipe. The CLI flags and the run name are both derived from its fields, so a
new field (an architecture option, a pooling mode...) gets a `--flag` and, when set to
something other than its default, a tag in the run name, without touching this code.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.metadata
import json
import os
import platform
import random
import re
import shlex
import shutil
import sys
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlapi.artifacts import (
    atomic_write_json,
    atomic_write_text,
    read_sidecar,
    utc_now_iso,
    write_sidecar,
)
from mlapi.errors import ArtifactError, MlapiError

if TYPE_CHECKING:
    from mlapi.evaluation import ClassificationMetrics


def _opt(
    help: str,
    tag: str | None = None,
    choices: tuple[str, ...] | None = None,
    name_format: Any = None,
    **kw: Any,
):
    """A config field with its CLI help, its run-name tag and its allowed values
    (`name_format(value)`, when given, writes the value in the run name)."""
    return field(
        metadata={"help": help, "tag": tag, "choices": choices, "name_format": name_format}, **kw
    )


class _NamesOrPath(tuple):
    """Choices that are a few names or any file path (`--embeddings word2vec|PATH`)."""

    def __contains__(self, value: object) -> bool:
        return tuple.__contains__(self, value) or (isinstance(value, str) and bool(value))


EMBEDDINGS = _NamesOrPath(("none", "word2vec"))


def _file_stem(value: str) -> str:
    """A path as a file-name-safe run-name tag: its stem (`glove.6B.100d`)."""
    if tuple.__contains__(EMBEDDINGS, value):
        return value
    name = Path(value).name.removesuffix(".gz").removesuffix(".txt").removesuffix(".vec")
    return re.sub(r"[^A-Za-z0-9.-]+", "-", name) or "file"


@dataclass(frozen=True)
class ExperimentConfig:
    """Every setting of an IMDb run. Defaults reproduce the seed's Keras recipe."""

    arch: str = _opt(
        "network architecture",
        choices=("lstm", "bilstm", "gru", "bigru", "cnn", "transformer"),
        default="lstm",
    )
    # data and text
    # The seed states neither: both were chosen on validation, three seeds per candidate
    # (benchmarks/imdb_seed_selection.py).
    vocab_size: int = _opt("vocabulary size incl. padding and OOV ids", "voc", default=50000)
    maxlen: int = _opt("tokens kept per review", "len", default=300)
    padding: str = _opt("where short reviews are padded", "pad", ("pre", "post"), default="pre")
    truncating: str = _opt("where long reviews are cut", "trunc", ("pre", "post"), default="pre")
    val_fraction: float = _opt("validation share of the training reviews", default=0.2)
    limit: int | None = _opt("use only N training reviews (quick runs)", "n", default=None)
    # network
    embed_dim: int = _opt("embedding size", "emb", default=128)
    hidden_size: int = _opt("LSTM units", "h", default=64)
    dropout: float = _opt("dropout on the LSTM inputs", "do", default=0.5)
    recurrent_dropout: float = _opt("dropout on the LSTM recurrent state", "rdo", default=0.3)
    l2: float = _opt("L2 penalty on the LSTM input kernel", "l2", default=1e-4)
    pooling: str = _opt(
        "pooling over time (auto: last state for RNNs, max for cnn, mean for transformer)",
        "pool",
        ("auto", "last", "max", "mean", "maxmean"),
        default="auto",
    )
    num_layers: int = _opt("stacked recurrent or encoder layers", "layers", default=1)
    heads: int = _opt("attention heads (transformer)", "heads", default=4)
    embeddings: str = _opt(
        "pretrained embeddings: none, word2vec (trained on the training + unlabeled "
        "reviews, cached) or PATH of a GloVe-format text file",
        "pre",
        EMBEDDINGS,
        name_format=_file_stem,
        default="none",
    )
    embeddings_mode: str = _opt(
        "fine-tune the pretrained embeddings or keep them frozen",
        "train",
        ("finetune", "frozen"),
        default="finetune",
    )
    # optimisation
    optimizer: str = _opt("optimizer", choices=("adam",), default="adam")
    lr: float = _opt("learning rate", default=2e-4)
    clipnorm: float = _opt("clip the gradient norm to this (0: no clipping)", default=1.0)
    clip_mode: str = _opt(
        "per_parameter: Keras clipnorm; global: Keras global_clipnorm",
        "clipmode",
        ("per_parameter", "global"),
        default="per_parameter",
    )
    loss: str = _opt("loss", choices=("bce",), default="bce")
    batch_size: int = _opt("batch size", default=64)
    epochs: int = _opt("maximum number of epochs", default=10)
    # callbacks
    early_stopping_patience: int = _opt(
        "epochs without val_loss gain before stopping", "es", default=3
    )
    reduce_lr_patience: int = _opt(
        "epochs without val_loss gain before lowering lr", "rlr", default=1
    )
    reduce_lr_factor: float = _opt("lr multiplier on plateau", "rlrf", default=0.5)
    min_lr: float = _opt("lower bound of the learning rate", "minlr", default=1e-6)
    checkpoint_monitor: str = _opt(
        "metric that picks the best epoch's weights",
        "ckpt",
        ("val_accuracy", "val_loss"),
        default="val_accuracy",
    )
    seed: int = _opt("random seed (split, init, batches, dropout)", "seed", default=42)

    def __post_init__(self) -> None:
        for f in fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise ValueError(f"{f.name} must be one of {', '.join(choices)}")
        if not 0 < self.val_fraction < 1:
            raise ValueError("val_fraction must be between 0 and 1")
        if self.limit is not None and self.limit < 2:
            raise ValueError("limit must be at least 2 reviews")
        for name in ("vocab_size", "maxlen", "embed_dim", "hidden_size", "batch_size", "epochs",
                     "num_layers", "heads"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer")
        if self.arch == "transformer" and self.embed_dim % self.heads:
            raise ValueError("embed_dim must be divisible by heads for the transformer")

    @property
    def run_name(self) -> str:
        return run_name(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ExperimentConfig:
        """Build from a saved config; unknown keys are an error, missing ones take defaults."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(unknown)}")
        return cls(**values)

    def non_defaults(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) != f.default
        }

    def cli_args(self) -> list[str]:
        """The `mlapi train imdb` flags that rebuild this config."""
        args = []
        for name, value in self.non_defaults().items():
            args += [_flag(name), "none" if value is None else _format_value(value)]
        return args


# The seed's name holds the recipe; every other setting is appended only when it
# differs from its default, e.g. `..._ep10__voc10000_len400_seed7`.
_NAMED_IN_BASE = {"arch", "optimizer", "lr", "clipnorm", "loss", "val_fraction", "batch_size",
                  "epochs"}  # fmt: skip


def run_name(config: ExperimentConfig) -> str:
    clip = f"clip{_format_value(float(config.clipnorm))}" if config.clipnorm > 0 else "noclip"
    name = (
        f"imdb_{config.arch}__{config.optimizer}{_format_value(config.lr)}_{clip}"
        f"__{config.loss}__vs{_format_value(config.val_fraction)}"
        f"__bs{config.batch_size}__ep{config.epochs}"
    )
    extras = []
    for f in fields(config):
        value = getattr(config, f.name)
        if f.name in _NAMED_IN_BASE or value == f.default:
            continue
        text = (f.metadata.get("name_format") or _format_value)(value)
        extras.append(f"{f.metadata.get('tag') or f.name}{text}")
    return "__".join([name, "_".join(extras)]) if extras else name


def _format_value(value: Any) -> str:
    """Short, file-name-safe text: 2e-4, 0.2, 1.0, 20000, post, none."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if value != 0 and abs(value) < 1e-2:
            mantissa, exponent = f"{value:e}".split("e")
            mantissa = mantissa.rstrip("0").rstrip(".")
            return f"{mantissa}e{int(exponent)}"
        return repr(value)
    return str(value)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _parse_optional_int(text: str) -> int | None:
    return None if text.lower() == "none" else int(text)


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One `--flag` per ExperimentConfig field, defaults = the seed's recipe."""
    group = parser.add_argument_group("experiment settings (defaults: the seed's recipe)")
    for f in fields(ExperimentConfig):
        kind = _parse_optional_int if f.name == "limit" else type(f.default)
        default_text = "all" if f.default is None else _format_value(f.default)
        group.add_argument(
            _flag(f.name),
            dest=f.name,
            type=kind,
            default=f.default,
            choices=f.metadata.get("choices"),
            metavar=None if f.metadata.get("choices") else ("X" if kind is float else "N"),
            help=f"{f.metadata['help']} (default: {default_text})",
        )


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    return ExperimentConfig(**{f.name: getattr(args, f.name) for f in fields(ExperimentConfig)})


# ---------------------------------------------------------------------------------------
# Running an experiment. torch, the data pipeline and the plots are imported inside the
# functions so that building the CLI parser stays fast.

# torch threads for training and evaluation; MLAPI_TORCH_THREADS=1 is much faster when the
# cores are shared (OpenMP regions wait for a descheduled thread at every small op).
TORCH_THREADS = int(os.environ.get("MLAPI_TORCH_THREADS", "2"))
OUTPUT_FILES = {
    "checkpoint": "best.pt",
    "vocabulary": "vocabulary.json",
    "config": "config.json",
    "history": "history.csv",
    "curves": "curves.png",
    "confusion_csv": "confusion_matrix.csv",
    "confusion_png": "confusion_matrix.png",
    "metrics": "metrics.json",
    "report": "report.md",
}
HISTORY_COLUMNS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")


def output_path(out_dir: str | os.PathLike, run: str, kind: str) -> Path:
    """`<out_dir>/<run>_<file>` for one of OUTPUT_FILES' kinds."""
    return Path(out_dir) / f"{run}_{OUTPUT_FILES[kind]}"


@dataclass(frozen=True)
class RunResult:
    run_name: str
    out_dir: Path
    metrics: dict[str, Any]
    model_dir: Path | None
    parity_max_abs_diff: float | None


def run_experiment(
    config: ExperimentConfig,
    data: str | os.PathLike | None = None,
    out_dir: str | os.PathLike = "outputs_imdb",
    models_dir: str | os.PathLike | None = "models",
    progress: bool = True,
    resume: bool = False,
) -> RunResult:
    """Train, test once, write the run's outputs, then export and install the model.

    The outputs are written into a hidden staging folder inside `out_dir` and moved into
    place only when all of them exist; an interrupt or error removes the staging folder
    and leaves `out_dir` and `models_dir` as they were. `models_dir=None` skips export.
    The training state after each epoch and the best checkpoint live in
    `out_dir/.<run>.resume/` until the run's outputs are published: `resume=True`
    continues an interrupted run from there.
    """
    import torch

    from mlapi.data.imdb import load_encoded_test
    from mlapi.evaluation import classify
    from mlapi.training.loop import predict_proba

    torch.set_num_threads(TORCH_THREADS)
    name = config.run_name
    encoded = load_training_data(config, data)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state_dir = _training_state_dir(out_dir, config, resume)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.staging.", dir=out_dir))
    try:
        network, history, checkpoint = train_network(config, encoded, state_dir, progress, resume)
        if history.interrupted:
            print(
                f"interrupted after epoch {len(history.epochs)}; the state is kept in "
                f"{state_dir}: add --resume to the same command to continue",
                file=sys.stderr,
            )
            raise KeyboardInterrupt
        network.load_state_dict(torch.load(checkpoint.path, weights_only=True))
        _copy_checkpoint(checkpoint.path, output_path(staging, name, "checkpoint"))

        x_test, y_test, _ = load_encoded_test(encoded.root, encoded.vocabulary)  # once, here
        test = classify(y_test, predict_proba(network, x_test))
        columns = {c: history.metric(c) for c in HISTORY_COLUMNS}
        metrics = _run_metrics(config, columns, test, checkpoint.best_epoch, encoded)
        encoded.vocabulary.save(output_path(staging, name, "vocabulary"))
        _write_outputs(staging, config, data, encoded.root, columns, metrics)
        _publish(staging, out_dir)
        shutil.rmtree(state_dir, ignore_errors=True)  # the run is complete
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    if models_dir is None:
        return RunResult(name, out_dir, metrics, None, None)
    from mlapi.export import export_sentiment_model

    try:
        exported = export_sentiment_model(
            network,
            encoded.vocabulary,
            encoded.x_val,
            models_dir,
            run_name=name,
            arch=config.arch,
            metrics=_serving_metrics(metrics),
            versions=library_versions(),
        )
    except MlapiError as exc:
        raise ArtifactError(f"run outputs are in {out_dir}, but {exc}") from exc
    return RunResult(name, out_dir, metrics, exported.directory, exported.max_abs_diff)


def load_training_data(config: ExperimentConfig, data: str | os.PathLike | None = None):
    """The training reviews encoded as `config` says: train and val splits + vocabulary."""
    from mlapi.data.imdb import load_encoded

    return load_encoded(
        data,
        num_words=config.vocab_size,
        maxlen=config.maxlen,
        padding=config.padding,
        truncating=config.truncating,
        val_fraction=config.val_fraction,
        seed=config.seed,
        limit=config.limit,
    )


def train_network(
    config: ExperimentConfig,
    encoded: Any,
    state_dir: Path,
    progress: bool = True,
    resume: bool = False,
):
    """Build `config`'s network and fit it on the train split, validating on the val split,
    with the run's callbacks. The best checkpoint (`best.pt`) and the state after each epoch
    (`last.pt`) go to `state_dir`. Returns (network, history, checkpoint callback); the
    network holds the last epoch's weights. Never reads the test split."""
    from mlapi.training.loop import fit

    pretrained = None
    if config.embeddings != "none":
        from mlapi.embeddings import pretrained_matrix

        pretrained = pretrained_matrix(config, encoded, progress=progress)
    seed_everything(config.seed)
    network = build_network(config, encoded.vocabulary.size, pretrained)
    checkpoint = _checkpoint_callback(config, state_dir / "best.pt")
    history = fit(
        network,
        (encoded.x_train, encoded.y_train),
        (encoded.x_val, encoded.y_val),
        fit_config(config),
        callbacks=[*_plateau_callbacks(config), checkpoint],
        progress=progress,
        snapshot=state_dir / "last.pt",
        resume=resume and (state_dir / "last.pt").is_file(),  # else no epoch had finished
    )
    return network, history, checkpoint


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_network(config: ExperimentConfig, vocab_size: int, pretrained: Any = None):
    """The network named by `config.arch`, sized for a fitted vocabulary (see
    mlapi.models.registry); `pretrained` [vocab_size, embed_dim] initialises the embedding."""
    from mlapi.models.registry import build_network as build

    return build(config, vocab_size, pretrained)


def fit_config(config: ExperimentConfig):
    from mlapi.training.loop import FitConfig

    return FitConfig(
        batch_size=config.batch_size,
        epochs=config.epochs,
        learning_rate=config.lr,
        clipnorm=config.clipnorm or None,
        clip_mode=config.clip_mode,
        seed=config.seed,
        threads=TORCH_THREADS,
    )


def _plateau_callbacks(config: ExperimentConfig) -> list:
    from mlapi.training.callbacks import EarlyStopping, ReduceLROnPlateau

    return [
        EarlyStopping("val_loss", patience=config.early_stopping_patience),
        ReduceLROnPlateau(
            "val_loss",
            factor=config.reduce_lr_factor,
            patience=config.reduce_lr_patience,
            min_lr=config.min_lr,
        ),
    ]


def _checkpoint_callback(config: ExperimentConfig, path: Path):
    from mlapi.training.callbacks import ModelCheckpoint

    mode = "max" if config.checkpoint_monitor == "val_accuracy" else "min"
    return ModelCheckpoint(path, monitor=config.checkpoint_monitor, mode=mode)


def _run_metrics(
    config: ExperimentConfig,
    columns: dict[str, list[float]],
    test: ClassificationMetrics,
    checkpoint_epoch: int | None,
    encoded: Any,
) -> dict[str, Any]:
    if checkpoint_epoch is None:
        raise ArtifactError(f"no checkpoint was saved: {config.checkpoint_monitor} never improved")
    from mlapi.evaluation import diagnose_history

    diagnostics = diagnose_history(columns)
    return {
        "run_name": config.run_name,
        "train_accuracy_final": diagnostics.train_accuracy_final,
        "val_accuracy_final": diagnostics.val_accuracy_final,
        "val_accuracy_best": diagnostics.val_accuracy_best,
        "best_epoch": diagnostics.best_epoch,
        "train_val_gap": diagnostics.train_val_gap,
        "val_loss_rises": diagnostics.val_loss_rises,
        "test_accuracy": test.accuracy,
        "roc_auc": test.roc_auc,
        "per_class": test.per_class,
        "confusion_matrix": test.confusion_matrix,
        "labels": list(test.labels),
        "threshold": test.threshold,
        "checkpoint_monitor": config.checkpoint_monitor,
        "checkpoint_epoch": checkpoint_epoch,
        "val_accuracy_checkpoint": columns["val_accuracy"][checkpoint_epoch - 1],
        "val_loss_rise_epochs": list(diagnostics.val_loss_rise_epochs),
        "val_loss_best": diagnostics.val_loss_best,
        "val_loss_best_epoch": diagnostics.val_loss_best_epoch,
        "val_loss_final": diagnostics.val_loss_final,
        "epochs_run": diagnostics.epochs_run,
        "epochs_max": config.epochs,
        "seconds_per_epoch": float(np.mean(columns["seconds"])),
        "seconds_training": float(np.sum(columns["seconds"])),
        "n_train": len(encoded.y_train),
        "n_val": len(encoded.y_val),
        "n_test": test.n,
        "vocab_ids": encoded.vocabulary.size,
        "versions": library_versions(),
    }


def _serving_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    keys = ("test_accuracy", "roc_auc", "val_accuracy_best", "best_epoch", "checkpoint_epoch")
    return {key: metrics[key] for key in keys}


def _write_outputs(
    staging: Path,
    config: ExperimentConfig,
    data: str | os.PathLike | None,
    dataset_root: Path,
    columns: dict[str, list[float]],
    metrics: dict[str, Any],
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
            "data": _data_text(data),
            "dataset_root": str(dataset_root),
            "command": command,
            "created_at": utc_now_iso(),
            "versions": metrics["versions"],
        },
    )
    reporting.write_history_csv(path("history"), columns)
    reporting.plot_curves(path("curves"), columns, metrics["best_epoch"], title=name)
    labels = metrics["labels"]
    reporting.write_confusion_csv(path("confusion_csv"), metrics["confusion_matrix"], labels)
    reporting.plot_confusion_matrix(path("confusion_png"), metrics["confusion_matrix"], labels)
    atomic_write_json(path("metrics"), metrics)
    report = reporting.render_report(
        metrics,
        columns,
        recipe=describe_recipe(config, metrics),
        command=command,
        files={k: path(k).name for k in ("curves", "confusion_png")},
        max_epochs=config.epochs,
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


def describe_recipe(config: ExperimentConfig, metrics: dict[str, Any]) -> dict:
    """The recipe in the seed's (Keras) words, for the report."""
    clip = "none" if not config.clipnorm else f"{config.clipnorm} ({config.clip_mode})"
    model = (
        f"Embedding({metrics['vocab_ids']}, {config.embed_dim}) → LSTM({config.hidden_size}, "
        f"dropout={config.dropout}, recurrent_dropout={config.recurrent_dropout}, "
        f"kernel_regularizer=L2({_format_value(config.l2)})) → Dense(1, sigmoid)"
    )
    from mlapi.models.registry import describe_network, uses_seed_lstm

    if not uses_seed_lstm(config) or config.embeddings != "none":
        model = describe_network(config).replace("vocab", f"{metrics['vocab_ids']}", 1)
    return {
        "model": model,
        "text": (
            f"top {config.vocab_size:,} ids (0 = padding, 1 = out-of-vocabulary), "
            f"maxlen {config.maxlen}, padding {config.padding}, truncating {config.truncating}"
        ),
        "optimizer": f"Adam(lr={_format_value(config.lr)}), gradient clipnorm {clip}",
        "loss": "binary cross-entropy (+ L2 penalty)",
        "batch size / max epochs": f"{config.batch_size} / {config.epochs}",
        "split": (
            f"{metrics['n_train']:,} train / {metrics['n_val']:,} val (stratified "
            f"{config.val_fraction:g} of the training reviews, seed {config.seed}) / "
            f"{metrics['n_test']:,} test, read once after training"
        ),
        "callbacks": (
            f"EarlyStopping(val_loss, patience={config.early_stopping_patience}), "
            f"ReduceLROnPlateau(val_loss, factor={config.reduce_lr_factor:g}, "
            f"patience={config.reduce_lr_patience}, min_lr={_format_value(config.min_lr)}), "
            f"ModelCheckpoint({config.checkpoint_monitor}, best only)"
        ),
        "seed": config.seed,
    }


def train_command(config: ExperimentConfig, data: str | os.PathLike | None) -> str:
    args = ["mlapi", "train", "imdb"]
    if data is not None:
        args += ["--data", str(data)]
    return shlex.join(args + config.cli_args())


def _data_text(data: str | os.PathLike | None) -> str | None:
    return None if data is None else str(Path(data).expanduser().resolve())


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("mlapi", "torch", "numpy", "scikit-learn", "onnx", "onnxruntime"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


# ---------------------------------------------------------------------------------------
# Re-evaluating a saved run.


@dataclass(frozen=True)
class SavedRun:
    run_name: str
    out_dir: Path
    config: ExperimentConfig
    saved: dict[str, Any]  # the whole <run>_config.json

    def path(self, kind: str) -> Path:
        return output_path(self.out_dir, self.run_name, kind)


def find_run(run: str | os.PathLike, out_dir: str | os.PathLike = "outputs_imdb") -> SavedRun:
    """A run by name (in `out_dir`), by its `_config.json` path, or by any of its files."""
    given = Path(run)
    if given.is_file():
        config_path = _config_beside(given)
    else:
        config_path = output_path(out_dir, str(run), "config")
    if not config_path.is_file():
        raise ArtifactError(f"no saved run {str(run)!r}: {config_path} does not exist")
    try:
        saved = json.loads(config_path.read_text(encoding="utf-8"))
        config = ExperimentConfig.from_dict(saved["config"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{config_path} is not a valid run config: {exc}") from exc
    return SavedRun(saved.get("run_name", config.run_name), config_path.parent, config, saved)


def _config_beside(file: Path) -> Path:
    suffixes = sorted(OUTPUT_FILES.values(), key=len, reverse=True)
    for suffix in suffixes:
        if file.name.endswith("_" + suffix):
            run = file.name[: -len(suffix) - 1]
            return output_path(file.parent, run, "config")
    raise ArtifactError(f"{file} is not a file of a saved run")


def evaluate_run(saved: SavedRun, data: str | os.PathLike | None = None) -> ClassificationMetrics:
    """Rebuild the network from the run's config, vocabulary and best checkpoint, then
    recompute the test metrics. `data` defaults to the dataset the run was trained on."""
    import torch

    from mlapi.data.imdb import load_encoded_test
    from mlapi.evaluation import classify
    from mlapi.text import Vocabulary
    from mlapi.training.loop import predict_proba

    torch.set_num_threads(TORCH_THREADS)
    for kind in ("checkpoint", "vocabulary"):
        if not saved.path(kind).is_file():
            raise ArtifactError(f"{saved.path(kind)} is missing; cannot evaluate the run")
    vocabulary = Vocabulary.load(saved.path("vocabulary"))
    network = build_network(saved.config, vocabulary.size)
    try:
        state = torch.load(saved.path("checkpoint"), weights_only=True)
        network.load_state_dict(state)
    except (RuntimeError, OSError, ValueError) as exc:
        raise ArtifactError(f"cannot load {saved.path('checkpoint')}: {exc}") from exc
    if data is None:
        data = saved.saved.get("data") or saved.saved.get("dataset_root")
    x_test, y_test, _ = load_encoded_test(data, vocabulary)
    return classify(y_test, predict_proba(network, x_test))
