"""Idle and slow clients must not starve the server (real gunicorn, the repo's gunicorn.conf.py).

Each test opens more hostile connections than the worker has threads, then checks that an
ordinary request is still answered. The timeouts are behaviour bounds, not benchmarks: a starved
server does not answer at all (it waits for the attackers), a healthy one answers at once.
`benchmarks/hostile_clients.py` measures latencies. The plain-gthread test shows the bound has
teeth: the same attack starves gunicorn's own worker.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from mlapi.testing import server_env

pytestmark = pytest.mark.slow

SETOSA = {"features": [5.1, 3.5, 1.4, 0.2]}
BODY = json.dumps(SETOSA).encode()
ONE_WORKER = ("-w", "1", "--threads", "2")


def connect(base_url: str) -> socket.socket:
    address = urlsplit(base_url)
    return socket.create_connection((address.hostname, address.port), timeout=5)


def open_idle(base_url: str) -> socket.socket:
    return connect(base_url)


def open_slow_headers(base_url: str) -> socket.socket:
    sock = connect(base_url)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n")  # and never the rest
    return sock


def open_stalled_upload(base_url: str) -> socket.socket:
    sock = connect(base_url)
    head = (
        "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(BODY)}\r\n\r\n"
    )
    sock.sendall(head.encode() + BODY[: len(BODY) // 2])
    return sock


def wait_until_accepted(base_url: str, socks: list[socket.socket], timeout_s: float = 10) -> None:
    """Wait until the server has accepted each of `socks` (before the normal requests are sent).

    Linux lists every TCP socket in /proc/net/tcp; a connection still in the listener's queue
    has inode 0 there, and gets an inode when a server process accepts it.
    """
    server_port = urlsplit(base_url).port
    client_ports = {sock.getsockname()[1] for sock in socks}
    deadline = time.monotonic() + timeout_s
    while accepted_client_ports(server_port) & client_ports != client_ports:
        assert time.monotonic() < deadline, "the server did not accept the hostile connections"
        time.sleep(0.01)


def accepted_client_ports(server_port: int) -> set[int]:
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        remote_port = int(fields[2].rsplit(":", 1)[1], 16)
        if local_port == server_port and fields[3] == "01" and fields[9] != "0":
            ports.add(remote_port)
    return ports


def still_held(sock: socket.socket) -> bool:
    """The server neither answered nor closed it."""
    sock.settimeout(0.1)
    try:
        sock.recv(1024)
        return False
    except TimeoutError:
        return True


def predict(base_url: str, timeout: float) -> requests.Response:
    return requests.post(f"{base_url}/predict", json=SETOSA, timeout=timeout)


@pytest.mark.parametrize("attack", [open_idle, open_slow_headers, open_stalled_upload])
def test_hostile_connections_beyond_the_threads_leave_the_server_answering(
    start_gunicorn, iris_model_path, attack
):
    deadlines = {f"GUNICORN_{n}_TIMEOUT": "60" for n in ("FIRST_BYTE", "HEADER", "BODY")}
    env = server_env(MODELO_PATH=str(iris_model_path), **deadlines)  # this test is not about them
    base_url = start_gunicorn(env, *ONE_WORKER)
    hostile = [attack(base_url) for _ in range(12)]  # 6 per thread
    try:
        wait_until_accepted(base_url, hostile)
        for _ in range(5):
            assert requests.get(f"{base_url}/health", timeout=3).status_code == 200
            assert predict(base_url, timeout=3).json()["prediction"] == "setosa"
        assert all(still_held(sock) for sock in hostile)  # held, and cheap: no thread each
    finally:
        for sock in hostile:
            sock.close()


def test_plain_gthread_is_starved_by_the_same_idle_connections(start_gunicorn, iris_model_path):
    env = server_env(MODELO_PATH=str(iris_model_path))
    base_url = start_gunicorn(env, *ONE_WORKER, "--worker-class", "gthread")
    hostile = [open_slow_headers(base_url) for _ in range(12)]
    try:
        wait_until_accepted(base_url, hostile)
        with pytest.raises(requests.Timeout):
            predict(base_url, timeout=3)
    finally:
        for sock in hostile:
            sock.close()


def read_answer(sock: socket.socket, timeout: float = 20) -> tuple[int, dict]:
    sock.settimeout(timeout)
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, json.loads(response.read())


def test_stalled_requests_get_408_at_their_deadlines_and_idle_ones_are_closed(
    start_gunicorn, iris_model_path
):
    env = server_env(
        MODELO_PATH=str(iris_model_path),
        GUNICORN_FIRST_BYTE_TIMEOUT="1",
        GUNICORN_HEADER_TIMEOUT="1",
        GUNICORN_BODY_TIMEOUT="1",
    )
    base_url = start_gunicorn(env, *ONE_WORKER)
    idle, headers, body = (
        open_idle(base_url),
        open_slow_headers(base_url),
        open_stalled_upload(base_url),
    )
    try:
        for sock in (headers, body):
            status, answer = read_answer(sock)
            assert status == 408 == answer["error"]["status"]
            assert "in time" in answer["error"]["message"] and answer["error"]["request_id"]
        idle.settimeout(20)
        assert idle.recv(100) == b""  # closed without an answer
        assert predict(base_url, timeout=5).status_code == 200
    finally:
        for sock in (idle, headers, body):
            sock.close()


def test_over_its_connection_limit_a_worker_answers_503_not_a_queue(
    start_gunicorn, iris_model_path
):
    env = server_env(MODELO_PATH=str(iris_model_path), GUNICORN_WORKER_CONNECTIONS="4")
    base_url = start_gunicorn(env, *ONE_WORKER)
    deadline = time.monotonic() + 10  # the start-up health checks' connections are closed
    while accepted_client_ports(urlsplit(base_url).port):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    hostile = [open_idle(base_url) for _ in range(4)]
    try:
        wait_until_accepted(base_url, hostile)
        response = predict(base_url, timeout=5)
        assert response.status_code == 503
        assert "connection limit" in response.json()["error"]["message"]
        assert response.headers["Retry-After"] == "1"
    finally:
        for sock in hostile:
            sock.close()
    deadline = time.monotonic() + 10  # the held ones gone, it serves again
    while predict(base_url, timeout=5).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def send_whole_then_read(base_url: str, data: bytes) -> tuple[int, dict]:
    """Send every byte before reading anything, as a naive client does."""
    sock = connect(base_url)
    try:
        sock.settimeout(20)
        sock.sendall(data)
        return read_answer(sock)
    finally:
        sock.close()


def chunked_request(body: bytes, chunk: int = 65536) -> bytes:
    head = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunks = [body[i : i + chunk] for i in range(0, len(body), chunk)]
    return head + b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


def test_every_framing_meets_the_body_limit_and_bad_framing_is_a_400(
    start_gunicorn, iris_model_path
):
    base_url = start_gunicorn(server_env(MODELO_PATH=str(iris_model_path)), *ONE_WORKER)
    valid_then_more = json.dumps(SETOSA).encode() + b" " * (1 << 20)
    over_limit = {
        "chunked 2 MiB": chunked_request(b"[" + b"1," * (1 << 20) + b"1]"),
        "valid 1 MiB object then more": chunked_request(valid_then_more),
        "Content-Length 2 MiB": (
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 2097152\r\n\r\n" + b"1" * 2097152
        ),
    }
    for name, data in over_limit.items():
        status, answer = send_whole_then_read(base_url, data)
        assert status == 413, name
        assert "larger than the limit" in answer["error"]["message"], name
    for bad in (b"zz\r\n", b"4\r\nabcdXY\r\n0\r\n\r\n"):
        data = chunked_request(b"")[: -len(b"0\r\n\r\n")] + bad
        status, answer = send_whole_then_read(base_url, data)
        assert status == 400 and answer["error"]["request_id"]
    ok = requests.post(
        f"{base_url}/predict",
        data=iter([BODY[:10], BODY[10:]]),  # a generator body: requests sends it chunked
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert ok.status_code == 200 and ok.json()["prediction"] == "setosa"
