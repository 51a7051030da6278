"""ONNX export of the sentiment network and the parity check against PyTorch.

The exported graph takes `input_ids` int64 [batch, seq] (both dynamic) and returns
`probability` float32 [batch] = P(positive): the sigmoid is part of the graph. The
model directory (model.onnx, vocabulary.json, metadata.json) is built in a staging
folder and installed as a new version (`mlapi.versions`) with one rename, only after
ONNX Runtime has matched PyTorch.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mlapi.artifacts import (
    atomic_path,
    atomic_write_json,
    sha256_file,
    utc_now_iso,
)
from mlapi.errors import ArtifactError
from mlapi.evaluation import LABELS
from mlapi.training.loop import predict_proba
from mlapi.versions import new_version

OPSET = 17
PARITY_TOLERANCE = 1e-4
PARITY_REVIEWS = 256
MODEL_FILE = "model.onnx"
VOCABULARY_FILE = "vocabulary.json"
METADATA_FILE = "metadata.json"


class ProbabilityModel(nn.Module):
    """Wraps a network that returns one logit per review so it returns P(positive) [batch]."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.network(input_ids)).reshape(-1)


def export_onnx(network: nn.Module, path: str | os.PathLike, opset: int = OPSET) -> None:
    """Write `network` (in eval mode) as ONNX with dynamic batch and sequence length."""
    wrapper = ProbabilityModel(network).eval()
    example = torch.ones(2, 7, dtype=torch.int64)  # sizes > 1 so no axis is specialised
    with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter: the dynamo one gives the same ops (one ONNX LSTM) and
        # latency but takes seconds longer. Its warnings are expected: the LSTM batch-size
        # one is disproved by check_parity, which runs another batch size and length.
        warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size")
        warnings.filterwarnings("ignore", message="You are using the legacy TorchScript")
        warnings.filterwarnings("ignore", message="The feature will be removed")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            wrapper,
            (example,),
            str(tmp),
            input_names=["input_ids"],
            output_names=["probability"],
            dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "probability": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )


def onnx_probabilities(path: str | os.PathLike, ids: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (probability,) = session.run(["probability"], {"input_ids": np.asarray(ids, dtype=np.int64)})
    return probability


def check_parity(
    network: nn.Module,
    onnx_path: str | os.PathLike,
    ids: np.ndarray,
    tolerance: float = PARITY_TOLERANCE,
) -> float:
    """Max |ONNX Runtime - PyTorch| over `ids` and a shorter, smaller batch; raise if > tolerance.

    The second batch (3 reviews, half the length) proves both axes really are dynamic.
    """
    ids = np.asarray(ids, dtype=np.int64)
    short = ids[:3, ids.shape[1] // 2 :]
    worst = 0.0
    for batch in (ids, short):
        expected = predict_proba(network, batch)
        try:
            got = onnx_probabilities(onnx_path, batch)
        except Exception as exc:  # ORT raises its own types; the user needs one message
            raise ArtifactError(f"ONNX Runtime cannot run the exported model: {exc}") from exc
        if got.shape != expected.shape:
            raise ArtifactError(
                f"ONNX output shape {got.shape} differs from PyTorch's {expected.shape}"
            )
        worst = max(worst, float(np.max(np.abs(got - expected))))
    if not worst <= tolerance:
        raise ArtifactError(
            f"ONNX export failed the parity check: max |ORT - PyTorch| = {worst:.2e} "
            f"> {tolerance:.0e} on {len(ids)} reviews; nothing was installed"
        )
    return worst


@dataclass(frozen=True)
class ExportResult:
    directory: Path
    max_abs_diff: float
    metadata: dict[str, Any]


def export_sentiment_model(
    network: nn.Module,
    vocabulary: Any,
    parity_ids: np.ndarray,
    models_dir: str | os.PathLike,
    *,
    run_name: str,
    arch: str,
    metrics: dict[str, Any],
    versions: dict[str, str],
) -> ExportResult:
    """Export, check parity, then install `<models_dir>/sentiment/<next version>/` in one rename.

    On any failure (parity, Ctrl-C) the staging folder is removed and the installed
    model, if any, is left exactly as it was.
    """
    with new_version(Path(models_dir), "sentiment") as install:
        staging = install.staging
        export_onnx(network, staging / MODEL_FILE)
        vocabulary.save(staging / VOCABULARY_FILE)
        parity_ids = np.asarray(parity_ids)[:PARITY_REVIEWS]
        max_diff = check_parity(network, staging / MODEL_FILE, parity_ids)
        metadata = {
            "name": "sentiment",
            "run_name": run_name,
            "arch": arch,
            "metrics": metrics,
            "files": {
                name: {"sha256": sha256_file(staging / name)}
                for name in (MODEL_FILE, VOCABULARY_FILE)
            },
            "created_at": utc_now_iso(),
            "versions": versions,
            "labels": list(LABELS),
            "opset": OPSET,
            "parity": {
                "reviews": int(len(parity_ids)),
                "max_abs_diff": max_diff,
                "tolerance": PARITY_TOLERANCE,
            },
        }
        atomic_write_json(staging / METADATA_FILE, metadata)
    return ExportResult(install.installed, max_diff, metadata)
