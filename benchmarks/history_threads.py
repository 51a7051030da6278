"""Why one config and seed gave two histories: the torch thread count at build and at training.

    IMDB_DATA=../shared/data/aclImdb_v1.tar.gz .venv/bin/python benchmarks/history_threads.py \
        --epochs 1                  # full data: the three variants vs the recorded epoch 1
    ... history_threads.py --limit 10000 --epochs 2 --only-paths     # both scripts, ~4 min

For the same recipe and seed, benchmarks/imdb_seed_selection.py recorded other best val
accuracies than benchmarks/imdb_seed_run.py, their histories differing from epoch 1. Both
train through the same code (load_training_data, train_network), so this script trains
that code in fresh processes, with the torch thread count set separately for building the
network and for training:

  built at 2, trained at 1   what the selection did: each of its 2 parallel runs trained
                             on MLAPI_TORCH_THREADS=1, but built its network before `fit`
                             set that, at torch's default (one thread per core: 2 here)
  built at 1, trained at 1   the full run with MLAPI_TORCH_THREADS=1 (seeds 1 and 2)
  built at 2, trained at 2   the full run at the default 2 threads (seed 42)

The recurrent kernel's orthogonal initialisation is a QR decomposition (MKL LAPACK) whose
last bits depend on the thread count, and in training the thread count changes the order
of float sums (the C kernel adds each thread's dW_hh and dbias separately; PyTorch's own
reductions split by thread). Each history is reproducible bit for bit at its thread
counts; the three differ from epoch 1. Without --limit, the epochs run are also compared
with the recorded histories (benchmarks/results/). `--paths` also runs both benchmark
scripts at MLAPI_TORCH_THREADS=1 and checks they now give the same history, to the last bit
of the final val_loss (smaller runs than 10,000 reviews x 2 epochs differ too little to
show in it: there, building at 2 threads changed nothing visible).
Writes benchmarks/results/history_threads[_limitN].json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
VARIANTS = {"built at 2, trained at 1": (2, 1), "built at 1, trained at 1": (1, 1),
            "built at 2, trained at 2": (2, 2)}  # fmt: skip
COMPARED = ("loss", "accuracy", "val_loss", "val_accuracy")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("IMDB_DATA"), help="aclImdb or .tar.gz")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    parser.add_argument("--limit", type=int, help="train on N reviews (default: all)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--paths", action="store_true", help="also run both benchmark scripts")
    parser.add_argument("--only-paths", action="store_true", help="--paths, without the variants")
    parser.add_argument("--out", help="default: results/history_threads[_limitN].json")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: one training run
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(train_once(**json.loads(args.child))))
        return 0

    runs = []
    for seed in [] if args.only_paths else args.seeds:
        for name, (build, train) in VARIANTS.items():
            child = {"data": args.data, "seed": seed, "limit": args.limit,
                     "epochs": args.epochs, "build_threads": build}  # fmt: skip
            history = spawn([sys.executable, __file__, "--child", json.dumps(child)], train)
            runs.append({"seed": seed, "variant": name, "build_threads": build,
                         "train_threads": train, "history": history})  # fmt: skip
            print(f"seed {seed}, {name}: epoch 1 loss {history['loss'][0]!r}", flush=True)
    record = {
        "command": " ".join(["python benchmarks/history_threads.py", *sys.argv[1:]]),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "limit": args.limit,
        "epochs": args.epochs,
        "runs": runs,
        "same_history_within_seed": {
            str(seed): distinct_histories([r for r in runs if r["seed"] == seed])
            for seed in args.seeds
        },
    }
    if args.limit is None and runs:
        record["recorded"] = compare_with_recorded(runs, args.epochs)
    if args.paths or args.only_paths:
        record["paths"] = both_scripts(args)
    out = Path(
        args.out or RESULTS / f"history_threads{f'_limit{args.limit}' if args.limit else ''}"
    )
    out = out.with_suffix(".json")
    out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in record.items() if k != "runs"}, indent=2))
    print(f"saved {out}")
    return 0


def train_once(data, seed, limit, epochs, build_threads) -> dict:
    """The shared training code, the network built at `build_threads` torch threads and
    trained at $MLAPI_TORCH_THREADS (set by the parent, read when mlapi.training loads)."""
    import torch

    from mlapi.data.imdb import load_encoded
    from mlapi.models import registry
    from mlapi.training.config import ExperimentConfig
    from mlapi.training.run import train_network, use_torch_threads
    from mlapi.training.saved import HISTORY_COLUMNS

    config = ExperimentConfig(seed=seed, limit=limit, epochs=epochs)
    encoded = load_encoded(data, **config.encoding())
    # train_network builds at the training thread count (the fix); to reproduce the old
    # records, build at `build_threads` and go back to the training count afterwards.
    build = registry.build_network

    def build_at_build_threads(*args, **kwargs):
        torch.set_num_threads(build_threads)
        network = build(*args, **kwargs)
        use_torch_threads()  # back to $MLAPI_TORCH_THREADS for training
        return network

    registry.build_network = build_at_build_threads
    with tempfile.TemporaryDirectory() as state:
        _, history, _ = train_network(config, encoded, Path(state), progress=False)
    return {c: history.metric(c) for c in HISTORY_COLUMNS} | {
        "threads_after": torch.get_num_threads()
    }


def spawn(command: list[str], train_threads: int) -> dict:
    env = {**os.environ, "MLAPI_TORCH_THREADS": str(train_threads), "OMP_WAIT_POLICY": "PASSIVE"}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{command[1:3]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def distinct_histories(runs: list[dict]) -> dict:
    """Which variants' histories are equal (compared on COMPARED, every epoch)."""
    key = {r["variant"]: tuple(tuple(r["history"][c]) for c in COMPARED) for r in runs}
    return {name: [other for other in key if key[other] == k] for name, k in key.items()}


def compare_with_recorded(runs: list[dict], epochs: int) -> list[dict]:
    """Each run's first `epochs` epochs against the recorded selection run (maxlen 300,
    full precision) and the recorded full run (history CSV, 6 decimals)."""
    selection = json.loads((RESULTS / "imdb_seed_selection_maxlen.json").read_text())
    recorded_selection = {r["seed"]: r["history"] for r in selection["runs"] if r["maxlen"] == 300}
    rows = []
    for run in runs:
        full = read_history_csv(full_run_history(run["seed"]))
        mine = {c: run["history"][c][:epochs] for c in COMPARED}
        rows.append({
            "seed": run["seed"],
            "variant": run["variant"],
            "equals_recorded_selection": all(
                mine[c] == recorded_selection[run["seed"]][c][:epochs] for c in COMPARED
            ),
            "equals_recorded_full_run": all(
                [round(v, 6) for v in mine[c]] == full[c][:epochs] for c in COMPARED
            ),
        })  # fmt: skip
    return rows


def full_run_history(seed: int) -> Path:
    folder = RESULTS / ("imdb_seed" if seed == 42 else f"imdb_seed_other_seeds/seed{seed}")
    (path,) = folder.glob("*_history.csv")
    return path


def read_history_csv(path: Path) -> dict[str, list[float]]:
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {c: [round(float(row[c]), 6) for row in rows] for c in COMPARED}


def both_scripts(args: argparse.Namespace) -> dict:
    """imdb_seed_selection.py --one and imdb_seed_run.py, one seed, MLAPI_TORCH_THREADS=1."""
    seed, here = args.seeds[0], Path(__file__).parent
    overrides = {"seed": seed, "epochs": args.epochs} | (
        {"limit": args.limit} if args.limit else {}
    )
    data = ["--data", args.data] if args.data else []
    selection = spawn(
        [sys.executable, str(here / "imdb_seed_selection.py"), "--one", json.dumps(overrides),
         *data], 1)["history"]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        flags = [f"--{k}={v}" for k, v in overrides.items()]
        command = [sys.executable, str(here / "imdb_seed_run.py"), *data, "--quiet",
                   "--out", f"{tmp}/out", "--models-dir", f"{tmp}/models",
                   "--results", f"{tmp}/results", "--", *flags]  # fmt: skip
        env = {**os.environ, "MLAPI_TORCH_THREADS": "1"}
        subprocess.run(command, env=env, check=True, capture_output=True, text=True)
        comparison = json.loads((Path(tmp) / "results" / "comparison.json").read_text())
        full = read_history_csv(next((Path(tmp) / "results").glob("*_history.csv")))
        metrics = json.loads(next((Path(tmp) / "results").glob("*_metrics.json")).read_text())
    selection_rounded = {c: [round(v, 6) for v in selection[c]] for c in COMPARED}
    # the CSV keeps 6 decimals; the last val_loss, in full precision, tells runs apart
    last_val_loss = {"selection": selection["val_loss"][-1], "full_run": metrics["val_loss_final"]}
    return {
        "seed": seed,
        "selection_history": selection_rounded,
        "full_run_history": full,
        "last_val_loss_full_precision": last_val_loss,
        "full_run_torch_threads": comparison.get("torch_threads"),
        "same_history": selection_rounded == full
        and last_val_loss["selection"] == last_val_loss["full_run"],
    }


if __name__ == "__main__":
    sys.exit(main())
