"""`build_network(config, vocab_size)`: the network named by `config.arch`.

    lstm          the seed's LSTMClassifier (Keras recurrent dropout) with last-state
                  pooling and one layer; other poolings/layers use the fused LSTM below
    bilstm, gru, bigru   RecurrentClassifier on PyTorch's fused kernels
    cnn           CNNClassifier (kernels 3, 5, 7; hidden_size filters each)
    transformer   TransformerClassifier (hidden_size = feed-forward width)

`config` is any object with the ExperimentConfig fields used below. Pooling "auto" means
the architecture's usual one: the last state for recurrent nets, max for the CNN, mean
for the Transformer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from mlapi.models.names import ARCHS, RECURRENT_ARCHS, resolved_pooling


def uses_seed_lstm(config: Any) -> bool:
    """True when `lstm` means the seed's exact network (Keras recurrent dropout)."""
    return (
        config.arch == "lstm"
        and resolved_pooling(config.arch, config.pooling) == "last"
        and config.num_layers == 1
    )


def build_network(config: Any, vocab_size: int, pretrained: np.ndarray | None = None) -> nn.Module:
    """The network for `config`; `pretrained` [vocab_size, embed_dim] initialises the
    embedding (kept frozen when config.embeddings_mode == "frozen")."""
    if config.arch not in ARCHS:
        raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {config.arch!r}")
    pooling = resolved_pooling(config.arch, config.pooling)
    freeze = pretrained is not None and config.embeddings_mode == "frozen"
    common = {
        "embed_dim": config.embed_dim,
        "hidden_size": config.hidden_size,
        "pooling": pooling,
        "dropout": config.dropout,
        "l2": config.l2,
        "pretrained": pretrained,
        "freeze_embeddings": freeze,
    }
    if uses_seed_lstm(config):
        return _seed_lstm(config, vocab_size, pretrained, freeze)
    if config.arch in RECURRENT_ARCHS:
        from mlapi.models.recurrent import RecurrentClassifier

        return RecurrentClassifier(
            vocab_size,
            cell="lstm" if config.arch.endswith("lstm") else "gru",
            bidirectional=config.arch.startswith("bi"),
            num_layers=config.num_layers,
            recurrent_dropout=config.recurrent_dropout,
            **common,
        )
    if config.arch == "cnn":
        from mlapi.models.cnn import CNNClassifier

        return CNNClassifier(vocab_size, **common)
    from mlapi.models.transformer import TransformerClassifier

    return TransformerClassifier(
        vocab_size, maxlen=config.maxlen, num_layers=config.num_layers, heads=config.heads, **common
    )


def _seed_lstm(config: Any, vocab_size: int, pretrained: np.ndarray | None, freeze: bool):
    from mlapi.models.lstm import LSTMClassifier

    network = LSTMClassifier(
        vocab_size,
        embed_dim=config.embed_dim,
        hidden_size=config.hidden_size,
        dropout=config.dropout,
        recurrent_dropout=config.recurrent_dropout,
        l2=config.l2,
    )
    if pretrained is not None:
        from mlapi.models.layers import make_embedding

        network.embedding = make_embedding(vocab_size, config.embed_dim, pretrained, freeze)
    return network


def count_parameters(network: nn.Module) -> dict[str, int]:
    """{"total": all parameters, "trainable": those the optimizer updates}."""
    params = list(network.parameters())
    return {
        "total": sum(p.numel() for p in params),
        "trainable": sum(p.numel() for p in params if p.requires_grad),
    }


def describe_network(config: Any) -> str:
    """One line for the run report, in the seed's (Keras) words."""
    pooling = resolved_pooling(config.arch, config.pooling)
    emb = f"Embedding(vocab, {config.embed_dim}"
    if config.embeddings != "none":
        emb += f", {config.embeddings}, {config.embeddings_mode}"
    emb += ")"
    if uses_seed_lstm(config):
        return (
            f"{emb} → LSTM({config.hidden_size}, dropout={config.dropout}, "
            f"recurrent_dropout={config.recurrent_dropout}, L2={config.l2:g}) → Dense(1, sigmoid)"
        )
    if config.arch in RECURRENT_ARCHS:
        cell = config.arch.removeprefix("bi").upper()
        layer = f"{cell}({config.hidden_size})"
        if config.arch.startswith("bi"):
            layer = f"Bidirectional({layer})"
        return (
            f"{emb} → dropout {config.dropout} → {layer} x {config.num_layers} "
            f"(weight-drop {config.recurrent_dropout} on W_hh, L2={config.l2:g}) → "
            f"{pooling} pooling → Dense(1, sigmoid)"
        )
    if config.arch == "cnn":
        return (
            f"{emb} → dropout {config.dropout} → Conv1D({config.hidden_size}, k=3|5|7, relu) → "
            f"{pooling} pooling → dropout → Dense(1, sigmoid)"
        )
    return (
        f"{emb} + positions({config.maxlen}) → {config.num_layers} x TransformerEncoder("
        f"heads={config.heads}, ff={config.hidden_size}, dropout={config.dropout}) → "
        f"{pooling} pooling → Dense(1, sigmoid)"
    )
