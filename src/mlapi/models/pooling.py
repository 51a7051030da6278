"""Pooling over time that ignores padding (id 0), shared by the recurrent, CNN and
Transformer classifiers. Every mode is plain tensor ops, so it exports to ONNX."""

from __future__ import annotations

import torch

from mlapi.models.names import POOLINGS

_VERY_NEGATIVE = -1e4  # below any activation of these networks, finite so ONNX stays exact


def padding_mask(input_ids: torch.Tensor) -> torch.Tensor:
    """float [batch, seq, 1]: 1 at real tokens, 0 at padding."""
    return (input_ids != 0).unsqueeze(-1).to(torch.float32)


def pool(outputs: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """[batch, seq, features] -> [batch, features] (maxmean: [batch, 2 * features]).

    `last` takes the last position (the last real token with 'pre' padding); max and
    mean skip padded positions; a review with no token at all pools to zeros.
    """
    if mode == "last":
        return outputs[:, -1]
    if mode == "max":
        return _masked_max(outputs, mask)
    if mode == "mean":
        return _masked_mean(outputs, mask)
    if mode == "maxmean":
        return torch.cat([_masked_max(outputs, mask), _masked_mean(outputs, mask)], dim=-1)
    raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {mode!r}")


def _masked_max(outputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    filled = outputs * mask + (1.0 - mask) * _VERY_NEGATIVE
    any_token = mask.amax(dim=1)  # [batch, 1]
    return filled.amax(dim=1) * any_token


def _masked_mean(outputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (outputs * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
