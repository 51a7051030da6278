"""The IMDb experiment's settings: one frozen config, its `--flags`, its run name. No torch.

`ExperimentConfig` holds every setting that changes the result; its defaults are the
seed's recipe. The CLI flags and the run name are both derived from its fields, so a
new field (an architecture option, a pooling mode...) gets a `--flag` and, when set to
something other than its default, a tag in the run name, without touching this code.
A value out of range or inconsistent with another raises `ConfigError` with one line
naming the flag, the value and what is allowed.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
import shlex
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mlapi.errors import ConfigError
from mlapi.models.names import ARCHS, POOLING_CHOICES


def _opt(
    help: str,
    tag: str | None = None,
    choices: tuple[str, ...] | None = None,
    name_format: Any = None,
    metavar: str | None = None,
    **kw: Any,
):
    """A config field with its CLI help, its run-name tag and its allowed values
    (`name_format(value)`, when given, writes the value in the run name)."""
    metadata = {"help": help, "tag": tag, "choices": choices, "name_format": name_format}
    return field(metadata=metadata | {"metavar": metavar}, **kw)


EMBEDDING_NAMES = ("none", "word2vec")  # or the path of a GloVe-format file


def _file_stem(value: str) -> str:
    """A path as a file-name-safe run-name tag: its stem (`glove.6B.100d`)."""
    if value in EMBEDDING_NAMES:
        return value
    name = Path(value).name.removesuffix(".gz").removesuffix(".txt").removesuffix(".vec")
    return re.sub(r"[^A-Za-z0-9.-]+", "-", name) or "file"


@dataclass(frozen=True)
class ExperimentConfig:
    """Every setting of an IMDb run. Defaults reproduce the seed's Keras recipe."""

    arch: str = _opt("network architecture", choices=ARCHS, default="lstm")
    # data and text
    # The seed states neither: both were chosen on validation, three seeds per candidate
    # (benchmarks/imdb_seed_selection.py).
    vocab_size: int = _opt("vocabulary size incl. padding and OOV ids", "voc", default=50000)
    maxlen: int = _opt("tokens kept per review", "len", default=300)
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
    pooling: str = _opt(
        "pooling over time (auto: last state for RNNs, max for cnn, mean for transformer)",
        "pool",
        POOLING_CHOICES,
        default="auto",
    )
    num_layers: int = _opt("stacked recurrent or encoder layers", "layers", default=1)
    heads: int = _opt("attention heads (transformer)", "heads", default=4)
    embeddings: str = _opt(
        "pretrained embeddings: none, word2vec (trained on the training + unlabeled "
        "reviews, cached) or PATH of a GloVe-format text file",
        "pre",
        name_format=_file_stem,
        metavar="{none,word2vec,PATH}",
        default="none",
    )
    embeddings_mode: str = _opt(
        "fine-tune the pretrained embeddings or keep them frozen",
        "train",
        ("finetune", "frozen"),
        default="finetune",
    )
    # optimisation
    optimizer: str = _opt("optimizer", choices=("adam",), default="adam")
    lr: float = _opt("learning rate", default=2e-4)
    clipnorm: float = _opt("clip the gradient norm to this (0: no clipping)", default=1.0)
    clip_mode: str = _opt(
        "per_parameter: Keras clipnorm; global: Keras global_clipnorm",
        "clipmode",
        ("per_parameter", "global"),
        default="per_parameter",
    )
    loss: str = _opt("loss", choices=("bce",), default="bce")
    batch_size: int = _opt("batch size", default=64)
    epochs: int = _opt("maximum number of epochs", default=10)
    # callbacks
    early_stopping_patience: int = _opt(
        "epochs without val_loss gain before stopping", "es", default=3
    )
    reduce_lr_patience: int = _opt(
        "epochs without val_loss gain before lowering lr", "rlr", default=1
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
            _check_type(f, getattr(self, f.name))
        problem = _first_problem(self)
        if problem is not None:
            raise InvalidSetting(*problem)

    @property
    def run_name(self) -> str:
        return run_name(self)

    def encoding(self) -> dict[str, Any]:
        """The data settings of this config, as `mlapi.data.imdb.load_encoded` names them."""
        return {
            "num_words": self.vocab_size,
            "maxlen": self.maxlen,
            "padding": self.padding,
            "truncating": self.truncating,
            "val_fraction": self.val_fraction,
            "seed": self.seed,
            "limit": self.limit,
        }

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ExperimentConfig:
        """Build from a saved config or a YAML mapping; text values are parsed as the flags
        parse them (YAML reads 1e-3 as text). Unknown keys are an error, missing ones take
        defaults. Errors name the keys (`val_fraction`), not the flags."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown config keys: {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        try:
            return _build(values)
        except InvalidSetting as exc:
            raise ConfigError(exc.describe(flags=False)) from None

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
            args += [flag(name), "none" if value is None else format_value(value)]
        return args


class InvalidSetting(ConfigError):
    """One setting's problem: `describe(flags=True)` names the flag, else the config key."""

    def __init__(self, name: str, requirement: str, value: Any) -> None:
        self.name, self.requirement, self.value = name, requirement, value
        super().__init__(self.describe(flags=True))

    def describe(self, *, flags: bool) -> str:
        text = f"{flag(self.name)} must be {self.requirement}, got {self.value!r}"
        if flags:
            return text
        return re.sub(r"--([a-z][a-z-]*)", lambda m: m[1].replace("-", "_"), text)


# -- checks ----------------------------------------------------------------------------------

_POSITIVE = ("vocab_size", "maxlen", "embed_dim", "hidden_size", "batch_size", "epochs",
             "num_layers", "heads")  # fmt: skip
_RATES = ("dropout", "recurrent_dropout")  # a share of units dropped: [0, 1)
_NON_NEGATIVE = ("l2", "clipnorm", "min_lr", "early_stopping_patience", "reduce_lr_patience")


def _first_problem(c: ExperimentConfig) -> tuple[str, str, Any] | None:
    """(field, what is allowed, value) for the first setting that is not allowed, or None."""
    for f in fields(c):
        choices, value = f.metadata.get("choices"), getattr(c, f.name)
        if choices and value not in choices:
            return f.name, f"one of {', '.join(choices)}", value
    checks = [
        *((n, getattr(c, n) >= 1, "a positive integer") for n in _POSITIVE),
        ("vocab_size", c.vocab_size >= 3, "at least 3 (0 padding, 1 out-of-vocabulary, 2.. words)"),
        ("val_fraction", 0 < c.val_fraction < 1, "between 0 and 1"),
        ("limit", c.limit is None or c.limit >= 2, "at least 2 reviews, or none for all"),
        *((n, 0 <= getattr(c, n) < 1, "in [0, 1)") for n in _RATES),
        *((n, getattr(c, n) >= 0, "0 or more") for n in _NON_NEGATIVE),
        ("lr", c.lr > 0, "a positive number"),
        ("reduce_lr_factor", 0 < c.reduce_lr_factor < 1, "between 0 and 1"),
        ("min_lr", c.min_lr <= c.lr, f"at most --lr ({format_value(c.lr)})"),
        ("embeddings", bool(c.embeddings.strip()), "none, word2vec or the PATH of a file"),
        ("seed", 0 <= c.seed < 2**32, "an integer in [0, 2**32)"),
        (
            "heads",
            c.arch != "transformer" or c.heads < 1 or c.embed_dim % c.heads == 0,
            f"a divisor of --embed-dim ({c.embed_dim}) for the transformer",
        ),
    ]
    for name, ok, requirement in checks:
        if not ok:
            return name, requirement, getattr(c, name)
    return None


def _kind(f: dataclasses.Field) -> type:
    return int if f.name == "limit" else type(f.default)


def _check_type(f: dataclasses.Field, value: Any) -> None:
    kind = _kind(f)
    if value is None and f.default is None:
        return
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise InvalidSetting(f.name, "a finite number", value)
        return
    if not isinstance(value, kind) or isinstance(value, bool):
        choices = f.metadata.get("choices")
        allowed = f"one of {', '.join(choices)}" if choices else _KIND_WORDS[kind]
        raise InvalidSetting(f.name, allowed, value)


_KIND_WORDS = {int: "an integer", float: "a number", str: "text"}


def _parse(f: dataclasses.Field, value: Any) -> Any:
    """A flag's or YAML's text as the field's type; other values are left for the checks."""
    if not isinstance(value, str) or _kind(f) is str:
        if _kind(f) is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value
    text = value.strip()
    if f.default is None and text.lower() in ("none", "all"):
        return None
    try:
        return _kind(f)(text)
    except ValueError:
        raise InvalidSetting(f.name, _KIND_WORDS[_kind(f)], value) from None


def _build(values: dict[str, Any]) -> ExperimentConfig:
    by_name = {f.name: f for f in fields(ExperimentConfig)}
    return ExperimentConfig(**{k: _parse(by_name[k], v) for k, v in values.items()})


# -- run names -------------------------------------------------------------------------------

# The seed's name holds the recipe; every other setting is appended only when it
# differs from its default, e.g. `..._ep10__voc10000_len400_seed7`.
_NAMED_IN_BASE = {"arch", "optimizer", "lr", "clipnorm", "loss", "val_fraction", "batch_size",
                  "epochs"}  # fmt: skip


def run_name(config: ExperimentConfig) -> str:
    clip = f"clip{format_value(float(config.clipnorm))}" if config.clipnorm > 0 else "noclip"
    name = (
        f"imdb_{config.arch}__{config.optimizer}{format_value(config.lr)}_{clip}"
        f"__{config.loss}__vs{format_value(config.val_fraction)}"
        f"__bs{config.batch_size}__ep{config.epochs}"
    )
    extras = []
    for f in fields(config):
        value = getattr(config, f.name)
        if f.name in _NAMED_IN_BASE or value == f.default:
            continue
        text = (f.metadata.get("name_format") or format_value)(value)
        extras.append(f"{f.metadata.get('tag') or f.name}{text}")
    return "__".join([name, "_".join(extras)]) if extras else name


def format_value(value: Any) -> str:
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


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


# -- flags -----------------------------------------------------------------------------------


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One `--flag` per ExperimentConfig field, defaults = the seed's recipe. Values stay
    text here: `config_from_args` parses and checks them, so a bad one is one line."""
    group = parser.add_argument_group("experiment settings (defaults: the seed's recipe)")
    for f in fields(ExperimentConfig):
        default_text = "all" if f.default is None else format_value(f.default)
        group.add_argument(
            flag(f.name),
            dest=f.name,
            default=f.default,
            metavar=_metavar(f),
            help=f"{f.metadata['help']} (default: {default_text})",
        )


def _metavar(f: dataclasses.Field) -> str:
    choices = f.metadata.get("choices")
    if choices:
        return "{" + ",".join(choices) + "}"
    return f.metadata.get("metavar") or {int: "N", float: "X"}[_kind(f)]


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    """The config of parsed flags; raises ConfigError naming the flag of a bad value."""
    return _build({f.name: getattr(args, f.name) for f in fields(ExperimentConfig)})


def train_command(config: ExperimentConfig, data: str | os.PathLike | None) -> str:
    """The `mlapi train imdb` command line that reproduces `config` on `data`."""
    args = ["mlapi", "train", "imdb"]
    if data is not None:
        args += ["--data", str(data)]
    return shlex.join(args + config.cli_args())
