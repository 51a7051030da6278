"""Keras-like callbacks, driven by synthetic histories (no training needed)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mlapi.artifacts import read_sidecar
from mlapi.training.callbacks import (
    EarlyStopping,
    History,
    ModelCheckpoint,
    ReduceLROnPlateau,
    Trainer,
)


def make_trainer(lr: float = 1e-3) -> Trainer:
    model = nn.Linear(2, 1)
    return Trainer(model, torch.optim.Adam(model.parameters(), lr=lr), History())


def drive(callback, trainer: Trainer, val_losses: list[float], *, set_weight=True) -> int:
    """Feed `val_losses` epoch by epoch; the weight holds the epoch number so restores show.
    Returns the last epoch run (the loop stops when a callback asks to)."""
    callback.on_train_begin(trainer)
    epoch = 0
    for epoch, value in enumerate(val_losses, start=1):
        if set_weight:
            with torch.no_grad():
                trainer.model.weight.fill_(epoch)
        callback.on_epoch_end(epoch, {"val_loss": value}, trainer)
        if trainer.stop_training:
            break
    callback.on_train_end(trainer)
    return epoch


def test_early_stopping_fires_after_patience_epochs_without_improvement():
    trainer = make_trainer()
    stopper = EarlyStopping(patience=2)
    last = drive(stopper, trainer, [1.0, 0.8, 0.9, 0.85, 0.7, 0.6])
    assert last == 4 and trainer.stop_training
    assert stopper.stopped_epoch == 4 and stopper.best_epoch == 2
    assert stopper.best == pytest.approx(0.8)


def test_early_stopping_restores_the_best_weights():
    trainer = make_trainer()
    drive(EarlyStopping(patience=2), trainer, [1.0, 0.8, 0.9, 0.85])
    assert torch.all(trainer.model.weight == 2.0)
    assert trainer.history.restored_epoch == 2


def test_early_stopping_restores_best_weights_even_without_stopping():
    """Keras 3 restores the best weights at the end of training whether or not it stopped."""
    trainer = make_trainer()
    stopper = EarlyStopping(patience=5)
    drive(stopper, trainer, [1.0, 0.5, 0.7])
    assert not trainer.stop_training and stopper.stopped_epoch is None
    assert torch.all(trainer.model.weight == 2.0)


def test_early_stopping_can_keep_the_last_weights():
    trainer = make_trainer()
    drive(EarlyStopping(patience=1, restore_best_weights=False), trainer, [1.0, 2.0])
    assert torch.all(trainer.model.weight == 2.0) and trainer.history.restored_epoch is None


def test_early_stopping_min_delta_ignores_tiny_improvements():
    trainer = make_trainer()
    stopper = EarlyStopping(patience=2, min_delta=0.1)
    last = drive(stopper, trainer, [1.0, 0.95, 0.92, 0.5])
    assert last == 3 and stopper.best_epoch == 1


def test_early_stopping_in_max_mode():
    trainer = make_trainer()
    stopper = EarlyStopping(monitor="val_loss", mode="max", patience=1)
    last = drive(stopper, trainer, [0.5, 0.7, 0.6, 0.9])
    assert last == 3 and stopper.best_epoch == 2


def test_missing_monitor_warns_and_does_nothing():
    trainer = make_trainer()
    stopper = EarlyStopping(monitor="val_auc", patience=1)
    stopper.on_train_begin(trainer)
    with pytest.warns(UserWarning, match="val_auc"):
        stopper.on_epoch_end(1, {"val_loss": 1.0}, trainer)
    assert not trainer.stop_training


def lr_trajectory(reducer, trainer, val_losses) -> list[float]:
    """The learning rate in use at each epoch (what the history records)."""
    reducer.on_train_begin(trainer)
    used = []
    for epoch, value in enumerate(val_losses, start=1):
        used.append(trainer.learning_rate)
        reducer.on_epoch_end(epoch, {"val_loss": value}, trainer)
    return used


def test_reduce_lr_after_patience_epochs_without_improvement():
    trainer = make_trainer(lr=1e-3)
    reducer = ReduceLROnPlateau(factor=0.5, patience=2, min_lr=1e-6)
    used = lr_trajectory(reducer, trainer, [1.0, 0.9, 0.95, 0.96, 0.97, 0.98, 0.5])
    # Epochs 3 and 4 do not improve -> halved after epoch 4; again after epochs 5, 6.
    assert used == pytest.approx([1e-3, 1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4])
    assert trainer.learning_rate == pytest.approx(2.5e-4)


def test_reduce_lr_patience_one_is_the_seed_setting():
    trainer = make_trainer(lr=2e-4)
    used = lr_trajectory(ReduceLROnPlateau(), trainer, [0.7, 0.6, 0.65, 0.55, 0.58])
    assert used == pytest.approx([2e-4, 2e-4, 2e-4, 1e-4, 1e-4])
    assert trainer.learning_rate == pytest.approx(5e-5)


def test_reduce_lr_respects_min_lr_and_min_delta():
    trainer = make_trainer(lr=1e-3)
    reducer = ReduceLROnPlateau(factor=0.1, patience=1, min_lr=5e-5, min_delta=0.01)
    # 0.995 is not better than 1.0 by more than min_delta: it counts as a plateau.
    used = lr_trajectory(reducer, trainer, [1.0, 0.995, 0.992, 0.98, 0.975])
    assert used == pytest.approx([1e-3, 1e-3, 1e-4, 5e-5, 5e-5])


def test_reduce_lr_cooldown_skips_waiting_epochs():
    trainer = make_trainer(lr=1.0)
    reducer = ReduceLROnPlateau(factor=0.5, patience=1, cooldown=2, min_lr=0.0)
    used = lr_trajectory(reducer, trainer, [1.0, 2.0, 2.0, 2.0, 2.0, 2.0])
    # Reduced after epoch 2, then epoch 3 is cooldown. As in Keras, the counter is
    # decremented before the check, so epoch 4 (counter 1 -> 0) already waits and reduces.
    assert used == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.25, 0.25])


def test_model_checkpoint_saves_only_improvements(tmp_path):
    trainer = make_trainer()
    path = tmp_path / "ckpt" / "best.pt"
    checkpoint = ModelCheckpoint(path)
    saved_epochs = []
    checkpoint.on_train_begin(trainer)
    for epoch, value in enumerate([1.0, 0.7, 0.8, 0.6, 0.65], start=1):
        with torch.no_grad():
            trainer.model.weight.fill_(epoch)
        checkpoint.on_epoch_end(epoch, {"val_loss": value}, trainer)
        saved_epochs.append(read_sidecar(path)["epoch"])
    assert saved_epochs == [1, 2, 2, 4, 4]
    state = torch.load(path, weights_only=True)
    assert torch.all(state["weight"] == 4.0)
    sidecar = read_sidecar(path)
    assert sidecar["monitor"] == "val_loss" and sidecar["value"] == pytest.approx(0.6)
    assert sorted(p.name for p in path.parent.iterdir()) == ["best.pt", "best.pt.json"]


def test_model_checkpoint_max_mode(tmp_path):
    trainer = make_trainer()
    checkpoint = ModelCheckpoint(tmp_path / "best.pt", monitor="val_accuracy", mode="max")
    checkpoint.on_train_begin(trainer)
    for epoch, value in enumerate([0.6, 0.8, 0.7], start=1):
        checkpoint.on_epoch_end(epoch, {"val_accuracy": value}, trainer)
    assert checkpoint.saved_epoch == 2 and read_sidecar(tmp_path / "best.pt")["epoch"] == 2


def round_trip(callback, state_dir):
    """The callback's state through a file, loaded as resume loads it (weights_only)."""
    path = state_dir / "state.pt"
    torch.save(callback.state_dict(), path)
    return torch.load(path, weights_only=True)


@pytest.mark.parametrize("restore", [True, False])
def test_early_stopping_state_round_trips_and_resumes_the_same(tmp_path, restore):
    losses = [1.0, 0.8, 0.9, 0.85, 0.95]
    straight = make_trainer()
    reference = EarlyStopping(patience=3, restore_best_weights=restore)
    drive(reference, straight, losses)

    first, resumed = make_trainer(), make_trainer()
    stopper = EarlyStopping(patience=3, restore_best_weights=restore)
    drive(stopper, first, losses[:3])  # "interrupted" after epoch 3
    state = round_trip(stopper, tmp_path)
    again = EarlyStopping(patience=3, restore_best_weights=restore)
    again.on_train_begin(resumed)
    again.load_state_dict(state)
    assert (again.best, again.wait, again.best_epoch) == (0.8, 1, 2)
    for epoch, value in enumerate(losses[3:], start=4):
        with torch.no_grad():
            resumed.model.weight.fill_(epoch)
        again.on_epoch_end(epoch, {"val_loss": value}, resumed)
    again.on_train_end(resumed)
    assert again.stopped_epoch == reference.stopped_epoch == 5
    assert torch.equal(resumed.model.weight, straight.model.weight)  # epoch 2 or 5's weights


def test_reduce_lr_and_checkpoint_states_round_trip(tmp_path):
    trainer = make_trainer(lr=1.0)
    reducer = ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1, min_lr=0.0)
    lr_trajectory(reducer, trainer, [1.0, 2.0, 2.0])
    again = ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1, min_lr=0.0)
    again.load_state_dict(round_trip(reducer, tmp_path))
    assert again.state_dict() == reducer.state_dict() == {"best": 1.0, "wait": 0, "cooldown": 1}

    checkpoint = ModelCheckpoint(tmp_path / "best.pt", monitor="val_accuracy", mode="max")
    checkpoint.on_train_begin(trainer)
    checkpoint.on_epoch_end(1, {"val_accuracy": 0.7}, trainer)
    restored = ModelCheckpoint(tmp_path / "best.pt", monitor="val_accuracy", mode="max")
    restored.load_state_dict(round_trip(checkpoint, tmp_path))
    assert (restored.best, restored.saved_epoch) == (0.7, 1)
    restored.on_epoch_end(2, {"val_accuracy": 0.6}, trainer)  # not better than the restored best
    assert read_sidecar(tmp_path / "best.pt")["epoch"] == 1


def test_invalid_settings_are_rejected():
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="lowest")
    with pytest.raises(ValueError, match="factor"):
        ReduceLROnPlateau(factor=1.5)
