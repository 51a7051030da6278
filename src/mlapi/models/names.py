"""Architecture and pooling names, read by the torch-free training config (its flags and
checks) and by the network registry. No torch import here.
"""

from __future__ import annotations

RECURRENT_ARCHS = ("lstm", "bilstm", "gru", "bigru")
ARCHS = (*RECURRENT_ARCHS, "cnn", "transformer")
POOLINGS = ("last", "max", "mean", "maxmean")  # what `models.pooling.pool` computes
POOLING_CHOICES = ("auto", *POOLINGS)  # "auto": the architecture's usual pooling
AUTO_POOLING = {"cnn": "max", "transformer": "mean"}  # every other architecture: "last"


def resolved_pooling(arch: str, pooling: str) -> str:
    """The pooling that `pooling` means for `arch` ("auto" resolved)."""
    return AUTO_POOLING.get(arch, "last") if pooling == "auto" else pooling
