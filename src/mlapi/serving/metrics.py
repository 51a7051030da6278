"""Prometheus metrics: `GET /metrics`, the same numbers whichever gunicorn worker answers.

Under gunicorn each worker is its own process, so the counters live in files: gunicorn's
`on_starting` hook points PROMETHEUS_MULTIPROC_DIR at a fresh folder before any worker forks
(`mlapi.serving.multiprocess`), each worker writes its values there, and a scrape sums them
(prometheus-client's multiprocess mode). Without that variable (`python app.py`, tests) the
metrics are plain in-process ones. Labels take only bounded values: the route's rule (never the
raw path), a known model name, a model's own labels.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

from flask import Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess

from mlapi.serving.multiprocess import MULTIPROC_ENV
from mlapi.serving.settings import MODEL_NAMES

EXTENSION = "mlapi_metrics"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
ENDPOINT_MODELS = {"/predict": "iris", "/sentiment": "sentiment"}


class ServingMetrics:
    """The server's metrics, registered in a registry of their own (one per app)."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "mlapi_requests",
            "HTTP requests answered, by route, model, method and status",
            ["endpoint", "model", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "mlapi_request_duration_seconds",
            "Time from the request's arrival in the app to its answer, by route",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.errors = Counter(
            "mlapi_errors", "Error answers (4xx and 5xx), by status", ["status"], registry=registry
        )
        self.predictions = Counter(
            "mlapi_predictions",
            "Predictions made, by model and predicted label",
            ["model", "label"],
            registry=registry,
        )
        self.batch_size = Histogram(
            "mlapi_batch_size",
            "Inputs per prediction request, by model",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        # Gauges across workers: 1 only if every live worker has the model loaded.
        self.model_loaded = Gauge(
            "mlapi_model_loaded",
            "1 when every live worker has the model loaded, else 0",
            ["model"],
            multiprocess_mode="livemin",
            registry=registry,
        )
        self.model_version = Gauge(
            "mlapi_model_version",
            "The model version the workers serve (the highest, while a swap is under way)",
            ["model"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.worker_version = Gauge(
            "mlapi_worker_model_version",
            "The model version each live worker serves (label pid; one sample per worker)",
            ["model"],
            multiprocess_mode="liveall",
            registry=registry,
        )
        self.reloads = Counter(
            "mlapi_model_reloads",
            "Model versions a worker tried to put live: outcome loaded or refused",
            ["model", "outcome"],
            registry=registry,
        )

    def scrape(self) -> bytes:
        """The text exposition: every worker's values (multiprocess), else this process's."""
        directory = os.environ.get(MULTIPROC_ENV)
        if not directory:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry, path=directory)
        return generate_latest(registry)

    def observe_models(self, slots: Iterable) -> None:
        """Set the load-state and version gauges from the registry's slots."""
        for slot in slots:
            self.model_loaded.labels(slot.name).set(1 if slot.loaded else 0)
            if slot.loaded and getattr(slot, "version", None) is not None:
                self.model_version.labels(slot.name).set(int(slot.version))
                self.worker_version.labels(slot.name).set(int(slot.version))

    def model_changed(self, slots: Iterable, name: str, outcome: str) -> None:
        """A worker swapped in a version ("loaded") or refused one ("refused")."""
        self.reloads.labels(name, outcome).inc()
        self.observe_models(slots)


def init_app(app: Flask, enabled: bool) -> ServingMetrics | None:
    """Add GET /metrics and the hooks that count every answer (nothing when disabled)."""
    if not enabled:
        return None
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        os.makedirs(directory, exist_ok=True)
    metrics = app.extensions[EXTENSION] = ServingMetrics()
    app.after_request(_count_response)
    app.add_url_rule("/metrics", "metrics", _metrics_endpoint, methods=["GET"])
    return metrics


def current_metrics() -> ServingMetrics | None:
    return current_app.extensions.get(EXTENSION)


def record_predictions(model: str, labels: list[str]) -> None:
    """Count one prediction request: its batch size and each predicted label."""
    metrics = current_metrics()
    if metrics is None:
        return
    metrics.batch_size.labels(model).observe(len(labels))
    for label in labels:
        metrics.predictions.labels(model, label).inc()


def _metrics_endpoint() -> Response:
    return Response(current_metrics().scrape(), mimetype=CONTENT_TYPE_LATEST)


def _count_response(response):
    metrics = current_metrics()
    endpoint = route_label()
    status = str(response.status_code)
    metrics.requests.labels(endpoint, model_label(), request.method, status).inc()
    started = g.get("started")
    if started is not None:
        metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
    if response.status_code >= 400:
        metrics.errors.labels(status).inc()
    return response


def route_label() -> str:
    """The matched route's rule ("/v2/models/<name>/infer"), never the raw path."""
    return request.url_rule.rule if request.url_rule is not None else "unmatched"


def model_label() -> str:
    """A known model's name for this request, or "" (unknown names would be unbounded)."""
    name = (request.view_args or {}).get("name")
    if name in MODEL_NAMES:
        return name
    return ENDPOINT_MODELS.get(request.path, "")
