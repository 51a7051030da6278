"""The metrics folder of one gunicorn server, for prometheus-client's multiprocess mode.

Called from gunicorn's hooks in the master process (see gunicorn_conf): `prepare_metrics_dir`
before any worker forks, `mark_worker_dead` when a worker exits, `remove_metrics_dir` at exit.

prometheus-client decides at import time whether it writes to files, so this module must not
import it at the top, and the master must set PROMETHEUS_MULTIPROC_DIR before anything imports
it: the workers (forked from the master) would inherit the in-memory mode otherwise.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_CREATED_ENV = "MLAPI_METRICS_DIR_CREATED"  # set when we made the folder (so we remove it)


def prepare_metrics_dir(env=None) -> Path:
    """A clean metrics folder for this server, exported as PROMETHEUS_MULTIPROC_DIR.

    The operator's PROMETHEUS_MULTIPROC_DIR when set (an emptyDir on Kubernetes): its *.db
    files from an earlier server are deleted, nothing else. Otherwise a new private folder in
    /dev/shm (memory) or the temp dir, removed again at exit.
    """
    env = os.environ if env is None else env
    given = env.get(MULTIPROC_ENV)
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink(missing_ok=True)
        env.pop(_CREATED_ENV, None)
    else:
        parent = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        directory = Path(tempfile.mkdtemp(prefix="mlapi-metrics-", dir=parent))
        env[_CREATED_ENV] = str(directory)
    env[MULTIPROC_ENV] = str(directory)
    return directory


def mark_worker_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (its counters stay: they are history)."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, directory)


def remove_metrics_dir() -> None:
    """Remove the folder prepare_metrics_dir made (never an operator's)."""
    created = os.environ.get(_CREATED_ENV)
    if created and created == os.environ.get(MULTIPROC_ENV):
        shutil.rmtree(created, ignore_errors=True)
