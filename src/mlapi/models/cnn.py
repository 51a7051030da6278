"""A Kim-style text CNN: Embedding -> dropout -> Conv1d(k=3, 5, 7) + ReLU -> pool -> Dense(1).

`hidden_size` filters per kernel width; 'same' padding keeps one output per token, so
pooling can skip the padded positions. `l2` penalises the convolution kernels.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mlapi.models.layers import check_rate, make_embedding, sequence_dropout
from mlapi.models.pooling import padding_mask, pool

KERNEL_SIZES = (3, 5, 7)


class CNNClassifier(nn.Module):
    """`forward(input_ids int64 [batch, seq]) -> logits [batch]`."""

    def __init__(
        self,
        vocab_size: int,
        *,
        embed_dim: int = 128,
        hidden_size: int = 64,
        pooling: str = "max",
        dropout: float = 0.5,
        l2: float = 0.0,
        pretrained: np.ndarray | None = None,
        freeze_embeddings: bool = False,
    ) -> None:
        super().__init__()
        check_rate("dropout", dropout)
        self.pooling, self.dropout, self.l2 = pooling, dropout, l2
        self.embedding = make_embedding(vocab_size, embed_dim, pretrained, freeze_embeddings)
        self.convs = nn.ModuleList(
            nn.Conv1d(embed_dim, hidden_size, k, padding=k // 2) for k in KERNEL_SIZES
        )
        features = hidden_size * len(KERNEL_SIZES) * (2 if pooling == "maxmean" else 1)
        self.head = nn.Linear(features, 1)
        self.head_dropout = nn.Dropout(dropout)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = sequence_dropout(self.embedding(input_ids), self.dropout, self.training)
        x = x.transpose(1, 2)  # [B, E, T]
        mask = padding_mask(input_ids)
        pooled = [
            pool(torch.relu(conv(x)).transpose(1, 2), mask, self.pooling) for conv in self.convs
        ]
        return self.head(self.head_dropout(torch.cat(pooled, dim=-1))).squeeze(-1)

    def regularization_loss(self) -> torch.Tensor | float:
        if not self.l2:
            return 0.0
        return self.l2 * sum(conv.weight.square().sum() for conv in self.convs)
