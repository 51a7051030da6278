"""The seed's LSTM network: Keras semantics, the step loop's exactness, ONNX exportability."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from mlapi.models import lstm as lstm_module
from mlapi.models import lstm_kernel, recurrent_dropout
from mlapi.models.lstm import LSTMClassifier
from mlapi.models.recurrent_dropout import lstm_last_hidden

KERNEL = lstm_kernel.load()
needs_kernel = pytest.mark.skipif(KERNEL is None, reason="the C kernel could not be built")


def keras_lstm_reference(x, w_ih, w_hh, bias, input_masks=None, recurrent_masks=None):
    """Keras' LSTM 'implementation 1', written out with autograd ops: every gate k has its
    own input mask and recurrent mask, the same ones at every time step."""
    batch, steps, embed = x.shape
    hidden = w_hh.shape[1]
    h = x.new_zeros(batch, hidden)
    c = x.new_zeros(batch, hidden)
    w_i, w_h, b = w_ih.view(4, hidden, embed), w_hh.view(4, hidden, hidden), bias.view(4, hidden)
    for t in range(steps):
        z = []
        for k in range(4):  # i, f, g, o
            x_k = x[:, t] if input_masks is None else x[:, t] * input_masks[:, k]
            h_k = h if recurrent_masks is None else h * recurrent_masks[:, k]
            z.append(x_k @ w_i[k].t() + h_k @ w_h[k].t() + b[k])
        i, f, g, o = torch.sigmoid(z[0]), torch.sigmoid(z[1]), torch.tanh(z[2]), torch.sigmoid(z[3])
        c = f * c + i * g
        h = o * torch.tanh(c)
    return h


def random_lstm_inputs(batch, steps, embed, hidden, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, steps, embed, dtype=dtype, generator=gen)
    w_ih = torch.randn(4 * hidden, embed, dtype=dtype, generator=gen) * 0.3
    w_hh = torch.randn(4 * hidden, hidden, dtype=dtype, generator=gen) * 0.3
    bias = torch.randn(4 * hidden, dtype=dtype, generator=gen) * 0.1
    input_masks = (torch.rand(batch, 4, embed, generator=gen) > 0.5).to(dtype) / 0.5
    recurrent_masks = (torch.rand(batch, 4, hidden, generator=gen) > 0.3).to(dtype) / 0.7
    return [t.requires_grad_() for t in (x, w_ih, w_hh, bias)], input_masks, recurrent_masks


def output_and_grads(fn, tensors, *masks):
    h = fn(*tensors, *masks)
    weights = torch.linspace(-1, 1, h.numel(), dtype=h.dtype).view_as(h)
    return [h, *torch.autograd.grad(h, tensors, weights)]


def assert_all_close(actual, expected, atol):
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, atol=atol, rtol=atol)


def test_forward_returns_one_logit_per_review():
    model = LSTMClassifier(vocab_size=50, embed_dim=8, hidden_size=4)
    ids = torch.randint(0, 50, (3, 7))
    for mode in (model.train, model.eval):
        mode()
        logits = model(ids)
        assert logits.shape == (3,) and logits.dtype == torch.float32


def test_keras_initialisation_and_single_bias():
    torch.manual_seed(0)
    model = LSTMClassifier(vocab_size=100, embed_dim=16, hidden_size=8)
    lstm = model.lstm
    expected_bias = torch.zeros(32)
    expected_bias[8:16] = 1.0  # forget gate (unit_forget_bias)
    assert torch.equal(lstm.bias_ih_l0.detach(), expected_bias)
    assert torch.equal(lstm.bias_hh_l0.detach(), torch.zeros(32))
    assert not lstm.bias_hh_l0.requires_grad  # Keras' LSTM has a single bias
    assert model.embedding.weight.abs().max() <= 0.05
    w_hh = lstm.weight_hh_l0.detach()
    torch.testing.assert_close(w_hh.t() @ w_hh, torch.eye(8), atol=1e-5, rtol=0)  # orthogonal
    limit = (6 / (16 + 32)) ** 0.5  # glorot uniform on the [E, 4H] kernel
    assert lstm.weight_ih_l0.abs().max() <= limit
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    keras_count = 100 * 16 + 4 * 8 * (16 + 8 + 1) + 8 + 1  # Keras' model.summary() total
    assert trainable == keras_count


def test_regularization_is_l2_on_the_input_kernel_only():
    model = LSTMClassifier(vocab_size=20, embed_dim=6, hidden_size=4, l2=1e-4)
    expected = 1e-4 * (model.lstm.weight_ih_l0.detach() ** 2).sum()
    reg = model.regularization_loss()
    torch.testing.assert_close(reg.detach(), expected)
    reg.backward()
    torch.testing.assert_close(
        model.lstm.weight_ih_l0.grad, 2e-4 * model.lstm.weight_ih_l0.detach()
    )
    assert model.lstm.weight_hh_l0.grad is None
    assert model.embedding.weight.grad is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_step_loop_without_masks_matches_nn_lstm(dtype):
    """Same weights, no dropout: the step loop and the fused nn.LSTM agree, values and grads."""
    torch.manual_seed(0)
    lstm = nn.LSTM(12, 64, batch_first=True).to(dtype)
    x = torch.randn(9, 15, 12, dtype=dtype, requires_grad=True)
    tensors = [x, lstm.weight_ih_l0, lstm.weight_hh_l0]

    def fused(x, w_ih, w_hh):
        return lstm(x)[1][0][0]

    def step_loop(x, w_ih, w_hh):
        return lstm_last_hidden(x, w_ih, w_hh, lstm.bias_ih_l0 + lstm.bias_hh_l0)

    atol = 1e-5 if dtype == torch.float32 else 1e-12
    assert_all_close(output_and_grads(step_loop, tensors), output_and_grads(fused, tensors), atol)


@pytest.mark.parametrize(
    ("batch", "steps", "embed", "hidden"),
    [(5, 7, 6, 4), (9, 11, 8, 16), (10, 9, 12, 32), (8, 13, 16, 64), (7, 5, 3, 64)],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_step_loop_matches_keras_cell_with_per_gate_masks(batch, steps, embed, hidden, dtype):
    """float32 runs the C kernel (every blocking path: H % 64, % 32, % 16, other; batch
    tails); float64 runs the PyTorch loop. Both must equal the Keras reference cell."""
    tensors, input_masks, recurrent_masks = random_lstm_inputs(batch, steps, embed, hidden, dtype)
    masks = (input_masks, recurrent_masks)
    expected = output_and_grads(keras_lstm_reference, tensors, *masks)
    actual = output_and_grads(lstm_last_hidden, tensors, *masks)
    assert_all_close(actual, expected, atol=2e-5 if dtype == torch.float32 else 1e-12)


@pytest.fixture(params=[1, 3], ids=["1-thread", "3-threads"])
def torch_threads(request):
    """Run with this many torch threads (the C kernel splits the batch rows as many ways)."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@needs_kernel
def test_c_kernel_matches_the_pytorch_loop(torch_threads):
    gen = torch.Generator().manual_seed(1)
    batch, steps, hidden = 11, 17, 64
    x_proj = torch.randn(batch, steps, 4 * hidden, generator=gen)
    w_hh = torch.randn(4 * hidden, hidden, generator=gen) * 0.2
    masks = (torch.rand(batch, 4 * hidden, generator=gen) > 0.3).float() / 0.7
    grad_h = torch.randn(batch, hidden, generator=gen)
    bias = torch.randn(4 * hidden, generator=gen)
    with_c = recurrent_dropout._forward_c(KERNEL, x_proj, w_hh, bias, masks)
    with_torch = recurrent_dropout._forward_torch(x_proj, w_hh, bias, masks)
    assert_all_close(with_c, with_torch, atol=1e-5)
    saved = with_torch[1:]
    grads_c = recurrent_dropout._backward_c(KERNEL, grad_h, w_hh, masks, *saved)
    grads_torch = recurrent_dropout._backward_torch(None, grad_h, w_hh, masks, *saved)
    assert_all_close(grads_c, grads_torch, atol=1e-4)


def capture_masks(monkeypatch) -> list[dict]:
    """Instrument the model: record the masks that each training forward passes on."""
    calls: list[dict] = []
    original = lstm_module.lstm_last_hidden

    def recording(x, w_ih, w_hh, bias, input_masks=None, recurrent_masks=None):
        calls.append({"x": x.detach(), "input": input_masks, "recurrent": recurrent_masks})
        return original(x, w_ih, w_hh, bias, input_masks, recurrent_masks)

    monkeypatch.setattr(lstm_module, "lstm_last_hidden", recording)
    return calls


def test_recurrent_dropout_masks_are_fixed_over_time_and_keras_like(monkeypatch):
    calls = capture_masks(monkeypatch)
    torch.manual_seed(0)
    model = LSTMClassifier(vocab_size=30, embed_dim=8, hidden_size=16, recurrent_dropout=0.3)
    ids = torch.randint(0, 30, (400, 6))
    model.train()
    logits = model(ids)
    model(ids)
    assert len(calls) == 2
    first, second = calls
    assert first["recurrent"].shape == (400, 4, 16)  # per sequence and gate, no time axis
    assert first["input"].shape == (400, 4, 8)
    for masks, rate in ((first["recurrent"], 0.3), (first["input"], 0.5)):
        assert masks.unique().tolist() == pytest.approx([0.0, 1 / (1 - rate)])
        assert (masks == 0).float().mean().item() == pytest.approx(rate, abs=0.03)
    assert not torch.equal(first["recurrent"], second["recurrent"])  # fresh masks per batch
    # The output is the Keras cell run with these very masks held at every time step.
    lstm = model.lstm
    expected = keras_lstm_reference(
        first["x"], lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0 + lstm.bias_hh_l0,
        first["input"], first["recurrent"],
    )  # fmt: skip
    torch.testing.assert_close(logits, model.head(expected).squeeze(-1), atol=1e-5, rtol=1e-5)


def test_dropout_is_off_in_evaluation(monkeypatch):
    calls = capture_masks(monkeypatch)
    torch.manual_seed(0)
    model = LSTMClassifier(vocab_size=30, embed_dim=8, hidden_size=16).eval()
    ids = torch.randint(0, 30, (5, 9))
    with torch.no_grad():
        first, second = model(ids), model(ids)
        lstm = model.lstm
        step_loop = lstm_last_hidden(
            model.embedding(ids), lstm.weight_ih_l0, lstm.weight_hh_l0,
            lstm.bias_ih_l0 + lstm.bias_hh_l0,
        )  # fmt: skip
    assert calls == []  # the masked step loop never runs in evaluation
    assert torch.equal(first, second)
    torch.testing.assert_close(first, model.head(step_loop).squeeze(-1), atol=1e-6, rtol=1e-6)


def test_dropout_without_recurrent_dropout_uses_one_input_mask():
    """Keras' fused path (recurrent_dropout=0): one input mask, shared by all gates."""
    torch.manual_seed(0)
    model = LSTMClassifier(vocab_size=30, embed_dim=8, hidden_size=4, recurrent_dropout=0.0)
    ids = torch.randint(0, 30, (6, 5))
    model.train()
    torch.manual_seed(1)
    logits = model(ids)
    torch.manual_seed(1)
    mask = torch.empty(6, 1, 8).bernoulli_(0.5).div_(0.5)
    expected = model.head(model.lstm(model.embedding(ids) * mask)[1][0][0]).squeeze(-1)
    torch.testing.assert_close(logits, expected)


def test_kernel_falls_back_to_pytorch_without_a_compiler(monkeypatch, tmp_path):
    monkeypatch.setattr(lstm_kernel, "_state", {})
    monkeypatch.setenv("MLAPI_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    with pytest.warns(UserWarning, match="PyTorch loop"):
        assert lstm_kernel.load() is None
    assert list(tmp_path.iterdir()) == []  # no half-built library left behind
    tensors, input_masks, recurrent_masks = random_lstm_inputs(3, 4, 5, 16, torch.float32)
    expected = keras_lstm_reference(*tensors, input_masks, recurrent_masks)
    actual = lstm_last_hidden(*tensors, input_masks, recurrent_masks)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def test_kernel_can_be_disabled(monkeypatch):
    monkeypatch.setattr(lstm_kernel, "_state", {})
    monkeypatch.setenv("MLAPI_LSTM_KERNEL", "torch")
    assert lstm_kernel.load() is None


def test_eval_model_exports_to_onnx_with_dynamic_batch_and_length(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = LSTMClassifier(vocab_size=40, embed_dim=8, hidden_size=4).eval()
    path = tmp_path / "model.onnx"
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.randint(0, 40, (3, 11)),), str(path), input_names=["input_ids"],
            output_names=["logits"], dynamo=True, dynamic_shapes=({0: batch, 1: seq},),
        )  # fmt: skip
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(3, 11), (5, 7), (1, 30)]:
        ids = torch.randint(0, 40, shape)
        (onnx_logits,) = session.run(None, {"input_ids": ids.numpy()})
        with torch.no_grad():
            expected = model(ids).numpy()
        np.testing.assert_allclose(onnx_logits, expected, atol=1e-5, rtol=1e-5)
