"""Request framing for the worker's poller: when a whole request has arrived, and which requests
are refused before their body is read."""

from __future__ import annotations

import pytest

from mlapi.serving.http_framing import FramingError, RequestFraming

HEAD = b"POST /predict HTTP/1.1\r\nHost: x\r\n"


def feed_bytewise(data: bytes, max_body: int = 100) -> int | None:
    """Feed one byte at a time (the slowest client); the first complete length, if any."""
    framing = RequestFraming(max_body)
    for i in range(len(data)):
        length = framing.feed(data[i : i + 1])
        if length is not None:
            return length
    return None


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
        HEAD + b"Content-Length: 5\r\n\r\nhello",
        HEAD + b"Transfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\n\r\n",
        HEAD + b"Transfer-Encoding: Chunked\r\n\r\n2\r\nhi\r\n0\r\nX-Trailer: 1\r\n\r\n",
    ],
    ids=["no-body", "length", "chunked", "chunked-trailers"],
)
def test_a_request_is_complete_exactly_at_its_last_byte(request_bytes):
    assert feed_bytewise(request_bytes + b"GET /next") == len(request_bytes)
    assert feed_bytewise(request_bytes[:-1]) is None
    assert RequestFraming(100).feed(request_bytes) == len(request_bytes)  # all at once


def test_empty_lines_before_a_request_are_ignored():
    framing = RequestFraming(100)
    assert framing.feed(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n") == len(b"GET / HTTP/1.1\r\n\r\n")


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (HEAD + b"Content-Length: 101\r\n\r\n", 413),
        (HEAD + b"Transfer-Encoding: chunked\r\n\r\n65\r\n", 413),  # 101 announced: no data read
        (HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"32\r\n" + b"a" * 50 + b"\r\n33\r\n", 413),
        (HEAD + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (HEAD + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
        (HEAD + b"Content-Length: -1\r\n\r\n", 400),
        (HEAD + b"Transfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\nhiXY", 400),
        (HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"1" * 2000, 400),
        (HEAD + b"Bad header line\r\n\r\n", 400),
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 40_000, 431),
    ],
)
def test_refusals_come_as_soon_as_the_bytes_show_them(request_bytes, status):
    with pytest.raises(FramingError) as refused:
        feed_bytewise(request_bytes)
    assert refused.value.status == status and refused.value.message.endswith(".")
