"""Logs an operator can ship: LOG_FORMAT=json gives one JSON object per line.

Access lines come from the app itself (an `after_request` hook, logger `mlapi.access`), so they
look the same whichever server or gunicorn worker class runs it: request id, method, route,
path, model, status and milliseconds. Error lines (the app's and gunicorn's own) use the same
formatter; a traceback stays inside its line's `exception` field. LOG_FORMAT=text (the default)
leaves gunicorn's access log as it is.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import time

from flask import Flask, g, has_request_context, request

ACCESS_LOGGER = "mlapi.access"
ACCESS_FIELDS = ("request_id", "method", "endpoint", "path", "model", "status", "ms")
_HANDLER_MARK = "_mlapi_json"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request fields, traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in ACCESS_FIELDS:
            if hasattr(record, field):
                line[field] = getattr(record, field)
        if "request_id" not in line and has_request_context():
            line["request_id"] = g.get("request_id", "")
            line["path"] = request.path
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def init_app(app: Flask, log_format: str) -> None:
    """In JSON mode: the mlapi loggers write JSON to stderr, and every answer is logged."""
    if log_format != "json":
        return
    logger = logging.getLogger("mlapi")
    if not any(getattr(h, _HANDLER_MARK, False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        setattr(handler, _HANDLER_MARK, True)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # not twice through a root handler
    app.after_request(_log_access)


def _log_access(response):
    from mlapi.serving.metrics import model_label, route_label

    started = g.get("started")
    elapsed_ms = (time.perf_counter() - started) * 1000 if started is not None else None
    fields = {
        "request_id": g.get("request_id", ""),
        "method": request.method,
        "endpoint": route_label(),
        "path": request.path,
        "model": model_label(),
        "status": response.status_code,
        "ms": round(elapsed_ms, 3) if elapsed_ms is not None else None,
    }
    logging.getLogger(ACCESS_LOGGER).info(
        "%s %s %s", request.method, request.path, response.status_code, extra=fields
    )
    return response


def gunicorn_json_logconfig(level: str) -> dict:
    """gunicorn's own log lines (boot, worker exits, errors) as JSON; its access log off."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            },
            "discard": {"class": "logging.NullHandler"},
        },
        "root": {"level": "WARNING", "handlers": ["stderr"]},  # other libraries' warnings
        "loggers": {
            "gunicorn.error": {"level": level.upper(), "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["discard"], "propagate": False},
        },
    }
