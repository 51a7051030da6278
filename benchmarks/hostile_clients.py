"""Hostile-clients benchmark: does the server keep answering while idle and slow clients hold
connections? Loopback only, bounded in connections and time.

    python benchmarks/hostile_clients.py [--idle 100] [--slow-headers 20] [--slow-bodies 20]
        [--duration 20] [--workers 2] [--gunicorn-args '--worker-class gthread']

What it does (about 2 x DURATION + 15 seconds):

1. trains the Iris model (seeded) into a temp dir and starts the repo's server from the repo root,
   `gunicorn -w WORKERS app:app` (so with gunicorn.conf.py), on a free 127.0.0.1 port;
2. `calm`: probes for DURATION seconds with no attacker: every 0.1 s a new connection sends
   GET /health or POST /predict (alternately) and waits up to 5 s for the answer;
3. `hostile`: opens the attackers, waits until they are connected, and probes the same way:
   - IDLE connections that never send a byte,
   - SLOW_HEADERS connections that send one header line every 2 s (slowloris),
   - SLOW_BODIES connections that send their headers, then 1 byte of a 1000-byte body every 2 s.
   An attacker the server closes opens a new connection at once, as a real one would;
4. prints and saves (default benchmarks/results/hostile_clients.json) per phase and endpoint:
   probes sent, answered 200, other statuses, unanswered within 5 s, p50/p99/max latency (ms), and
   how often the server closed an attacker; plus the command, settings and load average.

Goal (issue 16): under attack, /health and /predict p99 <= 200 ms, every probe answered 200.

    python benchmarks/hostile_clients.py --memory [--memory-clients 8] [--memory-requests 3]

measures memory instead (about two minutes; it needs torch to export a seed-size LSTM with random
weights, as benchmarks/sentiment_serving.py does): for the server with its limits, then with them
lifted (SENTIMENT_MAX_TOTAL_CHARS and MAX_CONCURRENT_LARGE_REQUESTS very large), MEMORY_CLIENTS
clients at once each send MEMORY_REQUESTS pairs of maximal sentiment batches (256 reviews adding
up to the most the server allows, and 256 reviews filling a 1 MiB body). It records each worker's
RSS before, its peak (sampled every 50 ms) and 3 s after (default out:
benchmarks/results/hostile_clients_memory.json). Goal: peak <= 400 MB per worker, back near the
baseline after.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import shlex
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

from mlapi.artifacts import atomic_write_json, utc_now_iso
from mlapi.testing import REPO_ROOT, GunicornServer, server_env

DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "hostile_clients.json"
DEFAULT_MEMORY_OUT = REPO_ROOT / "benchmarks" / "results" / "hostile_clients_memory.json"
GOAL_PEAK_RSS_MB = 400.0
PREDICT_BODY = b'{"features": [5.1, 3.5, 1.4, 0.2]}'
PROBE_INTERVAL_S = 0.1
PROBE_TIMEOUT_S = 5.0
TRICKLE_INTERVAL_S = 2.0
GOAL_P99_MS = 200.0
LIMITS = {"idle": 500, "slow_headers": 200, "slow_bodies": 200, "duration": 120}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=int, default=100, help="idle connections (max 500)")
    parser.add_argument("--slow-headers", type=int, default=20, help="slowloris (max 200)")
    parser.add_argument("--slow-bodies", type=int, default=20, help="slow uploads (max 200)")
    parser.add_argument("--duration", type=float, default=20, help="seconds per phase (max 120)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--gunicorn-args", default="", help="extra gunicorn flags, to compare")
    parser.add_argument("--memory", action="store_true", help="measure worker memory instead")
    parser.add_argument("--memory-clients", type=int, default=8, help="(max 32)")
    parser.add_argument("--memory-requests", type=int, default=3, help="per client (max 10)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = DEFAULT_MEMORY_OUT if args.memory else DEFAULT_OUT
    if not (1 <= args.memory_clients <= 32 and 1 <= args.memory_requests <= 10):
        parser.error("--memory-clients must be 1-32 and --memory-requests 1-10")
    for name, limit in LIMITS.items():
        value = getattr(args, name)
        if not 0 <= value <= limit:
            parser.error(f"--{name.replace('_', '-')} must be from 0 to {limit}, got {value}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.memory:
        return memory_main(args)
    with tempfile.TemporaryDirectory(prefix="mlapi-hostile-") as tmp:
        tmp = Path(tmp)
        from mlapi.iris_model import train_and_save

        modelo_path = tmp / "modelo.pkl"
        train_and_save(modelo_path)
        env = server_env(MODELO_PATH=str(modelo_path), MODELS_DIR=str(tmp / "no-models"))
        extra = shlex.split(args.gunicorn_args)
        log_path = tmp / "server.log"
        with GunicornServer(env, "-w", str(args.workers), *extra, log_path=log_path) as server:
            phases = {
                "calm": probe_phase(server.port, args.duration),
                "hostile": hostile_phase(server.port, args),
            }
    report = {
        "created_at": utc_now_iso(),
        "command": "python benchmarks/hostile_clients.py " + shlex.join(sys.argv[1:]),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": list(os.getloadavg())},
        "goal": {"p99_ms_at_most": GOAL_P99_MS, **goal_met(phases["hostile"])},
        "phases": phases,
    }
    atomic_write_json(args.out, report)
    print_table(report)
    print(f"\nsaved {args.out}")
    return 0


def goal_met(phase: dict) -> dict:
    endpoints = phase["probes"].values()
    return {
        "all_answered_200": all(e["ok"] == e["sent"] for e in endpoints),
        "p99_met": all(e["p99_ms"] is not None and e["p99_ms"] <= GOAL_P99_MS for e in endpoints),
    }


# --- probes: what an ordinary client sees ----------------------------------------------------


def probe_once(port: int, path: str) -> tuple[int | None, float]:
    """(status or None when unanswered, seconds) for one request on a new connection."""
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=PROBE_TIMEOUT_S)
    try:
        if path == "/predict":
            headers = {"Content-Type": "application/json"}
            conn.request("POST", path, body=PREDICT_BODY, headers=headers)
        else:
            conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status, time.perf_counter() - start
    except OSError:
        return None, time.perf_counter() - start
    finally:
        conn.close()


def probe_phase(port: int, duration: float) -> dict:
    results: dict[str, list] = defaultdict(list)
    deadline = time.monotonic() + duration
    paths = ("/health", "/predict")
    i = 0
    while time.monotonic() < deadline:
        path = paths[i % 2]
        i += 1
        results[path].append(probe_once(port, path))
        time.sleep(PROBE_INTERVAL_S)
    return {"probes": {path: summarize(rows) for path, rows in results.items()}}


def summarize(rows: list[tuple[int | None, float]]) -> dict:
    answered = sorted(seconds * 1000 for status, seconds in rows if status is not None)
    statuses = Counter(str(status) for status, _ in rows if status is not None)

    def pct(q: float) -> float | None:
        if len(answered) < 2:
            return answered[0] if answered else None
        return statistics.quantiles(answered, n=100, method="inclusive")[q - 1]

    return {
        "sent": len(rows),
        "ok": statuses.get("200", 0),
        "statuses": dict(statuses),
        "unanswered": sum(status is None for status, _ in rows),
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "max_ms": answered[-1] if answered else None,
    }


# --- attackers: connections that cost the server something but send (almost) nothing ----------


class Attackers:
    """IDLE, SLOW_HEADERS and SLOW_BODIES connections on an asyncio loop in a thread."""

    def __init__(self, port: int, counts: dict[str, int]):
        self.port = port
        self.counts = counts
        self.closed_by_server: Counter = Counter()
        self.connected: Counter = Counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        kinds = {"idle": self._idle, "slow_headers": self._slow_headers, "slow_bodies": self._body}
        tasks = [
            asyncio.create_task(self._loop(kind, kinds[kind]))
            for kind, count in self.counts.items()
            for _ in range(count)
        ]
        while not self.stop.is_set():
            await asyncio.sleep(0.1)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self, kind: str, attack) -> None:
        """Keep one attacker of `kind` connected: reconnect when the server closes it."""
        while not self.stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.5)
                continue
            self.connected[kind] += 1
            try:
                await attack(reader, writer)
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()
            self.closed_by_server[kind] += 1

    async def _until_closed(self, reader, writer, lines) -> None:
        """Send one item of `lines` every TRICKLE_INTERVAL_S; return when the server closes."""
        for chunk in lines:
            if chunk:
                writer.write(chunk)
                await writer.drain()
            try:
                if await asyncio.wait_for(reader.read(65536), TRICKLE_INTERVAL_S) == b"":
                    return
                return  # the server answered (408, 503...): it will close; start over
            except TimeoutError:
                continue

    async def _idle(self, reader, writer) -> None:
        await self._until_closed(reader, writer, iter(lambda: b"", None))

    async def _slow_headers(self, reader, writer) -> None:
        def lines():
            yield b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            n = 0
            while True:
                n += 1
                yield f"X-Slow-{n}: {n}\r\n".encode()

        await self._until_closed(reader, writer, lines())

    async def _body(self, reader, writer) -> None:
        def chunks():
            yield (
                b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            )
            while True:
                yield b" "

        await self._until_closed(reader, writer, chunks())


def hostile_phase(port: int, args: argparse.Namespace) -> dict:
    counts = {"idle": args.idle, "slow_headers": args.slow_headers, "slow_bodies": args.slow_bodies}
    attackers = Attackers(port, counts)
    attackers.thread.start()
    try:
        deadline = time.monotonic() + 10
        while sum(attackers.connected.values()) < sum(counts.values()):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        time.sleep(1)  # let the server accept them
        phase = probe_phase(port, args.duration)
    finally:
        attackers.stop.set()
        attackers.thread.join(timeout=30)
    phase["attackers"] = {
        "open": counts,
        "connections_made": dict(attackers.connected),
        "closed_by_server": dict(attackers.closed_by_server),
    }
    return phase


# --- memory: concurrent maximal sentiment batches -------------------------------------------


def memory_main(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    from sentiment_serving import review, seed_size_network

    from mlapi.iris_model import train_and_save
    from mlapi.serving.settings import ServingSettings

    defaults = ServingSettings()
    words = " ".join(review(4000, seed) for seed in range(2))
    allowed = defaults.sentiment_max_total_chars // defaults.sentiment_max_batch
    bodies = {
        "within the budget": {"texts": [words[:allowed]] * defaults.sentiment_max_batch},
        "filling 1 MiB": {"texts": [words[:3900]] * defaults.sentiment_max_batch},
    }
    payloads = {name: json.dumps(body).encode() for name, body in bodies.items()}
    assert all(len(p) < defaults.max_body_bytes for p in payloads.values())
    lifted = {"SENTIMENT_MAX_TOTAL_CHARS": "100000000", "MAX_CONCURRENT_LARGE_REQUESTS": "64"}
    results = {}
    with tempfile.TemporaryDirectory(prefix="mlapi-memory-") as tmp:
        tmp = Path(tmp)
        seed_size_network(tmp / "models")
        train_and_save(tmp / "modelo.pkl")
        for name, extra in (("limits", {}), ("limits lifted", lifted)):
            env = server_env(MODELO_PATH=str(tmp / "modelo.pkl"), MODELS_DIR=str(tmp / "models"))
            env.update(extra)
            with GunicornServer(env, "-w", str(args.workers), log_path=tmp / f"{name}.log") as srv:
                results[name] = memory_run(srv, payloads, args)
            print(f"{name}: {json.dumps(results[name])}", flush=True)
    report = {
        "created_at": utc_now_iso(),
        "command": "python benchmarks/hostile_clients.py " + shlex.join(sys.argv[1:]),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "requests": {name: len(p) for name, p in payloads.items()},
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": list(os.getloadavg())},
        "goal": {"peak_rss_mb_at_most": GOAL_PEAK_RSS_MB},
        "runs": results,
    }
    atomic_write_json(args.out, report)
    print(f"saved {args.out}")
    return 0


def memory_run(server: GunicornServer, payloads: dict[str, bytes], args) -> dict:
    import requests

    from mlapi.testing import rss_mb

    url = f"{server.base_url}/sentiment"
    headers = {"Content-Type": "application/json"}
    for _ in range(4):  # each worker tokenizes once before the baseline
        requests.post(url, data=b'{"text": "A fine film."}', headers=headers, timeout=30)
    pids = server.worker_pids()
    baseline = {pid: rss_mb(pid) for pid in pids}
    peak = dict(baseline)
    statuses: Counter = Counter()
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for pid in pids:
                peak[pid] = max(peak[pid], rss_mb(pid))
            time.sleep(0.05)

    def client() -> None:
        for _ in range(args.memory_requests):
            for name, payload in payloads.items():
                try:
                    answer = requests.post(url, data=payload, headers=headers, timeout=120)
                    statuses[f"{name}: {answer.status_code}"] += 1
                except requests.RequestException as exc:
                    statuses[f"{name}: {type(exc).__name__}"] += 1

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    clients = [threading.Thread(target=client) for _ in range(args.memory_clients)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    done.set()
    sampler.join()
    time.sleep(3)
    after = {pid: rss_mb(pid) for pid in pids}
    return {
        "statuses": dict(statuses),
        "workers": [
            {"baseline_mb": baseline[p], "peak_mb": peak[p], "after_3s_mb": after[p]} for p in pids
        ],
        "peak_rss_mb_max": max(peak.values()),
        "goal_met": max(peak.values()) <= GOAL_PEAK_RSS_MB,
    }


def print_table(report: dict) -> None:
    print(
        f"{'phase':8} {'endpoint':9} {'sent':>5} {'200':>5} {'other':>6} {'lost':>5} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    )
    for name, phase in report["phases"].items():
        for path, row in phase["probes"].items():
            other = row["sent"] - row["ok"] - row["unanswered"]
            cells = [_ms(row[k]) for k in ("p50_ms", "p99_ms", "max_ms")]
            print(
                f"{name:8} {path:9} {row['sent']:>5} {row['ok']:>5} {other:>6} "
                f"{row['unanswered']:>5} {cells[0]:>8} {cells[1]:>8} {cells[2]:>8}"
            )
    attackers = report["phases"]["hostile"]["attackers"]
    print(f"attackers: {json.dumps(attackers)}")
    print(f"goal: {json.dumps(report['goal'])}; load average {report['machine']}")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


if __name__ == "__main__":
    sys.exit(main())
