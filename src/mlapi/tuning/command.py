"""`mlapi tune`: the flags and the handler (ray, optuna, torch are imported inside it).

mlapi tune --space benchmarks/tune_space.yaml --num-samples 8 --data aclImdb_v1.tar.gz
mlapi tune --resume outputs_imdb/sweeps/tune_20260101-120000     # after Ctrl-C
"""

from __future__ import annotations

import argparse
import os
import time

from mlapi.errors import ConfigError
from mlapi.training.commands import add_tracking_argument
from mlapi.training.device import add_device_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tune",
        help="search IMDb settings on Ray Tune (Optuna TPE + ASHA), write a leaderboard",
        description="Sample `mlapi train imdb` settings from a space file with Optuna's TPE, "
        "run each as a normal run on Ray Tune (ASHA stops bad trials after any epoch), "
        "select on validation accuracy only and write the leaderboard.",
    )
    parser.add_argument("--space", metavar="YAML", help="base flags, metric, mode, search")
    parser.add_argument(
        "--num-samples", type=int, default=8, metavar="N", help="trials (default: %(default)s)"
    )
    parser.add_argument("--resume", metavar="DIR", help="continue an interrupted sweep")
    parser.add_argument(
        "--data",
        metavar="PATH",
        help="aclImdb folder or .tar.gz, at a path every Ray node can read",
    )
    parser.add_argument(
        "--limit", default=None, metavar="N", help="use only N training reviews in every trial"
    )
    parser.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="the sweep's folder (default: outputs_imdb/sweeps/tune_<time>)",
    )
    parser.add_argument(
        "--cpus-per-trial",
        type=float,
        default=1.0,
        metavar="N",
        help="CPUs (and torch threads) per trial (default: 1)",
    )
    parser.add_argument(
        "--gpus-per-trial", type=float, default=0.0, metavar="N", help="GPUs per trial (default: 0)"
    )
    parser.add_argument(
        "--max-concurrent",
        type=int,
        default=None,
        metavar="N",
        help="trials at once (default: as many as the resources allow)",
    )
    parser.add_argument(
        "--address",
        default=None,
        metavar="HOST:PORT",
        help="a Ray cluster (default: $RAY_ADDRESS, else Ray starts here)",
    )
    parser.add_argument("--seed", type=int, default=0, help="the TPE sampler's seed (default: 0)")
    parser.add_argument(
        "--install-best",
        action="store_true",
        help="install the best finished trial by val accuracy",
    )
    parser.add_argument(
        "--models-dir",
        default=os.environ.get("MODELS_DIR", "models"),
        help="where --install-best installs (default: $MODELS_DIR or models/)",
    )
    parser.add_argument(
        "--scheduler",
        default="asha",
        metavar="{asha,fifo}",
        help="asha: stop bad trials after any epoch; fifo: run every trial to the end",
    )
    add_tracking_argument(parser)
    add_device_arguments(parser)
    parser.set_defaults(handler=_tune)


def _tune(args: argparse.Namespace) -> int:
    from mlapi.tuning.sweep import SweepOptions, resume_sweep, run_sweep

    if args.resume:
        result = resume_sweep(args.resume)
    else:
        if not args.space:
            raise ConfigError("--space is required (or --resume DIR)")
        for flag in ("num_samples", "max_concurrent"):
            value = getattr(args, flag)
            if value is not None and value < 1:
                raise ConfigError(f"--{flag.replace('_', '-')} must be at least 1, got {value}")
        if args.cpus_per_trial <= 0 or args.gpus_per_trial < 0:
            raise ConfigError("--cpus-per-trial must be > 0 and --gpus-per-trial >= 0")
        limit = None
        if args.limit is not None and args.limit.lower() not in ("none", "all"):
            if not args.limit.isdigit():
                raise ConfigError(f"--limit must be a number of reviews, got {args.limit!r}")
            limit = int(args.limit)
        out = args.out or os.path.join(
            "outputs_imdb", "sweeps", time.strftime("tune_%Y%m%d-%H%M%S")
        )
        options = SweepOptions(
            space=args.space,
            num_samples=args.num_samples,
            out=out,
            data=args.data,
            limit=limit,
            device=args.device,
            precision=args.precision,
            cpus_per_trial=args.cpus_per_trial,
            gpus_per_trial=args.gpus_per_trial,
            max_concurrent=args.max_concurrent,
            address=args.address,
            seed=args.seed,
            scheduler=args.scheduler,
            track=not args.no_track,
            install_best=args.install_best,
            models_dir=args.models_dir,
        )
        print(f"sweep: {os.path.abspath(out)}", flush=True)
        result = run_sweep(options)
    counts = {
        s: sum(e.status == s for e in result.entries) for s in ("finished", "stopped", "failed")
    }
    print(", ".join(f"{n} {s}" for s, n in counts.items()) + " trials")
    if result.leaderboard:
        print(f"leaderboard: {', '.join(str(p) for p in result.leaderboard.values())}")
    if result.installed:
        print(f"installed: {result.installed}")
    if result.interrupted:
        print(f"interrupted: continue with `mlapi tune --resume {result.directory}`")
        return 130
    return 0
