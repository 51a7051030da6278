"""A gthread worker that leaves new connections to a less busy sibling.

gunicorn's workers share one listening socket, and a keep-alive connection stays with the worker
that accepted it. When several clients connect at once, one worker can win every accept and
serve them all on one core while the other workers idle (seen in benchmarks/load.py: rounds at a
third of the others' requests/s). This worker, once it holds as many connections as it has
threads, waits a moment before accepting, so that a worker with free threads, woken by the same
connection, takes it first. When every worker is that busy, the connection is still accepted,
only `ACCEPT_DEFER_S` later.
"""

from __future__ import annotations

import time

from gunicorn.workers.gthread import ThreadWorker

ACCEPT_DEFER_S = 0.002


def should_defer_accept(open_connections: int, threads: int) -> bool:
    """True when a worker already holds a connection for each of its threads."""
    return open_connections >= threads


class BalancedThreadWorker(ThreadWorker):
    """gunicorn's gthread worker, but slower to accept once each thread has a connection."""

    def accept(self, listener):
        if should_defer_accept(self.nr_conns, self.cfg.threads):
            time.sleep(ACCEPT_DEFER_S)  # a sibling with free threads accepts first
        super().accept(listener)  # EAGAIN (a sibling took it) is handled there
