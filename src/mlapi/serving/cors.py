"""CORS: off by default; CORS_ORIGINS lists the browser origins that may call the API.

A few lines instead of flask-cors: exact origins only (no wildcards, no credentials), echoed
back with `Vary: Origin`; a preflight (OPTIONS) from an allowed origin gets the methods and the
headers the API reads. An origin not on the list gets no CORS header, so the browser blocks it.
"""

from __future__ import annotations

from flask import Flask, current_app, request

ALLOWED_HEADERS = "Content-Type, Authorization, X-API-Key, X-Request-ID"
EXPOSED_HEADERS = "X-Request-ID"
PREFLIGHT_MAX_AGE_S = "600"
_EXTENSION = "mlapi_cors_origins"


def init_app(app: Flask, origins: tuple[str, ...]) -> None:
    if not origins:
        return
    app.extensions[_EXTENSION] = frozenset(origin.rstrip("/") for origin in origins)
    app.after_request(_add_cors_headers)


def _add_cors_headers(response):
    origin = request.headers.get("Origin")
    response.vary.add("Origin")
    if origin is None or origin not in current_app.extensions[_EXTENSION]:
        return response
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
    if request.method == "OPTIONS":
        allowed = response.headers.get("Allow", "GET, POST, OPTIONS")
        response.headers["Access-Control-Allow-Methods"] = allowed
        response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE_S
    return response
