"""The seed recipe's unstated settings (vocabulary size, maxlen), chosen on validation only.

    .venv/bin/python benchmarks/imdb_seed_selection.py --data ../shared/data/aclImdb_v1.tar.gz \
        --setting vocab_size                  # then: --setting maxlen

The seed's report gives its network, optimiser and callbacks but not its vocabulary size
or sequence length. This script trains the seed recipe (every other setting at its
default) once per candidate value of `--setting` and per `--seeds` value, reading only the
training reviews (train and val splits; never the test split), and picks the value with
the highest mean best val accuracy (ties: the smaller value). It writes
benchmarks/results/imdb_seed_selection_<setting>.json and .md: per run, the final train
accuracy, best val accuracy and its epoch, next to the seed's reported values.

Each run trains through the same code as `mlapi train imdb` (and benchmarks/imdb_seed_run.py),
with the torch thread count set, as there, before the network is built: `--threads`
(default: $MLAPI_TORCH_THREADS, else 2, as `mlapi train imdb`). The thread count is part of
the result: the recurrent kernel's orthogonal init (an MKL QR) and the order of float sums
in training depend on it, so a run at 1 thread and one at 2 differ from epoch 1
(benchmarks/history_threads.py). Each run records it. Runs go `--jobs` at a time: on 2
cores, `--jobs 2 --threads 1` is about twice as fast, and matches full runs made with
MLAPI_TORCH_THREADS=1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from mlapi.artifacts import atomic_write_json, atomic_write_text
from mlapi.training.run import DEFAULT_THREADS, THREADS_VARIABLE

RESULTS = Path(__file__).parent / "results"
TORCH_THREADS = int(os.environ.get(THREADS_VARIABLE, DEFAULT_THREADS))  # as mlapi train imdb
CANDIDATES = {"vocab_size": [20000, 30000, 50000, 80000], "maxlen": [200, 300, 500]}
SEED_REPORTED = {"train_accuracy_final": 0.9722, "val_accuracy_best": 0.8882, "best_epoch": 5}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="aclImdb folder or .tar.gz archive")
    parser.add_argument("--setting", choices=sorted(CANDIDATES), default="vocab_size")
    parser.add_argument("--values", type=int, nargs="+", help="default: see CANDIDATES")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (default: 1)")
    parser.add_argument(
        "--threads",
        type=int,
        default=TORCH_THREADS,
        help=f"torch threads per run (default: {TORCH_THREADS}, as mlapi train imdb)",
    )
    parser.add_argument("--results", help="default: results/imdb_seed_selection_<setting>")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one run, JSON overrides
    args = parser.parse_args(argv)
    for flag in ("jobs", "threads"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    if args.one:
        print(json.dumps(validation_run(json.loads(args.one), args.data)))
        return 0

    setting, values = args.setting, args.values or CANDIDATES[args.setting]
    candidates = [{setting: v, "seed": s} for v in values for s in args.seeds]
    for value in values:  # encode the data once per value, before the parallel runs
        validation_run({setting: value, "epochs": 0}, args.data)
    with ThreadPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(lambda c: run_in_subprocess(c, args), candidates))

    summary = summarise(runs, setting, values)
    record = {
        "command": shlex.join(
            [".venv/bin/python", "benchmarks/imdb_seed_selection.py", *sys.argv[1:]]
        ),  # fmt: skip
        "selection": "highest mean best val accuracy over seeds; test split never read",
        "seed_reported": SEED_REPORTED,
        "torch_threads": args.threads,
        "jobs": args.jobs,
        "setting": setting,
        "chosen": max(summary, key=lambda s: (s["val_best_mean"], -s["value"]))["value"],
        "summary": summary,
        "runs": runs,
    }
    results = Path(args.results or RESULTS / f"imdb_seed_selection_{setting}")
    results.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(results.with_suffix(".json"), record)
    atomic_write_text(results.with_suffix(".md"), markdown(record))
    print(markdown(record))
    return 0


def validation_run(overrides: dict, data: str | None) -> dict:
    """Train the seed recipe with `overrides` and summarise its history (no test split).
    `epochs: 0` only encodes the data (filling the cache). Threads: $MLAPI_TORCH_THREADS."""
    import torch

    from mlapi.data.imdb import load_encoded
    from mlapi.evaluation import diagnose_history
    from mlapi.training.config import ExperimentConfig
    from mlapi.training.run import train_network
    from mlapi.training.saved import HISTORY_COLUMNS

    encode_only = overrides.get("epochs") == 0
    config = dataclasses.replace(
        ExperimentConfig(), **{**overrides, "epochs": 1} if encode_only else overrides
    )
    encoded = load_encoded(data, **config.encoding())
    if encode_only:
        return {}
    with tempfile.TemporaryDirectory() as state:
        _, history, _ = train_network(config, encoded, Path(state), progress=False)
    columns = {c: history.metric(c) for c in HISTORY_COLUMNS}
    d = diagnose_history(columns)
    return {
        **overrides,
        "vocab_ids": encoded.vocabulary.size,
        "train_accuracy_final": d.train_accuracy_final,
        "val_accuracy_best": d.val_accuracy_best,
        "best_epoch": d.val_accuracy_best_epoch,
        "epochs_run": d.epochs_run,
        "seconds_per_epoch": float(np.mean(columns["seconds"])),
        "torch_threads": torch.get_num_threads(),
        "history": columns,
    }


def run_in_subprocess(overrides: dict, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--one", json.dumps(overrides)]
    if args.data:
        command += ["--data", args.data]
    threads = str(args.threads)
    env = {**os.environ, "MLAPI_TORCH_THREADS": threads, "OMP_WAIT_POLICY": "PASSIVE"}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"run {overrides} failed:\n{done.stderr[-2000:]}")
    run = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{overrides}: best val {run['val_accuracy_best']:.4f}", flush=True)
    return run


def summarise(runs: list[dict], setting: str, values: list[int]) -> list[dict]:
    summary = []
    for value in values:
        mine = [r for r in runs if r[setting] == value]
        best = [r["val_accuracy_best"] for r in mine]
        summary.append(
            {
                "value": value,
                "vocab_ids": mine[0]["vocab_ids"],
                "val_best_mean": float(np.mean(best)),
                "val_best_std": float(np.std(best)),
                "val_best_by_seed": {str(r["seed"]): r["val_accuracy_best"] for r in mine},
                "train_final_mean": float(np.mean([r["train_accuracy_final"] for r in mine])),
            }
        )
    return summary


def markdown(record: dict) -> str:
    seeds = list(record["summary"][0]["val_best_by_seed"])
    head = [record["setting"], "vocabulary ids", "best val (mean ± std)",
            *[f"seed {s}" for s in seeds], "final train (mean)"]  # fmt: skip
    rows = ["| " + " | ".join(head) + " |", "|" + " ---: |" * len(head)]
    for s in record["summary"]:
        by_seed = [f"{v:.4f}" for v in s["val_best_by_seed"].values()]
        rows.append(
            f"| {s['value']:,} | {s['vocab_ids']:,} | "
            f"{s['val_best_mean']:.4f} ± {s['val_best_std']:.4f} | {' | '.join(by_seed)} | "
            f"{s['train_final_mean']:.4f} |"
        )
    seed = record["seed_reported"]
    return (
        f"# The seed recipe's {record['setting']}, chosen on validation\n\n"
        f"Reproduce: `{record['command']}`\n\n" + "\n".join(rows) + "\n\n"
        f"Chosen ({record['selection']}): **{record['chosen']:,}**. "
        f"The seed reported best val {seed['val_accuracy_best']} and final train "
        f"{seed['train_accuracy_final']}.\n"
    )


if __name__ == "__main__":
    sys.exit(main())
