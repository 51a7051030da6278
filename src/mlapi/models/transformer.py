"""A small Transformer encoder: token + learned position embeddings -> N pre-norm
encoder blocks (multi-head self-attention that ignores padding, ReLU feed-forward) ->
pool -> Dense(1).

Written out with plain ops (no fused fast path, no nested tensors) so training,
evaluation and the exported ONNX graph compute the same thing. Position embeddings
cover `maxlen` positions: the model takes any sequence length up to `maxlen` (the
server always pads to the vocabulary's maxlen).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from mlapi.models.layers import check_rate, make_embedding, sequence_dropout
from mlapi.models.pooling import padding_mask, pool

_MASKED = -1e9  # attention score of a padded key: exp() underflows to exactly 0


class EncoderBlock(nn.Module):
    def __init__(self, dim: int, heads: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"embed_dim ({dim}) must be divisible by heads ({heads})")
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff_dim), nn.ReLU(), nn.Linear(ff_dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_bias: torch.Tensor) -> torch.Tensor:
        """x [B, T, D]; key_bias [B, 1, 1, T] (0 for tokens, -1e9 for padding)."""
        batch, seq, dim = x.shape
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        q, k, v = (t.reshape(batch, seq, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(dim // self.heads) + key_bias
        attended = (self.drop(scores.softmax(dim=-1)) @ v).transpose(1, 2).reshape(batch, seq, dim)
        x = x + self.drop(self.out(attended))
        return x + self.drop(self.ff(self.norm2(x)))


class TransformerClassifier(nn.Module):
    """`forward(input_ids int64 [batch, seq <= maxlen]) -> logits [batch]`."""

    def __init__(
        self,
        vocab_size: int,
        *,
        maxlen: int,
        embed_dim: int = 128,
        hidden_size: int = 256,
        num_layers: int = 2,
        heads: int = 4,
        pooling: str = "mean",
        dropout: float = 0.1,
        l2: float = 0.0,
        pretrained: np.ndarray | None = None,
        freeze_embeddings: bool = False,
    ) -> None:
        super().__init__()
        check_rate("dropout", dropout)
        self.pooling, self.dropout, self.l2 = pooling, dropout, l2
        self.embedding = make_embedding(vocab_size, embed_dim, pretrained, freeze_embeddings)
        self.position = nn.Embedding(maxlen, embed_dim)
        nn.init.normal_(self.position.weight, std=0.02)
        self.blocks = nn.ModuleList(
            EncoderBlock(embed_dim, heads, hidden_size, dropout) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim * (2 if pooling == "maxmean" else 1), 1)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.embedding(input_ids) + self.position(positions).unsqueeze(0)
        x = sequence_dropout(x, self.dropout, self.training)
        mask = padding_mask(input_ids)  # [B, T, 1]
        key_bias = ((1.0 - mask) * _MASKED).transpose(1, 2).unsqueeze(1)  # [B, 1, 1, T]
        for block in self.blocks:
            x = block(x, key_bias)
        return self.head(pool(self.norm(x), mask, self.pooling)).squeeze(-1)

    def regularization_loss(self) -> torch.Tensor | float:
        if not self.l2:
            return 0.0
        kernels = [m.weight for m in self.blocks.modules() if isinstance(m, nn.Linear)]
        return self.l2 * sum(w.square().sum() for w in kernels)
