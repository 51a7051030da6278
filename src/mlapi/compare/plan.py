"""What to compare: a YAML plan and/or `--run "FLAGS"` strings, parsed through the
training config itself (`ExperimentConfig.from_dict`, `config_from_args`)."""

from __future__ import annotations

import argparse
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlapi.errors import ConfigError, DataError
from mlapi.training.config import ExperimentConfig, add_config_arguments, config_from_args

PLAN_KEYS = ("data", "baselines", "defaults", "runs", "notes")


@dataclass(frozen=True)
class ComparePlan:
    configs: list[ExperimentConfig]
    baselines: list[str]
    data: str | None = None
    notes: str = ""  # Markdown shown under the leaderboard table


def load_plan(path: str | os.PathLike) -> ComparePlan:
    """A YAML file: `data` (optional), `baselines` (list), `defaults` (config fields for
    every run), `runs` (a list of config-field mappings, or of flag strings) and `notes`
    (Markdown for the leaderboard: how and where it was measured). A bad value is one
    ConfigError naming the run, the key, the value and what is allowed."""
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"cannot read the compare config {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a mapping with 'runs', 'baselines', 'defaults'")
    unknown = set(raw) - set(PLAN_KEYS)
    if unknown:
        raise DataError(
            f"{path}: unknown keys {', '.join(sorted(unknown))} (known: {', '.join(PLAN_KEYS)})"
        )
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{path}: defaults must be a mapping of config keys, got {defaults!r}")
    try:
        ExperimentConfig.from_dict(defaults)
    except ConfigError as exc:
        raise ConfigError(f"{path}: defaults: {exc}") from None
    configs = []
    for number, run in enumerate(raw.get("runs") or [], start=1):
        try:
            configs.append(_run_config(run, defaults))
        except ConfigError as exc:
            raise ConfigError(f"{path}: run {number}: {exc}") from None
    try:
        baselines = check_baselines(raw.get("baselines") or [])
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return ComparePlan(configs, baselines, raw.get("data"), str(raw.get("notes") or "").strip())


def _run_config(run: Any, defaults: dict[str, Any]) -> ExperimentConfig:
    if isinstance(run, str):
        return config_from_flags(run, defaults)
    if run is not None and not isinstance(run, dict):
        raise ConfigError(f"expected config keys or a flag string, got {run!r}")
    return ExperimentConfig.from_dict({**defaults, **(run or {})})


def config_from_flags(flags: str, defaults: dict[str, Any] | None = None) -> ExperimentConfig:
    """ExperimentConfig from `mlapi train imdb` flags, over `defaults` (config keys)."""
    parser = _FlagParser(prog="--run", add_help=False)
    add_config_arguments(parser)
    parser.set_defaults(**ExperimentConfig.from_dict(defaults or {}).to_dict())
    return config_from_args(parser.parse_args(shlex.split(flags)))


class _FlagParser(argparse.ArgumentParser):
    def error(self, message: str):  # one clear message instead of exiting
        raise ConfigError(message)


def check_baselines(names: list[str]) -> list[str]:
    from mlapi.baselines import BASELINES

    bad = [n for n in names if n not in BASELINES]
    if bad:
        raise ConfigError(f"baselines must be among {', '.join(BASELINES)}, got {bad[0]!r}")
    return list(names)
