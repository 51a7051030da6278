"""The training loop for binary classifiers that return logits (the seed's IMDb recipe).

Keras' `model.fit` meaning, in PyTorch:
- loss = binary cross-entropy on logits + the model's `regularization_loss()` (if any),
  as Keras adds regularizers to both `loss` and `val_loss`;
- Adam with Keras' epsilon (1e-7); `clipnorm` clips each parameter's gradient by its own
  norm, as Keras' `clipnorm` does (`clip_mode="global"` clips the global norm instead);
- the training set is shuffled every epoch with a seeded generator;
- per epoch: loss/accuracy averaged over the epoch's batches, then val_loss/val_accuracy
  in evaluation mode; callbacks run after each epoch.
Ctrl-C stops cleanly: `fit` returns the history of the finished epochs, `interrupted=True`.
With `snapshot=PATH`, the state after each epoch is saved there (atomically) and
`resume=True` continues from it: weights, optimizer, callbacks, history and random state.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from mlapi.artifacts import atomic_path, read_sidecar, sha256_file, write_sidecar
from mlapi.errors import ArtifactError, DataError
from mlapi.training.callbacks import Callback


@dataclass(frozen=True)
class FitConfig:
    batch_size: int = 64
    epochs: int = 10
    learning_rate: float = 2e-4
    clipnorm: float | None = 1.0
    clip_mode: str = "per_parameter"  # Keras `clipnorm`; "global" = Keras `global_clipnorm`
    adam_epsilon: float = 1e-7  # Keras' default
    seed: int = 42
    threads: int = 2
    eval_batch_size: int = 256

    def __post_init__(self) -> None:
        if self.clip_mode not in ("per_parameter", "global"):
            raise ValueError(f"clip_mode: 'per_parameter' or 'global', not {self.clip_mode!r}")


@dataclass
class History:
    epochs: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None  # epoch with the lowest val_loss
    interrupted: bool = False
    stopped_early: bool = False
    restored_epoch: int | None = None  # set when a callback restored that epoch's weights

    def metric(self, name: str) -> list[float]:
        return [epoch[name] for epoch in self.epochs]


class Trainer:
    """What callbacks may read and change while `fit` runs."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, history: History):
        self.model = model
        self.optimizer = optimizer
        self.history = history
        self.stop_training = False

    @property
    def learning_rate(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = value


def fit(
    model: nn.Module,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray] | None,
    config: FitConfig = FitConfig(),
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    snapshot: str | os.PathLike | None = None,
    resume: bool = False,
) -> History:
    """Train `model` on `train` = (x int [n, T], y {0, 1} [n]); validate on `val` each epoch.

    Sets torch's thread count to `config.threads` (left so afterwards). On Ctrl-C the epoch
    in progress is dropped, `on_train_end` still runs (EarlyStopping restores the best
    weights) and the history so far comes back with `interrupted=True`.
    """
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)  # dropout masks
    shuffle_rng = np.random.default_rng(config.seed)
    x_train, y_train = _as_tensors(*train)
    optimizer = _adam(model, config)
    history = History()
    trainer = Trainer(model, optimizer, history)

    for callback in callbacks:
        callback.on_train_begin(trainer)
    first_epoch = 1
    if resume:
        first_epoch = restore_snapshot(snapshot, trainer, callbacks, shuffle_rng) + 1
    try:
        for epoch in range(first_epoch, config.epochs + 1):
            for callback in callbacks:
                callback.on_epoch_begin(epoch, trainer)
            started = time.perf_counter()
            order = torch.from_numpy(shuffle_rng.permutation(len(x_train)))
            with _progress_bar(epoch, config.epochs, len(order), progress) as bar:
                logs = {"epoch": epoch}
                logs |= _train_epoch(trainer, x_train, y_train, order, config, callbacks, bar)
                if val is not None:
                    logs |= {f"val_{k}": v for k, v in evaluate(model, *val, config).items()}
                bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items() if k != "epoch"})
            logs |= {"lr": trainer.learning_rate, "seconds": time.perf_counter() - started}
            history.epochs.append(logs)
            history.best_epoch = _best_epoch(history)
            for callback in callbacks:
                callback.on_epoch_end(epoch, logs, trainer)
            if snapshot is not None:
                save_snapshot(snapshot, epoch, trainer, callbacks, shuffle_rng)
            if trainer.stop_training:
                history.stopped_early = True
                break
    except KeyboardInterrupt:
        history.interrupted = True
    for callback in callbacks:
        callback.on_train_end(trainer)
    return history


def save_snapshot(path, epoch: int, trainer: Trainer, callbacks, shuffle_rng) -> None:
    """Everything needed to continue after `epoch`, written atomically with a sha256 sidecar."""
    state = {
        "epoch": epoch,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "history": dataclasses.asdict(trainer.history),
        "stop_training": trainer.stop_training,
        "callbacks": [vars(callback) for callback in callbacks],
        "torch_rng": torch.get_rng_state(),
        "shuffle_rng": shuffle_rng.bit_generator.state,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    write_sidecar(path, epoch=epoch)


def restore_snapshot(path, trainer: Trainer, callbacks, shuffle_rng) -> int:
    """Load a snapshot written by `save_snapshot` into the running fit; return its epoch."""
    path = Path(path) if path is not None else None
    if path is None or not path.is_file():
        raise ArtifactError(f"nothing to resume: no saved training state at {path}")
    if sha256_file(path) != read_sidecar(path).get("sha256"):
        raise ArtifactError(f"{path} does not match its sidecar; refusing to resume from it")
    state = torch.load(path, weights_only=False)  # our own file, checked above
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    restored = History(**state["history"])
    trainer.history.__dict__.update(vars(restored))
    trainer.stop_training = state["stop_training"]
    for callback, saved in zip(callbacks, state["callbacks"], strict=True):
        vars(callback).update(saved)
    torch.set_rng_state(state["torch_rng"])
    shuffle_rng.bit_generator.state = state["shuffle_rng"]
    return state["epoch"]


def _train_epoch(
    trainer: Trainer,
    x: torch.Tensor,
    y: torch.Tensor,
    order: torch.Tensor,
    config: FitConfig,
    callbacks: Sequence[Callback],
    bar: tqdm,
) -> dict[str, float]:
    model, optimizer = trainer.model, trainer.optimizer
    params = [p for group in optimizer.param_groups for p in group["params"]]
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    for batch, start in enumerate(range(0, len(order), config.batch_size)):
        index = order[start : start + config.batch_size]
        xb, yb = x[index], y[index]
        logits = model(xb)
        loss = F.binary_cross_entropy_with_logits(logits, yb) + _regularization(model)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        _clip_gradients(params, config)
        optimizer.step()

        loss_sum += loss.item() * len(index)
        correct += int(((logits > 0) == (yb > 0.5)).sum())
        seen += len(index)
        logs = {"loss": loss_sum / seen, "accuracy": correct / seen}
        bar.update(len(index))
        if batch % 10 == 0:
            bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()}, refresh=False)
        for callback in callbacks:
            callback.on_batch_end(batch, logs, trainer)
    return logs


def _progress_bar(epoch: int, epochs: int, examples: int, enabled: bool) -> tqdm:
    return tqdm(total=examples, desc=f"epoch {epoch}/{epochs}", unit="ex", disable=not enabled)


@torch.no_grad()
def evaluate(
    model: nn.Module, x: np.ndarray, y: np.ndarray, config: FitConfig = FitConfig()
) -> dict[str, float]:
    """loss (BCE + regularization, as Keras reports it) and accuracy, in evaluation mode."""
    was_training = model.training
    model.eval()
    x_t, y_t = _as_tensors(x, y)
    bce_sum, correct = 0.0, 0
    for start in range(0, len(x_t), config.eval_batch_size):
        logits = model(x_t[start : start + config.eval_batch_size])
        yb = y_t[start : start + config.eval_batch_size]
        bce_sum += float(F.binary_cross_entropy_with_logits(logits, yb, reduction="sum"))
        correct += int(((logits > 0) == (yb > 0.5)).sum())
    model.train(was_training)
    loss = bce_sum / len(x_t) + float(_regularization(model))
    return {"loss": loss, "accuracy": correct / len(x_t)}


@torch.no_grad()
def predict_proba(model: nn.Module, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """P(positive) as float32 [n], computed in evaluation mode."""
    was_training = model.training
    model.eval()
    x_t = torch.as_tensor(np.asarray(x), dtype=torch.int64)
    probs = [torch.sigmoid(model(x_t[s : s + batch_size])) for s in range(0, len(x_t), batch_size)]
    model.train(was_training)
    return torch.cat(probs).numpy().astype(np.float32) if probs else np.zeros(0, np.float32)


def _adam(model: nn.Module, config: FitConfig) -> torch.optim.Adam:
    """Adam over the trainable parameters; the fused implementation (same math, one kernel
    per step) where PyTorch has it for these tensors."""
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        return torch.optim.Adam(
            params, lr=config.learning_rate, eps=config.adam_epsilon, fused=True
        )
    except RuntimeError:
        return torch.optim.Adam(params, lr=config.learning_rate, eps=config.adam_epsilon)


def _regularization(model: nn.Module) -> torch.Tensor | float:
    regularization_loss = getattr(model, "regularization_loss", None)
    return regularization_loss() if regularization_loss is not None else 0.0


def _clip_gradients(params: list[torch.nn.Parameter], config: FitConfig) -> None:
    if not config.clipnorm:
        return
    with_grads = [p for p in params if p.grad is not None]
    if config.clip_mode == "global":
        torch.nn.utils.clip_grad_norm_(with_grads, config.clipnorm)
        return
    # Keras `clipnorm`: g * clipnorm / max(||g||, clipnorm), each parameter on its own.
    for grad in (p.grad for p in with_grads):
        norm = float(torch.linalg.vector_norm(grad))
        if norm > config.clipnorm:
            grad.mul_(config.clipnorm / norm)


def _as_tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or y.shape != (len(x),) or len(x) == 0:
        raise DataError(f"expected x [n, seq] and y [n], got {x.shape} and {y.shape}")
    return torch.as_tensor(x, dtype=torch.int64), torch.as_tensor(y, dtype=torch.float32)


def _best_epoch(history: History) -> int | None:
    scored = [e for e in history.epochs if e.get("val_loss") is not None]
    return min(scored, key=lambda e: e["val_loss"])["epoch"] if scored else None
