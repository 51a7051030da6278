"""Small pieces shared by the classifiers: the embedding (random or pretrained) and
Keras-style dropout with one mask per sequence."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def make_embedding(
    vocab_size: int, embed_dim: int, pretrained: np.ndarray | None = None, freeze: bool = False
) -> nn.Embedding:
    """nn.Embedding with Keras' uniform(-0.05, 0.05) init, or the `pretrained` matrix
    ([vocab_size, embed_dim]); `freeze` keeps it out of training."""
    embedding = nn.Embedding(vocab_size, embed_dim)
    if pretrained is None:
        nn.init.uniform_(embedding.weight, -0.05, 0.05)
    else:
        if pretrained.shape != (vocab_size, embed_dim):
            raise ValueError(
                f"pretrained embeddings are {pretrained.shape}, expected {(vocab_size, embed_dim)}"
            )
        with torch.no_grad():
            embedding.weight.copy_(torch.as_tensor(pretrained, dtype=torch.float32))
    embedding.weight.requires_grad_(not freeze)
    return embedding


def sequence_dropout(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Inverted dropout on [batch, seq, features] with one mask per sequence (the same
    features dropped at every time step, as Keras' RNN `dropout`)."""
    if not training or rate <= 0:
        return x
    keep = 1.0 - rate
    mask = torch.empty_like(x[:, :1, :]).bernoulli_(keep).div_(keep)
    return x * mask


def check_rate(name: str, rate: float) -> None:
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {rate}")
