"""gunicorn settings for this workload (the repo's gunicorn.conf.py imports these).

Requests are short and CPU-bound (both models run in ONNX Runtime; for Iris, most of a request
is Flask and JSON), so: one worker process per core, and a few threads per worker (the GIL lets
one run Python at a time; the threads overlap ONNX Runtime and socket writes).

Workers are `mlapi.serving.gunicorn_worker.BufferingThreadWorker`: gthread workers whose poller
holds each connection until its whole request has arrived, so idle and slow clients cost a file
descriptor, never a thread (benchmarks/hostile_clients.py). The poller enforces, per connection:
the first byte within GUNICORN_FIRST_BYTE_TIMEOUT (else closed), the headers within
GUNICORN_HEADER_TIMEOUT of it and the body within GUNICORN_BODY_TIMEOUT of the headers (else
408); a body over MAX_BODY_BYTES is a 413 before it is read, whatever its framing; a worker
holding `worker_connections` connections answers new ones 503 instead of queueing them. It does
not serve TLS or HTTP/2: terminate those in a proxy in front.

Every value can be overridden on the gunicorn command line or with GUNICORN_CMD_ARGS.
Environment: HOST, PORT, WEB_CONCURRENCY (workers), GUNICORN_THREADS,
GUNICORN_WORKER_CONNECTIONS, GUNICORN_FIRST_BYTE_TIMEOUT, GUNICORN_HEADER_TIMEOUT,
GUNICORN_BODY_TIMEOUT, LOG_LEVEL.
"""

import os
import resource

from mlapi.errors import MlapiError
from mlapi.serving.settings import LOG_FORMATS, default_host, default_port, listen_port


def _positive_int(variable: str, default: int) -> int:
    raw = os.environ.get(variable, "").strip() or str(default)
    if not raw.isdigit() or int(raw) < 1:
        raise MlapiError(f"{variable} must be a positive integer, got {raw!r}")
    return int(raw)


def _log_format() -> str:
    value = os.environ.get("LOG_FORMAT", "").strip().lower() or LOG_FORMATS[0]
    if value not in LOG_FORMATS:
        raise MlapiError(f"LOG_FORMAT must be {' or '.join(LOG_FORMATS)}, got {value!r}")
    return value


def _usable_cpus() -> int:
    """CPUs this process may run on (honours taskset and container cpusets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _worker_connections() -> int:
    """GUNICORN_WORKER_CONNECTIONS (500), kept below the open-file limit with a margin."""
    wanted = _positive_int("GUNICORN_WORKER_CONNECTIONS", 500)
    soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft_limit != resource.RLIM_INFINITY:
        wanted = min(wanted, soft_limit - 128)
    return max(wanted, 1)


try:  # a bad environment variable stops the server with one line, not a traceback
    bind = f"{default_host()}:{listen_port(default_port(), 'PORT')}"
    workers = _positive_int("WEB_CONCURRENCY", _usable_cpus())
    threads = _positive_int("GUNICORN_THREADS", 4)
    worker_connections = _worker_connections()  # per worker; then 503
    LOG_FORMAT = _log_format()
except MlapiError as exc:
    raise SystemExit(f"mlapi: error: {exc}") from None
worker_class = "mlapi.serving.gunicorn_worker.BufferingThreadWorker"  # gthread + buffering poller
timeout = 30  # a worker whose main loop is silent this long is killed and replaced
graceful_timeout = 30  # SIGTERM: in-flight requests get this long to finish
keepalive = 5  # seconds an idle keep-alive connection is kept (a proxy in front reuses them)
# Recycle each worker after about 100k requests, a guard against slow leaks: rare enough that
# the restart (a new worker imports the app and loads the models again) does not show under load;
# the jitter keeps workers from restarting together.
max_requests = 100_000
max_requests_jitter = 10_000
# Each worker loads its own models after the fork: ONNX Runtime sessions must not cross a fork.
preload_app = False
# The heartbeat file lives in memory, not on a container's overlay filesystem.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# gunicornc's control socket is not used; off, so that servers never share $HOME/.gunicorn.
control_socket_disable = True
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)sB %(M)sms rid=%({x-request-id}o)s'
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")

# --- Prometheus metrics across workers and JSON logs (mlapi.serving.metrics, .logs) ---
if LOG_FORMAT == "json":
    from mlapi.serving.logs import gunicorn_json_logconfig

    accesslog = None  # the app writes one JSON line per request instead (mlapi.access)
    logconfig_dict = gunicorn_json_logconfig(loglevel)


def on_starting(server):
    """Before any worker forks: a clean metrics folder for this server."""
    from mlapi.serving.multiprocess import prepare_metrics_dir

    prepare_metrics_dir()


def child_exit(server, worker):
    """A worker exited: its live gauges (model loaded, version) no longer count."""
    from mlapi.serving.multiprocess import mark_worker_dead

    mark_worker_dead(worker.pid)


def on_exit(server):
    from mlapi.serving.multiprocess import remove_metrics_dir

    remove_metrics_dir()
