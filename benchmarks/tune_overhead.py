"""What Ray Tune adds: a plain `mlapi train imdb` vs the same settings as one Ray trial
(wall and s/epoch), and 2 concurrent 1-CPU trials vs the same 2 trials one after the other,
in one invocation. Goal: Ray adds <= 10 s per sweep and <= 5% per epoch.

    .venv/bin/python benchmarks/tune_overhead.py --data ../shared/data/aclImdb_v1.tar.gz \
        --limit 2000 --epochs 2

Every run is `--no-track` (MLflow is not what is measured), exports its model (a trial
always does), runs all its epochs (`--scheduler fifo`) and uses 1 torch thread
(MLAPI_TORCH_THREADS=1, as a 1-CPU trial does).
Writes benchmarks/results/tune_overhead.json with the command and the load average: the
cores of a shared machine make wall times noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlapi.artifacts import atomic_write_json, utc_now_iso

RESULT = Path(__file__).parent / "results" / "tune_overhead.json"
MLAPI = [sys.executable, "-m", "mlapi"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", default=str(RESULT))
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    flags = f"--limit {args.limit} --epochs {args.epochs}"
    env = {**os.environ, "MLAPI_TORCH_THREADS": "1"}
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        plain = _plain_train(work, args.data, flags, env)
        one_trial = _sweep(work / "one", args.data, flags, env, seeds=[42], concurrent=1)
        together = _sweep(work / "two", args.data, flags, env, seeds=[1, 2], concurrent=2)
        in_turn = _sweep(work / "seq", args.data, flags, env, seeds=[1, 2], concurrent=1)
    per_epoch_plain = plain["seconds_per_epoch"]
    per_epoch_trial = one_trial["trials"][0]["seconds_per_epoch"]
    result = {
        "command": shlex.join(["python", "benchmarks/tune_overhead.py", *sys.argv[1:]]),
        "created_at": utc_now_iso(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "plain_train": plain,
        "one_ray_trial": one_trial,
        "ray_added_wall_seconds": one_trial["wall_seconds"] - plain["wall_seconds"],
        "ray_added_per_epoch_percent": 100 * (per_epoch_trial / per_epoch_plain - 1),
        "two_trials_concurrent": together,
        "two_trials_in_sequence": in_turn,
        "concurrency_speedup": in_turn["wall_seconds"] / together["wall_seconds"],
        "goals": {"ray_added_wall_seconds_max": 10, "ray_added_per_epoch_percent_max": 5},
    }  # fmt: skip
    atomic_write_json(Path(args.out), result)
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}, indent=1))
    return 0


def _timed(command: list[str], env: dict) -> float:
    print("$ " + shlex.join(command), file=sys.stderr, flush=True)
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def _plain_train(work: Path, data: str, flags: str, env: dict) -> dict:
    out = work / "plain"
    command = [*MLAPI, "train", "imdb", "--data", data, "--out", str(out), "--quiet",
               "--no-track", "--install", "--models-dir", str(out / "models"),
               "--device", "cpu", *shlex.split(flags)]  # fmt: skip
    wall = _timed(command, env)
    (metrics,) = out.glob("*_metrics.json")
    return {"wall_seconds": wall, **_epoch_times(json.loads(metrics.read_text()))}


def _sweep(out: Path, data: str, flags: str, env: dict, *, seeds: list[int], concurrent: int):
    out.mkdir(parents=True)
    space = out / "space.yaml"
    space.write_text(json.dumps({"base": flags, "search": {"seed": {"choice": seeds}}}))
    command = [*MLAPI, "tune", "--space", str(space), "--num-samples", str(len(seeds)),
               "--data", data, "--out", str(out / "sweep"), "--no-track", "--device", "cpu",
               "--cpus-per-trial", "1", "--max-concurrent", str(concurrent),
               "--seed", "0", "--scheduler", "fifo"]  # fmt: skip
    wall = _timed(command, env)
    trials = [json.loads(p.read_text())["entry"] for p in out.glob("sweep/trials/*/trial.json")]
    return {
        "wall_seconds": wall,
        "trials": [{"name": t["name"], "seconds_per_epoch": t["seconds_per_epoch"],
                    "wall_seconds": t["wall_seconds"]} for t in trials],
    }  # fmt: skip


def _epoch_times(metrics: dict) -> dict:
    return {"seconds_per_epoch": metrics["seconds_per_epoch"]}


if __name__ == "__main__":
    raise SystemExit(main())
