"""Soak: mixed valid and invalid requests for a while, on loopback; watch for 5xx, restarts, leaks.

    python benchmarks/soak.py [--seconds 60] [--connections 8] [--models-dir models]

Starts the repo's server (gunicorn, gunicorn.conf.py, 2 workers) on a free 127.0.0.1 port with a
freshly trained Iris model and the sentiment model from --models-dir (when there is none, the
sentiment requests are left out and the report says so). CONNECTIONS client threads, each with
its own keep-alive session, cycle through a fixed mix of requests for SECONDS. Worker recycling
(`max_requests`) is switched off for the run, since it would mask both crashes and leaks.
Reports: answers by status and by kind, 5xx count, whether the worker pids changed, and each
worker's RSS after a warm-up (a tenth of the run) and at the end. Goals (issue 8): zero 5xx,
no worker restarts, RSS growth after warm-up under 10%. Saves benchmarks/results/soak.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests

from mlapi.artifacts import atomic_write_json, utc_now_iso
from mlapi.iris_model import train_and_save
from mlapi.testing import REPO_ROOT, GunicornServer, rss_mb, server_env

DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "soak.json"
JSON = "application/json"
REVIEW = "A moving, beautifully acted film with a score I still hum. " * 8

# (kind, path, body, content type, expected status)
IRIS_MIX = [
    ("iris valid", "/predict", {"features": [5.1, 3.5, 1.4, 0.2]}, JSON, 200),
    ("iris batch", "/predict", {"instances": [[6.7, 3.0, 5.2, 2.3]] * 20}, JSON, 200),
    ("iris v1", "/v1/models/iris:predict", {"instances": [[5.9, 3.0, 4.2, 1.5]]}, JSON, 200),
    ("bad JSON", "/predict", b'{"features": [1,', JSON, 400),
    ("wrong length", "/predict", {"features": [1, 2, 3]}, JSON, 400),
    ("NaN", "/predict", b'{"features": [NaN, 1, 2, 3]}', JSON, 400),
    ("not JSON type", "/predict", b"hello", "text/plain", 415),
    # gunicorn drains at most 64 KiB of a body the app did not read, then closes the connection
    # (its answer still says keep-alive); this client asks for the close itself.
    ("too large", "/predict", b" " * ((1 << 20) + 1), JSON, 413),
    ("unknown path", "/nowhere", {}, JSON, 404),
]
SENTIMENT_MIX = [
    ("sentiment valid", "/sentiment", {"text": REVIEW}, JSON, 200),
    ("sentiment batch", "/sentiment", {"texts": [REVIEW] * 16}, JSON, 200),
    ("sentiment v1", "/v1/models/sentiment:predict", {"instances": [REVIEW]}, JSON, 200),
    ("empty review", "/sentiment", {"text": "   "}, JSON, 400),
    ("review not a string", "/sentiment", {"text": 42}, JSON, 400),
]


def encode(mix):
    encoded = []
    for kind, path, body, content_type, expected in mix:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": content_type}
        if expected == 413:
            headers["Connection"] = "close"
        encoded.append((kind, path, data, headers, expected))
    return encoded


def client_loop(base_url, mix, stop_at, offset, results, lock):
    session = requests.Session()
    local = Counter()
    for kind, path, data, headers, expected in itertools.islice(itertools.cycle(mix), offset, None):
        if time.monotonic() >= stop_at:
            break
        try:
            status = session.post(
                base_url + path, data=data, headers=headers, timeout=30
            ).status_code
        except requests.RequestException as exc:
            status = type(exc).__name__
        local[(kind, expected, status)] += 1
    with lock:
        results.update(local)


def run(args) -> dict:
    models_dir = Path(args.models_dir)
    has_sentiment = (models_dir / "sentiment" / "metadata.json").is_file()
    mix = encode(IRIS_MIX + (SENTIMENT_MIX if has_sentiment else []))
    with tempfile.TemporaryDirectory() as tmp:
        modelo = Path(tmp) / "modelo.pkl"
        train_and_save(modelo)
        env = server_env(MODELO_PATH=str(modelo), MODELS_DIR=str(models_dir.resolve()))
        log_path = Path(tmp) / "gunicorn.log"
        with GunicornServer(env, "-w", "2", "--max-requests", "0", log_path=log_path) as server:
            pids_before = server.worker_pids()
            results, lock = Counter(), threading.Lock()
            stop_at = time.monotonic() + args.seconds
            threads = [
                threading.Thread(
                    target=client_loop,
                    args=(server.base_url, mix, stop_at, i * 3, results, lock),
                )
                for i in range(args.connections)
            ]
            for thread in threads:
                thread.start()
            time.sleep(args.seconds / 10)
            rss_warm = {pid: rss_mb(pid) for pid in server.worker_pids()}
            for thread in threads:
                thread.join()
            rss_end = {pid: rss_mb(pid) for pid in server.worker_pids()}
            pids_after = server.worker_pids()
        booted = log_path.read_text(errors="replace").count("Booting worker")
    return summarize(
        args, results, pids_before, pids_after, booted, rss_warm, rss_end, has_sentiment
    )


def summarize(args, results, pids_before, pids_after, booted, rss_warm, rss_end, has_sentiment):
    by_status, by_kind, unexpected = Counter(), Counter(), Counter()
    for (kind, expected, status), n in results.items():
        by_status[str(status)] += n
        by_kind[kind] += n
        if status != expected:
            unexpected[f"{kind}: expected {expected}, got {status}"] += n
    growth = {
        str(pid): (rss_end[pid] - rss_warm[pid]) / rss_warm[pid]
        for pid in rss_warm
        if pid in rss_end
    }
    five_xx = sum(n for status, n in by_status.items() if status.startswith("5"))
    restarted = sorted(pids_before) != sorted(pids_after) or booted != len(pids_before)
    return {
        "benchmark": "soak",
        "created_at": utc_now_iso(),
        "seconds": args.seconds,
        "connections": args.connections,
        "sentiment_included": has_sentiment,
        "requests": sum(results.values()),
        "requests_per_s": sum(results.values()) / args.seconds,
        "by_status": dict(by_status),
        "by_kind": dict(by_kind),
        "unexpected": dict(unexpected),
        "five_xx": five_xx,
        "worker_restarts": restarted,
        "rss_mb_after_warmup": {str(k): v for k, v in rss_warm.items()},
        "rss_mb_at_end": {str(k): v for k, v in rss_end.items()},
        "rss_growth": growth,
        "goals_met": {
            "zero_5xx": five_xx == 0,
            "no_worker_restarts": not restarted,
            "rss_growth_under_10pct": all(g < 0.10 for g in growth.values()),
            "every_answer_as_expected": not unexpected,
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--models-dir", default="models")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args()
    report = run(args)
    print(
        f"{report['requests']} requests in {args.seconds:.0f} s "
        f"({report['requests_per_s']:.0f}/s), {args.connections} connections, "
        f"sentiment {'included' if report['sentiment_included'] else 'not installed: left out'}"
    )
    print(f"by status: {report['by_status']}")
    print(f"unexpected answers: {report['unexpected'] or 'none'}")
    print(f"5xx: {report['five_xx']}, worker restarts: {report['worker_restarts']}")
    for pid, growth in report["rss_growth"].items():
        print(
            f"worker {pid}: RSS {report['rss_mb_after_warmup'][pid]:.1f} MB after warm-up -> "
            f"{report['rss_mb_at_end'][pid]:.1f} MB at end ({100 * growth:+.1f}%)"
        )
    print(f"goals met: {report['goals_met']}")
    atomic_write_json(args.out, report)
    print(f"saved {args.out}")
    return 0 if all(report["goals_met"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
