"""The balanced gthread worker: simultaneous keep-alive connections spread over the workers.

The one-sided case it prevents (one worker accepting every connection of a load generator) is a
race that a test cannot provoke on demand; `benchmarks/load.py` shows it. Here: the policy, and
that connections opened back to back are served by both workers.
"""

from __future__ import annotations

import http.client
import json
import re
import time
from urllib.parse import urlsplit

import pytest

from mlapi.serving import gunicorn_conf
from mlapi.serving.gunicorn_worker import should_defer_accept
from mlapi.testing import server_env

pytestmark = pytest.mark.slow

BODY = json.dumps({"features": [5.1, 3.5, 1.4, 0.2]})
HEADERS = {"Content-Type": "application/json"}
WORKERS, THREADS, CONNECTIONS = 2, 4, 8


def test_a_worker_defers_accepting_once_each_thread_has_a_connection():
    assert gunicorn_conf.worker_class == "mlapi.serving.gunicorn_worker.BalancedThreadWorker"
    assert [should_defer_accept(n, THREADS) for n in range(6)] == [False] * 4 + [True] * 2


def test_simultaneous_keepalive_connections_are_served_by_both_workers(
    start_gunicorn, iris_model_path, tmp_path
):
    env = server_env(MODELO_PATH=str(iris_model_path))
    args = ["-w", str(WORKERS), "--threads", str(THREADS), "--access-logformat", "%(p)s %(s)s"]
    base_url = start_gunicorn(env, *args)
    log = tmp_path / "gunicorn-0.log"
    wait_until_every_worker_answered(base_url, log)
    before = len(served_by(log))

    clients = open_connections_at_once(base_url, CONNECTIONS)
    for _ in range(5):
        for client in clients:  # one request per connection in turn, all kept alive
            client.request("POST", "/predict", BODY, HEADERS)
            client.getresponse().read()
    for client in clients:
        client.close()

    deadline = time.monotonic() + 10  # a line is logged just after its response is sent
    while len(served_by(log)) < before + CONNECTIONS * 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    answers = served_by(log)[before:]
    assert len(answers) == CONNECTIONS * 5
    assert len(set(answers)) == WORKERS, f"requests per worker: {answers}"


def open_connections_at_once(base_url: str, count: int) -> list[http.client.HTTPConnection]:
    """`count` connections opened back to back, as a load generator opens them."""
    address = urlsplit(base_url)
    clients = [http.client.HTTPConnection(address.hostname, address.port, timeout=10)
               for _ in range(count)]  # fmt: skip
    for client in clients:
        client.connect()
    return clients


def wait_until_every_worker_answered(base_url: str, log, timeout_s: float = 30) -> None:
    """Each worker loads the app after the fork: new connections until all of them answered."""
    address = urlsplit(base_url)
    deadline = time.monotonic() + timeout_s
    while len(set(served_by(log))) < WORKERS:
        assert time.monotonic() < deadline, "not every worker answered"
        conn = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
        conn.request("POST", "/predict", BODY, {**HEADERS, "Connection": "close"})
        conn.getresponse().read()
        conn.close()
        time.sleep(0.05)


def served_by(log) -> list[str]:
    """Worker pid of each 200 in the access log (format '%(p)s %(s)s'), in order."""
    return re.findall(r"^<(\d+)> 200$", log.read_text(), flags=re.MULTILINE)
