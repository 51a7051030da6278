"""The seed's IMDb network: Embedding(vocab, 128) -> LSTM(64) -> Dense(1), returning logits.

Keras semantics kept on purpose (Keras 2 and 3 agree on all of these):
- dropout masks are drawn once per sequence and applied at every time step, inverted
  (kept units scaled by 1 / (1 - rate)), and only in training;
- with `recurrent_dropout > 0` Keras switches the LSTM to its "implementation 1", where
  each of the four gates gets its own input mask ([B, E]) and its own recurrent mask on
  h(t-1) ([B, H]). With `recurrent_dropout == 0` there is one input mask for all gates.
- `l2`: Keras `kernel_regularizer=L2(l2)` = l2 * sum(W_ih ** 2), added to the loss. It
  covers the input kernel only (Keras' recurrent kernel has a separate
  `recurrent_regularizer`, unset in the seed); it is not decoupled weight decay.
- one LSTM bias (Keras has one), initialised with the forget gate at 1 (`unit_forget_bias`).

Without recurrent dropout (always in evaluation) the LSTM runs on the fused `nn.LSTM`
kernel, which is also what ONNX export sees. With it, training runs the exact step loop of
`mlapi.models.recurrent_dropout` on the same weights.
"""

from __future__ import annotations

import torch
from torch import nn

from mlapi.models.recurrent_dropout import lstm_last_hidden


class LSTMClassifier(nn.Module):
    """Embedding -> single-layer LSTM (last hidden state) -> linear; `forward` returns logits."""

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 128,
        hidden_size: int = 64,
        dropout: float = 0.5,
        recurrent_dropout: float = 0.3,
        l2: float = 1e-4,
    ) -> None:
        super().__init__()
        for name, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {rate}")
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.l2 = l2
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Keras defaults: uniform(-0.05, 0.05) embeddings, glorot-uniform kernels,
        orthogonal recurrent kernel, zero biases with the forget gate's at 1."""
        nn.init.uniform_(self.embedding.weight, -0.05, 0.05)
        nn.init.xavier_uniform_(self.lstm.weight_ih_l0)
        nn.init.orthogonal_(self.lstm.weight_hh_l0)
        hidden = self.lstm.hidden_size
        with torch.no_grad():
            self.lstm.bias_ih_l0.zero_()
            # nn.LSTM's gate order: input, forget, cell, output
            self.lstm.bias_ih_l0[hidden : 2 * hidden] = 1.0
            self.lstm.bias_hh_l0.zero_()
        self.lstm.bias_hh_l0.requires_grad_(False)  # Keras has one bias: keep the second at 0
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """int64 [batch, seq] -> logits [batch]."""
        x = self.embedding(input_ids)  # [B, T, E]
        if self.training and self.recurrent_dropout > 0:
            h = self._masked_step_loop(x)
        else:
            if self.training and self.dropout > 0:
                x = x * _dropout_mask(x.new_empty(x.shape[0], 1, x.shape[2]), self.dropout)
            _, (h_n, _) = self.lstm(x)
            h = h_n[0]
        return self.head(h).squeeze(-1)

    def regularization_loss(self) -> torch.Tensor:
        """Keras `kernel_regularizer=L2(l2)`: l2 * sum of squares of the input kernel."""
        return self.l2 * self.lstm.weight_ih_l0.square().sum()

    def _masked_step_loop(self, x: torch.Tensor) -> torch.Tensor:
        """Keras' implementation 1: per-gate input and recurrent masks, fixed over time."""
        lstm, batch = self.lstm, x.shape[0]
        input_masks = None
        if self.dropout > 0:
            input_masks = _dropout_mask(x.new_empty(batch, 4, x.shape[2]), self.dropout)
        recurrent_masks = _dropout_mask(
            x.new_empty(batch, 4, lstm.hidden_size), self.recurrent_dropout
        )
        bias = lstm.bias_ih_l0 + lstm.bias_hh_l0
        return lstm_last_hidden(
            x, lstm.weight_ih_l0, lstm.weight_hh_l0, bias, input_masks, recurrent_masks
        )


def _dropout_mask(like: torch.Tensor, rate: float) -> torch.Tensor:
    """Inverted-dropout mask shaped like `like`: 0, or 1 / (1 - rate) with prob. 1 - rate."""
    keep = 1.0 - rate
    return torch.empty_like(like).bernoulli_(keep).div_(keep)
