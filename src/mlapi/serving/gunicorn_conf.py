"""gunicorn settings for this workload (the repo's gunicorn.conf.py imports these).

Requests are short and CPU-bound (a forest or an LSTM over ONNX Runtime), so one
worker per core; a few threads per worker keep slow or stalled clients from
blocking everyone (a sync worker is held by one client until it finishes sending).
Every value can be overridden on the gunicorn command line or with GUNICORN_CMD_ARGS.
"""

import multiprocessing
import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = 30  # a worker silent this long is restarted
graceful_timeout = 30  # SIGTERM: in-flight requests get this long to finish
keepalive = 5
max_requests = 20_000  # recycle workers now and then, staggered by the jitter
max_requests_jitter = 2_000
# Each worker loads its own models: ONNX Runtime sessions are not shared across fork.
preload_app = False
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)sB %(M)sms rid=%({x-request-id}o)s'
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
