"""A single-layer LSTM with Keras' recurrent dropout, exact and fast on CPU.

Keras' `recurrent_dropout` multiplies h(t-1) by one mask per sequence before the recurrent
matmul, so the recurrence cannot use the fused `nn.LSTM` kernel. This module runs it as a
step loop with a hand-written backward through time:

- the input projection x @ W_ih for all time steps is one matmul, outside the loop;
- the forward loop keeps only h(t-1) @ W_hh and the gate arithmetic, in place;
- the backward loop keeps only d_gates(t) @ W_hh and the cell's chain rule; every local
  derivative is computed for all steps at once before it, and dW_hh after it in one matmul.

Gates are stored internally in the order (o, i, f, g) so that one `sigmoid_` covers o, i, f.
"""

from __future__ import annotations

import torch


def lstm_last_hidden(
    x: torch.Tensor,
    weight_ih: torch.Tensor,
    weight_hh: torch.Tensor,
    bias: torch.Tensor,
    recurrent_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Last hidden state h(T) [B, H] of an LSTM over batch-first x [B, T, E].

    Weights are in `nn.LSTM`'s layout and gate order (i, f, g, o); `bias` is
    bias_ih + bias_hh. `recurrent_mask` [B, H] multiplies h(t-1) at every step.
    """
    hidden = weight_hh.shape[1]
    order = _internal_gate_order(hidden, x.device)
    steps, batch = x.shape[1], x.shape[0]
    x_time_major = x.transpose(0, 1).reshape(steps * batch, x.shape[2])
    x_proj = torch.addmm(bias[order], x_time_major, weight_ih[order].t())
    if recurrent_mask is None:
        recurrent_mask = x.new_ones(batch, hidden)
    x_proj = x_proj.view(steps, batch, 4 * hidden)
    return _MaskedLSTM.apply(x_proj, weight_hh[order], recurrent_mask)


def _internal_gate_order(hidden: int, device: torch.device) -> torch.Tensor:
    """Row indices taking nn.LSTM's gate blocks (i, f, g, o) to (o, i, f, g)."""
    blocks = torch.arange(4 * hidden, device=device).view(4, hidden)
    return blocks[[3, 0, 1, 2]].reshape(-1)


class _MaskedLSTM(torch.autograd.Function):
    """x_proj [T, B, 4H] (bias included, gates o, i, f, g), w_hh [4H, H], mask [B, H] -> h(T)."""

    @staticmethod
    def forward(ctx, x_proj, w_hh, mask):
        steps, batch, gates = x_proj.shape
        hid = gates // 4
        w_hh_t = w_hh.t()
        acts = torch.empty_like(x_proj)  # gate activations o, i, f, g at every step
        cells = x_proj.new_zeros(steps + 1, batch, hid)  # c(t-1) at index t
        tanh_cells = x_proj.new_empty(steps, batch, hid)
        h_in = x_proj.new_zeros(steps, batch, hid)  # masked h(t-1), the matmul's input at t
        h = x_proj.new_empty(batch, hid)
        for t in range(steps):
            a = acts[t]
            torch.addmm(x_proj[t], h_in[t], w_hh_t, out=a)
            a[:, : 3 * hid].sigmoid_()
            a[:, 3 * hid :].tanh_()
            c = cells[t + 1]
            torch.mul(a[:, 2 * hid : 3 * hid], cells[t], out=c)  # f * c(t-1)
            c.addcmul_(a[:, hid : 2 * hid], a[:, 3 * hid :])  # + i * g
            torch.tanh(c, out=tanh_cells[t])
            torch.mul(a[:, :hid], tanh_cells[t], out=h)  # h = o * tanh(c)
            if t + 1 < steps:
                torch.mul(h, mask, out=h_in[t + 1])
        ctx.save_for_backward(w_hh, mask, acts, cells, tanh_cells, h_in)
        return h

    @staticmethod
    def backward(ctx, grad_h):
        w_hh, mask, acts, cells, tanh_cells, h_in = ctx.saved_tensors
        steps, batch, gates = acts.shape
        hid = gates // 4
        o, i, f, g = acts.split(hid, dim=2)
        # Local derivatives for all steps at once.
        dc_per_dh = o * (1 - tanh_cells * tanh_cells)
        coef = torch.empty_like(acts)  # d pre-activation / d h(t) for o; / d c(t) for i, f, g
        torch.mul(tanh_cells, o * (1 - o), out=coef[..., :hid])
        torch.mul(g, i * (1 - i), out=coef[..., hid : 2 * hid])
        torch.mul(cells[:-1], f * (1 - f), out=coef[..., 2 * hid : 3 * hid])
        torch.mul(i, 1 - g * g, out=coef[..., 3 * hid :])

        d_pre = torch.empty_like(acts)
        dh = grad_h.contiguous().clone()
        dc = torch.empty_like(dh)
        dc_carry = torch.zeros_like(dh)
        for t in range(steps - 1, -1, -1):
            torch.addcmul(dc_carry, dh, dc_per_dh[t], out=dc)
            d = d_pre[t]
            torch.mul(dh, coef[t, :, :hid], out=d[:, :hid])
            torch.mul(
                dc.unsqueeze(1),
                coef[t, :, hid:].view(batch, 3, hid),
                out=d[:, hid:].view(batch, 3, hid),
            )
            if t > 0:
                torch.mul(dc, f[t], out=dc_carry)
                torch.mm(d, w_hh, out=dh)
                dh.mul_(mask)
        grad_w_hh = d_pre.view(-1, gates).t() @ h_in.view(-1, hid)
        return d_pre, grad_w_hh, None
