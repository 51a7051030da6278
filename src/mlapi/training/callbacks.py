"""Keras-like callbacks, and the `Trainer` and `History` they are handed.

A callback sees the `Trainer` (model, optimizer, learning rate, history, `stop_training`
flag) at each hook, as Keras hands callbacks the model; this module imports nothing of the
fit loop. Epochs are 1-based, as in the history and the progress bar. The monitored value
comes from the epoch's logs (`val_loss` by default). Each callback's `state_dict()` is
plain data (numbers, lists, dicts, tensors), so a resume snapshot loads with
`torch.load(..., weights_only=True)`.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mlapi.artifacts import atomic_path, write_sidecar


@dataclass
class History:
    """The logs of each finished epoch, and how training ended."""

    epochs: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False
    stopped_early: bool = False
    restored_epoch: int | None = None  # set when a callback restored that epoch's weights

    def metric(self, name: str) -> list[float]:
        return [epoch[name] for epoch in self.epochs]


class Trainer:
    """What callbacks may read and change while training runs."""

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


class Callback:
    """Base class: override the hooks you need, and `state_dict`/`load_state_dict` when
    the callback keeps state across epochs (what a resumed fit must get back)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def on_train_begin(self, trainer: Trainer) -> None:
        pass

    def on_epoch_begin(self, epoch: int, trainer: Trainer) -> None:
        pass

    def on_batch_end(self, batch: int, logs: dict[str, float], trainer: Trainer) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict[str, Any], trainer: Trainer) -> None:
        pass

    def on_train_end(self, trainer: Trainer) -> None:
        pass


class _Monitor:
    """Tracks the best value of `monitor` in `mode` ("min" or "max"), with `min_delta`."""

    def __init__(self, monitor: str, mode: str, min_delta: float) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.monitor, self.mode, self.min_delta = monitor, mode, abs(min_delta)
        self.reset()

    def reset(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf

    def value(self, logs: dict[str, Any]) -> float | None:
        value = logs.get(self.monitor)
        if value is None:
            available = ", ".join(sorted(logs))
            warnings.warn(f"{self.monitor!r} is not in the logs ({available})", stacklevel=3)
        return value

    def improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than `min_delta` for `patience` epochs.

    With `restore_best_weights`, the model gets back the weights of its best epoch when
    training ends (as in Keras 3: also when it ran all its epochs or was interrupted).
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 3,
        min_delta: float = 0.0,
        restore_best_weights: bool = True,
        mode: str = "min",
    ) -> None:
        self._monitor = _Monitor(monitor, mode, min_delta)
        self.patience = patience
        self.restore_best_weights = restore_best_weights
        self.on_train_begin(None)

    def on_train_begin(self, trainer: Trainer | None) -> None:
        self._monitor.reset()
        self.wait = 0
        self.best_epoch: int | None = None  # the monitor's best epoch
        self.stopped_epoch: int | None = None
        self.best_weights: dict[str, torch.Tensor] | None = None

    @property
    def best(self) -> float:
        return self._monitor.best

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self._monitor.best,
            "wait": self.wait,
            "best_epoch": self.best_epoch,
            "stopped_epoch": self.stopped_epoch,
            "best_weights": self.best_weights,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._monitor.best, self.wait, self.best_epoch = (
            state["best"],
            state["wait"],
            state["best_epoch"],
        )
        self.stopped_epoch, self.best_weights = state["stopped_epoch"], state["best_weights"]

    def on_epoch_end(self, epoch: int, logs: dict[str, Any], trainer: Trainer) -> None:
        value = self._monitor.value(logs)
        if value is None:
            return
        self.wait += 1
        if self._monitor.improved(value):
            self._monitor.best = value
            self.best_epoch = epoch
            self.wait = 0
            if self.restore_best_weights:
                self.best_weights = copy.deepcopy(trainer.model.state_dict())
        elif self.wait >= self.patience:
            self.stopped_epoch = epoch
            trainer.stop_training = True

    def on_train_end(self, trainer: Trainer) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            trainer.model.load_state_dict(self.best_weights)
            trainer.history.restored_epoch = self.best_epoch


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` after `patience` epochs without improvement.

    Keras semantics: improvement means better than the best by more than `min_delta`;
    after a reduction the wait restarts, and for `cooldown` epochs no epoch counts as
    waiting. The rate never goes below `min_lr`.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.5,
        patience: int = 1,
        min_lr: float = 1e-6,
        min_delta: float = 1e-4,
        cooldown: int = 0,
        mode: str = "min",
    ) -> None:
        if not 0.0 < factor < 1.0:
            raise ValueError(f"factor must be in (0, 1), got {factor}")
        self._monitor = _Monitor(monitor, mode, min_delta)
        self.factor, self.patience, self.min_lr, self.cooldown = factor, patience, min_lr, cooldown
        self.on_train_begin(None)

    def on_train_begin(self, trainer: Trainer | None) -> None:
        self._monitor.reset()
        self.wait = 0
        self.cooldown_counter = 0

    def state_dict(self) -> dict[str, Any]:
        return {"best": self._monitor.best, "wait": self.wait, "cooldown": self.cooldown_counter}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._monitor.best, self.wait = state["best"], state["wait"]
        self.cooldown_counter = state["cooldown"]

    def on_epoch_end(self, epoch: int, logs: dict[str, Any], trainer: Trainer) -> None:
        value = self._monitor.value(logs)
        if value is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._monitor.improved(value):
            self._monitor.best = value
            self.wait = 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience and trainer.learning_rate > self.min_lr:
                trainer.learning_rate = max(trainer.learning_rate * self.factor, self.min_lr)
                self.cooldown_counter = self.cooldown
                self.wait = 0


class ModelCheckpoint(Callback):
    """Save the model's state_dict to `path` whenever `monitor` improves (save-best-only).

    The file is written atomically (temp file + rename) with a JSON sidecar
    (`<path>.json`: epoch, monitored value, sha256), so an interrupt never leaves a
    half-written checkpoint. `saved_epoch` is the epoch whose weights are in the file.
    The weights are saved as CPU tensors, whatever device trained them.
    """

    def __init__(
        self, path: str | os.PathLike, monitor: str = "val_loss", mode: str = "min"
    ) -> None:
        self.path = path
        self._monitor = _Monitor(monitor, mode, 0.0)
        self.saved_epoch: int | None = None

    def on_train_begin(self, trainer: Trainer) -> None:
        self._monitor.reset()
        self.saved_epoch = None

    @property
    def best(self) -> float:
        return self._monitor.best

    def state_dict(self) -> dict[str, Any]:
        return {"best": self._monitor.best, "saved_epoch": self.saved_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._monitor.best, self.saved_epoch = state["best"], state["saved_epoch"]

    def on_epoch_end(self, epoch: int, logs: dict[str, Any], trainer: Trainer) -> None:
        value = self._monitor.value(logs)
        if value is None or not self._monitor.improved(value):
            return
        with atomic_path(self.path) as tmp:
            torch.save({k: v.cpu() for k, v in trainer.model.state_dict().items()}, tmp)
        write_sidecar(self.path, epoch=epoch, monitor=self._monitor.monitor, value=value)
        self._monitor.best = value
        self.saved_epoch = epoch
