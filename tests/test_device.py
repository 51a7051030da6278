"""--device and --precision: one-line errors for what this machine cannot do, the same
numbers for the same seed on the same device, and the CUDA path where a GPU is present."""

import numpy as np
import pytest
import torch
from helpers.reviews import tiny_reviews

from mlapi.cli import main
from mlapi.errors import ConfigError
from mlapi.models.lstm import LSTMClassifier
from mlapi.text import Vocabulary
from mlapi.training.device import resolve_device
from mlapi.training.loop import FitConfig, fit, predict_proba

NO_CUDA = not torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(NO_CUDA, reason="no CUDA device on this machine")


def test_auto_is_cuda_when_available_else_cpu():
    assert resolve_device("auto").type == ("cpu" if NO_CUDA else "cuda")
    assert resolve_device("cpu").type == "cpu"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--device", "gpu"], "--device must be one of auto, cpu, cuda, got 'gpu'"),
        (["--device", "cpu", "--precision", "fp16"],
         "--precision must be one of fp32, bf16, got 'fp16'"),
        (["--device", "cpu", "--precision", "bf16"],
         "--precision bf16 needs a CUDA device (--device cuda), got cpu"),
    ],
)  # fmt: skip
def test_bad_device_flags_are_one_line(argv, message, capsys, tmp_path):
    code = main(["train", "imdb", "--data", str(tmp_path), "--no-track", *argv])
    err = capsys.readouterr().err
    assert code == 2 and err == f"mlapi: error: {message}\n"


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")
@pytest.mark.parametrize("command", [["train", "imdb", "--no-track"], ["evaluate", "some_run"]])
def test_cuda_asked_without_cuda_is_one_line(command, capsys, tmp_path):
    assert main([*command, "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "mlapi: error: --device cuda: no CUDA device is available here (use auto or cpu)\n"
    )
    with pytest.raises(ConfigError):
        resolve_device("cuda")


def train_tiny(device: str, recurrent_dropout: float, precision: str = "fp32"):
    texts, labels = tiny_reviews(200)
    vocabulary = Vocabulary(num_words=40, maxlen=16).fit(texts)
    x = vocabulary.encode(texts)
    torch.manual_seed(0)
    network = LSTMClassifier(vocabulary.size, embed_dim=8, hidden_size=8, dropout=0.2,
                             recurrent_dropout=recurrent_dropout)  # fmt: skip
    config = FitConfig(epochs=2, batch_size=32, learning_rate=0.02, clipnorm=1.0, seed=7,
                       threads=1, device=device, precision=precision)  # fmt: skip
    history = fit(network, (x[:160], labels[:160]), (x[160:], labels[160:]), config,
                  progress=False)  # fmt: skip
    return history, predict_proba(network, x[160:])


@pytest.mark.parametrize("recurrent_dropout", [0.0, 0.3])
def test_same_seed_same_device_same_numbers_on_cpu(recurrent_dropout):
    first, probs_1 = train_tiny("cpu", recurrent_dropout)
    second, probs_2 = train_tiny("cpu", recurrent_dropout)
    without_time = [{k: v for k, v in e.items() if k != "seconds"} for e in first.epochs]
    assert without_time == [{k: v for k, v in e.items() if k != "seconds"} for e in second.epochs]
    np.testing.assert_array_equal(probs_1, probs_2)


@needs_cuda
@pytest.mark.parametrize("recurrent_dropout", [0.0, 0.3])  # cuDNN LSTM, the PyTorch step loop
def test_same_seed_same_numbers_on_cuda(recurrent_dropout):
    first, probs_1 = train_tiny("cuda", recurrent_dropout)
    second, probs_2 = train_tiny("cuda", recurrent_dropout)
    assert [e["val_loss"] for e in first.epochs] == [e["val_loss"] for e in second.epochs]
    np.testing.assert_array_equal(probs_1, probs_2)
    assert 0 <= first.epochs[-1]["val_accuracy"] <= 1


@needs_cuda
def test_bf16_trains_on_cuda():
    history, probs = train_tiny("cuda", 0.3, precision="bf16")
    assert np.isfinite([e["loss"] for e in history.epochs]).all() and probs.dtype == np.float32
