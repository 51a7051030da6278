"""The buffering gthread worker, driven directly: real worker objects on real sockets.

A connection must stay in the worker's poller, costing no thread, until its whole request has
arrived; the poller enforces deadlines and limits and answers refusals itself. The worker's own
event loop (`wait_for_and_dispatch_events`) runs here step by step, and `enqueue_req` is
replaced by a recorder, so a test sees exactly what would have reached a thread.

The balancing (a worker with a connection per thread waits before accepting, so that an idle
sibling takes it) is driven the same way: the wait is replaced by a hook that lets the sibling
run exactly when the busy worker waits. Which worker wins an accept is a race between
processes that a test cannot provoke; `benchmarks/load.py` shows the one-sided case.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import selectors
import socket
import time
from urllib.parse import urlsplit

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger

from mlapi.serving import gunicorn_conf, gunicorn_worker
from mlapi.serving.gunicorn_worker import ACCEPT_DEFER_S, BufferingThreadWorker
from mlapi.testing import server_env

BODY = json.dumps({"features": [5.1, 3.5, 1.4, 0.2]})
HEADERS = {"Content-Type": "application/json"}
WORKERS, THREADS, CONNECTIONS = 2, 4, 8
REQUEST = (
    "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    f"Content-Length: {len(BODY)}\r\n\r\n{BODY}"
).encode()


def test_the_served_worker_class_is_the_buffering_one():
    assert gunicorn_conf.worker_class == "mlapi.serving.gunicorn_worker.BufferingThreadWorker"


@pytest.fixture
def listener():
    """A real non-blocking listening socket, as gunicorn's workers share one."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    yield sock
    sock.close()


@pytest.fixture
def connect(listener):
    """Connect a client; the connection waits in the listener's queue until a worker accepts."""
    clients = []

    def make() -> socket.socket:
        clients.append(socket.create_connection(listener.getsockname(), timeout=5))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


class Worker:
    """A BufferingThreadWorker with its poller; `dispatched` records what reached a thread."""

    def __init__(self, listener: socket.socket, env: dict[str, str]):
        cfg = Config()
        cfg.set("threads", THREADS)
        cfg.set("worker_connections", int(env.pop("worker_connections", 100)))
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            self.worker = BufferingThreadWorker(
                1, os.getpid(), [listener], None, 30, cfg, Logger(cfg)
            )
        finally:
            for key, value in old.items():
                os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
        self.worker.poller = selectors.DefaultSelector()
        self.dispatched = []
        self.worker.enqueue_req = self._record  # instead of handing it to a thread
        self.listener = listener

    def _record(self, conn) -> None:
        self.worker.nr_busy += 1
        self.dispatched.append(conn)

    def accept(self) -> None:
        self.worker.accept(self.listener)

    def pump(self, rounds: int = 20) -> None:
        """Run the worker's event loop: dispatch what is ready, then enforce deadlines."""
        for _ in range(rounds):
            self.worker.wait_for_and_dispatch_events(timeout=0.01)
            self.worker._next_sweep = 0.0
            self.worker.murder_pending()

    def expire_all(self) -> None:
        for reception in self.worker.receiving.values():
            reception.deadline = 0.0
        self.pump(2)

    def request_bytes(self, conn) -> bytes:
        return conn.parser.unreader.buf.getvalue()

    def close(self) -> None:
        for conn in self.dispatched:
            conn.sock.close()
        self.worker.poller.close()
        self.worker.tmp.close()


@pytest.fixture
def make_worker(listener, monkeypatch):
    workers = []
    monkeypatch.delenv("MAX_BODY_BYTES", raising=False)

    def make(**env) -> Worker:
        workers.append(Worker(listener, {k: str(v) for k, v in env.items()}))
        return workers[-1]

    yield make
    for worker in workers:
        worker.close()


def read_answer(client: socket.socket) -> tuple[int, dict]:
    client.settimeout(5)
    response = http.client.HTTPResponse(client)
    response.begin()
    return response.status, json.loads(response.read())


@pytest.mark.parametrize("raw", ["soon", "0", "-1", "inf"])
def test_a_bad_deadline_says_which_variable(raw):
    from mlapi.errors import MlapiError

    with pytest.raises(MlapiError, match="GUNICORN_HEADER_TIMEOUT must be a positive number"):
        gunicorn_worker.ConnectionLimits.from_env(10, env={"GUNICORN_HEADER_TIMEOUT": raw})


def test_deadlines_come_from_the_environment():
    env = {"GUNICORN_FIRST_BYTE_TIMEOUT": "1.5", "GUNICORN_BODY_TIMEOUT": "7"}
    limits = gunicorn_worker.ConnectionLimits.from_env(10, env=env)
    assert (limits.first_byte_s, limits.headers_s, limits.body_s) == (1.5, 10.0, 7.0)
    assert limits.max_connections == 10 and limits.max_body_bytes == 1 << 20


def test_an_idle_connection_costs_no_thread_and_is_closed_at_its_first_byte_deadline(
    make_worker, connect
):
    worker = make_worker()
    client = connect()
    worker.accept()
    worker.pump()
    assert worker.dispatched == [] and len(worker.worker.receiving) == 1

    worker.expire_all()

    assert worker.worker.receiving == {} and worker.worker.nr_conns == 0
    client.settimeout(5)
    assert client.recv(100) == b""  # closed without an answer: it asked nothing


def test_a_request_reaches_a_thread_only_once_it_has_fully_arrived(make_worker, connect):
    worker = make_worker()
    client = connect()
    worker.accept()
    for i in range(0, len(REQUEST) - 1, 7):  # headers and body, trickled
        client.sendall(REQUEST[i : i + 7][: len(REQUEST) - 1 - i])
        worker.pump(2)
        assert worker.dispatched == []
    client.sendall(REQUEST[-1:])
    worker.pump()

    assert len(worker.dispatched) == 1
    assert worker.request_bytes(worker.dispatched[0]) == REQUEST


def test_pipelined_requests_are_handed_over_one_at_a_time(make_worker, connect):
    worker = make_worker()
    client = connect()
    worker.accept()
    client.sendall(REQUEST + REQUEST[:20])
    worker.pump()
    assert len(worker.dispatched) == 1
    assert worker.request_bytes(worker.dispatched[0]) == REQUEST
    assert worker.dispatched[0].leftover == REQUEST[:20]


@pytest.mark.parametrize(
    ("sent", "status"),
    [
        (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n", 408),  # headers stalled
        (REQUEST[:-5], 408),  # body stalled
    ],
)
def test_a_stalled_request_gets_a_408_at_its_deadline(make_worker, connect, sent, status):
    worker = make_worker()
    client = connect()
    worker.accept()
    client.sendall(sent)
    worker.pump()
    assert worker.dispatched == []

    worker.expire_all()

    answer_status, answer = read_answer(client)
    assert answer_status == status == answer["error"]["status"]
    assert "in time" in answer["error"]["message"] and answer["error"]["request_id"]
    assert worker.dispatched == []


def chunked(body: bytes, size: int = 65536) -> bytes:
    out = b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size])
                   for i in range(0, len(body), size))  # fmt: skip
    return out + b"0\r\n\r\n"


CHUNKED_HEAD = (
    b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)


@pytest.mark.parametrize(
    ("sent", "status", "words"),
    [
        (CHUNKED_HEAD + chunked(b"[" + b"1," * 600_000 + b"1]"), 413, "larger than the limit"),
        (CHUNKED_HEAD + chunked(b'{"features": [1, 2, 3, 4]}' + b" " * (1 << 20)), 413, "limit"),
        (CHUNKED_HEAD + b"zz\r\n", 400, "hexadecimal"),
        (CHUNKED_HEAD + b"4\r\nabcdXY", 400, "CRLF"),
        (
            REQUEST.replace(b"Content-Length: %d" % len(BODY), b"Content-Length: 2000000"),
            413,
            "limit",
        ),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 40_000, 431, "headers"),
    ],
    ids=["chunked-2MiB", "valid-1MiB-then-more", "bad-chunk-size", "no-crlf", "length", "headers"],
)
def test_framing_refusals_are_answered_by_the_poller_sent_whole_before_reading(
    make_worker, connect, sent, status, words
):
    worker = make_worker()
    client = connect()
    worker.accept()
    client.setblocking(False)
    sent_so_far = 0
    for _ in range(2000):  # the client sends everything before it reads, as curl may
        with contextlib.suppress(BlockingIOError):
            sent_so_far += client.send(sent[sent_so_far : sent_so_far + 65536])
        worker.pump(1)
        if sent_so_far == len(sent):
            break
    worker.pump()
    client.setblocking(True)

    answer_status, answer = read_answer(client)
    assert answer_status == status and words in answer["error"]["message"]
    assert worker.dispatched == []  # never reached a thread, never parsed by the app
    assert sent_so_far == len(sent)  # the lingering close read the rest: no reset


def test_the_lingering_close_is_bounded_in_bytes(make_worker, connect, monkeypatch):
    monkeypatch.setattr(gunicorn_worker, "LINGER_BYTES", 100_000)
    worker = make_worker(MAX_BODY_BYTES=10)
    client = connect()
    worker.accept()
    client.sendall(CHUNKED_HEAD + b"ff\r\n")  # over the limit: refused at once
    worker.pump()
    assert read_answer(client)[0] == 413
    client.setblocking(False)
    sent = 0
    with pytest.raises(OSError):  # the server stops reading after LINGER_BYTES and closes
        for _ in range(5000):
            with contextlib.suppress(BlockingIOError):
                sent += client.send(b"x" * 65536)
            worker.pump(1)
    assert worker.worker.lingering == {} and worker.worker.nr_conns == 0


def test_over_the_connection_limit_a_worker_answers_503(make_worker, connect):
    worker = make_worker(worker_connections=2)
    idle = [connect(), connect()]
    for _ in idle:
        worker.accept()
    extra = connect()
    worker.accept()
    worker.pump()

    status, answer = read_answer(extra)
    assert status == 503 and "connection limit" in answer["error"]["message"]
    assert len(worker.worker.receiving) == 2  # the first two are still held, costing no thread


def test_arriving_requests_may_hold_only_so_much_memory_together(make_worker, connect, monkeypatch):
    monkeypatch.setattr(gunicorn_worker, "MAX_BUFFERED_BYTES", 2 * len(REQUEST) - 10)
    worker = make_worker()
    first, second = connect(), connect()
    worker.accept()
    worker.accept()
    first.sendall(REQUEST[:-1])  # held, waiting for its last byte
    worker.pump()
    second.sendall(REQUEST[:-1])  # would go over the cap
    worker.pump()
    status, answer = read_answer(second)
    assert status == 503 and "too many large requests" in answer["error"]["message"]
    first.sendall(REQUEST[-1:])
    worker.pump()
    assert len(worker.dispatched) == 1 and worker.worker.buffered_bytes == 0


@pytest.fixture
def waits(monkeypatch):
    class Waits(list):
        during = staticmethod(lambda: None)

        def __call__(self, seconds: float) -> None:
            self.append(seconds)
            self.during()

    recorded = Waits()
    monkeypatch.setattr(gunicorn_worker.time, "sleep", recorded)
    return recorded


def test_a_busy_worker_waits_and_an_idle_sibling_takes_the_connection(make_worker, connect, waits):
    busy, idle = make_worker(), make_worker()
    busy.worker.nr_busy = THREADS
    connect()
    waits.during = idle.accept  # both were woken; the idle one runs meanwhile

    busy.accept()  # the busy worker won the wake-up race

    assert len(waits) == 1 and waits[0] == ACCEPT_DEFER_S > 0
    assert len(idle.worker.receiving) == 1 and idle.worker.nr_conns == 1
    assert busy.worker.receiving == {} and busy.worker.nr_conns == 0  # its EAGAIN was harmless


def test_a_worker_with_a_free_thread_accepts_at_once(make_worker, connect, waits):
    worker, sibling = make_worker(), make_worker()
    worker.worker.nr_busy = THREADS - 1
    connect()
    waits.during = sibling.accept

    worker.accept()

    assert waits == []
    assert len(worker.worker.receiving) == 1 and sibling.worker.receiving == {}


def test_idle_connections_do_not_count_as_busy_for_balancing(make_worker, connect, waits):
    worker = make_worker()
    for _ in range(THREADS + 2):
        connect()
        worker.accept()
    for reception in worker.worker.receiving.values():
        reception.opened = 0.0  # connected long ago, silent since
    assert worker.worker.active_connections() == 0
    waits.clear()
    connect()
    worker.accept()
    assert waits == []


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
