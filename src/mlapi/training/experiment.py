"""The IMDb sentiment experiment: one config, one run name, one run.

`ExperimentConfig` holds every setting that changes the result; its defaults are the
seed's recipe. The CLI flags and the run name are both derived from its fields, so a
new field (an architecture option, a pooling mode...) gets a `--flag` and, when set to
something other than its default, a tag in the run name, without touching this code.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any


def _opt(help: str, tag: str | None = None, choices: tuple[str, ...] | None = None, **kw: Any):
    """A config field with its CLI help, its run-name tag and its allowed values."""
    return field(metadata={"help": help, "tag": tag, "choices": choices}, **kw)


@dataclass(frozen=True)
class ExperimentConfig:
    """Every setting of an IMDb run. Defaults reproduce the seed's Keras recipe."""

    arch: str = _opt("network architecture", choices=("lstm",), default="lstm")
    # data and text
    vocab_size: int = _opt("vocabulary size incl. padding and OOV ids", "voc", default=20000)
    maxlen: int = _opt("tokens kept per review", "len", default=200)
    padding: str = _opt("where short reviews are padded", "pad", ("pre", "post"), default="pre")
    truncating: str = _opt("where long reviews are cut", "trunc", ("pre", "post"), default="pre")
    val_fraction: float = _opt("validation share of the training reviews", default=0.2)
    limit: int | None = _opt("use only N training reviews (quick runs)", "n", default=None)
    # network
    embed_dim: int = _opt("embedding size", "emb", default=128)
    hidden_size: int = _opt("LSTM units", "h", default=64)
    dropout: float = _opt("dropout on the LSTM inputs", "do", default=0.5)
    recurrent_dropout: float = _opt("dropout on the LSTM recurrent state", "rdo", default=0.3)
    l2: float = _opt("L2 penalty on the LSTM input kernel", "l2", default=1e-4)
    # optimisation
    optimizer: str = _opt("optimizer", choices=("adam",), default="adam")
    lr: float = _opt("learning rate", default=2e-4)
    clipnorm: float = _opt("clip the gradient norm to this (0: no clipping)", default=1.0)
    loss: str = _opt("loss", choices=("bce",), default="bce")
    batch_size: int = _opt("batch size", default=64)
    epochs: int = _opt("maximum number of epochs", default=10)
    # callbacks
    early_stopping_patience: int = _opt(
        "epochs without val_loss gain before stopping", "es", default=3
    )
    reduce_lr_patience: int = _opt(
        "epochs without val_loss gain before lowering lr", "rlr", default=2
    )
    reduce_lr_factor: float = _opt("lr multiplier on plateau", "rlrf", default=0.5)
    min_lr: float = _opt("lower bound of the learning rate", "minlr", default=1e-6)
    checkpoint_monitor: str = _opt(
        "metric that picks the best epoch's weights",
        "ckpt",
        ("val_accuracy", "val_loss"),
        default="val_accuracy",
    )
    seed: int = _opt("random seed (split, init, batches, dropout)", "seed", default=42)

    def __post_init__(self) -> None:
        for f in fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise ValueError(f"{f.name} must be one of {', '.join(choices)}")
        if not 0 < self.val_fraction < 1:
            raise ValueError("val_fraction must be between 0 and 1")
        if self.limit is not None and self.limit < 2:
            raise ValueError("limit must be at least 2 reviews")
        for name in ("vocab_size", "maxlen", "embed_dim", "hidden_size", "batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer")

    @property
    def run_name(self) -> str:
        return run_name(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ExperimentConfig:
        """Build from a saved config; unknown keys are an error, missing ones take defaults."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(unknown)}")
        return cls(**values)

    def non_defaults(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) != f.default
        }

    def cli_args(self) -> list[str]:
        """The `mlapi train imdb` flags that rebuild this config."""
        args = []
        for name, value in self.non_defaults().items():
            args += [_flag(name), "none" if value is None else _format_value(value)]
        return args


# The seed's name holds the recipe; every other setting is appended only when it
# differs from its default, e.g. `..._ep10__voc10000_len400_seed7`.
_NAMED_IN_BASE = {"arch", "optimizer", "lr", "clipnorm", "loss", "val_fraction", "batch_size",
                  "epochs"}  # fmt: skip


def run_name(config: ExperimentConfig) -> str:
    clip = f"clip{_format_value(float(config.clipnorm))}" if config.clipnorm > 0 else "noclip"
    name = (
        f"imdb_{config.arch}__{config.optimizer}{_format_value(config.lr)}_{clip}"
        f"__{config.loss}__vs{_format_value(config.val_fraction)}"
        f"__bs{config.batch_size}__ep{config.epochs}"
    )
    extras = []
    for f in fields(config):
        value = getattr(config, f.name)
        if f.name in _NAMED_IN_BASE or value == f.default:
            continue
        extras.append(f"{f.metadata.get('tag') or f.name}{_format_value(value)}")
    return "__".join([name, "_".join(extras)]) if extras else name


def _format_value(value: Any) -> str:
    """Short, file-name-safe text: 2e-4, 0.2, 1.0, 20000, post, none."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if value != 0 and abs(value) < 1e-2:
            mantissa, exponent = f"{value:e}".split("e")
            mantissa = mantissa.rstrip("0").rstrip(".")
            return f"{mantissa}e{int(exponent)}"
        return repr(value)
    return str(value)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _parse_optional_int(text: str) -> int | None:
    return None if text.lower() == "none" else int(text)


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One `--flag` per ExperimentConfig field, defaults = the seed's recipe."""
    group = parser.add_argument_group("experiment settings (defaults: the seed's recipe)")
    for f in fields(ExperimentConfig):
        kind = _parse_optional_int if f.name == "limit" else type(f.default)
        default_text = "all" if f.default is None else _format_value(f.default)
        group.add_argument(
            _flag(f.name),
            dest=f.name,
            type=kind,
            default=f.default,
            choices=f.metadata.get("choices"),
            metavar=None if f.metadata.get("choices") else f.name.upper(),
            help=f"{f.metadata['help']} (default: {default_text})",
        )


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    return ExperimentConfig(**{f.name: getattr(args, f.name) for f in fields(ExperimentConfig)})
