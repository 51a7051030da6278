"""Recurrent classifiers on PyTorch's fused kernels: LSTM or GRU, one or two directions,
stacked layers, and a choice of pooling over time.

    Embedding -> dropout (one mask per sequence) -> [Bi]LSTM/GRU x layers -> pool -> Dense(1)

`recurrent_dropout` here is DropConnect on the recurrent weights (AWD-LSTM's "weight
drop"): one mask on W_hh per batch, so training keeps the fused kernel. (The seed's
`LSTMClassifier` implements Keras' per-sequence state masks with a step loop instead.)
`l2` penalises the input kernels (W_ih of every layer), like Keras' `kernel_regularizer`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mlapi.models.layers import check_rate, make_embedding, sequence_dropout
from mlapi.models.pooling import padding_mask, pool

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


class RecurrentClassifier(nn.Module):
    """`forward(input_ids int64 [batch, seq]) -> logits [batch]`."""

    def __init__(
        self,
        vocab_size: int,
        *,
        cell: str = "gru",
        bidirectional: bool = False,
        embed_dim: int = 128,
        hidden_size: int = 64,
        num_layers: int = 1,
        pooling: str = "last",
        dropout: float = 0.5,
        recurrent_dropout: float = 0.0,
        l2: float = 0.0,
        pretrained: np.ndarray | None = None,
        freeze_embeddings: bool = False,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")
        check_rate("dropout", dropout)
        check_rate("recurrent_dropout", recurrent_dropout)
        self.pooling, self.dropout, self.l2 = pooling, dropout, l2
        self.recurrent_dropout = recurrent_dropout
        self.embedding = make_embedding(vocab_size, embed_dim, pretrained, freeze_embeddings)
        self.rnn = CELLS[cell](
            embed_dim,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        features = hidden_size * (2 if bidirectional else 1) * (2 if pooling == "maxmean" else 1)
        self.head = nn.Linear(features, 1)
        self._init_weights(cell)

    def _init_weights(self, cell: str) -> None:
        """Keras' defaults: glorot-uniform input kernels, orthogonal recurrent kernels,
        zero biases (LSTM forget gate at 1)."""
        hidden = self.rnn.hidden_size
        for name, param in self.rnn.named_parameters():
            if name.startswith("weight_ih"):
                nn.init.xavier_uniform_(param)
            elif name.startswith("weight_hh"):
                nn.init.orthogonal_(param)
            else:
                nn.init.zeros_(param)
                if cell == "lstm" and name.startswith("bias_ih"):
                    with torch.no_grad():
                        param[hidden : 2 * hidden] = 1.0
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = sequence_dropout(self.embedding(input_ids), self.dropout, self.training)
        outputs, state = self._run_rnn(x)
        if self.pooling == "last":
            h_n = state[0] if isinstance(state, tuple) else state  # [layers * dirs, B, H]
            directions = 2 if self.rnn.bidirectional else 1
            features = torch.cat(list(h_n[-directions:]), dim=-1)
        else:
            features = pool(outputs, padding_mask(input_ids), self.pooling)
        return self.head(features).squeeze(-1)

    def _run_rnn(self, x: torch.Tensor):
        if not (self.training and self.recurrent_dropout > 0):
            return self.rnn(x)
        rate = self.recurrent_dropout
        weights = {
            name: F.dropout(param, rate) if name.startswith("weight_hh") else param
            for name, param in self.rnn.named_parameters()
        }
        return torch.func.functional_call(self.rnn, weights, (x,))

    def regularization_loss(self) -> torch.Tensor | float:
        if not self.l2:
            return 0.0
        kernels = [p for n, p in self.rnn.named_parameters() if n.startswith("weight_ih")]
        return self.l2 * sum(w.square().sum() for w in kernels)
