"""IMDb data pipeline speed and memory: a cold run, a warm (cached) run, and a read-only floor.

    .venv/bin/python benchmarks/data_pipeline.py [--data ../shared/data/aclImdb_v1.tar.gz]

Each phase runs in a fresh Python process against a private cache folder (a temp dir
unless --cache-dir), so the figures include interpreter start and imports, as a
user's second `mlapi train imdb` would:

  extract  find_dataset(archive): the one-time extraction into the cache
  read     read the bytes of the 50,000 labeled review files, nothing else (the floor)
  cold     load_encoded() + load_encoded_test(): read, clean, tokenize, fit the
           vocabulary, encode all 50,000 labeled reviews, write the encoded cache
  warm     the same calls again: served from the encoded cache

Goals (issue 3): cold < 30 s, warm < 3 s, int32 arrays. Prints the figures and
writes them to benchmarks/results/data_pipeline.json. Sizes: the recipe's defaults
(--num-words, --maxlen). Timings swing with the load of the shared machine: the JSON
records the load averages before and after the phases.

`--data` may also be an extracted aclImdb folder (the extract phase is then ~free).
Deleting the temp cache's 100,000 files at the end can take minutes on a busy disk;
`--cache-dir DIR` keeps them (the encoded cache inside is cleared first).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlapi.artifacts import atomic_write_json
from mlapi.training.config import ExperimentConfig

RECIPE = ExperimentConfig()  # the sizes `mlapi train imdb` uses by default

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = os.environ.get("IMDB_DATA") or str(
    REPO.parent / "shared" / "data" / "aclImdb_v1.tar.gz"
)
GOALS_S = {"cold": 30.0, "warm": 3.0}
PHASES = ("extract", "read", "cold", "warm")


# -- child: one phase in a fresh process -------------------------------------------------------


def run_phase(phase: str, data: str, num_words: int, maxlen: int) -> dict:
    started = time.perf_counter()
    import hashlib
    import resource

    from mlapi.data import imdb

    result: dict = {}
    if phase == "extract":
        result["root"] = str(imdb.find_dataset(data))
    elif phase == "read":
        root = imdb.find_dataset(data)
        total = 0
        for split in ("train", "test"):
            for folder, _ in imdb.SPLIT_FOLDERS[split]:
                for entry in os.scandir(root / folder):
                    with open(entry.path, "rb") as f:
                        total += len(f.read())
        result["bytes_read"] = total
    else:
        encoded = imdb.load_encoded(data, num_words=num_words, maxlen=maxlen)
        x_test, y_test, texts = imdb.load_encoded_test(data, encoded.vocabulary)
        arrays = {
            "x_train": encoded.x_train,
            "x_val": encoded.x_val,
            "x_test": x_test,
            "y_train": encoded.y_train,
            "y_val": encoded.y_val,
            "y_test": y_test,
        }
        result["from_cache"] = encoded.from_cache
        result["arrays"] = {
            name: {
                "shape": list(a.shape),
                "dtype": str(a.dtype),
                "mb": round(a.nbytes / 2**20, 1),
                "sha256": hashlib.sha256(a.tobytes()).hexdigest()[:16],
            }
            for name, a in arrays.items()
        }
        result["vocabulary_size"] = encoded.vocabulary.size
        result["reviews"] = len(encoded.x_train) + len(encoded.x_val) + len(texts)
    result["in_process_s"] = round(time.perf_counter() - started, 3)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


def spawn(phase: str, args: argparse.Namespace, cache: Path) -> dict:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    env.pop("IMDB_DATA", None)
    command = [sys.executable, __file__, "--child", phase, "--data", args.data]
    command += ["--num-words", str(args.num_words), "--maxlen", str(args.maxlen)]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"phase {phase} failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = round(wall, 3)
    return result


# -- parent: run the phases, check, print, save -----------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="aclImdb folder or .tar.gz")
    parser.add_argument("--num-words", type=int, default=RECIPE.vocab_size)
    parser.add_argument("--maxlen", type=int, default=RECIPE.maxlen)
    parser.add_argument("--cache-dir", help="cache folder to use (default: a fresh temp dir)")
    parser.add_argument(
        "--out", default=str(REPO / "benchmarks" / "results" / "data_pipeline.json")
    )
    parser.add_argument("--child", choices=PHASES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_phase(args.child, args.data, args.num_words, args.maxlen)))
        return 0
    if not Path(args.data).exists():
        sys.exit(f"no IMDb data at {args.data}; pass --data or set IMDB_DATA")

    load_before = os.getloadavg()
    cache = (
        Path(args.cache_dir) if args.cache_dir else Path(tempfile.mkdtemp(prefix="mlapi-bench-"))
    )
    try:
        encoded_cache = cache / "mlapi" / "imdb-encoded"
        shutil.rmtree(encoded_cache, ignore_errors=True)  # cold must be cold
        phases = {phase: spawn(phase, args, cache) for phase in PHASES}
    finally:
        if not args.cache_dir:
            shutil.rmtree(cache, ignore_errors=True)

    cold, warm, read = phases["cold"], phases["warm"], phases["read"]
    same_arrays = all(
        cold["arrays"][name]["sha256"] == warm["arrays"][name]["sha256"] for name in cold["arrays"]
    )
    checks = {
        "cold_under_30s": cold["wall_s"] < GOALS_S["cold"],
        "warm_under_3s": warm["wall_s"] < GOALS_S["warm"],
        "warm_served_from_cache": warm["from_cache"] and not cold["from_cache"],
        "warm_arrays_identical_to_cold": same_arrays,
        "x_arrays_int32": all(
            cold["arrays"][x]["dtype"] == "int32" for x in ("x_train", "x_val", "x_test")
        ),
        "all_50000_labeled_reviews": cold["reviews"] == 50_000,
    }
    report = {
        "benchmark": "data_pipeline",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": "python benchmarks/data_pipeline.py " + " ".join(sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "load_average_before": [round(x, 2) for x in load_before],  # 1, 5, 15 min
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
        "data": args.data,
        "settings": {"num_words": args.num_words, "maxlen": args.maxlen},
        "phases": phases,
        "ratios": {
            "cold_over_read": round(cold["wall_s"] / read["wall_s"], 2),
            "warm_over_cold": round(warm["wall_s"] / cold["wall_s"], 3),
        },
        "goals_s": GOALS_S,
        "checks": checks,
    }
    print_report(report)
    out = Path(args.out)
    atomic_write_json(out, report)
    print(f"\nsaved {out}")
    return 0 if all(checks.values()) else 1


def print_report(report: dict) -> None:
    phases = report["phases"]
    print(f"IMDb data pipeline, {report['data']}")
    print(f"{'phase':<8} {'wall s':>8} {'in-proc s':>10} {'peak RSS MB':>12}")
    for name, phase in phases.items():
        print(
            f"{name:<8} {phase['wall_s']:>8.2f} {phase['in_process_s']:>10.2f}"
            f" {phase['peak_rss_mb']:>12.1f}"
        )
    print("arrays (cold):")
    for name, info in phases["cold"]["arrays"].items():
        print(f"  {name:<8} {str(info['shape']):<14} {info['dtype']:<6} {info['mb']:>6.1f} MB")
    ratios = report["ratios"]
    print(f"cold / read-only floor: {ratios['cold_over_read']}x")
    print(f"warm / cold: {ratios['warm_over_cold']}")
    for check, ok in report["checks"].items():
        print(f"  {'ok  ' if ok else 'FAIL'} {check}")


if __name__ == "__main__":
    raise SystemExit(main())
