"""`mlapi compare`: train a list of IMDb configurations and the classic baselines on the
same split, then write a leaderboard (Markdown table, bar chart PNG, JSON).

    mlapi compare --config benchmarks/leaderboard.yaml --data ../shared/data/aclImdb_v1.tar.gz
    mlapi compare --run "--arch gru --pooling maxmean" --run "--arch cnn" --baselines nbsvm

Each configuration runs `run_experiment` (its usual outputs land in --out) and is
exported to `<out>/compare_models/<run>/sentiment/`, from where its single-review latency
is measured through ONNX Runtime exactly as the server does it (SentimentPredictor).
Nothing is installed into --models-dir unless --install-best is given; the best model
is chosen by validation accuracy only. The test split is read once per model.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shlex
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from mlapi.artifacts import atomic_path, atomic_write_json, atomic_write_text, utc_now_iso
from mlapi.errors import DataError
from mlapi.training.experiment import (
    ExperimentConfig,
    add_config_arguments,
    config_from_args,
    output_path,
)

LATENCY_REVIEWS = 50
GOAL_TEST_ACCURACY = 0.91  # issue 6: an LSTM-family model, trained on this CPU
GOAL_WALL_SECONDS = 30 * 60
RECURRENT = ("lstm", "bilstm", "gru", "bigru")


# -- the list of configurations ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ComparePlan:
    configs: list[ExperimentConfig]
    baselines: list[str]
    data: str | None = None
    notes: str = ""  # Markdown shown under the leaderboard table


def load_plan(path: str | os.PathLike) -> ComparePlan:
    """A YAML file: `data` (optional), `baselines` (list), `defaults` (config fields for
    every run), `runs` (a list of config-field mappings, or of flag strings) and `notes`
    (Markdown for the leaderboard: how and where it was measured)."""
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"cannot read the compare config {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a mapping with 'runs', 'baselines', 'defaults'")
    unknown = set(raw) - {"data", "baselines", "defaults", "runs", "notes"}
    if unknown:
        raise DataError(f"{path}: unknown keys {', '.join(sorted(unknown))}")
    defaults = raw.get("defaults") or {}
    configs = []
    for number, run in enumerate(raw.get("runs") or [], start=1):
        try:
            if isinstance(run, str):
                configs.append(config_from_flags(run, defaults))
            else:
                configs.append(config_from_mapping({**defaults, **(run or {})}))
        except (ValueError, TypeError, SystemExit) as exc:
            raise DataError(f"{path}: run {number}: {exc}") from None
    baselines = check_baselines(raw.get("baselines") or [])
    return ComparePlan(configs, baselines, raw.get("data"), str(raw.get("notes") or "").strip())


def config_from_mapping(values: dict[str, Any]) -> ExperimentConfig:
    """ExperimentConfig from YAML values, coerced to each field's type (YAML reads 1e-3
    as text)."""
    coerced = {}
    for f in dataclasses.fields(ExperimentConfig):
        if f.name not in values:
            continue
        value = values[f.name]
        if value is not None and f.default is not None and not isinstance(f.default, str):
            value = type(f.default)(value)
        coerced[f.name] = value
    unknown = sorted(set(values) - set(coerced))
    if unknown:
        raise ValueError(f"unknown config keys: {', '.join(unknown)}")
    return ExperimentConfig(**coerced)


def config_from_flags(flags: str, defaults: dict[str, Any] | None = None) -> ExperimentConfig:
    """ExperimentConfig from `mlapi train imdb` flags, over `defaults`."""
    parser = _FlagParser(add_help=False)
    add_config_arguments(parser)
    base = config_from_mapping(defaults or {})
    parser.set_defaults(**base.to_dict())
    return config_from_args(parser.parse_args(shlex.split(flags)))


class _FlagParser(argparse.ArgumentParser):
    def error(self, message: str):  # one clear message instead of exiting
        raise ValueError(message)


def check_baselines(names: list[str]) -> list[str]:
    from mlapi.baselines import BASELINES

    bad = [n for n in names if n not in BASELINES]
    if bad:
        raise DataError(f"unknown baseline {bad[0]!r}: choose from {', '.join(BASELINES)}")
    return list(names)


# -- running ---------------------------------------------------------------------------------


def latency_texts(
    data: str | os.PathLike | None, n: int = LATENCY_REVIEWS, val_fraction: float = 0.2,
    seed: int = 42,
) -> list[str]:  # fmt: skip
    """The first `n` validation reviews (raw text): the same inputs for every model."""
    from mlapi.data.imdb import find_dataset, load_split, validation_split

    reviews = load_split(find_dataset(data), "train")
    _, val_index = validation_split([r.label for r in reviews], val_fraction, seed)
    return [reviews[i].text for i in val_index[:n].tolist()]


def single_review_latency_ms(predict: Any, texts: list[str], warmup: int = 3) -> float:
    """Median wall time (ms) of `predict([text])`, one review per call."""
    for text in texts[:warmup]:
        predict([text])
    times = []
    for text in texts:
        started = time.perf_counter()
        predict([text])
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def run_neural(
    config: ExperimentConfig,
    data: str | os.PathLike | None,
    out_dir: Path,
    texts: list[str],
    progress: bool = True,
    reuse: bool = False,
) -> dict[str, Any]:
    """Train + test + export one configuration (or reuse its finished outputs)."""
    record_path = _record_path(out_dir, config.run_name)
    if reuse and record_path.is_file():
        return json.loads(record_path.read_text(encoding="utf-8"))
    from mlapi.serving.sentiment import SentimentPredictor
    from mlapi.training.experiment import run_experiment, train_command

    started = time.perf_counter()
    result = run_experiment(
        config, data, out_dir, out_dir / "compare_models" / config.run_name, progress
    )
    wall = time.perf_counter() - started
    predictor = SentimentPredictor.load(result.model_dir)
    m = result.metrics
    record = {
        "kind": "neural",
        "name": config.run_name,
        "arch": config.arch,
        "recurrent": config.arch in RECURRENT,
        "config": config.to_dict(),
        "command": train_command(config, data),
        "val_accuracy": m["val_accuracy_checkpoint"],
        "test_accuracy": m["test_accuracy"],
        "train_val_gap": m["train_val_gap"],
        "seconds_per_epoch": m["seconds_per_epoch"],
        "epochs_run": m["epochs_run"],
        "checkpoint_epoch": m["checkpoint_epoch"],
        "wall_seconds": wall,
        **_parameters(config, out_dir),
        "latency_ms": single_review_latency_ms(predictor.predict_proba, texts),
        "parity_max_abs_diff": result.parity_max_abs_diff,
        "model_dir": str(result.model_dir),
        "created_at": utc_now_iso(),
    }
    atomic_write_json(record_path, record)
    return record


def _parameters(config: ExperimentConfig, out_dir: Path) -> dict[str, int]:
    from mlapi.models.registry import count_parameters
    from mlapi.text import Vocabulary
    from mlapi.training.experiment import build_network

    vocabulary = Vocabulary.load(output_path(out_dir, config.run_name, "vocabulary"))
    network = build_network(config, vocabulary.size)
    if config.embeddings != "none" and config.embeddings_mode == "frozen":
        network.embedding.weight.requires_grad_(False)
    counts = count_parameters(network)
    return {"parameters": counts["total"], "trainable_parameters": counts["trainable"]}


def run_baselines(
    names: list[str],
    data: str | os.PathLike | None,
    out_dir: Path,
    texts: list[str],
    reuse: bool = False,
) -> list[dict[str, Any]]:
    """Fit each baseline on the seed split (C by val accuracy), test once, time it."""
    from mlapi import baselines

    records, todo = [], []
    for name in names:
        path = _record_path(out_dir, f"baseline_{name}")
        if reuse and path.is_file():
            records.append(json.loads(path.read_text(encoding="utf-8")))
        else:
            todo.append(name)
    if todo:
        splits = baselines.load_splits(data)
    for name in todo:
        started = time.perf_counter()
        metrics, pipeline = baselines.run_baseline(name, splits)
        wall = time.perf_counter() - started
        record = {
            "kind": "baseline",
            "name": name,
            "arch": name,
            "recurrent": False,
            "description": metrics["description"],
            "command": shlex.join(
                ["mlapi", "compare", "--baselines", name, *(["--data", str(data)] if data else [])]
            ),
            "val_accuracy": metrics["val_accuracy"],
            "test_accuracy": metrics["test_accuracy"],
            "train_val_gap": metrics["train_val_gap"],
            "seconds_per_epoch": None,
            "fit_seconds": metrics["fit_seconds"],
            "wall_seconds": wall,
            "parameters": metrics["parameters"],
            "trainable_parameters": metrics["parameters"],
            "latency_ms": single_review_latency_ms(
                lambda batch, p=pipeline: baselines.predict_proba(p, batch), texts
            ),
            "c": metrics["c"],
            "val_accuracy_by_c": metrics["val_accuracy_by_c"],
            "created_at": utc_now_iso(),
        }
        atomic_write_json(_record_path(out_dir, f"baseline_{name}"), record)
        records.append(record)
    return records


def _record_path(out_dir: Path, name: str) -> Path:
    return Path(out_dir) / f"{name}_compare.json"


# -- the leaderboard -------------------------------------------------------------------------


def rank(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Best validation accuracy first (test accuracy never decides)."""
    return sorted(entries, key=lambda e: (-e["val_accuracy"], e["name"]))


def goal_summary(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The recurrent model chosen by val accuracy, against issue 6's goal."""
    recurrent = rank([e for e in entries if e.get("recurrent")])
    if not recurrent:
        return None
    best = recurrent[0]
    return {
        "name": best["name"],
        "val_accuracy": best["val_accuracy"],
        "test_accuracy": best["test_accuracy"],
        "wall_seconds": best["wall_seconds"],
        "goal_test_accuracy": GOAL_TEST_ACCURACY,
        "goal_wall_seconds": GOAL_WALL_SECONDS,
        "met": best["test_accuracy"] >= GOAL_TEST_ACCURACY
        and best["wall_seconds"] <= GOAL_WALL_SECONDS,
    }


def render_markdown(entries: list[dict[str, Any]], command: str, notes: str = "") -> str:
    ranked = rank(entries)
    lines = [
        "# IMDb leaderboard",
        "",
        f"Reproduce: `{command}`",
        "",
        "Sorted by validation accuracy (the only selection criterion); the test split is "
        "read once per model. Gap = train − val accuracy at the last epoch (baselines: of "
        "the chosen C). Wall = the whole run (data, training, test, export; baselines: "
        "features + every C). Latency = median single-review predict, through ONNX Runtime "
        "as served (baselines: scikit-learn). With --reuse, configurations whose record is "
        "already in --out are read back instead of trained again.",
        "",
        "| # | model | val acc | test acc | gap | s/epoch | wall s | params | latency ms |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for i, e in enumerate(ranked, start=1):
        name = f"`{e['name']}`" + (" (selected)" if i == 1 else "")
        per_epoch = "—" if e.get("seconds_per_epoch") is None else f"{e['seconds_per_epoch']:.0f}"
        lines.append(
            f"| {i} | {name} | {e['val_accuracy']:.4f} | {e['test_accuracy']:.4f} | "
            f"{e['train_val_gap']:+.4f} | {per_epoch} | {e['wall_seconds']:.0f} | "
            f"{e['parameters']:,} | {e['latency_ms']:.2f} |"
        )
    if notes:
        lines += ["", notes]
    goal = goal_summary(entries)
    if goal:
        verdict = "met" if goal["met"] else "not met"
        lines += [
            "",
            f"Goal (issue 6): a recurrent model with test accuracy ≥ {GOAL_TEST_ACCURACY} "
            f"trained in ≤ {GOAL_WALL_SECONDS // 60} min on this CPU. Best recurrent model by "
            f"val accuracy: `{goal['name']}`, test {goal['test_accuracy']:.4f}, "
            f"{goal['wall_seconds'] / 60:.1f} min → **{verdict}**.",
        ]
    lines += ["", "Commands of the single runs:", ""]
    lines += [f"- `{e['name']}`: `{e['command']}`" for e in ranked]
    return "\n".join(lines) + "\n"


def plot_leaderboard(path: str | os.PathLike, entries: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    ranked = rank(entries)[::-1]  # best at the top
    names = [_short_name(e) for e in ranked]
    y = np.arange(len(ranked))
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.55 * len(ranked)))
    ax.barh(y + 0.2, [e["val_accuracy"] for e in ranked], 0.4, label="val accuracy")
    ax.barh(y - 0.2, [e["test_accuracy"] for e in ranked], 0.4, label="test accuracy")
    for i, e in enumerate(ranked):
        ax.text(e["val_accuracy"], i + 0.2, f" {e['val_accuracy']:.4f}", va="center", fontsize=8)
        ax.text(e["test_accuracy"], i - 0.2, f" {e['test_accuracy']:.4f}", va="center", fontsize=8)
    low = min(min(e["val_accuracy"], e["test_accuracy"]) for e in ranked)
    high = max(max(e["val_accuracy"], e["test_accuracy"]) for e in ranked)
    ax.set_xlim(max(0.0, low - 0.03), min(1.0, max(high, GOAL_TEST_ACCURACY) + 0.02))
    ax.axvline(GOAL_TEST_ACCURACY, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlabel("accuracy (sorted by val accuracy; dashed: goal 0.91 test)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("IMDb: architectures and baselines on the same split")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def _short_name(entry: dict[str, Any]) -> str:
    """A chart label: the architecture and the settings that tell runs apart."""
    config = entry.get("config")
    if entry["kind"] == "baseline" or not config:
        return entry["name"]
    parts = [config["arch"]]
    if config.get("pooling", "auto") != "auto":
        parts.append(config["pooling"])
    if config.get("embeddings", "none") != "none":
        parts.append(Path(config["embeddings"]).name)
    parts += [f"len{config['maxlen']}", f"h{config['hidden_size']}"]
    return " ".join(parts)


def write_leaderboard(
    prefix: str | os.PathLike, entries: list[dict[str, Any]], command: str, notes: str = ""
) -> dict[str, Path]:
    """`<prefix>.md`, `<prefix>.png`, `<prefix>.json`, each written atomically."""
    if not entries:
        raise DataError("nothing to compare: give --config, --run or --baselines")
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    paths = {kind: prefix.with_name(f"{prefix.name}.{kind}") for kind in ("md", "png", "json")}
    ranked = rank(entries)
    atomic_write_json(
        paths["json"],
        {
            "command": command,
            "created_at": utc_now_iso(),
            "selected_by_val_accuracy": ranked[0]["name"],
            "goal": goal_summary(entries),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "notes": notes,
            "entries": ranked,
        },
    )
    plot_leaderboard(paths["png"], entries)
    atomic_write_text(paths["md"], render_markdown(entries, command, notes))
    return paths


def install_best(entries: list[dict[str, Any]], models_dir: str | os.PathLike) -> Path:
    """Copy the exported model with the best val accuracy to `<models_dir>/sentiment`."""
    from mlapi.artifacts import replace_directory

    neural = rank([e for e in entries if e["kind"] == "neural"])
    if not neural:
        raise DataError("--install-best needs at least one neural configuration")
    source = Path(neural[0]["model_dir"])
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".sentiment.staging.", dir=models_dir))
    try:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        target = models_dir / "sentiment"
        replace_directory(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


# -- the command ------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="train several IMDb configurations + baselines, write a leaderboard",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--config", metavar="YAML", help="runs, baselines and defaults")
    parser.add_argument(
        "--run", action="append", default=[], metavar="FLAGS",
        help='one configuration as `mlapi train imdb` flags, e.g. "--arch gru" (repeatable)',
    )  # fmt: skip
    parser.add_argument(
        "--baselines", default=None, metavar="NAMES",
        help="comma-separated: tfidf_lr,nbsvm ('none' for no baseline; default: the YAML's)",
    )  # fmt: skip
    parser.add_argument("--data", metavar="PATH", help="aclImdb folder or .tar.gz archive")
    parser.add_argument("--out", default="outputs_imdb", help="run outputs (default: %(default)s)")
    parser.add_argument(
        "--leaderboard", default=None, metavar="PREFIX",
        help="writes PREFIX.md, .png, .json (default: <out>/leaderboard)",
    )  # fmt: skip
    parser.add_argument(
        "--reuse", action="store_true",
        help="skip configurations whose comparison record already exists in --out",
    )  # fmt: skip
    parser.add_argument(
        "--install-best", action="store_true",
        help="install the best model by val accuracy at <models-dir>/sentiment",
    )  # fmt: skip
    parser.add_argument(
        "--models-dir", default=os.environ.get("MODELS_DIR", "models"),
        help="where --install-best installs (default: $MODELS_DIR or models/)",
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_compare)


def _compare(args: argparse.Namespace) -> int:
    plan = load_plan(args.config) if args.config else ComparePlan([], [])
    configs = list(plan.configs)
    try:
        configs += [config_from_flags(flags) for flags in args.run]
    except ValueError as exc:
        raise DataError(f"--run: {exc}") from None
    baselines = plan.baselines
    if args.baselines is not None:
        names = [n.strip() for n in args.baselines.split(",") if n.strip()]
        baselines = [] if names == ["none"] else check_baselines(names)
    data = args.data or plan.data
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not configs and not baselines:
        raise DataError("nothing to compare: give --config, --run or --baselines")
    texts = latency_texts(data)

    entries = []
    for i, config in enumerate(configs, start=1):
        print(f"[{i}/{len(configs)}] {config.run_name}", flush=True)
        entry = run_neural(config, data, out_dir, texts, not args.quiet, args.reuse)
        entries.append(entry)
        _print_entry(entry)
    if baselines:
        print(f"baselines: {', '.join(baselines)}", flush=True)
        for entry in run_baselines(baselines, data, out_dir, texts, args.reuse):
            entries.append(entry)
            _print_entry(entry)

    prefix = args.leaderboard or out_dir / "leaderboard"
    paths = write_leaderboard(prefix, entries, _command(args), plan.notes)
    best = rank(entries)[0]
    print(f"selected by val accuracy: {best['name']} (test {best['test_accuracy']:.4f})")
    print(f"leaderboard: {paths['md']}, {paths['png']}, {paths['json']}")
    if args.install_best:
        print(f"installed: {install_best(entries, args.models_dir)}")
    return 0


def _print_entry(e: dict[str, Any]) -> None:
    print(
        f"  val {e['val_accuracy']:.4f} | test {e['test_accuracy']:.4f} | "
        f"gap {e['train_val_gap']:+.4f} | wall {e['wall_seconds']:.0f} s | "
        f"{e['parameters']:,} params | {e['latency_ms']:.2f} ms/review",
        flush=True,
    )


def _command(args: argparse.Namespace) -> str:
    threads = os.environ.get("MLAPI_TORCH_THREADS")
    parts = [f"MLAPI_TORCH_THREADS={threads}"] if threads else []
    parts += ["mlapi", "compare"]
    if args.config:
        parts += ["--config", args.config]
    for flags in args.run:
        parts += ["--run", flags]
    if args.baselines is not None:
        parts += ["--baselines", args.baselines]
    if args.data:
        parts += ["--data", args.data]
    parts += ["--out", args.out]
    if args.leaderboard:
        parts += ["--leaderboard", str(args.leaderboard)]
    for flag in ("reuse", "install_best"):
        if getattr(args, flag):
            parts.append("--" + flag.replace("_", "-"))
    if args.install_best:
        parts += ["--models-dir", args.models_dir]
    return shlex.join(parts)
