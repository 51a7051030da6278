"""Seconds per training epoch of the seed's IMDb LSTM: ours, fused nn.LSTM, and Keras 3.

    .venv/bin/python benchmarks/lstm_speed.py [--batches 60] [--repeats 3]
        [--keras-python /work/keras-venv/bin/python] [--keras-backends jax,tensorflow]

  (a) ours    mlapi LSTMClassifier with the seed's recipe: dropout 0.5 and recurrent
              dropout 0.3 with Keras' masks (the exact step loop with its C kernel)
  (b) fused   the same network with recurrent_dropout=0: PyTorch's fused nn.LSTM
              (oneDNN), dropout 0.5 on its inputs
  (c) keras   Keras 3: Embedding(50000, 128) -> LSTM(64, dropout=0.5,
              recurrent_dropout=0.3, kernel_regularizer=L2(1e-4)) -> Dense(1, sigmoid),
              Adam(2e-4, clipnorm=1.0), binary cross-entropy, in its own venv

All: batch 64, Adam lr 2e-4, clipnorm 1.0, L2 1e-4, BCE, shuffled, training only (no
validation pass), on the same data: random int ids, 20,000 reviews x 300 tokens,
vocabulary 50,000 (the recipe's defaults in ExperimentConfig), random labels (numpy
default_rng(0)). (a) and (b) run the project's `mlapi.training.loop.fit`; (c) runs
`model.fit`.

Each contender runs in its own worker process, warmed up first (compilation, kernel
build), pinned to `--threads` CPUs and limited to as many threads. `--batches N` times N
batches and extrapolates to a full epoch: seconds/epoch = seconds/batch x 20000/64.
Runs are interleaved (a, b, c, a, b, c, ...) `--repeats` times and medians reported, so
that load from other processes hits all alike. Wall seconds are the figures; the worker's
CPU seconds are recorded beside them. On a shared machine, `--wait-idle SECONDS` waits
before each run (up to SECONDS) until other processes leave the CPUs idle, and records
how busy they were.

PyTorch's CPU kernels use GNU OpenMP, whose threads spin while they wait. On a machine
shared with other jobs that spinning costs a lot (a waiting thread burns the time slice
its partner needs), so (a) and (b) run twice: with the environment as it is, and with
OMP_WAIT_POLICY=PASSIVE (`--omp-policies`, default both).

Keras is never a project dependency: it lives in its own venv, found by --keras-python,
else $MLAPI_KERAS_PYTHON, else /work/keras-venv/bin/python. Create one with
`--setup-keras-venv DIR` (python -m venv DIR; DIR/bin/pip install keras jax
tensorflow-cpu; needs PyPI), or skip (c) with --no-keras.

Goals (issue 4, part 7): (a) at least 1.5x faster than (c), and within 1.5x of (b).
Prints a table and writes benchmarks/results/lstm_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from mlapi.artifacts import atomic_write_json, utc_now_iso
from mlapi.training.config import ExperimentConfig

REPO = Path(__file__).resolve().parents[1]
SEED = ExperimentConfig()  # the seed recipe's sizes
REVIEWS, TOKENS, VOCAB, BATCH = 20_000, SEED.maxlen, SEED.vocab_size, SEED.batch_size
GOAL_VS_KERAS, GOAL_VS_FUSED = 1.5, 1.5
IDLE_BUSY = 0.1  # --wait-idle: "idle" = all CPUs together under 10% busy over one second
DEFAULT_KERAS_VENV = Path("/work/keras-venv")

# Worker protocol: after warming up, print one JSON line {"ready": true, ...}; then for
# every "run" line on stdin, train one epoch of `batches` batches and print
# {"wall": seconds, "cpu": seconds}.

KERAS_WORKER = r"""
import json, os, sys, time
settings = json.loads(sys.argv[1])
backend, threads, batches = settings["backend"], settings["threads"], settings["batches"]
REVIEWS, TOKENS, VOCAB, BATCH = (settings[k] for k in ("reviews", "tokens", "vocab", "batch"))
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])
os.environ["KERAS_BACKEND"] = backend
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np
import keras
from keras import layers, regularizers
if backend == "tensorflow":
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.integers(0, VOCAB, size=(REVIEWS, TOKENS), dtype=np.int32)[: batches * BATCH]
y = rng.integers(0, 2, size=REVIEWS).astype("float32")[: batches * BATCH]
model = keras.Sequential([
    keras.Input(shape=(TOKENS,), dtype="int32"),
    layers.Embedding(VOCAB, 128),
    layers.LSTM(64, dropout=0.5, recurrent_dropout=0.3,
                kernel_regularizer=regularizers.L2(1e-4)),
    layers.Dense(1, activation="sigmoid"),
])
model.compile(optimizer=keras.optimizers.Adam(learning_rate=2e-4, clipnorm=1.0),
              loss="binary_crossentropy", metrics=["accuracy"])
model.fit(x[: 2 * BATCH], y[: 2 * BATCH], batch_size=BATCH, epochs=1, verbose=0)
print(json.dumps({"ready": True, "version": f"keras {keras.__version__}, {backend} "
                  f"{__import__(backend).__version__}"}), flush=True)
for line in sys.stdin:
    wall, cpu = time.perf_counter(), time.process_time()
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=True, verbose=0)
    print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}),
          flush=True)
"""


def torch_worker(settings: dict) -> None:
    """(a) or (b) in this process: the same protocol as the Keras worker."""
    pin_cpus(settings["threads"])
    import numpy as np
    import torch

    from mlapi.models import lstm_kernel
    from mlapi.models.lstm import LSTMClassifier
    from mlapi.training.loop import FitConfig, fit

    rng = np.random.default_rng(0)
    x = rng.integers(0, VOCAB, size=(REVIEWS, TOKENS), dtype=np.int32)
    y = rng.integers(0, 2, size=REVIEWS).astype(np.float32)
    x, y = x[: settings["batches"] * BATCH], y[: settings["batches"] * BATCH]
    torch.manual_seed(0)
    model = LSTMClassifier(VOCAB, recurrent_dropout=settings["recurrent_dropout"])
    config = FitConfig(
        batch_size=BATCH,
        epochs=1,
        learning_rate=SEED.lr,
        clipnorm=SEED.clipnorm,
        seed=SEED.seed,
        threads=settings["threads"],
    )
    fit(model, (x[: 2 * BATCH], y[: 2 * BATCH]), None, config, progress=False)  # warm-up
    step_loop = "C kernel" if lstm_kernel.load() is not None else "PyTorch loop"
    if settings["recurrent_dropout"] == 0:
        step_loop = "none (fused nn.LSTM)"
    print(json.dumps({"ready": True, "version": f"torch {torch.__version__}",
                      "step_loop": step_loop}), flush=True)  # fmt: skip
    for _ in sys.stdin:
        wall, cpu = time.perf_counter(), time.process_time()
        fit(model, (x, y), None, config, progress=False)
        print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}),
              flush=True)  # fmt: skip


class Worker:
    """A warmed-up contender in its own process, timed on request."""

    def __init__(self, name: str, command: list[str], env: dict[str, str] | None = None):
        self.name = name
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        self.info = self._answer()

    def _answer(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.name} exited with {self.process.wait()}")
        return json.loads(line)

    def run(self) -> dict[str, float]:
        self.process.stdin.write("run\n")
        self.process.stdin.flush()
        return self._answer()

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.torch_worker:
        torch_worker(json.loads(args.torch_worker))
        return 0
    if args.setup_keras_venv:
        setup_keras_venv(Path(args.setup_keras_venv))
        return 0
    workers = start_workers(args)
    loads = [os.getloadavg()[0]]  # 1-minute load average before, and after each repeat
    timings: dict[str, list[dict[str, float]]] = {w.name: [] for w in workers}
    for repeat in range(args.repeats):
        for worker in workers:
            busy = wait_until_idle(args.wait_idle) if args.wait_idle else None
            timings[worker.name].append({**worker.run(), "busy_before": busy})
            wall = timings[worker.name][-1]["wall"]
            print(f"repeat {repeat + 1}/{args.repeats} {worker.name}: {wall:.2f} s", flush=True)
        loads.append(os.getloadavg()[0])
    for worker in workers:
        worker.close()
    result = summarize(args, timings, workers, loads)
    print_table(result)
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    epoch_batches = -(-REVIEWS // BATCH)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--batches",
        type=int,
        default=60,
        help=f"batches timed per run (an epoch has {epoch_batches})",
    )
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of each")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--omp-policies",
        default="default,passive",
        help="OpenMP wait policies for (a) and (b): default, passive",
    )
    parser.add_argument("--keras-python", default=None, help="python of the Keras venv")
    parser.add_argument(
        "--keras-backends",
        default="jax,tensorflow",
        help="comma-separated Keras backends: jax, tensorflow",
    )
    parser.add_argument("--no-keras", action="store_true", help="time only (a) and (b)")
    parser.add_argument(
        "--setup-keras-venv",
        metavar="DIR",
        default=None,
        help="create the Keras venv in DIR (needs PyPI) and exit",
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0,
        metavar="SECONDS",
        help="before each run, wait up to SECONDS for other processes to "
        f"use under {IDLE_BUSY * 100:.0f}%% of the CPUs (default: don't wait)",  # %% for argparse
    )
    parser.add_argument("--out", default=str(REPO / "benchmarks/results/lstm_speed.json"))
    parser.add_argument("--torch-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 1 <= args.batches <= epoch_batches:
        parser.error(f"--batches must be in 1..{epoch_batches}")
    return args  # fmt: skip


def setup_keras_venv(venv: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install"]
    subprocess.run([*pip, "keras", "jax", "tensorflow-cpu"], check=True)
    print(f"Keras venv ready: --keras-python {venv / 'bin' / 'python'}")


def pin_cpus(threads: int) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])


def start_workers(args: argparse.Namespace) -> list[Worker]:
    workers = []
    for policy in [p.strip() for p in args.omp_policies.split(",") if p.strip()]:
        env = dict(os.environ)
        if policy == "passive":
            env["OMP_WAIT_POLICY"] = "PASSIVE"
        elif policy != "default":
            sys.exit(f"unknown OpenMP policy {policy!r}: use default or passive")
        suffix = "" if policy == "default" else "_omp_passive"
        for name, rate in (("a_ours", 0.3), ("b_fused", 0.0)):
            settings = {"recurrent_dropout": rate, "threads": args.threads, "batches": args.batches}
            command = [sys.executable, __file__, "--torch-worker", json.dumps(settings)]
            workers.append(Worker(name + suffix, command, env))
    if not args.no_keras:
        python = keras_python(args)
        for backend in [b.strip() for b in args.keras_backends.split(",") if b.strip()]:
            settings = {
                "backend": backend,
                "threads": args.threads,
                "batches": args.batches,
                "reviews": REVIEWS,
                "tokens": TOKENS,
                "vocab": VOCAB,
                "batch": BATCH,
            }
            command = [python, "-c", KERAS_WORKER, json.dumps(settings)]
            workers.append(Worker(f"c_keras_{backend}", command))  # fmt: skip
    return workers


def cpu_busy(interval: float = 1.0) -> float:
    """Fraction of all CPUs' time spent busy over `interval` seconds (from /proc/stat)."""

    def idle_and_total() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
        return ticks[3] + ticks[4], sum(ticks)  # idle + iowait, all

    idle0, total0 = idle_and_total()
    time.sleep(interval)
    idle1, total1 = idle_and_total()
    return 1.0 - (idle1 - idle0) / max(total1 - total0, 1)


def wait_until_idle(limit_s: float) -> float:
    """Wait (at most `limit_s`) until the machine is idle; return the last busy fraction."""
    deadline = time.monotonic() + limit_s
    while (busy := cpu_busy()) > IDLE_BUSY and time.monotonic() < deadline:
        time.sleep(1.0)
    return round(busy, 3)


def keras_python(args: argparse.Namespace) -> str:
    python = args.keras_python or os.environ.get("MLAPI_KERAS_PYTHON")
    if python is None and (DEFAULT_KERAS_VENV / "bin" / "python").exists():
        python = str(DEFAULT_KERAS_VENV / "bin" / "python")
    if python is None:
        sys.exit("no Keras venv: pass --keras-python, set MLAPI_KERAS_PYTHON, "
                 "run --setup-keras-venv DIR, or use --no-keras")  # fmt: skip
    return python


def summarize(args, timings, workers, load_averages) -> dict:
    scale = (REVIEWS / BATCH) / args.batches  # batches timed -> one epoch of 20,000 reviews
    results = {}
    for name, runs in timings.items():
        wall = [r["wall"] * scale for r in runs]
        results[name] = {
            "seconds_per_epoch": round(statistics.median(wall), 2),
            "cpu_seconds_per_epoch": round(statistics.median(r["cpu"] * scale for r in runs), 2),
            "runs_seconds_per_epoch": [round(w, 2) for w in wall],
        }
        if args.wait_idle:
            results[name]["runs_cpu_busy_before"] = [r["busy_before"] for r in runs]
    seconds = {name: r["seconds_per_epoch"] for name, r in results.items()}
    keras = {k: v for k, v in seconds.items() if k.startswith("c_keras")}
    fastest_keras = min(keras, key=keras.get) if keras else None
    comparisons = {}
    for ours in (k for k in seconds if k.startswith("a_ours")):
        fused = ours.replace("a_ours", "b_fused")
        entry = {"ours_over_fused": round(seconds[ours] / seconds[fused], 3)}
        entry["within_1.5x_of_fused"] = entry["ours_over_fused"] <= GOAL_VS_FUSED
        if fastest_keras:
            entry["fastest_keras"] = fastest_keras
            entry["keras_over_ours"] = round(keras[fastest_keras] / seconds[ours], 3)
            entry["1.5x_faster_than_keras"] = entry["keras_over_ours"] >= GOAL_VS_KERAS
        comparisons[ours] = entry
    return {
        "benchmark": "lstm_speed",
        "command": "benchmarks/lstm_speed.py " + " ".join(sys.argv[1:]),
        "data": f"random int ids, {REVIEWS} reviews x {TOKENS} tokens, vocab {VOCAB}, "
        "numpy default_rng(0)",
        "recipe": "batch 64, Adam(2e-4, clipnorm 1.0), BCE, L2 1e-4 on the LSTM kernel, "
        "dropout 0.5, recurrent_dropout 0.3 (b: 0), training only",
        "batches_timed": args.batches,
        "extrapolation": f"seconds/epoch = seconds per batch x {REVIEWS}/{BATCH}",
        "repeats": args.repeats,
        "threads": args.threads,
        "wait_idle_seconds": args.wait_idle,
        "load_average_before_and_after_each_repeat": [round(v, 2) for v in load_averages],
        "results": results,
        "comparisons": comparisons,
        "goals": {"keras_over_ours_at_least": GOAL_VS_KERAS,
                  "ours_over_fused_at_most": GOAL_VS_FUSED},
        "workers": {w.name: {k: v for k, v in w.info.items() if k != "ready"} for w in workers},
        "machine": {"cpu": cpu_model(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
    }  # fmt: skip


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def print_table(result: dict) -> None:
    print(
        f"\nseconds per epoch ({result['extrapolation']}; median of {result['repeats']}), "
        f"{result['threads']} threads; load average before and after each repeat: "
        f"{result['load_average_before_and_after_each_repeat']}"
    )
    print(f"{'contender':<24}{'wall s':>9}{'cpu s':>9}  runs")
    for name, r in result["results"].items():
        runs = ", ".join(f"{s:.1f}" for s in r["runs_seconds_per_epoch"])
        wall, cpu = r["seconds_per_epoch"], r["cpu_seconds_per_epoch"]
        print(f"{name:<24}{wall:>9.1f}{cpu:>9.1f}  {runs}")
    for ours, c in result["comparisons"].items():
        line = f"{ours}: {c['ours_over_fused']}x fused (goal <= {GOAL_VS_FUSED})"
        if "keras_over_ours" in c:
            line += f", {c['fastest_keras']} / ours = {c['keras_over_ours']} (goal >= 1.5)"
        print(line)  # fmt: skip


def write_json(path: str, result: dict) -> None:
    atomic_write_json(path, {"created_at": utc_now_iso(), **result})


if __name__ == "__main__":
    raise SystemExit(main())
