"""Reload under load: new model versions go live on a 2-worker gunicorn while wrk runs.

    python benchmarks/reload.py [--mode watcher|sighup] [--duration 30] [--connections 4]

The reload-under-load run of the load benchmark (benchmarks/load.py measures throughput; this
one measures what a version swap costs). Bounded: about DURATION + 30 seconds.

1. In a temp MODELS_DIR: trains Iris version 1 (the real trainer) and exports a small, untrained
   sentiment LSTM as sentiment version 1 (the real export: ONNX, parity check, sha256s).
2. Starts the production server (`gunicorn -c gunicorn.conf.py mlapi.serving.wsgi:app`, default
   MODEL_POLL_SECONDS) and runs two wrk processes at once for DURATION seconds: `/predict` and
   `/sentiment`, CONNECTIONS keep-alive connections each.
3. During the run: at 20% of it, trains Iris version 2 and exports sentiment version 2 (both
   installed atomically); at 45%, pins Iris back to version 1 (a rollback); at 60%, unpins it;
   at 75%, installs a broken Iris version 3 (a wrong sha256), which must be refused while
   version 2 keeps serving. After each step it polls /metrics until every worker serves the
   expected version (bounded: 60 s), and records how long that took (the watcher polls every
   MODEL_POLL_SECONDS, default 2, so about 0-2 s plus the load and verification).
   With --mode sighup the watcher is off and each step sends SIGHUP to gunicorn's master
   instead (graceful reload: new workers load the served versions, old ones finish).
4. Counts non-2xx answers (goal: 0) from the access log and wrk, and saves JSON (default
   benchmarks/results/reload_MODE.json) with the command, the 1-minute load average before and after
   and the machine; the CPUs are shared, so the swap times are noisy (the training itself runs
   on the same cores as the server while it is measured).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import (  # noqa: E402
    IRIS_BODY,
    SENTIMENT_BODY,
    WRK_SCRIPT,
    access_log_statuses,
    machine_info,
)

from mlapi.artifacts import atomic_write_json, utc_now_iso  # noqa: E402
from mlapi.testing import REPO_ROOT, GunicornServer, server_env  # noqa: E402

RESULTS = REPO_ROOT / "benchmarks" / "results"
VERSION_SAMPLE = re.compile(r'mlapi_worker_model_version\{model="(\w+)",pid="(\d+)"\} ([0-9.]+)')
REFUSED = 'mlapi_model_reloads_total{model="iris",outcome="refused"}'


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=30, help="seconds of load (wrk -d)")
    parser.add_argument("--connections", type=int, default=4, help="per endpoint")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--mode",
        choices=("watcher", "sighup"),
        default="watcher",
        help="watcher: each worker's version watcher (the default server); sighup: watcher off "
        "(MODEL_POLL_SECONDS=0) and gunicorn's graceful reload (SIGHUP) after each step",
    )
    parser.add_argument("--out", type=Path, default=None, help="default results/reload_MODE.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python benchmarks/reload.py " + " ".join(argv if argv is not None else sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="mlapi-reload-") as tmp:
        tmp = Path(tmp)
        models = tmp / "models"
        install_iris(models)
        install_sentiment(models, seed=1)
        poll = "0" if args.mode == "sighup" else os.environ.get("MODEL_POLL_SECONDS", "2")
        env = server_env(MODELS_DIR=str(models), MODEL_POLL_SECONDS=poll)
        env.pop("MODELO_PATH", None)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        log = tmp / "server.log"
        config = ["-c", str(REPO_ROOT / "gunicorn.conf.py"), "-w", str(args.workers)]
        target = "mlapi.serving.wsgi:app"
        with GunicornServer(env, *config, cwd=tmp, target=target, log_path=log) as server:
            report = run(args, server, models, tmp / "post.lua")
    report = {"command": command, "created_at": utc_now_iso(), **report}
    report["machine"] = machine_info()
    out = args.out or RESULTS / f"reload_{args.mode}.json"
    atomic_write_json(out, report)
    print(json.dumps(report["summary"], indent=2))
    print(f"saved {out}")
    return 0 if report["summary"]["non_2xx"] == 0 else 1


def install_iris(models: Path) -> str:
    from mlapi.iris_model import train_new_version

    path, _ = train_new_version(models)
    return path.parent.name


def install_sentiment(models: Path, seed: int) -> str:
    """A small untrained LSTM through the real export (its answers do not matter here)."""
    import torch

    from mlapi.export import export_sentiment_model
    from mlapi.models.lstm import LSTMClassifier
    from mlapi.text import Vocabulary

    torch.manual_seed(seed)
    texts = ["a wonderful moving film", "a dull and boring film", "the best film this year"]
    vocabulary = Vocabulary(num_words=200, maxlen=200).fit(texts)
    network = LSTMClassifier(vocabulary.size, embed_dim=32, hidden_size=32, dropout=0.0)
    result = export_sentiment_model(
        network,
        vocabulary,
        vocabulary.encode(texts),
        models,
        run_name=f"reload_benchmark_seed{seed}",
        arch="lstm",
        metrics={},
        versions={},
    )
    return result.directory.name


def run(args, server: GunicornServer, models: Path, script: Path) -> dict:
    script.write_text(WRK_SCRIPT)
    mode = args.mode
    offset = server.log_path.stat().st_size
    load_before = os.getloadavg()
    started = time.monotonic()
    wrks = {
        path: start_wrk(args, server, path, body, script)
        for path, body in (("/predict", IRIS_BODY), ("/sentiment", SENTIMENT_BODY))
    }
    steps = []

    def at(fraction: float) -> None:
        time.sleep(max(0.0, started + fraction * args.duration - time.monotonic()))

    at(0.2)
    t0 = time.monotonic()
    expected = {"iris": float(install_iris(models))}
    expected["sentiment"] = float(install_sentiment(models, seed=2))
    trained_s = round(time.monotonic() - t0, 2)
    steps.append(step("new versions installed", server, mode, expected, time.monotonic(), started))
    steps[-1]["training_and_export_s"] = trained_s
    at(0.45)
    pinned = {**expected, "iris": 1.0}
    steps.append(step("iris pinned to 1", server, mode, pinned, pin(models, 1), started))
    at(0.6)
    steps.append(step("iris unpinned", server, mode, expected, pin(models, None), started))
    at(0.75)
    t0 = install_broken_iris(models)
    steps.append(step("broken iris 3 installed", server, mode, expected, t0, started, True))
    results = {path: finish_wrk(process) for path, process in wrks.items()}
    statuses = access_log_statuses(server.log_path, offset) or {}
    non_2xx = sum(n for status, n in statuses.items() if not status.startswith("2"))
    wrk_errors = sum(r["status_errors"] + r["socket_errors"] for r in results.values())
    return {
        "load_1min_before": load_before[0],
        "load_1min_after": os.getloadavg()[0],
        "mode": args.mode,
        "workers": args.workers,
        "connections_per_endpoint": args.connections,
        "duration_s": args.duration,
        "steps": steps,
        "wrk": results,
        "access_log_statuses": statuses,
        "summary": {
            "requests": sum(r["requests"] for r in results.values()),
            "non_2xx": non_2xx,
            "wrk_status_and_socket_errors": wrk_errors,
            "goal_non_2xx": 0,
            "goal_met": non_2xx == 0 and wrk_errors == 0,
            "seconds_until_all_workers_live": [s["seconds_until_all_workers"] for s in steps],
        },
    }


def pin(models: Path, version: int | None) -> float:
    """Pin (or unpin, for None) Iris; returns when it was done."""
    from mlapi import versions

    if version is None:
        versions.unpin(models, "iris")
    else:
        versions.pin(models, "iris", version)
    return time.monotonic()


def install_broken_iris(models: Path) -> float:
    """The served Iris version copied as a new version with a wrong sha256 (to be refused)."""
    from mlapi import versions

    source = versions.served_artifact(models, "iris").parent
    with versions.new_version(models, "iris") as install:
        for name in versions.IRIS_FILES:
            (install.staging / name).write_bytes((source / name).read_bytes())
        with open(install.staging / "modelo.onnx", "ab") as f:
            f.write(b"\0")
    return time.monotonic()


def start_wrk(args, server, path: str, body: str, script: Path) -> subprocess.Popen:
    command = ["wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s", "--timeout", "5s"]
    command += ["-s", str(script), server.base_url + path]
    env = {**os.environ, "LOAD_BODY": body}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)


def finish_wrk(process: subprocess.Popen) -> dict:
    out, _ = process.communicate(timeout=120)
    line = next(ln for ln in out.splitlines() if ln.startswith("WRK_JSON "))
    wrk = json.loads(line.removeprefix("WRK_JSON "))
    socket_keys = ("connect_errors", "read_errors", "write_errors", "timeouts")
    return {
        "requests": wrk["requests"],
        "requests_per_s": wrk["requests"] / (wrk["duration_us"] / 1e6),
        "p99_ms": wrk["p99_us"] / 1000,
        "max_ms": wrk["max_us"] / 1000,
        "status_errors": wrk["status_errors"],
        "socket_errors": sum(wrk[k] for k in socket_keys),
    }


def step(what, server, mode, expected, t0, started, refused=False, timeout=30.0) -> dict:
    """Poll /metrics until every worker serves `expected` (and, if asked, refused one)."""
    if mode == "sighup":
        os.kill(server.process.pid, signal.SIGHUP)  # new workers load the served versions
    deadline = time.monotonic() + timeout
    while True:
        pids = {str(pid) for pid in server.worker_pids()}
        text = requests.get(f"{server.base_url}/metrics", timeout=10).text
        live = {(m, pid): float(v) for m, pid, v in VERSION_SAMPLE.findall(text) if pid in pids}
        done = all(live.get((m, pid)) == v for m, v in expected.items() for pid in pids)
        if refused:
            done = done and REFUSED in text
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return {
        "step": what,
        "at_s": round(t0 - started, 2),
        "expected": expected,
        "reached": done,
        "seconds_until_all_workers": round(time.monotonic() - t0, 2),
    }


if __name__ == "__main__":
    raise SystemExit(main())
