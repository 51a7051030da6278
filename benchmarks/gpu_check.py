"""One epoch of the seed recipe and of a stronger recipe, on CPU and on CUDA: s/epoch and
accuracy (val of the epoch, test of its weights) per device.

    .venv/bin/python benchmarks/gpu_check.py --data ../shared/data/aclImdb_v1.tar.gz
    .venv/bin/python benchmarks/gpu_check.py --data ... --limit 2000   # a quicker check

Writes benchmarks/results/gpu_check.json. A device this machine lacks is recorded as
unavailable (no numbers). The seed recipe with recurrent dropout runs the C kernel on CPU
and the PyTorch step loop on CUDA; the strong recipe (the leaderboard's BiLSTM with
max+mean pooling, without Word2Vec) uses the fused kernels (cuDNN on CUDA).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
from pathlib import Path

from mlapi.artifacts import atomic_write_json, utc_now_iso
from mlapi.compare.plan import config_from_flags

RECIPES = {
    "seed": "--epochs 1",
    "strong": "--arch bilstm --pooling maxmean --vocab-size 40000 --maxlen 400 --dropout 0.4 "
    "--recurrent-dropout 0 --l2 0 --lr 2e-3 --batch-size 128 --epochs 1",
}
RESULT = Path(__file__).parent / "results" / "gpu_check.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="aclImdb folder or .tar.gz archive")
    parser.add_argument("--limit", type=int, default=None, help="training reviews (default all)")
    parser.add_argument("--out", default=str(RESULT))
    args = parser.parse_args(argv)

    import torch

    from mlapi.training.run import run_experiment

    results = []
    for device in ("cpu", "cuda"):
        if device == "cuda" and not torch.cuda.is_available():
            note = "torch.cuda.is_available() is False on this machine: not measured"
            results.append({"device": "cuda", "available": False, "note": note})
            continue
        for recipe, flags in RECIPES.items():
            limit = f" --limit {args.limit}" if args.limit else ""
            config = config_from_flags(flags + limit)
            print(f"{device}: {recipe} ({config.run_name})", file=sys.stderr, flush=True)
            with tempfile.TemporaryDirectory() as out:
                result = run_experiment(config, data=args.data, out_dir=out, models_dir=None,
                                        progress=False, device=device)  # fmt: skip
            m = result.metrics
            results.append({
                "device": device, "available": True, "recipe": recipe, "flags": flags + limit,
                "run_name": config.run_name, "seconds_per_epoch": m.seconds_per_epoch,
                "val_accuracy": m.history.val_accuracy_final, "test_accuracy": m.test.accuracy,
                "n_train": m.n_train,
            })  # fmt: skip
            print(f"  {m.seconds_per_epoch:.1f} s/epoch, val {m.history.val_accuracy_final:.4f},"
                  f" test {m.test.accuracy:.4f}", file=sys.stderr, flush=True)  # fmt: skip
    atomic_write_json(
        Path(args.out),
        {
            "command": shlex.join(["python", "benchmarks/gpu_check.py", *sys.argv[1:]]),
            "created_at": utc_now_iso(),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "load_average_at_start": LOAD_AT_START,
                "torch_threads": os.environ.get("MLAPI_TORCH_THREADS", "2 (default)"),
                "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            },  # fmt: skip
            "results": results,
        },
    )
    print(f"wrote {args.out}")
    return 0


LOAD_AT_START = os.getloadavg()

if __name__ == "__main__":
    raise SystemExit(main())
