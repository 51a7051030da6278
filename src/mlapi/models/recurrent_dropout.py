"""A single-layer LSTM with Keras' dropout masks, exact and fast on CPU.

Keras (2 and 3) runs an LSTM with `recurrent_dropout > 0` as its "implementation 1": every
gate gets its own input-dropout mask [B, E] and its own recurrent-dropout mask [B, H],
drawn once per batch and applied at every time step:

    z_k(t) = (x(t) * m_k) @ W_ih_k^T + (h(t-1) * r_k) @ W_hh_k^T + b_k,   k in i, f, g, o

The recurrent masks rule out the fused `nn.LSTM` kernel, so this module runs the
recurrence as a step loop with a hand-written backward through time:

- the input projection for all time steps is one batched matmul, outside the loop (the
  per-gate input masks are folded into per-row weights, so no masked copies of x);
- the loop keeps only h(t-1) @ W_hh and the gate arithmetic, in the C kernel of
  `mlapi.models.lstm_kernel` (or in PyTorch ops where that kernel is unavailable);
- dW_hh is accumulated in the backward loop, while each step's values are in cache.

Gates are stored internally in the order (o, i, f, g): one `sigmoid` covers o, i, f.
"""

from __future__ import annotations

import torch

from mlapi.models import lstm_kernel

_TO_INTERNAL = [3, 0, 1, 2]  # gate blocks (i, f, g, o) of nn.LSTM -> (o, i, f, g)


def lstm_last_hidden(
    x: torch.Tensor,
    weight_ih: torch.Tensor,
    weight_hh: torch.Tensor,
    bias: torch.Tensor,
    input_masks: torch.Tensor | None = None,
    recurrent_masks: torch.Tensor | None = None,
) -> torch.Tensor:
    """Last hidden state h(T) [B, H] of an LSTM over batch-first x [B, T, E].

    Weights are in `nn.LSTM`'s layout and gate order (i, f, g, o); `bias` = bias_ih +
    bias_hh. Masks, per gate in that order: `input_masks` [B, 4, E] multiply x(t),
    `recurrent_masks` [B, 4, H] multiply h(t-1); None means no dropout.
    """
    batch, steps, embed = x.shape
    hidden = weight_hh.shape[1]
    w_ih_t = weight_ih.view(4, hidden, embed)[_TO_INTERNAL].reshape(4 * hidden, embed).t()
    w_hh = weight_hh.view(4, hidden, hidden)[_TO_INTERNAL].reshape(4 * hidden, hidden)
    b = bias.view(4, hidden)[_TO_INTERNAL].reshape(4 * hidden)
    if input_masks is None:
        x_proj = torch.mm(x.reshape(batch * steps, embed), w_ih_t)
    else:
        # (x * m_k) @ W_k^T == x @ (W_k * m_k)^T: one [E, 4H] weight matrix per batch row.
        masks_t = input_masks[:, _TO_INTERNAL].transpose(1, 2).unsqueeze(3)  # [B, E, 4, 1]
        masked_w = w_ih_t.reshape(1, embed, 4, hidden) * masks_t
        x_proj = torch.bmm(x, masked_w.view(batch, embed, 4 * hidden))
    if recurrent_masks is None:
        masks = x.new_ones(batch, 4, hidden)
    else:
        masks = recurrent_masks[:, _TO_INTERNAL].contiguous()
    x_proj = x_proj.view(batch, steps, 4 * hidden)
    return _MaskedLSTM.apply(x_proj, w_hh, b, masks.view(batch, 4 * hidden))


class _MaskedLSTM(torch.autograd.Function):
    """x_proj [B, T, 4H] (x @ W_ih^T; gates o, i, f, g), w_hh [4H, H], bias [4H],
    masks [B, 4H] -> h(T). (The bias is added in the loop: cheaper than a broadcast.)"""

    @staticmethod
    def forward(ctx, x_proj, w_hh, bias, masks):
        lib = _kernel(x_proj)
        if lib is not None:
            args = x_proj.contiguous(), w_hh, bias.contiguous(), masks.contiguous()
            h, *saved = _forward_c(lib, *args)
        else:
            h, *saved = _forward_torch(x_proj, w_hh, bias, masks)
        ctx.save_for_backward(w_hh, masks, *saved)
        return h

    @staticmethod
    def backward(ctx, grad_h):
        w_hh, masks, *saved = ctx.saved_tensors
        lib = _kernel(saved[0])
        step_loop = _backward_c if lib is not None else _backward_torch
        d_pre, grad_w_hh, grad_bias = step_loop(
            lib, grad_h.contiguous(), w_hh.contiguous(), masks, *saved
        )
        return d_pre, grad_w_hh, grad_bias, None


def _kernel(like: torch.Tensor):
    """The C kernel when it applies (float32 on CPU) and could be built, else None."""
    if like.dtype != torch.float32 or like.device.type != "cpu":
        return None
    return lstm_kernel.load()


def _buffers(x_proj: torch.Tensor):
    """h(T), then what backward needs: activations, c(t-1), tanh(c(t)), h(t-1)."""
    batch, steps, gates = x_proj.shape
    hid = gates // 4
    h = x_proj.new_empty(batch, hid)
    acts = torch.empty_like(x_proj)
    cells = x_proj.new_empty(batch, steps + 1, hid)  # c(t-1) at index t
    tanh_cells = x_proj.new_empty(batch, steps, hid)
    h_prev = x_proj.new_empty(batch, steps, hid)  # h(t-1), before the masks
    cells[:, 0] = 0.0  # the loops fill in every later step
    h_prev[:, 0] = 0.0
    return h, acts, cells, tanh_cells, h_prev


def _forward_c(lib, x_proj, w_hh, bias, masks):
    buffers = h, acts, cells, tanh_cells, h_prev = _buffers(x_proj)
    batch, steps, gates = x_proj.shape
    w_hh_t = w_hh.t().contiguous()
    args = [x_proj, w_hh_t, bias, masks, acts, cells, tanh_cells, h_prev, h]
    pointers = [lstm_kernel.ptr(t) for t in args]
    lib.lstm_forward(steps, batch, gates // 4, *pointers, lstm_kernel.threads_for(batch))
    return buffers


def _backward_c(lib, grad_h, w_hh, masks, acts, cells, tanh_cells, h_prev):
    """d_pre, dW_hh and dbias; each thread adds its rows' dW_hh and dbias to its own buffer."""
    batch, steps, gates = acts.shape
    threads = lstm_kernel.threads_for(batch)
    d_pre = torch.empty_like(acts)
    dh, dc = torch.empty_like(grad_h), torch.empty_like(grad_h)
    grad_w, grad_b = acts.new_zeros(threads, gates, gates // 4), acts.new_zeros(threads, gates)
    args = [grad_h, w_hh, masks, acts, cells, tanh_cells, h_prev, d_pre, dh, dc, grad_w, grad_b]
    pointers = [lstm_kernel.ptr(t) for t in args]
    lib.lstm_backward(steps, batch, gates // 4, *pointers, threads)
    return d_pre, grad_w.sum(0), grad_b.sum(0)


def _forward_torch(x_proj, w_hh, bias, masks):
    """The same step loop in PyTorch ops: the fallback, and the C kernel's reference."""
    buffers = h, acts, cells, tanh_cells, h_prev = _buffers(x_proj)
    batch, steps, gates = x_proj.shape
    hid = gates // 4
    w_per_gate = w_hh.view(4, hid, hid)
    masks = masks.view(batch, 4, hid)
    for t in range(steps):
        masked_h = h_prev[:, t].unsqueeze(1) * masks  # [B, 4, H]
        recurrent = torch.einsum("bgk,gjk->bgj", masked_h, w_per_gate).reshape(batch, gates)
        z = x_proj[:, t] + bias + recurrent
        a = torch.cat([torch.sigmoid(z[:, : 3 * hid]), torch.tanh(z[:, 3 * hid :])], dim=1)
        o, i, f, g = a.split(hid, dim=1)
        c = f * cells[:, t] + i * g
        acts[:, t], cells[:, t + 1], tanh_cells[:, t] = a, c, torch.tanh(c)
        if t + 1 < steps:
            h_prev[:, t + 1] = o * tanh_cells[:, t]
        else:
            h.copy_(o * tanh_cells[:, t])
    return buffers


def _backward_torch(lib, grad_h, w_hh, masks, acts, cells, tanh_cells, h_prev):
    batch, steps, gates = acts.shape
    hid = gates // 4
    w_per_gate = w_hh.view(4, hid, hid)
    masks = masks.view(batch, 4, hid)
    d_pre = torch.empty_like(acts)
    dh, dc = grad_h.clone(), torch.zeros_like(grad_h)
    for t in range(steps - 1, -1, -1):
        o, i, f, g = acts[:, t].split(hid, dim=1)
        tc, c_prev = tanh_cells[:, t], cells[:, t]
        dc = dc + dh * o * (1 - tc * tc)
        d = torch.cat(
            [dh * tc * o * (1 - o), dc * g * i * (1 - i), dc * c_prev * f * (1 - f),
             dc * i * (1 - g * g)],
            dim=1,
        )  # fmt: skip
        d_pre[:, t] = d
        dc = dc * f
        if t > 0:
            per_gate = torch.einsum("bgj,gjk->bgk", d.view(batch, 4, hid), w_per_gate)
            dh = (per_gate * masks).sum(1)
    # dW_hh[g] = sum over rows b of mask_g[b] * (d_pre_g[b]^T @ h_prev[b])
    per_row = torch.bmm(d_pre.transpose(1, 2), h_prev).view(batch, 4, hid, hid)
    grad_w_hh = (per_row * masks.view(batch, 4, 1, hid)).sum(0).view(gates, hid)
    return d_pre, grad_w_hh, d_pre.sum((0, 1))
