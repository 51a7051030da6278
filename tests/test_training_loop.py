"""The fit loop: tiny real trainings on synthetic learnable data."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mlapi.artifacts import read_sidecar, sha256_file
from mlapi.errors import DataError
from mlapi.models.lstm import LSTMClassifier
from mlapi.training import callbacks as callbacks_module
from mlapi.training.callbacks import Callback, EarlyStopping, ModelCheckpoint, ReduceLROnPlateau
from mlapi.training.loop import FitConfig, _clip_gradients, evaluate, fit, predict_proba

VOCAB, STEPS = 20, 12


def learnable_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random ids in 3..19; a positive review holds id 1 somewhere, a negative one id 2."""
    rng = np.random.default_rng(seed)
    x = rng.integers(3, VOCAB, size=(n, STEPS), dtype=np.int32)
    y = rng.integers(0, 2, size=n)
    x[np.arange(n), rng.integers(0, STEPS, size=n)] = np.where(y == 1, 1, 2)
    return x, y.astype(np.float32)


def tiny_model(seed: int = 0) -> LSTMClassifier:
    torch.manual_seed(seed)
    return LSTMClassifier(VOCAB, embed_dim=8, hidden_size=8)


CONFIG = FitConfig(batch_size=32, epochs=2, learning_rate=3e-2, clipnorm=1.0, seed=42)


@pytest.fixture(scope="module")
def data():
    return learnable_data(320, seed=0), learnable_data(96, seed=1)


def test_tiny_fit_learns_and_records_keras_like_history(data):
    train, val = data
    history = fit(tiny_model(), train, val, CONFIG, progress=False)
    assert [e["epoch"] for e in history.epochs] == [1, 2]
    first, second = history.epochs
    assert set(first) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"}
    assert second["loss"] < first["loss"]
    assert second["val_loss"] < first["val_loss"]
    assert second["val_accuracy"] > 0.7
    assert first["lr"] == CONFIG.learning_rate and first["seconds"] > 0
    assert not history.interrupted and not history.stopped_early
    assert history.metric("val_loss") == [first["val_loss"], second["val_loss"]]


def test_fit_is_reproducible_with_the_same_seed(data):
    train, val = data
    runs = [fit(tiny_model(), train, val, CONFIG, progress=False) for _ in range(2)]
    for a, b in zip(*(run.epochs for run in runs), strict=True):
        assert {k: v for k, v in a.items() if k != "seconds"} == {
            k: v for k, v in b.items() if k != "seconds"
        }


def test_val_loss_includes_the_regularization_term(data):
    _, (x_val, y_val) = data
    model = tiny_model().eval()
    with torch.no_grad():
        logits = model(torch.as_tensor(x_val, dtype=torch.int64))
        bce = F.binary_cross_entropy_with_logits(logits, torch.as_tensor(y_val)).item()
        reg = model.regularization_loss().item()
    result = evaluate(model, x_val, y_val)
    assert result["loss"] == pytest.approx(bce + reg, rel=1e-5)
    assert reg > 0


def test_early_stopping_ends_fit_and_restores_the_best_epoch(data):
    train, val = data
    weights_by_epoch = {}

    class Snapshot(Callback):
        def on_epoch_end(self, epoch, logs, trainer):
            weights_by_epoch[epoch] = trainer.model.head.weight.detach().clone()

    model = tiny_model()
    # Monitoring "epoch" in min mode: epoch 1 is the best, epoch 2 exhausts patience=1.
    stopper = EarlyStopping(monitor="epoch", patience=1)
    config = replace(CONFIG, epochs=5, learning_rate=1e-2)
    history = fit(model, train, val, config, [Snapshot(), stopper], progress=False)
    assert history.stopped_early and len(history.epochs) == 2
    assert history.restored_epoch == 1
    assert torch.equal(model.head.weight, weights_by_epoch[1])


class InterruptAt(Callback):
    """Raise KeyboardInterrupt (as Ctrl-C would) at a given epoch and batch."""

    def __init__(self, epoch: int, batch: int):
        self.at, self.epoch = (epoch, batch), 0

    def on_epoch_begin(self, epoch, trainer):
        self.epoch = epoch

    def on_batch_end(self, batch, logs, trainer):
        if (self.epoch, batch) == self.at:
            raise KeyboardInterrupt


def test_ctrl_c_returns_the_history_so_far_and_keeps_the_checkpoint(data, tmp_path):
    train, val = data
    path = tmp_path / "best.pt"
    callbacks = [ModelCheckpoint(path, monitor="epoch", mode="max"), InterruptAt(2, 1)]
    config = replace(CONFIG, epochs=3, learning_rate=1e-2)
    history = fit(tiny_model(), train, val, config, callbacks, progress=False)
    assert history.interrupted and not history.stopped_early
    assert [e["epoch"] for e in history.epochs] == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "best.pt.json"]
    assert read_sidecar(path)["epoch"] == 1
    model = tiny_model(seed=123)
    model.load_state_dict(torch.load(path, weights_only=True))


def without_seconds(history):
    return [{k: v for k, v in epoch.items() if k != "seconds"} for epoch in history.epochs]


def test_resume_from_a_plain_data_snapshot_gives_the_uninterrupted_history(data, tmp_path):
    train, val = data
    config = replace(CONFIG, epochs=4, learning_rate=1e-2)

    def callbacks(interrupt_epoch):
        return [
            EarlyStopping(patience=3),  # keeps best weights: tensors in its state
            ReduceLROnPlateau(patience=0, factor=0.5, min_delta=0.5),  # lowers lr every epoch
            ModelCheckpoint(tmp_path / "best.pt"),
            InterruptAt(interrupt_epoch, 1),
        ]

    straight = fit(tiny_model(), train, val, config, callbacks(99), progress=False)
    snapshot = tmp_path / "last.pt"
    first = fit(tiny_model(), train, val, config, callbacks(3), False, snapshot)
    assert first.interrupted and len(first.epochs) == 2
    state = torch.load(snapshot, weights_only=True)  # plain data: no pickled objects
    assert state["epoch"] == 2 and state["callbacks"][1]["wait"] == 0
    resumed = fit(tiny_model(seed=5), train, val, config, callbacks(99), False, snapshot, True)
    assert [e["lr"] for e in resumed.epochs] == [1e-2, 1e-2, 5e-3, 2.5e-3]
    assert without_seconds(resumed) == without_seconds(straight)
    assert resumed.restored_epoch == straight.restored_epoch is not None


def test_ctrl_c_while_saving_leaves_the_previous_checkpoint_whole(data, tmp_path, monkeypatch):
    train, val = data
    path = tmp_path / "best.pt"
    real_save = torch.save
    saves = []

    def save_then_interrupt(obj, f):
        saves.append(f)
        if len(saves) == 2:  # the second checkpoint: write half a file, then "Ctrl-C"
            with open(f, "wb") as out:
                out.write(b"half a checkpoint")
            raise KeyboardInterrupt
        real_save(obj, f)

    monkeypatch.setattr(callbacks_module.torch, "save", save_then_interrupt)
    callbacks = [ModelCheckpoint(path, monitor="epoch", mode="max")]
    config = replace(CONFIG, epochs=3, learning_rate=1e-2)
    history = fit(tiny_model(), train, val, config, callbacks, progress=False)
    assert history.interrupted and len(history.epochs) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "best.pt.json"]
    assert read_sidecar(path)["epoch"] == 1
    assert read_sidecar(path)["sha256"] == sha256_file(path)
    tiny_model().load_state_dict(torch.load(path, weights_only=True))


def test_progress_bar_shows_epoch_loss_and_accuracy(data, capsys):
    train, val = data
    config = replace(CONFIG, epochs=1, learning_rate=1e-2)
    fit(tiny_model(), train, val, config, progress=True)
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "loss=" in err and "accuracy=" in err and "val_loss=" in err


def test_predict_proba_is_in_evaluation_mode(data):
    (x, _), _ = data
    model = tiny_model()
    model.train()
    probs = predict_proba(model, x[:50], batch_size=16)
    assert probs.shape == (50,) and probs.dtype == np.float32
    assert np.all((probs > 0) & (probs < 1))
    np.testing.assert_array_equal(probs, predict_proba(model, x[:50]))  # no dropout
    assert model.training  # the caller's mode is restored
    model.eval()
    with torch.no_grad():
        expected = torch.sigmoid(model(torch.as_tensor(x[:50], dtype=torch.int64))).numpy()
    np.testing.assert_allclose(probs, expected, rtol=1e-6)


def grads_with_norms(*norms: float) -> list[nn.Parameter]:
    params = []
    for norm in norms:
        p = nn.Parameter(torch.zeros(4))
        p.grad = torch.full((4,), norm / 2.0)  # ||(n/2, n/2, n/2, n/2)|| = n
        params.append(p)
    return params


def test_clipnorm_clips_each_parameter_like_keras():
    params = grads_with_norms(3.0, 0.5)
    _clip_gradients(params, FitConfig(batch_size=1, epochs=1, learning_rate=1.0, clipnorm=1.0))
    norms = [p.grad.norm().item() for p in params]
    assert norms == pytest.approx([1.0, 0.5], rel=1e-5)


def test_global_clipnorm_scales_all_gradients_together():
    params = grads_with_norms(3.0, 4.0)
    config = FitConfig(batch_size=1, epochs=1, learning_rate=1.0, clipnorm=1.0, clip_mode="global")
    _clip_gradients(params, config)
    norms = [p.grad.norm().item() for p in params]
    assert norms == pytest.approx([0.6, 0.8], rel=1e-5)


def test_bad_shapes_raise_a_data_error(data):
    (x, y), val = data
    with pytest.raises(DataError, match="expected x"):
        fit(tiny_model(), (x, y[:-1]), val, CONFIG, progress=False)


def test_invalid_clip_mode_is_rejected():
    with pytest.raises(ValueError, match="clip_mode"):
        FitConfig(batch_size=1, epochs=1, learning_rate=1.0, clip_mode="sometimes")
