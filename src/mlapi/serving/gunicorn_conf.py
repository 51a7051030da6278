"""gunicorn settings for this workload (the repo's gunicorn.conf.py imports these).

Requests are short and CPU-bound (both models run in ONNX Runtime; for Iris, most of a request
is Flask and JSON), so: one worker process per core, and a few threads per worker. The threads are
not there for speed (the GIL lets one run Python at a time) but so that a client that is slow to
send its body holds one thread, not the whole worker: a sync worker is held by one client until
that client has sent everything. `pre_request` below also bounds how long a body read may wait.

Workers are `mlapi.serving.gunicorn_worker.BalancedThreadWorker`: gthread workers that, once
they hold a connection per thread, leave new connections to a sibling for a moment, so that
clients connecting together are spread over the workers (plain gthread sometimes serves them all
from one worker, on one core).

Limits: a worker has THREADS threads, and a connection stays with the worker that accepted
it (a worker still accepts, later, when all its threads are busy). Up to THREADS - 1 stalled
uploads leave every worker answering; with more, requests that land on a full worker wait until
a stalled read times out (BODY_TIMEOUT, then up to 5 s more while gunicorn tries to drain the
rest of that body). A client that keeps trickling bytes, or stalls inside its headers, is not
cut off by that timeout. Facing the internet, put a buffering reverse proxy in front (nginx
reads whole requests before passing them on, by default), so gunicorn sees complete requests.

Every value can be overridden on the gunicorn command line or with GUNICORN_CMD_ARGS.
Environment: HOST, PORT, WEB_CONCURRENCY (workers), GUNICORN_THREADS, GUNICORN_BODY_TIMEOUT,
LOG_LEVEL.
"""

import os

from mlapi.serving.settings import default_host, default_port, listen_port


def _usable_cpus() -> int:
    """CPUs this process may run on (honours taskset and container cpusets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


bind = f"{default_host()}:{listen_port(default_port(), 'PORT')}"
workers = int(os.environ.get("WEB_CONCURRENCY", _usable_cpus()))
worker_class = "mlapi.serving.gunicorn_worker.BalancedThreadWorker"  # gthread, balanced
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
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

# Seconds a request-body read may wait for the next bytes before the request fails (400) and its
# thread is free again. 5 s is gunicorn's own wait for a new connection's first bytes.
BODY_TIMEOUT = float(os.environ.get("GUNICORN_BODY_TIMEOUT", "5"))


def pre_request(worker, req):
    """Bound every socket read of this request's body (gthread reads it in a worker thread).

    gunicorn puts the socket back in blocking mode (no timeout) before it reads the next
    request's headers, so this applies to bodies only.
    """
    sock = getattr(getattr(req, "unreader", None), "sock", None)
    if sock is not None:
        sock.settimeout(BODY_TIMEOUT)


# --- Prometheus metrics across workers and JSON logs (mlapi.serving.metrics, .logs) ---
LOG_FORMAT = os.environ.get("LOG_FORMAT", "text").strip().lower()
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
