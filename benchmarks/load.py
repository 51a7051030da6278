"""Load benchmark: our gunicorn server against the naive reference app, in one run, on loopback.

    python benchmarks/load.py [--duration 10] [--rounds 2] [--connections 8] [--workers 2]

What it does, bounded in time (about rounds x targets x (duration + warm-up) seconds):

1. trains the Iris model (seeded, the same as `python train_model.py`) into a temp dir;
2. starts three servers on free 127.0.0.1 ports, each `gunicorn -w WORKERS`:
   - `reference`: benchmarks/reference/app.py, the seed's plain Flask app that unpickles the
     RandomForest and calls `predict` + `predict_proba` per request (gunicorn defaults: sync);
   - `mlapi`: the repo's `app:app` from the repo root, so with gunicorn.conf.py (the production
     settings: gthread workers, access log on, Prometheus metrics on);
   - `mlapi-nometrics`: the same with METRICS=0, so that the cost of /metrics' counting is
     measured in the same invocation (goal: <= 5% of /predict requests/s);
3. checks that each target answers 200 with a valid body, warms it up, then runs wrk
   (`apt-get install wrk`) with CONNECTIONS keep-alive connections for DURATION seconds per target,
   alternating the servers round by round so that background load hits both alike;
4. prints a table (requests/s, p50/p99 latency, non-2xx answers, socket errors) and the ratio of
   our `/predict` requests/s to the reference's, and saves everything as JSON (default
   benchmarks/results/load.json).

Our server's V2 endpoint (`/v2/models/iris/infer`, one row) is measured too.
`/sentiment` is measured when the server answers it with 200 (a sentiment model installed under
MODELS_DIR, default ./models, and the endpoint served); otherwise it is recorded as skipped, with
the server's answer as the reason. Non-2xx answers are counted twice: by wrk (it counts status >=
400) and from our server's access log (every status that is not 2xx).
Latencies are wrk's (closed loop: no correction for coordinated omission).
The reload-under-load run (new, pinned and broken model versions swapped in while wrk runs;
goal 0 non-2xx) is benchmarks/reload.py, which reuses this file's wrk script and log counting.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from mlapi.artifacts import atomic_write_json, utc_now_iso
from mlapi.testing import REPO_ROOT, GunicornServer, server_env

REFERENCE_DIR = REPO_ROOT / "benchmarks" / "reference"
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "load.json"
IRIS_BODY = '{"features": [5.1, 3.5, 1.4, 0.2]}'
SENTIMENT_BODY = (
    '{"text": "A moving, beautifully acted film: the best thing I have seen all year."}'
)
GOAL_RATIO = 10.0  # our /predict requests/s over the reference's
GOAL_P99_MS = 20.0
GOAL_METRICS_COST = 0.05  # metrics may cost at most 5% of /predict requests/s
V2_IRIS_BODY = (
    '{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], '
    '"data": [5.1, 3.5, 1.4, 0.2]}]}'
)
V2_PATH = "/v2/models/iris/infer"

# wrk calls done() once at the end; it prints one JSON line that we parse.
WRK_SCRIPT = r"""
wrk.method = "POST"
wrk.body = os.getenv("LOAD_BODY")
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "timeouts": %d, "status_errors": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""
ACCESS_LOG_STATUS = re.compile(r'HTTP/[\d.]+" (\d{3}) ')


@dataclass(frozen=True)
class Target:
    server: str
    path: str
    body: str


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of unmeasured load first")
    parser.add_argument("--rounds", type=int, default=2, help="measured runs per target")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers, both servers")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=Path(os.environ.get("MODELS_DIR", REPO_ROOT / "models")),
        help="MODELS_DIR for our server (holds sentiment/)",
    )
    parser.add_argument("--sentiment-body", default=SENTIMENT_BODY)
    parser.add_argument(
        "--mlapi-gunicorn-args",
        default="",
        help="extra gunicorn flags for our server only, to compare settings "
        "(write it with '=': --mlapi-gunicorn-args='--threads 2')",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("load.py: wrk not found; install it with `apt-get install wrk`", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="mlapi-load-") as tmp:
        tmp = Path(tmp)
        modelo_path = train_iris(tmp)
        script = tmp / "post.lua"
        script.write_text(WRK_SCRIPT)
        extra_args = shlex.split(args.mlapi_gunicorn_args)
        with (
            start_reference(tmp, modelo_path, args.workers) as reference,
            start_mlapi(tmp, modelo_path, args.models_dir, args.workers, extra_args) as mlapi,
            start_mlapi(
                tmp, modelo_path, args.models_dir, args.workers, extra_args, metrics=False
            ) as nometrics,
        ):
            servers = {"reference": reference, "mlapi": mlapi, "mlapi-nometrics": nometrics}
            report = benchmark(args, servers, script)
    atomic_write_json(args.out, report)
    print_table(report)
    print(f"\nsaved {args.out}")
    return 0


def train_iris(directory: Path) -> Path:
    from mlapi.iris_model import train_and_save

    path = directory / "modelo.pkl"
    train_and_save(path)
    return path


def start_reference(tmp: Path, modelo_path: Path, workers: int) -> GunicornServer:
    env = server_env(MODELO_PATH=str(modelo_path))
    return start(env, workers, [], REFERENCE_DIR, tmp / "reference.log")


def start_mlapi(
    tmp: Path,
    modelo_path: Path,
    models_dir: Path,
    workers: int,
    extra_args: list[str],
    metrics: bool = True,
) -> GunicornServer:
    env = server_env(
        MODELO_PATH=str(modelo_path), MODELS_DIR=str(models_dir), METRICS="1" if metrics else "0"
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # each server makes its own folder
    log_name = "mlapi.log" if metrics else "mlapi-nometrics.log"
    return start(env, workers, extra_args, REPO_ROOT, tmp / log_name)


def start(env, workers: int, extra_args: list[str], cwd: Path, log_path: Path) -> GunicornServer:
    """`gunicorn -w WORKERS -b 127.0.0.1:PORT app:app` in `cwd` (its gunicorn.conf.py, if any)."""
    try:
        return GunicornServer(env, "-w", str(workers), *extra_args, cwd=cwd, log_path=log_path)
    except BaseException:
        if log_path.exists():
            print(log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
        raise


def benchmark(args: argparse.Namespace, servers: dict[str, GunicornServer], script: Path) -> dict:
    targets = [
        Target("reference", "/predict", IRIS_BODY),
        Target("mlapi", "/predict", IRIS_BODY),
        Target("mlapi-nometrics", "/predict", IRIS_BODY),
        Target("mlapi", V2_PATH, V2_IRIS_BODY),
    ]
    sentiment = Target("mlapi", "/sentiment", args.sentiment_body)
    skipped = {}
    for target in [*targets, sentiment]:
        problem = probe(servers[target.server], target)
        if problem and target is sentiment:
            skipped[f"{target.server} {target.path}"] = problem
        elif problem:
            raise RuntimeError(f"{target.server} {target.path}: {problem}")
        elif target is sentiment:
            targets.append(sentiment)

    for target in targets:
        run_wrk(args, servers[target.server], target, script, args.warmup)
    runs = []
    for round_index in range(args.rounds):
        for target in targets:
            result = run_wrk(args, servers[target.server], target, script, args.duration)
            runs.append({"round": round_index + 1, **result})
            print(f"round {round_index + 1}: {format_row(result)}", flush=True)
    report = build_report(args, targets, runs, skipped)
    report["mlapi_models"] = loaded_models(servers["mlapi"])
    return report


def loaded_models(server: GunicornServer) -> list[dict]:
    """What our server had loaded (GET /models): which model each figure was measured with."""
    keys = ("name", "loaded", "backend", "run_name", "arch", "maxlen", "sha256", "problem")
    models = requests.get(f"{server.base_url}/models", timeout=10).json()["models"]
    return [{k: model[k] for k in keys if k in model} for model in models]


def probe(server: GunicornServer, target: Target) -> str | None:
    """None when the target answers 200 with a JSON object, else what it answered instead."""
    try:
        response = requests.post(
            server.base_url + target.path,
            data=target.body.encode(),
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
    except requests.RequestException as exc:
        return f"request failed: {exc}"
    if response.status_code != 200:
        return f"POST {target.path} answered {response.status_code}: {response.text[:300]}"
    return None


def run_wrk(args, server: GunicornServer, target: Target, script: Path, seconds: int) -> dict:
    log_offset = server.log_path.stat().st_size
    load_before = os.getloadavg()[0]
    command = ["wrk", f"-t{args.wrk_threads}", f"-c{args.connections}", f"-d{seconds}s"]
    command += ["--timeout", "2s", "-s", str(script), server.base_url + target.path]
    completed = subprocess.run(
        command,
        env={**os.environ, "LOAD_BODY": target.body},
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    line = next(ln for ln in completed.stdout.splitlines() if ln.startswith("WRK_JSON "))
    wrk = json.loads(line.removeprefix("WRK_JSON "))
    result = {
        "server": target.server,
        "endpoint": target.path,
        "load_1min_before": load_before,  # the machine is shared: other work shows up here
        "requests": wrk["requests"],
        "seconds": wrk["duration_us"] / 1e6,
        "requests_per_s": wrk["requests"] / (wrk["duration_us"] / 1e6),
        "p50_ms": wrk["p50_us"] / 1000,
        "p90_ms": wrk["p90_us"] / 1000,
        "p99_ms": wrk["p99_us"] / 1000,
        "max_ms": wrk["max_us"] / 1000,
        "wrk_status_errors": wrk["status_errors"],
        "socket_errors": sum(
            wrk[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
        ),
    }
    statuses = access_log_statuses(server.log_path, log_offset)
    if statuses is not None:
        result["access_log_statuses"] = statuses
    return result


def access_log_statuses(log_path: Path, offset: int) -> dict[str, int] | None:
    """Status counts in the access log lines written after `offset` (None: no access log)."""
    with open(log_path, "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    counts = Counter(ACCESS_LOG_STATUS.findall(text))
    return dict(sorted(counts.items())) or None


def non_2xx(run: dict) -> int:
    """Non-2xx answers: from the access log when there is one, else wrk's count (>= 400)."""
    statuses = run.get("access_log_statuses")
    if statuses is None:
        return run["wrk_status_errors"]
    return sum(n for status, n in statuses.items() if not status.startswith("2"))


def build_report(args, targets: list[Target], runs: list[dict], skipped: dict) -> dict:
    summary = []
    for target in targets:
        mine = [r for r in runs if (r["server"], r["endpoint"]) == (target.server, target.path)]
        summary.append(
            {
                "server": target.server,
                "endpoint": target.path,
                "requests_per_s": statistics.median(r["requests_per_s"] for r in mine),
                "p50_ms": statistics.median(r["p50_ms"] for r in mine),
                "p99_ms": max(r["p99_ms"] for r in mine),  # the worst round
                "non_2xx": sum(non_2xx(r) for r in mine),
                "socket_errors": sum(r["socket_errors"] for r in mine),
            }
        )
    by_key = {(s["server"], s["endpoint"]): s for s in summary}
    ours, reference = by_key[("mlapi", "/predict")], by_key[("reference", "/predict")]
    ratio = ours["requests_per_s"] / reference["requests_per_s"]
    without_metrics = by_key[("mlapi-nometrics", "/predict")]
    metrics_cost = 1 - ours["requests_per_s"] / without_metrics["requests_per_s"]
    goal = {
        "predict_ratio": ratio,
        "ratio_met": ratio >= GOAL_RATIO,
        "p99_met": ours["p99_ms"] <= GOAL_P99_MS,
        "no_non_2xx": all(s["non_2xx"] == 0 for s in summary if s["server"] != "reference"),
        "metrics_cost": metrics_cost,  # negative: metrics on was faster (noise)
        "metrics_cost_met": metrics_cost <= GOAL_METRICS_COST,
        "metrics_cost_by_round": metrics_cost_by_round(runs),
    }
    return {
        "created_at": utc_now_iso(),
        "command": "python benchmarks/load.py " + " ".join(sys.argv[1:]),
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
            "connections": args.connections,
            "workers": args.workers,
            "wrk_threads": args.wrk_threads,
            "mlapi_gunicorn": effective_gunicorn_settings(),
            "mlapi_gunicorn_extra_args": args.mlapi_gunicorn_args,
            "reference_gunicorn": "defaults (sync worker)",
        },
        "machine": machine_info(),
        "goal": {
            "ratio_at_least": GOAL_RATIO,
            "p99_ms_at_most": GOAL_P99_MS,
            "metrics_cost_at_most": GOAL_METRICS_COST,
            **goal,
        },
        "summary": summary,
        "skipped": skipped,
        "runs": runs,
    }


def metrics_cost_by_round(runs: list[dict]) -> list[float]:
    """Per round: 1 - (metrics on / metrics off) /predict requests/s (rounds are back to back)."""
    costs = []
    for round_index in sorted({r["round"] for r in runs}):
        rps = {
            r["server"]: r["requests_per_s"]
            for r in runs
            if r["round"] == round_index and r["endpoint"] == "/predict"
        }
        costs.append(1 - rps["mlapi"] / rps["mlapi-nometrics"])
    return costs


def effective_gunicorn_settings() -> dict[str, Any]:
    from mlapi.serving import gunicorn_conf as conf

    names = ("worker_class", "threads", "timeout", "keepalive", "max_requests", "preload_app")
    return {name: getattr(conf, name) for name in names}


def machine_info() -> dict[str, Any]:
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    return {
        "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "wrk": wrk_version.splitlines()[0] if wrk_version else "unknown",
        "versions": package_versions(),
    }


def package_versions() -> dict[str, str]:
    from importlib.metadata import version

    names = ("gunicorn", "flask", "onnxruntime", "scikit-learn", "numpy", "pydantic")
    return {name: version(name) for name in names}


def format_row(r: dict) -> str:
    return (
        f"{r['server']:<15} {r['endpoint']:<22} {r['requests_per_s']:8.1f} req/s  "
        f"p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  "
        f"non-2xx {non_2xx(r)}  socket errors {r['socket_errors']}  "
        f"(load average {r['load_1min_before']:.1f})"
    )


def print_table(report: dict) -> None:
    settings = report["settings"]
    print(
        f"\n{settings['workers']} gunicorn workers, {settings['connections']} connections, "
        f"{settings['rounds']} x {settings['duration_s']} s per target "
        f"(req/s and p50: median of rounds; p99: worst round)\n"
    )
    print("| server | endpoint | req/s | p50 ms | p99 ms | non-2xx | socket errors |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for s in report["summary"]:
        print(
            f"| {s['server']} | `{s['endpoint']}` | {s['requests_per_s']:.0f} | "
            f"{s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {s['non_2xx']} | {s['socket_errors']} |"
        )
    for name, reason in report["skipped"].items():
        print(f"| {name.split()[0]} | `{name.split()[1]}` | skipped: {reason[:120]} | | | | |")
    loads = [r["load_1min_before"] for r in report["runs"]]
    print(f"\nmachine load average (1 min) before the runs: {min(loads):.1f} to {max(loads):.1f}")
    goal = report["goal"]
    verdict = "met" if goal["ratio_met"] and goal["p99_met"] and goal["no_non_2xx"] else "MISSED"
    rounds = ", ".join(f"{c:+.1%}" for c in goal["metrics_cost_by_round"])
    print(
        f"metrics cost: {goal['metrics_cost']:+.1%} of /predict req/s (median rounds; per round "
        f"{rounds}); goal <= {goal['metrics_cost_at_most']:.0%}: "
        f"{'met' if goal['metrics_cost_met'] else 'MISSED'}"
    )
    print(
        f"/predict: {goal['predict_ratio']:.1f}x the reference's req/s "
        f"(goal >= {goal['ratio_at_least']:.0f}x), p99 goal <= {goal['p99_ms_at_most']:.0f} ms: "
        f"{verdict}"
    )


if __name__ == "__main__":
    sys.exit(main())
