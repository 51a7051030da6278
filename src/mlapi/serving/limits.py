"""Memory that stays bounded per worker: large requests one at a time, freed memory given back.

Parsing, validating and tokenizing a request takes memory in proportion to its body (a 1 MiB
batch of reviews: about a hundred MB of Python objects at its peak). A worker runs at most
MAX_CONCURRENT_LARGE_REQUESTS requests whose body is over LARGE_BODY_BYTES at once; the others
wait for their turn (up to QUEUE_WAIT_S, then 503). Small requests (every single prediction)
never wait. After a large request, glibc's malloc_trim gives the freed heap back to the system,
so a worker's RSS returns near its baseline instead of staying at its peak
(benchmarks/hostile_clients.py --memory measures both).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

from flask import Flask, g, request

from mlapi.serving.errors import ApiError

LARGE_BODY_BYTES = 64 * 1024
QUEUE_WAIT_S = 30.0


def _malloc_trim():
    """glibc's malloc_trim(0), or a no-op where there is none (musl, macOS)."""
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    trim.argtypes = [ctypes.c_size_t]
    return lambda: trim(0)


release_free_memory = _malloc_trim()


def is_large(content_length: int | None, method: str) -> bool:
    """A body over LARGE_BODY_BYTES, or one of unannounced length (chunked)."""
    if method not in ("POST", "PUT", "PATCH"):
        return False
    return content_length is None or content_length > LARGE_BODY_BYTES


def init_app(app: Flask, max_concurrent_large: int) -> None:
    turns = threading.BoundedSemaphore(max_concurrent_large)

    @app.before_request
    def _wait_for_a_turn() -> None:
        if not is_large(request.content_length, request.method):
            return
        if not turns.acquire(timeout=QUEUE_WAIT_S):
            raise ApiError(503, "The server is busy with other large requests; retry shortly.")
        g.large_request_turn = True

    @app.teardown_request
    def _end_turn(exc) -> None:
        if g.pop("large_request_turn", False):
            turns.release()
            release_free_memory()
