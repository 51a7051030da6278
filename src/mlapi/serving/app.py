"""The application factory, as in Flask's tutorial: `create_app(settings=None)`."""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass

from flask import Flask, g, request
from pydantic import BaseModel

from mlapi.serving import api, cors, limits, logs, metrics, pages, schemas, security, v2
from mlapi.serving.errors import register_error_handlers
from mlapi.serving.iris import IrisPredictor
from mlapi.serving.registry import ModelRegistry, VersionSource
from mlapi.serving.sentiment import SentimentPredictor
from mlapi.serving.settings import ServingSettings

log = logging.getLogger("mlapi.serving")
REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass(frozen=True)
class RequestSchemas:
    iris: type[BaseModel]
    sentiment: type[BaseModel]
    v1: dict[str, type[BaseModel]]  # model name -> KServe V1 request

    @classmethod
    def from_settings(cls, settings: ServingSettings) -> RequestSchemas:
        text = schemas.sentiment_text_type(settings.sentiment_max_chars)
        return cls(
            iris=schemas.iris_request_model(settings.max_batch),
            sentiment=schemas.sentiment_request_model(
                settings.sentiment_max_batch,
                settings.sentiment_max_chars,
                settings.sentiment_max_total_chars,
            ),
            v1={
                "iris": schemas.v1_request_model(
                    schemas.IrisRow, settings.max_batch, "V1IrisPredictRequest"
                ),
                "sentiment": schemas.v1_request_model(
                    text,
                    settings.sentiment_max_batch,
                    "V1SentimentPredictRequest",
                    settings.sentiment_max_total_chars,
                ),
            },
        )


@dataclass(frozen=True)
class ServingState:
    settings: ServingSettings
    registry: ModelRegistry
    schemas: RequestSchemas


def create_app(settings: ServingSettings | None = None) -> Flask:
    settings = settings or ServingSettings.from_env()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    app.extensions["mlapi"] = ServingState(
        settings=settings,
        registry=load_models(settings),
        schemas=RequestSchemas.from_settings(settings),
    )
    app.before_request(_assign_request_id)
    app.after_request(_echo_request_id)
    register_error_handlers(app)
    security.init_app(app, settings.trusted_hosts)
    limits.init_app(app, settings.max_concurrent_large)
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    # Operators' features (issue 15): V2 protocol, /metrics, JSON logs, CORS.
    v2.init_app(app, settings)
    served_metrics = metrics.init_app(app, settings.metrics)
    if served_metrics is not None:
        served_metrics.observe_models(app.extensions["mlapi"].registry.slots.values())
    _follow_versions(app, settings, served_metrics)
    logs.init_app(app, settings.log_format)
    cors.init_app(app, settings.cors_origins)
    return app


def loaders(settings: ServingSettings) -> dict:
    """Each model's loader: a path (a version folder, or Iris' own file) -> a predictor."""
    return {
        "iris": lambda path: IrisPredictor.load(path, settings.allow_pickle),
        "sentiment": SentimentPredictor.load,
    }


def load_models(settings: ServingSettings) -> ModelRegistry:
    """Load the models to serve from paths in the settings (never from a request).

    Each is versioned (MODELS_DIR/<name>/<version>/, watched for a new served version), except
    Iris when MODELO_PATH names a file of its own: that file is served as version 1.

    A model that is not to be served (SERVE_MODELS) still has a slot that says why, so the
    page and /models can tell; readiness waits only for the models to serve.
    """
    to_serve = settings.models_to_serve()
    registry = ModelRegistry(required=to_serve, keep_versions=settings.keep_versions)
    for name, loader in loaders(settings).items():
        if name == "iris" and not settings.iris_versioned and name in to_serve:
            registry.load(name, lambda load=loader: load(settings.modelo_path))  # that file
        elif name in to_serve or settings.serve_models is None:
            legacy = settings.modelo_path if name == "iris" else None
            registry.load_versions(name, VersionSource(settings.models_dir, name, legacy), loader)
        else:
            served = ",".join(settings.serve_models)
            registry.skip(name, f"this server does not serve it (SERVE_MODELS={served})")
    return registry


def _follow_versions(app: Flask, settings: ServingSettings, served_metrics) -> None:
    """Report swaps and refusals in /metrics, and run the version watcher in each worker."""
    registry = app.extensions["mlapi"].registry
    if served_metrics is not None:
        registry.on_change = lambda name, version, outcome: served_metrics.model_changed(
            registry.slots.values(), name, outcome
        )
        for slot in registry.slots.values():  # versions refused at start count as refused
            if slot.refused is not None:
                served_metrics.reloads.labels(slot.name, "refused").inc()
    # Started here (after gunicorn's fork: the app is not preloaded) and again on a request
    # if this process is a fork of the one that started it (a thread does not survive a fork).
    registry.watch(settings.model_poll_seconds)
    app.before_request(lambda: registry.watch(settings.model_poll_seconds))


def _assign_request_id() -> None:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = incoming if _SAFE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
    g.started = time.perf_counter()  # for the latency metric and the access log


def _echo_request_id(response):
    response.headers[REQUEST_ID_HEADER] = g.get("request_id", "")
    return response
