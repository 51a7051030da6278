"""Slow clients must not starve the server (gunicorn with the repo's gunicorn.conf.py).

A stalled upload is a connection that sends its headers and half its body, then nothing.
The time bounds below are behaviour bounds, not benchmarks: a starved server does not answer
at all (until the client gives up), a healthy one answers in milliseconds.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

pytestmark = pytest.mark.slow

SETOSA = {"features": [5.1, 3.5, 1.4, 0.2]}
BODY = json.dumps(SETOSA).encode()


def open_stalled_upload(base_url: str) -> socket.socket:
    """A POST /predict that announces the whole body, sends half of it, and stops."""
    address = urlsplit(base_url)
    sock = socket.create_connection((address.hostname, address.port), timeout=5)
    head = (
        f"POST /predict HTTP/1.1\r\nHost: {address.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
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
        assert time.monotonic() < deadline, "the server did not accept the stalled connections"
        time.sleep(0.01)


def accepted_client_ports(server_port: int) -> set[int]:
    """Client ports of the connections that the server on `server_port` has accepted."""
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        remote_port = int(fields[2].rsplit(":", 1)[1], 16)
        established = fields[3] == "01"
        if local_port == server_port and established and fields[9] != "0":
            ports.add(remote_port)
    return ports


def received_nothing_yet(sock: socket.socket) -> bool:
    sock.settimeout(0.1)
    try:
        return sock.recv(1024) == b""  # b"": the server closed it
    except TimeoutError:
        return True


def server_env(iris_model_path, body_timeout_s: float) -> dict[str, str]:
    return {
        **os.environ,
        "MODELO_PATH": str(iris_model_path),
        "GUNICORN_BODY_TIMEOUT": str(body_timeout_s),
    }


def predict(base_url: str, timeout: float) -> requests.Response:
    # One new connection per call, so that requests land on any worker.
    return requests.post(f"{base_url}/predict", json=SETOSA, timeout=timeout)


def test_two_stalled_uploads_leave_the_server_answering_within_1s(start_gunicorn, iris_model_path):
    # The body timeout is long here: this is about the threads, not the timeout.
    base_url = start_gunicorn(server_env(iris_model_path, 60), "-w", "2")
    stalled = [open_stalled_upload(base_url) for _ in range(2)]
    try:
        wait_until_accepted(base_url, stalled)
        for _ in range(10):
            response = predict(base_url, timeout=1)
            assert response.status_code == 200
            assert response.json()["prediction"] == "setosa"
        assert all(received_nothing_yet(sock) for sock in stalled)  # still stalled, still held
    finally:
        for sock in stalled:
            sock.close()


def assert_blocked_by_stalled_uploads(base_url: str, count: int) -> None:
    stalled = [open_stalled_upload(base_url) for _ in range(count)]
    try:
        wait_until_accepted(base_url, stalled)
        with pytest.raises(requests.Timeout):
            predict(base_url, timeout=3)
    finally:
        for sock in stalled:
            sock.close()


def test_sync_workers_are_blocked_by_the_same_two_stalled_uploads(start_gunicorn, iris_model_path):
    # Why gthread: with sync workers each stalled upload holds a whole worker. (gunicorn runs
    # gthread when threads > 1, whatever the worker class: hence --threads 1.)
    env = server_env(iris_model_path, 60)
    base_url = start_gunicorn(env, "-w", "2", "--worker-class", "sync", "--threads", "1")
    assert_blocked_by_stalled_uploads(base_url, 2)


def test_more_stalled_uploads_than_threads_block_a_worker_without_the_body_timeout(
    start_gunicorn, iris_model_path
):
    # The limit: one worker with 2 threads, 2 stalled uploads, and a body timeout of a minute.
    env = server_env(iris_model_path, 60)
    base_url = start_gunicorn(env, "-w", "1", "--threads", "2")
    assert_blocked_by_stalled_uploads(base_url, 2)


def test_body_timeout_cuts_off_stalled_uploads_and_the_server_recovers(
    start_gunicorn, iris_model_path
):
    env = server_env(iris_model_path, 1)
    base_url = start_gunicorn(env, "-w", "1", "--threads", "2")
    stalled = [open_stalled_upload(base_url) for _ in range(3)]
    try:
        wait_until_accepted(base_url, stalled)
        response = predict(base_url, timeout=20)  # waits for the cut-off, seconds, not forever
        assert response.status_code == 200
        for sock in stalled:
            sock.settimeout(20)
            answer = http.client.HTTPResponse(sock)
            answer.begin()
            assert answer.status == 408  # a client error, not a 500
            error = json.loads(answer.read())["error"]
            assert error["request_id"] and "stopped arriving" in error["message"]
    finally:
        for sock in stalled:
            sock.close()
