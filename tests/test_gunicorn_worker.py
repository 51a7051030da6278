"""The balanced gthread worker: once a worker holds a connection per thread, it waits before
accepting, so that an idle sibling takes the new connection.

Which worker wins an accept is a race between processes; a test cannot provoke the one-sided
case on demand (`benchmarks/load.py` shows it). So the accept path is driven here directly: real
worker objects on one real listening socket, and the wait replaced by a hook that lets the sibling
run exactly when the busy worker waits. Removing the wait, or forcing the policy off, makes the
busy worker take the connection, and these tests fail. The end-to-end test at the bottom checks
that gunicorn runs the worker and spreads back-to-back connections; it does not guard the wait.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import time
from urllib.parse import urlsplit

import pytest
from gunicorn.config import Config

from mlapi.serving import gunicorn_conf, gunicorn_worker
from mlapi.serving.gunicorn_worker import ACCEPT_DEFER_S, BalancedThreadWorker
from mlapi.testing import server_env

BODY = json.dumps({"features": [5.1, 3.5, 1.4, 0.2]})
HEADERS = {"Content-Type": "application/json"}
WORKERS, THREADS, CONNECTIONS = 2, 4, 8


def test_the_served_worker_class_is_the_balanced_one():
    assert gunicorn_conf.worker_class == "mlapi.serving.gunicorn_worker.BalancedThreadWorker"


@pytest.fixture
def listener():
    """A real non-blocking listening socket, as gunicorn's workers share one."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    yield sock
    sock.close()


@pytest.fixture
def client_connects(listener):
    """Connect a client; the connection waits in the listener's queue until a worker accepts."""
    clients = []

    def connect() -> None:
        clients.append(socket.create_connection(listener.getsockname(), timeout=5))

    yield connect
    for client in clients:
        client.close()


class Worker:
    """A BalancedThreadWorker holding `open_connections`; it records what it accepts."""

    def __init__(self, listener: socket.socket, open_connections: int):
        cfg = Config()
        cfg.set("threads", THREADS)
        self.worker = BalancedThreadWorker(1, os.getpid(), [listener], None, 30, cfg, None)
        self.worker.nr_conns = open_connections
        self.accepted = []
        self.worker.enqueue_req = self.accepted.append  # instead of handing it to a thread

    def accept(self, listener: socket.socket) -> None:
        self.worker.accept(listener)

    def close(self) -> None:
        for conn in self.accepted:
            conn.sock.close()
        self.worker.tmp.close()


@pytest.fixture
def make_worker(listener):
    workers = []

    def make(open_connections: int) -> Worker:
        workers.append(Worker(listener, open_connections))
        return workers[-1]

    yield make
    for worker in workers:
        worker.close()


class Waits(list):
    """The waits a worker asked for; `during` runs in place of each (the sibling's turn)."""

    def during(self) -> None:
        pass

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        self.during()


@pytest.fixture
def waits(monkeypatch) -> Waits:
    recorded = Waits()
    monkeypatch.setattr(gunicorn_worker.time, "sleep", recorded)
    return recorded


def test_a_busy_worker_waits_and_an_idle_sibling_takes_the_connection(
    listener, client_connects, make_worker, waits
):
    busy, idle = make_worker(THREADS), make_worker(0)
    client_connects()
    waits.during = lambda: idle.accept(listener)  # both were woken; the idle one runs meanwhile

    busy.accept(listener)  # the busy worker won the wake-up race

    assert len(waits) == 1 and waits[0] == ACCEPT_DEFER_S > 0
    assert len(idle.accepted) == 1 and idle.worker.nr_conns == 1
    assert busy.accepted == [] and busy.worker.nr_conns == THREADS  # its EAGAIN was harmless


def test_a_worker_with_a_free_thread_accepts_at_once(listener, client_connects, make_worker, waits):
    worker, sibling = make_worker(THREADS - 1), make_worker(0)
    client_connects()
    waits.during = lambda: sibling.accept(listener)

    worker.accept(listener)

    assert waits == []
    assert len(worker.accepted) == 1 and sibling.accepted == []


def test_when_every_worker_is_busy_the_connection_is_still_accepted_after_the_wait(
    listener, client_connects, make_worker, waits
):
    busy = make_worker(THREADS + 3)
    client_connects()

    busy.accept(listener)  # no sibling takes it during the wait

    assert waits == [ACCEPT_DEFER_S]
    assert len(busy.accepted) == 1 and busy.worker.nr_conns == THREADS + 4


@pytest.mark.slow
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
