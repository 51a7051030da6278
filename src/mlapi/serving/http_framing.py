"""Has a whole HTTP/1.1 request arrived yet? Request framing only, for the worker's poller.

`RequestFraming.feed(bytes)` answers with the length of the first complete request in what has
arrived, or None while more is needed, or raises `FramingError` (a status and a sentence) as
soon as the bytes show the request cannot be served: a body over the limit (413, from its
Content-Length or from the chunk sizes, before the body is read), broken framing (400), headers
too large (431), a transfer coding other than chunked (501).

It checks framing, not the rest of HTTP: gunicorn's own parser reads the complete request
afterwards, in a worker thread, with all its checks. It is written by hand for speed (a few
microseconds a request, on the poller's thread); h11 does the same job but measured at ~100 us.
"""

from __future__ import annotations

MAX_HEADER_BYTES = 32 * 1024  # request line + headers (nginx: 4 x 8 KiB buffers)
MAX_CHUNK_LINE = 1024  # a chunk-size line, extensions included
_HEX = frozenset(b"0123456789abcdefABCDEF")


class FramingError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class RequestFraming:
    def __init__(self, max_body_bytes: int, max_header_bytes: int = MAX_HEADER_BYTES):
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes
        self.buffer = bytearray()
        self.header_end: int | None = None  # index just past the blank line
        self.expects_continue = False
        self._body = "none"  # "none", "length" or "chunked"
        self._length = 0
        self._pos = 0  # chunked: where the next chunk line (or trailer line) starts
        self._chunk_left: int | None = None  # chunked: data bytes of the current chunk
        self._in_trailers = False
        self._trailers_start = 0
        self._chunked_total = 0

    @property
    def started(self) -> bool:
        return bool(self.buffer)

    @property
    def headers_done(self) -> bool:
        return self.header_end is not None

    def feed(self, data: bytes) -> int | None:
        """Add `data`; the first request's length once it is complete, else None."""
        searched = max(0, len(self.buffer) - 3)
        self.buffer += data
        if self.header_end is None:
            while self.buffer.startswith(b"\r\n"):  # empty lines before a request are ignored
                del self.buffer[:2]
                searched = 0
            end = self.buffer.find(b"\r\n\r\n", searched)
            if end < 0 or end + 4 > self.max_header_bytes:
                if len(self.buffer) > self.max_header_bytes:
                    raise FramingError(
                        431, f"Request headers are larger than {self.max_header_bytes} bytes."
                    )
                return None
            self.header_end = end + 4
            self._read_headers(bytes(self.buffer[:end]))
            self._pos = self.header_end
        if self._body == "length":
            total = self.header_end + self._length
            return total if len(self.buffer) >= total else None
        if self._body == "chunked":
            return self._walk_chunks()
        return self.header_end

    def _read_headers(self, block: bytes) -> None:
        request_line, *lines = block.split(b"\r\n")
        if request_line.count(b" ") != 2:
            raise FramingError(400, "The request line is malformed.")
        lengths, codings = [], []
        for line in lines:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip():
                raise FramingError(400, "A request header line is malformed.")
            name = name.lower()
            if name == b"content-length":
                lengths.append(value.strip())
            elif name == b"transfer-encoding":
                codings += [c.strip().lower() for c in value.split(b",")]
            elif name == b"expect":
                self.expects_continue = value.strip().lower() == b"100-continue"
        if codings:
            if lengths:
                raise FramingError(400, "Send Content-Length or Transfer-Encoding, not both.")
            if codings != [b"chunked"]:
                raise FramingError(501, "The only transfer coding accepted is chunked.")
            self._body = "chunked"
        elif lengths:
            if len(set(lengths)) != 1 or not lengths[0].isdigit() or len(lengths[0]) > 18:
                raise FramingError(400, "Content-Length must be one non-negative integer.")
            self._length = int(lengths[0])
            self._check_size(self._length)
            self._body = "length"

    def _check_size(self, size: int) -> None:
        if size > self.max_body_bytes:
            raise FramingError(
                413,
                f"Request body is larger than the limit of {self.max_body_bytes} bytes. "
                "Send fewer items per request.",
            )

    def _walk_chunks(self) -> int | None:
        buffer = self.buffer
        while True:
            if self._chunk_left is None:  # a chunk-size line, or a trailer line
                eol = buffer.find(b"\r\n", self._pos)
                if eol < 0:
                    if len(buffer) - self._pos > MAX_CHUNK_LINE:
                        raise FramingError(400, "A chunk-size or trailer line is too long.")
                    return None
                line = bytes(buffer[self._pos : eol])
                self._pos = eol + 2
                if self._in_trailers:
                    if not line:
                        return self._pos  # the blank line after the last chunk's trailers
                    if self._pos - self._trailers_start > self.max_header_bytes:
                        raise FramingError(431, "Request trailers are too large.")
                    continue
                size = _chunk_size(line)
                if size == 0:
                    self._in_trailers = True
                    self._trailers_start = self._pos
                    continue
                self._chunked_total += size
                self._check_size(self._chunked_total)
                self._chunk_left = size
            end = self._pos + self._chunk_left
            if len(buffer) < end + 2:
                return None
            if buffer[end : end + 2] != b"\r\n":
                raise FramingError(400, "Chunk data must be followed by CRLF.")
            self._pos = end + 2
            self._chunk_left = None


def _chunk_size(line: bytes) -> int:
    digits = line.partition(b";")[0].rstrip(b" \t")
    if not digits or len(digits) > 16 or not all(c in _HEX for c in digits):
        raise FramingError(400, "A chunk size is not a hexadecimal number.")
    return int(digits, 16)
