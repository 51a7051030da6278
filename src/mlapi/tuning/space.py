"""The space file of `mlapi tune`:

    base: "--arch bigru --embeddings word2vec --epochs 4"   # fixed flags of `mlapi train imdb`
    metric: val_accuracy        # or val_loss
    mode: max                   # or min
    search:                     # flag name (without --) -> distribution
      lr: {loguniform: [1.0e-4, 3.0e-3]}
      hidden_size: {choice: [32, 64, 128]}
      dropout: {uniform: [0.1, 0.5]}
      maxlen: {randint: [200, 500]}      # Tune's randint: 500 itself is never drawn

Every problem is one ConfigError naming the file and the key (`search.dropout: ...`).
Each distribution's ends (every choice) are checked as settings over `base`, so only a
combination of searched values can still fail; such a trial is reported as failed.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from mlapi.errors import ConfigError
from mlapi.training.config import ExperimentConfig

SPACE_KEYS = ("base", "metric", "mode", "search")
METRICS = {"val_accuracy": "max", "val_loss": "min"}
DISTRIBUTIONS = ("loguniform", "uniform", "choice", "randint")


@dataclass(frozen=True)
class SearchSpace:
    base: dict[str, Any]  # config keys fixed for every trial (from the base flags)
    base_flags: str
    metric: str
    mode: str
    search: dict[str, tuple[str, list]]  # config key -> (distribution, its arguments)

    def tune_space(self) -> dict[str, Any]:
        """The `param_space` of a Ray Tuner."""
        from ray import tune

        build = {"loguniform": tune.loguniform, "uniform": tune.uniform,
                 "randint": tune.randint, "choice": tune.choice}  # fmt: skip
        return {
            key: build[kind](args) if kind == "choice" else build[kind](*args)
            for key, (kind, args) in self.search.items()
        }

    def config(self, sampled: dict[str, Any]) -> ExperimentConfig:
        """A trial's config: base + sampled values (ConfigError for a bad combination)."""
        return ExperimentConfig.from_dict({**self.base, **sampled})


def load_space(path: str | os.PathLike) -> SearchSpace:
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError(f"--space {path}: cannot read it: {reason}") from None
    try:
        return parse_space(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def parse_space(raw: Any) -> SearchSpace:
    from mlapi.compare.plan import config_from_flags

    if not isinstance(raw, dict):
        raise ConfigError(f"expected a mapping with keys {', '.join(SPACE_KEYS)}, got {raw!r}")
    unknown = sorted(set(raw) - set(SPACE_KEYS))
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} (known: {', '.join(SPACE_KEYS)})")
    base_flags = raw.get("base") or ""
    if not isinstance(base_flags, str):
        raise ConfigError(f"base: expected `mlapi train imdb` flags as text, got {base_flags!r}")
    try:
        base = config_from_flags(base_flags).non_defaults()
    except ConfigError as exc:
        raise ConfigError(f"base: {exc}") from None
    metric = raw.get("metric", "val_accuracy")
    if metric not in METRICS:
        raise ConfigError(f"metric: must be one of {', '.join(METRICS)}, got {metric!r}")
    mode = raw.get("mode", METRICS[metric])
    if mode not in ("max", "min"):
        raise ConfigError(f"mode: must be max or min, got {mode!r}")
    search = raw.get("search")
    if not isinstance(search, dict) or not search:
        raise ConfigError(f"search: expected a mapping of flag -> distribution, got {search!r}")
    parsed = {}
    for name, spec in search.items():
        key = str(name).removeprefix("--").replace("-", "_")
        try:
            parsed[key] = _distribution(key, spec, base)
        except ConfigError as exc:
            raise ConfigError(f"search.{name}: {exc}") from None
    return SearchSpace(base, base_flags, metric, mode, parsed)


def _distribution(key: str, spec: Any, base: dict[str, Any]) -> tuple[str, list]:
    known = {f.name for f in fields(ExperimentConfig)}
    if key not in known:
        raise ConfigError(f"not a flag of `mlapi train imdb` (known: {', '.join(sorted(known))})")
    if key in base:
        raise ConfigError("is also fixed in base: give it in one place")
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        raise ConfigError(
            f"expected one of {{{', '.join(f'{d}: [...]' for d in DISTRIBUTIONS)}}}, got {spec!r}"
        )
    kind, args = next(iter(spec.items()))
    if not isinstance(args, list) or not args:
        raise ConfigError(f"{kind}: expected a list, got {args!r}")
    if kind == "choice":
        values = args
    else:
        low, high = _bounds(kind, args)
        # randint never draws `high`; the others draw floats
        values = [low, high - 1] if kind == "randint" else [float(low), float(high)]
    for value in values:  # each end, or each choice, as a setting over base
        try:
            ExperimentConfig.from_dict({**base, key: value})
        except ConfigError as exc:
            raise ConfigError(f"{kind} value {value!r}: {exc}") from None
    return kind, list(args)


def _bounds(kind: str, args: list) -> list:
    numbers = all(isinstance(a, int | float) and not isinstance(a, bool) for a in args)
    if len(args) != 2 or not numbers or not all(math.isfinite(a) for a in args):
        raise ConfigError(f"{kind}: expected [low, high] numbers, got {args!r}")
    low, high = args
    if kind == "randint" and not all(isinstance(a, int) for a in args):
        raise ConfigError(f"randint: expected integer bounds, got {args!r}")
    if not low < high:
        raise ConfigError(f"{kind}: low must be below high, got {args!r}")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"loguniform: bounds must be positive, got {args!r}")
    return [low, high]
