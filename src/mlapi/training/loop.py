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
`resume=True` continues from it: weights, optimizer, callbacks' `state_dict()`, history and
random state, all plain data loaded with `weights_only=True`.
`FitConfig.device` moves the model and the data there ("cuda": see training.device);
`precision="bf16"` autocasts the training steps. Evaluation runs on the model's device.
"""

from __future__ import annotations

import dataclasses
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from mlapi.artifacts import atomic_path, read_sidecar, sha256_file, write_sidecar
from mlapi.errors import ArtifactError, DataError
from mlapi.training.callbacks import Callback, History, Trainer

EVAL_BATCH_SIZE = 256  # reviews per forward pass when evaluating or predicting


@dataclass(frozen=True, kw_only=True)
class FitConfig:
    """How `fit` trains. The IMDb recipe's values live in training.config.ExperimentConfig;
    the defaults here are the library's (Keras' where it has one)."""

    batch_size: int
    epochs: int
    learning_rate: float
    clipnorm: float | None = None  # None: no clipping
    clip_mode: str = "per_parameter"  # Keras `clipnorm`; "global" = Keras `global_clipnorm`
    adam_epsilon: float = 1e-7  # Keras' default
    seed: int | None = None  # reseeds dropout masks and batch order; None: no reseeding
    threads: int | None = None  # torch threads; None: leave torch's setting
    eval_batch_size: int = EVAL_BATCH_SIZE
    device: str = "cpu"  # "cpu", "cuda" or "cuda:N"
    precision: str = "fp32"  # or "bf16": autocast on CUDA

    def __post_init__(self) -> None:
        if self.clip_mode not in ("per_parameter", "global"):
            raise ValueError(f"clip_mode: 'per_parameter' or 'global', not {self.clip_mode!r}")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision: 'fp32' or 'bf16', not {self.precision!r}")


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def fit(
    model: nn.Module,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray] | None,
    config: FitConfig,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    snapshot: str | os.PathLike | None = None,
    resume: bool = False,
) -> History:
    """Train `model` on `train` = (x int [n, T], y {0, 1} [n]); validate on `val` each epoch.

    On Ctrl-C the epoch in progress is dropped, `on_train_end` still runs (EarlyStopping
    restores the best weights) and the history so far comes back with `interrupted=True`.
    """
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    if config.seed is not None:
        seed_everything(config.seed)  # dropout masks
    shuffle_rng = np.random.default_rng(config.seed)
    device = torch.device(config.device)
    model.to(device)
    x_train, y_train = (t.to(device) for t in _as_tensors(*train))
    history = History()
    trainer = Trainer(model, _adam(model, config), history)

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
            order = torch.from_numpy(shuffle_rng.permutation(len(x_train))).to(device)
            with _progress_bar(epoch, config.epochs, len(order), progress) as bar:
                logs = {"epoch": epoch}
                logs |= _train_epoch(trainer, x_train, y_train, order, config, callbacks, bar)
                if val is not None:
                    scores = evaluate(model, *val, batch_size=config.eval_batch_size)
                    logs |= {f"val_{k}": v for k, v in scores.items()}
                bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items() if k != "epoch"})
            logs |= {"lr": trainer.learning_rate, "seconds": time.perf_counter() - started}
            history.epochs.append(logs)
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
    """Everything needed to continue after `epoch`, as plain data (tensors, numbers, lists,
    dicts), written atomically with a sha256 sidecar."""
    state = {
        "epoch": epoch,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "history": dataclasses.asdict(trainer.history),
        "stop_training": trainer.stop_training,
        "callbacks": [callback.state_dict() for callback in callbacks],
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
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
    state = torch.load(path, weights_only=True)
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    restored = History(**state["history"])
    trainer.history.__dict__.update(vars(restored))
    trainer.stop_training = state["stop_training"]
    for callback, saved in zip(callbacks, state["callbacks"], strict=True):
        callback.load_state_dict(saved)
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng"):
        torch.cuda.set_rng_state_all(state["cuda_rng"])
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
    autocast = torch.autocast(x.device.type, torch.bfloat16, enabled=config.precision == "bf16")
    loss_sum, correct, seen = 0.0, 0, 0
    for batch, start in enumerate(range(0, len(order), config.batch_size)):
        index = order[start : start + config.batch_size]
        xb, yb = x[index], y[index]
        with autocast:
            logits = model(xb).float()
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
    model: nn.Module, x: np.ndarray, y: np.ndarray, *, batch_size: int = EVAL_BATCH_SIZE
) -> dict[str, float]:
    """loss (BCE + regularization, as Keras reports it) and accuracy, in evaluation mode."""
    was_training = model.training
    model.eval()
    x_t, y_t = (t.to(_device_of(model)) for t in _as_tensors(x, y))
    bce_sum, correct = 0.0, 0
    for start in range(0, len(x_t), batch_size):
        logits = model(x_t[start : start + batch_size])
        yb = y_t[start : start + batch_size]
        bce_sum += float(F.binary_cross_entropy_with_logits(logits, yb, reduction="sum"))
        correct += int(((logits > 0) == (yb > 0.5)).sum())
    model.train(was_training)
    loss = bce_sum / len(x_t) + float(_regularization(model))
    return {"loss": loss, "accuracy": correct / len(x_t)}


@torch.no_grad()
def predict_proba(
    model: nn.Module, x: np.ndarray, *, batch_size: int = EVAL_BATCH_SIZE
) -> np.ndarray:
    """P(positive) as float32 [n], computed in evaluation mode."""
    was_training = model.training
    model.eval()
    x_t = torch.as_tensor(np.asarray(x), dtype=torch.int64).to(_device_of(model))
    probs = [torch.sigmoid(model(x_t[s : s + batch_size])) for s in range(0, len(x_t), batch_size)]
    model.train(was_training)
    return torch.cat(probs).cpu().numpy().astype(np.float32) if probs else np.zeros(0, np.float32)


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


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
