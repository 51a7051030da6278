"""`mlapi compare`: the flags and the handler (heavy imports happen inside it).

    mlapi compare --config benchmarks/leaderboard.yaml --data ../shared/data/aclImdb_v1.tar.gz
    mlapi compare --run "--arch gru --pooling maxmean" --run "--arch cnn" --baselines nbsvm

Nothing is installed into --models-dir unless --install-best is given; the best model
is chosen by validation accuracy only. The test split is read once per model.
"""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from mlapi.errors import ConfigError, DataError
from mlapi.training.commands import add_tracking_argument
from mlapi.training.device import add_device_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="train several IMDb configurations + baselines, write a leaderboard",
        description="Train a list of IMDb configurations and the classic baselines on the "
        "same split, then write a leaderboard (Markdown table, bar chart PNG, JSON).",
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
    add_tracking_argument(parser)
    add_device_arguments(parser)
    parser.set_defaults(handler=_compare)


def _compare(args: argparse.Namespace) -> int:
    from mlapi.compare.leaderboard import install_best, rank, write_leaderboard
    from mlapi.compare.plan import ComparePlan, check_baselines, config_from_flags, load_plan
    from mlapi.compare.runner import LATENCY_REVIEWS, latency_texts, run_baselines, run_neural
    from mlapi.tracking import Tracker, run_tags
    from mlapi.training.config import ExperimentConfig
    from mlapi.training.device import resolve_device

    plan = load_plan(args.config) if args.config else ComparePlan([], [])
    configs = list(plan.configs)
    for flags in args.run:
        try:
            configs.append(config_from_flags(flags))
        except ConfigError as exc:
            raise ConfigError(f"--run {flags!r}: {exc}") from None
    baselines = plan.baselines
    if args.baselines is not None:
        names = [n.strip() for n in args.baselines.split(",") if n.strip()]
        try:
            baselines = [] if names == ["none"] else check_baselines(names)
        except ConfigError as exc:
            raise ConfigError(f"--{exc}") from None
    if not configs and not baselines:
        raise DataError("nothing to compare: give --config, --run or --baselines")
    device = str(resolve_device(args.device, args.precision))
    data = args.data or plan.data
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    split = ExperimentConfig()  # every model is timed on the recipe's validation reviews
    texts = latency_texts(data, n=LATENCY_REVIEWS, val_fraction=split.val_fraction, seed=split.seed)

    progress = not args.quiet
    tags = run_tags(device=device, recipe="compare", command=_command(args), kind="compare")
    with Tracker.start(f"compare {out_dir}", enabled=not args.no_track, tags=tags) as parent:
        entries = []
        for i, config in enumerate(configs, start=1):
            print(f"[{i}/{len(configs)}] {config.run_name}", flush=True)
            entry = run_neural(
                config, data=data, out_dir=out_dir, texts=texts, progress=progress,
                reuse=args.reuse, device=device, precision=args.precision,
                track=parent.active, parent_run_id=parent.run_id,
            )  # fmt: skip
            entries.append(entry)
            _print_entry(entry)
        if baselines:
            print(f"baselines: {', '.join(baselines)}", flush=True)
            for entry in run_baselines(
                baselines, data=data, out_dir=out_dir, texts=texts, reuse=args.reuse
            ):
                entries.append(entry)
                _print_entry(entry)
        prefix = args.leaderboard or out_dir / "leaderboard"
        paths = write_leaderboard(prefix, entries, _command(args), plan.notes)
        for path in paths.values():
            parent.log_artifact(path)
    best = rank(entries)[0]
    print(f"selected by val accuracy: {best.name} (test {best.test_accuracy:.4f})")
    print(f"leaderboard: {paths['md']}, {paths['png']}, {paths['json']}")
    if args.install_best:
        print(f"installed: {install_best(entries, args.models_dir)}")
    return 0


def _print_entry(e) -> None:
    print(
        f"  val {e.val_accuracy:.4f} | test {e.test_accuracy:.4f} | "
        f"gap {e.train_val_gap:+.4f} | wall {e.wall_seconds:.0f} s | "
        f"{e.parameters:,} params | {e.latency_ms:.2f} ms/review",
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
