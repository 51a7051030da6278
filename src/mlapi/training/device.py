"""Where a run computes: `--device auto|cpu|cuda` and `--precision fp32|bf16`.

    device = resolve_device("auto")        # cuda when torch sees a GPU, else cpu

On CUDA the seed's LSTM with recurrent dropout runs its step loop in PyTorch ops (the C
kernel is the CPU path) and the other recurrent networks use cuDNN's fused kernels.
`use_deterministic_kernels` asks for PyTorch's deterministic CUDA kernels, so the same seed
on the same device gives the same numbers (on CPU they already are). bf16 is autocast on
CUDA only.
"""

from __future__ import annotations

import argparse
import os

from mlapi.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16")


def add_device_arguments(parser: argparse.ArgumentParser, precision: bool = True) -> None:
    parser.add_argument(
        "--device",
        default="auto",
        metavar="{auto,cpu,cuda}",
        help="where to compute (auto: cuda when a GPU is visible, else cpu; default: auto)",
    )
    if precision:
        parser.add_argument(
            "--precision",
            default="fp32",
            metavar="{fp32,bf16}",
            help="fp32, or bf16 autocast (CUDA only; default: fp32)",
        )


def resolve_device(name: str, precision: str = "fp32"):
    """The torch.device for `--device NAME`; a ConfigError of one line when it cannot be."""
    import torch

    if name not in DEVICES:
        raise ConfigError(f"--device must be one of {', '.join(DEVICES)}, got {name!r}")
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    cuda = torch.cuda.is_available()
    if name == "cuda" and not cuda:
        raise ConfigError("--device cuda: no CUDA device is available here (use auto or cpu)")
    device = torch.device("cuda" if name == "cuda" or (name == "auto" and cuda) else "cpu")
    if precision == "bf16" and device.type != "cuda":
        raise ConfigError("--precision bf16 needs a CUDA device (--device cuda), got cpu")
    return device


def use_deterministic_kernels(device) -> None:
    """Deterministic cuDNN/cuBLAS kernels on CUDA (nothing to do on CPU)."""
    import torch

    if device.type != "cuda":
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)
