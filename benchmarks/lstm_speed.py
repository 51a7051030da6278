"""Seconds per training epoch of the seed's IMDb LSTM: ours, fused nn.LSTM, and Keras 3.

    .venv/bin/python benchmarks/lstm_speed.py [--batches 60] [--repeats 3]
        [--keras-python /work/keras-venv/bin/python] [--keras-backends jax,tensorflow]

  (a) ours    mlapi LSTMClassifier with the seed's recipe: dropout 0.5 and recurrent
              dropout 0.3, exact Keras masks (the step loop with its C kernel)
  (b) fused   the same network with recurrent_dropout=0: PyTorch's fused nn.LSTM
              (oneDNN), dropout 0.5 on its inputs
  (c) keras   Keras 3: Embedding(20000, 128) -> LSTM(64, dropout=0.5,
              recurrent_dropout=0.3, kernel_regularizer=L2(1e-4)) -> Dense(1, sigmoid),
              Adam(2e-4, clipnorm=1.0), binary cross-entropy, in its own venv

All three: batch 64, Adam lr 2e-4, clipnorm 1.0, L2 1e-4, BCE, shuffled, training only
(no validation pass), on the same data: random int ids, 20,000 reviews x 200 tokens,
vocabulary 20,000, labels random (numpy default_rng(0)). (a) and (b) run the project's
real `mlapi.training.loop.fit`; (c) runs `model.fit`. Each is warmed up (compilation,
kernel build) before timing.

`--batches N` times N batches and extrapolates to a full epoch of 20,000 reviews:
seconds/epoch = seconds/batch x 20000/64. Runs are interleaved (a, b, c, a, b, c, ...)
`--repeats` times, and medians are reported, so that load from other processes on the
machine hits all alike. Each side uses 2 threads (`--threads`) and is pinned to as many
CPUs. Wall-clock seconds are the figures; CPU seconds are recorded beside them.

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

import numpy as np
import torch

from mlapi.artifacts import atomic_write_json, utc_now_iso
from mlapi.models import lstm_kernel
from mlapi.models.lstm import LSTMClassifier
from mlapi.training.loop import FitConfig, fit

REPO = Path(__file__).resolve().parents[1]
REVIEWS, TOKENS, VOCAB, BATCH = 20_000, 200, 20_000, 64
GOALS = {"keras_over_ours_at_least": 1.5, "ours_over_fused_at_most": 1.5}
DEFAULT_KERAS_VENV = Path("/work/keras-venv")

# Runs in the Keras venv: builds the seed's model, warms up, then times one fit per
# "run" line read from stdin and answers with one JSON line.
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
print(json.dumps({"ready": True, "keras": keras.__version__, "backend": backend,
                  "backend_version": __import__(backend).__version__}), flush=True)
for line in sys.stdin:
    wall, cpu = time.perf_counter(), time.process_time()
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=True, verbose=0)
    print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}),
          flush=True)
"""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.setup_keras_venv:
        setup_keras_venv(Path(args.setup_keras_venv))
        return 0
    pin_threads(args.threads)
    x, y = benchmark_data(args.batches)
    runners = {"a_ours": torch_runner(x, y, recurrent_dropout=0.3, threads=args.threads)}
    runners["b_fused"] = torch_runner(x, y, recurrent_dropout=0.0, threads=args.threads)
    workers = [] if args.no_keras else start_keras_workers(args)
    for worker in workers:
        runners[f"c_keras_{worker.backend}"] = worker.run

    load_before = os.getloadavg()
    timings: dict[str, list[dict[str, float]]] = {name: [] for name in runners}
    for repeat in range(args.repeats):
        for name, run in runners.items():
            timings[name].append(run())
            print(f"repeat {repeat + 1}/{args.repeats} {name}: {timings[name][-1]['wall']:.2f} s")
    for worker in workers:
        worker.close()

    result = summarize(args, timings, workers, load_before)
    print_table(result)
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--batches",
        type=int,
        default=60,
        help=f"batches timed per run, extrapolated to {REVIEWS // BATCH + 1}",
    )
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of each")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keras-python", default=None, help="python of the Keras venv")
    parser.add_argument(
        "--keras-backends", default="jax", help="comma-separated: jax, tensorflow (default jax)"
    )
    parser.add_argument("--no-keras", action="store_true", help="time only (a) and (b)")
    parser.add_argument(
        "--setup-keras-venv",
        metavar="DIR",
        default=None,
        help="create the Keras venv in DIR (needs PyPI) and exit",
    )
    parser.add_argument("--out", default=str(REPO / "benchmarks/results/lstm_speed.json"))
    args = parser.parse_args(argv)
    if not 1 <= args.batches <= -(-REVIEWS // BATCH):
        parser.error(f"--batches must be in 1..{-(-REVIEWS // BATCH)}")
    return args  # fmt: skip


def setup_keras_venv(venv: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install"]
    subprocess.run([*pip, "keras", "jax", "tensorflow-cpu"], check=True)
    print(f"Keras venv ready: --keras-python {venv / 'bin' / 'python'}")


def pin_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])


def benchmark_data(batches: int) -> tuple[np.ndarray, np.ndarray]:
    """The same arrays the Keras worker builds: random ids and labels, default_rng(0)."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, VOCAB, size=(REVIEWS, TOKENS), dtype=np.int32)[: batches * BATCH]
    y = rng.integers(0, 2, size=REVIEWS).astype(np.float32)[: batches * BATCH]
    return x, y


def torch_runner(x: np.ndarray, y: np.ndarray, recurrent_dropout: float, threads: int):
    torch.manual_seed(0)
    model = LSTMClassifier(VOCAB, recurrent_dropout=recurrent_dropout)
    config = FitConfig(batch_size=BATCH, epochs=1, threads=threads)
    fit(model, (x[: 2 * BATCH], y[: 2 * BATCH]), None, config, progress=False)  # warm-up

    def run() -> dict[str, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        fit(model, (x, y), None, config, progress=False)
        return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}

    return run


class KerasWorker:
    def __init__(self, python: str, backend: str, threads: int, batches: int):
        self.backend = backend
        settings = {
            "backend": backend,
            "threads": threads,
            "batches": batches,
            "reviews": REVIEWS,
            "tokens": TOKENS,
            "vocab": VOCAB,
            "batch": BATCH,
        }
        self.process = subprocess.Popen(
            [python, "-c", KERAS_WORKER, json.dumps(settings)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.info = self._answer()

    def _answer(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the Keras {self.backend} worker exited ({self.process.wait()})")
        return json.loads(line)

    def run(self) -> dict[str, float]:
        self.process.stdin.write("run\n")
        self.process.stdin.flush()
        return self._answer()

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def start_keras_workers(args: argparse.Namespace) -> list[KerasWorker]:
    python = args.keras_python or os.environ.get("MLAPI_KERAS_PYTHON")
    if python is None and (DEFAULT_KERAS_VENV / "bin" / "python").exists():
        python = str(DEFAULT_KERAS_VENV / "bin" / "python")
    if python is None:
        sys.exit("no Keras venv: pass --keras-python, set MLAPI_KERAS_PYTHON, "
                 "run --setup-keras-venv DIR, or use --no-keras")  # fmt: skip
    backends = [b.strip() for b in args.keras_backends.split(",") if b.strip()]
    return [KerasWorker(python, backend, args.threads, args.batches) for backend in backends]


def summarize(args, timings, workers, load_before) -> dict:
    scale = (REVIEWS / BATCH) / args.batches  # batches timed -> one epoch of 20,000 reviews
    results = {}
    for name, runs in timings.items():
        wall = [r["wall"] * scale for r in runs]
        cpu = [r["cpu"] * scale for r in runs]
        results[name] = {
            "seconds_per_epoch": round(statistics.median(wall), 2),
            "cpu_seconds_per_epoch": round(statistics.median(cpu), 2),
            "runs_seconds_per_epoch": [round(w, 2) for w in wall],
        }
    ours, fused = results["a_ours"]["seconds_per_epoch"], results["b_fused"]["seconds_per_epoch"]
    ratios = {"ours_over_fused": round(ours / fused, 3)}
    keras = {k: v["seconds_per_epoch"] for k, v in results.items() if k.startswith("c_keras")}
    if keras:
        fastest = min(keras, key=keras.get)
        ratios["keras_over_ours"] = round(keras[fastest] / ours, 3)
        ratios["keras_backend_compared"] = fastest.removeprefix("c_keras_")
    goals = {"ours_within_1.5x_of_fused": ratios["ours_over_fused"] <= 1.5}
    if keras:
        goals["ours_1.5x_faster_than_keras"] = ratios["keras_over_ours"] >= 1.5
    return {
        "benchmark": "lstm_speed",
        "created_at": utc_now_iso(),
        "command": "benchmarks/lstm_speed.py " + " ".join(sys.argv[1:]),
        "data": f"random int ids, {REVIEWS} reviews x {TOKENS} tokens, vocab {VOCAB}, "
        "numpy default_rng(0)",
        "recipe": "batch 64, Adam(2e-4, clipnorm 1.0), BCE, L2 1e-4 on the LSTM kernel, "
        "dropout 0.5, recurrent_dropout 0.3 (b: 0), training only",
        "step_loop": "C kernel" if lstm_kernel.load() is not None else "PyTorch loop (no C kernel)",
        "batches_timed": args.batches,
        "extrapolation": f"seconds/epoch = seconds per batch x {REVIEWS}/{BATCH}",
        "repeats": args.repeats,
        "threads": args.threads,
        "load_average_before_after": [round(v, 2) for v in (load_before[0], os.getloadavg()[0])],
        "results": results,
        "ratios": ratios,
        "goals": goals,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            **{f"keras_{w.backend}": f"keras {w.info['keras']}, {w.backend} "
               f"{w.info['backend_version']}" for w in workers},
        },
        "machine": {"cpu": cpu_model(), "cpus_available": len(os.sched_getaffinity(0))},
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
    print(f"\nseconds per epoch ({result['extrapolation']}; median of {result['repeats']}):")
    print(f"{'model':<20}{'wall s':>10}{'cpu s':>10}  runs")
    for name, r in result["results"].items():
        runs = ", ".join(f"{s:.1f}" for s in r["runs_seconds_per_epoch"])
        print(
            f"{name:<20}{r['seconds_per_epoch']:>10.1f}{r['cpu_seconds_per_epoch']:>10.1f}  {runs}"
        )
    for name, value in result["ratios"].items():
        print(f"{name}: {value}")
    for name, met in result["goals"].items():
        print(f"goal {name}: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    raise SystemExit(main())
