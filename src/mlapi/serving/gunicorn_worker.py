"""gunicorn's gthread worker, made to hold under idle and slow clients.

gthread hands a new connection to a thread, which then waits for the client's bytes: 40 idle
connections were enough to stall /health for 25 s. `BufferingThreadWorker` keeps every connection
in the worker's poller (one file descriptor, no thread) until a whole request has arrived, framed
by `mlapi.serving.http_framing`; only then does a thread run it, from memory, never waiting on the
client. On the poller's side:

- deadlines per stage (ConnectionLimits): the first byte, the headers, the body. A connection
  that sent nothing is closed; one that stalls mid-request gets a 408;
- a cap on the bytes all arriving requests may hold together (MAX_BUFFERED_BYTES, else 503);
- refusals answered there, before any thread or the app sees the request: a body over
  MAX_BODY_BYTES (413, by Content-Length or chunk sizes, before it is read), broken framing
  (400), headers over 32 KiB (431), other transfer codings (501), and a 503 when the worker
  already holds `max_connections` connections (instead of leaving clients in the queue);
- a refusal is followed by a lingering close, as nginx does: the worker stops writing, then reads
  and discards what the client still sends (at most LINGER_BYTES, LINGER_S), so that a client
  that sends its whole body before reading still gets the answer rather than a reset.

It also keeps the earlier balancing: once a worker has as many active connections as threads, it
waits ACCEPT_DEFER_S before accepting, so that an idle sibling takes the connection (clients that
connect together were otherwise all served by one worker, on one core).

With TLS configured (certfile), it falls back to gthread's own behaviour, without these
protections: terminate TLS in a proxy in front. HTTP/2 is not served.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import selectors
import socket
import time
import uuid
from dataclasses import dataclass, field
from functools import partial
from http import HTTPStatus

from gunicorn import http
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers.gthread import TConn, ThreadWorker

from mlapi.serving.http_framing import FramingError, RequestFraming

ACCEPT_DEFER_S = 0.002
ACTIVE_WINDOW_S = 1.0  # a connection still receiving counts as active this long after a byte
RECV_BYTES = 64 * 1024
# Bytes all the requests still arriving may hold in a worker's memory together (about 64 maximal
# uploads); a request that would go over it gets a 503, so slow uploads cannot fill the memory.
MAX_BUFFERED_BYTES = 64 * 1024 * 1024
LINGER_BYTES = 4 * 1024 * 1024
LINGER_S = 5.0
SWEEP_EVERY_S = 0.2
TOO_SLOW = "The request did not arrive in time; send it whole."
BUSY = "The server is receiving too many large requests; retry shortly."
# Called as f(status) on the worker's main thread for each refusal (e.g. to count it in metrics).
REFUSAL_OBSERVERS: list = []
REFUSAL_HEADERS = (
    "Content-Type: application/json\r\n"
    "Cache-Control: no-store\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "Content-Security-Policy: default-src 'none'; frame-ancestors 'none'\r\n"
    "Connection: close\r\n"
)


@dataclass(frozen=True)
class ConnectionLimits:
    """Deadlines (seconds) and sizes the poller enforces; environment overrides in brackets."""

    first_byte_s: float = 5.0  # a new connection's first byte [GUNICORN_FIRST_BYTE_TIMEOUT]
    headers_s: float = 10.0  # from the first byte to the end of the headers [..._HEADER_TIMEOUT]
    body_s: float = 20.0  # from the end of the headers to the end of the body [..._BODY_TIMEOUT]
    max_body_bytes: int = 1 << 20  # MAX_BODY_BYTES, as the app's
    max_connections: int = 500  # per worker; more get a 503 [gunicorn's worker_connections]

    @classmethod
    def from_env(cls, max_connections: int, env=None) -> ConnectionLimits:
        from mlapi.serving.settings import ServingSettings

        env = os.environ if env is None else env
        names = {
            "first_byte_s": "GUNICORN_FIRST_BYTE_TIMEOUT",
            "headers_s": "GUNICORN_HEADER_TIMEOUT",
            "body_s": "GUNICORN_BODY_TIMEOUT",
        }
        values = {key: _seconds(name, env[name]) for key, name in names.items() if env.get(name)}
        max_body = ServingSettings.from_env(env).max_body_bytes
        return cls(**values, max_body_bytes=max_body, max_connections=max_connections)


def _seconds(name: str, raw: str) -> float:
    from mlapi.errors import MlapiError

    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise MlapiError(f"{name} must be a positive number of seconds, got {raw!r}")
    return value


def should_defer_accept(active_connections: int, threads: int) -> bool:
    """True when a worker already has an active connection for each of its threads."""
    return active_connections >= threads


class BufferedUnreader(SocketUnreader):
    """The poller has put the whole request in the buffer: a thread never reads the socket."""

    def chunk(self, size_hint=None):
        return b""


@dataclass(eq=False)
class Reception:
    """A connection whose request is still arriving."""

    conn: TConn
    framing: RequestFraming
    opened: float
    deadline: float
    last_byte: float = field(default=0.0)
    received: int = 0  # bytes counted in the worker's buffered_bytes


@dataclass(eq=False)
class Lingering:
    sock: socket.socket
    deadline: float
    budget: int = LINGER_BYTES


class BufferingThreadWorker(ThreadWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.limits = ConnectionLimits.from_env(self.cfg.worker_connections)
        # The base loop stops accepting at worker_connections; ours answers 503 before that,
        # and keeps a margin of descriptors for the refusals' lingering closes.
        self.worker_connections = self.limits.max_connections + 64
        self.receiving: dict[TConn, Reception] = {}
        self.lingering: dict[socket.socket, Lingering] = {}
        self.nr_busy = 0  # connections with a request in a thread
        self.buffered_bytes = 0  # held by the requests still arriving
        self._next_sweep = 0.0

    # --- accepting --------------------------------------------------------------------------

    def accept(self, listener):
        if self.cfg.is_ssl:  # TLS is not read in the poller: gthread's own behaviour
            return super().accept(listener)
        if should_defer_accept(self.active_connections(), self.cfg.threads):
            time.sleep(ACCEPT_DEFER_S)  # a sibling with free threads accepts first
        try:
            client_sock, client_addr = listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                self.log.warning("accept: out of file descriptors (%s)", exc)
                time.sleep(0.05)
            elif exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        client_sock.setblocking(False)
        if self.nr_conns > self.limits.max_connections:
            self.refuse(client_sock, 503, "The server is at its connection limit; retry shortly.")
            return
        conn = TConn(self.cfg, client_sock, client_addr, listener.getsockname())
        self.receive(conn, time.monotonic() + self.limits.first_byte_s)

    def active_connections(self) -> int:
        """Connections that count for balancing: in a thread, kept alive, or recently talking."""
        since = time.monotonic() - ACTIVE_WINDOW_S
        recent = sum(1 for r in self.receiving.values() if max(r.opened, r.last_byte) > since)
        return self.nr_busy + len(self.keepalived_conns) + recent

    # --- receiving a request in the poller ----------------------------------------------------

    def receive(self, conn: TConn, deadline: float, data: bytes = b"") -> None:
        now = time.monotonic()
        reception = Reception(conn, RequestFraming(self.limits.max_body_bytes), now, deadline)
        self.receiving[conn] = reception
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_bytes, reception))
        if data:
            self.consume(reception, data)

    def on_client_socket_readable(self, conn, client):
        """A kept-alive connection has bytes: receive its next request here, not in a thread."""
        if self.cfg.is_ssl:
            return super().on_client_socket_readable(conn, client)
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self.receive(conn, time.monotonic() + self.limits.headers_s)

    def on_bytes(self, reception: Reception, sock) -> None:
        try:
            data = sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.stop_receiving(reception)
            self.close_conn(reception.conn)
            return
        self.consume(reception, data)

    def consume(self, reception: Reception, data: bytes) -> None:
        framing, now = reception.framing, time.monotonic()
        if not framing.started:
            reception.deadline = now + self.limits.headers_s
        reception.last_byte = now
        if self.buffered_bytes + len(data) > MAX_BUFFERED_BYTES:
            self.stop_receiving(reception)
            self.refuse(reception.conn.sock, 503, BUSY)
            return
        self.buffered_bytes += len(data)
        reception.received += len(data)
        had_headers = framing.headers_done
        try:
            length = framing.feed(data)
        except FramingError as exc:
            self.stop_receiving(reception)
            self.refuse(reception.conn.sock, exc.status, exc.message)
            return
        if length is None:
            if framing.headers_done and not had_headers:
                reception.deadline = now + self.limits.body_s
                if framing.expects_continue:
                    _send_quietly(reception.conn.sock, b"HTTP/1.1 100 Continue\r\n\r\n")
            return
        self.stop_receiving(reception)
        self.dispatch(reception.conn, bytes(framing.buffer[:length]), framing.buffer[length:])

    def stop_receiving(self, reception: Reception) -> None:
        if self.receiving.pop(reception.conn, None) is not None:
            self.buffered_bytes -= reception.received
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(reception.conn.sock)

    def dispatch(self, conn: TConn, request: bytes, leftover: bytes) -> None:
        """Hand a whole request to a thread; a pipelined next request waits for this one."""
        if conn.parser is None:
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
        conn.parser.unreader = BufferedUnreader(conn.sock)
        conn.parser.unreader.unread(request)
        conn.leftover = bytes(leftover)
        conn.data_ready = True
        self.enqueue_req(conn)

    def enqueue_req(self, conn):
        self.nr_busy += 1
        super().enqueue_req(conn)

    def finish_request(self, conn, fs):
        self.nr_busy -= 1
        super().finish_request(conn, fs)
        leftover = getattr(conn, "leftover", b"")
        if leftover and conn in self.keepalived_conns:
            self.poller.unregister(conn.sock)
            self.keepalived_conns.remove(conn)
            conn.leftover = b""
            self.receive(conn, time.monotonic() + self.limits.headers_s, leftover)

    # --- deadlines, refusals, closing -------------------------------------------------------------

    def murder_pending(self):
        """Called by the main loop at least once a second: enforce the poller's deadlines."""
        super().murder_pending()
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_EVERY_S
        for reception in list(self.receiving.values()):
            expired = reception.deadline <= now
            if not reception.framing.started and (expired or not self.alive):
                self.stop_receiving(reception)  # sent nothing: closed without an answer
                self.close_conn(reception.conn)
            elif expired:
                self.stop_receiving(reception)
                self.refuse(reception.conn.sock, 408, TOO_SLOW)
        for linger in [x for x in self.lingering.values() if x.deadline <= now]:
            self.end_linger(linger)

    def refuse(self, sock: socket.socket, status: int, message: str) -> None:
        """Answer `status` from the poller, then close lingering (the connection stays counted)."""
        request_id = uuid.uuid4().hex
        body = json.dumps(
            {"error": {"status": status, "message": message, "request_id": request_id}}
        ).encode()
        extra = "Retry-After: 1\r\n" if status == 503 else ""
        head = (
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n{REFUSAL_HEADERS}{extra}"
            f"X-Request-ID: {request_id}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        _send_quietly(sock, head.encode() + body)
        self.log.info("refused before the app: %s %s rid=%s", status, message, request_id)
        for observe in REFUSAL_OBSERVERS:
            observe(status)
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close_sock(sock)
            return
        linger = Lingering(sock, time.monotonic() + LINGER_S)
        self.lingering[sock] = linger
        self.poller.register(sock, selectors.EVENT_READ, partial(self.on_linger_bytes, linger))

    def on_linger_bytes(self, linger: Lingering, sock) -> None:
        try:
            data = sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        linger.budget -= len(data)
        if not data or linger.budget <= 0:
            self.end_linger(linger)

    def end_linger(self, linger: Lingering) -> None:
        self.lingering.pop(linger.sock, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(linger.sock)
        self.close_sock(linger.sock)

    def close_conn(self, conn: TConn) -> None:
        self.close_sock(conn.sock)

    def close_sock(self, sock: socket.socket) -> None:
        self.nr_conns -= 1
        with contextlib.suppress(OSError):
            sock.close()


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    """Best effort on a non-blocking socket: small answers fit in its send buffer."""
    with contextlib.suppress(OSError):
        sock.send(data)
