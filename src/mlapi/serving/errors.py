"""One error shape everywhere: {"error": {"status", "message", "field"?, "request_id"}}.

Handlers are registered in one place (`register_error_handlers`), as in Flask's
tutorial app. Unexpected exceptions become a generic 500 with a request id; the
traceback goes to the server log only.
"""

from __future__ import annotations

import logging

from flask import Flask, g, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

log = logging.getLogger("mlapi.serving")
# Every error answer stays small whatever the input: at most this many problems are listed
# (then how many more), and a message or field path longer than its cap is cut.
MAX_LISTED_PROBLEMS = 3
MAX_MESSAGE_CHARS = 1000
MAX_FIELD_CHARS = 200


class ApiError(Exception):
    """An error the client can fix; `field` is the path of the offending value."""

    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def error_response(status: int, message: str, field: str | None = None):
    error = {"status": status, "message": _cut(message, MAX_MESSAGE_CHARS)}
    if field:
        error["field"] = _cut(field, MAX_FIELD_CHARS)
    error["request_id"] = g.get("request_id", "")
    return jsonify(error=error), status


def validation_error(exc: ValidationError, accepted_fields: list[str]) -> ApiError:
    """Turn pydantic's errors into one readable 400, pointing at the first bad field.

    It lists the first MAX_LISTED_PROBLEMS problems and says how many more there are.
    """
    errors = exc.errors(include_url=False, include_input=False)
    problems = [
        (_cut(field_path(err["loc"]), MAX_FIELD_CHARS), _describe(err, accepted_fields))
        for err in errors[:MAX_LISTED_PROBLEMS]
    ]
    message = "; ".join(f"{path}: {msg}" if path else msg for path, msg in problems)
    if len(errors) > MAX_LISTED_PROBLEMS:
        more = len(errors) - MAX_LISTED_PROBLEMS
        message += f"; and {more:,} more problem{'s' if more > 1 else ''}"
    return ApiError(400, message, field=problems[0][0] or None)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def field_path(loc: tuple) -> str:
    """('instances', 3, 1) -> 'instances[3][1]'."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _describe(err: dict, accepted_fields: list[str]) -> str:
    ctx = err.get("ctx") or {}
    kind = err["type"]
    if kind == "less_than_equal":
        return f"must be a number <= {ctx['le']:.7g}"
    if kind == "greater_than_equal":
        return f"must be a number >= {ctx['ge']:.7g}"
    if kind == "float_type":
        return "must be a number (not a string, boolean, null or list)"
    if kind == "string_type":
        return "must be a string"
    if kind == "finite_number":
        return "must be a finite number (NaN and Infinity are not allowed)"
    if kind in ("too_short", "too_long"):
        return _length_message(ctx)
    if kind == "extra_forbidden":
        return f"is not an accepted field (accepted: {', '.join(accepted_fields)})"
    if kind == "value_error":  # raised by our own validators: their text is already a sentence
        return str(ctx.get("error", err["msg"]))
    return err["msg"][0].lower() + err["msg"][1:]


def _length_message(ctx: dict) -> str:
    low, high = ctx.get("min_length"), ctx.get("max_length")
    if low is not None and low == high:
        wanted = f"exactly {low}"
    elif high is not None:
        wanted = f"at most {high}"
    else:
        wanted = f"at least {low}"
    return f"must have {wanted} items, got {ctx.get('actual_length')}"


_HTTP_MESSAGES = {
    404: "There is no endpoint at {path}. GET / lists the endpoints.",
    405: "{method} is not allowed on {path}. Allowed: {allowed}.",
    413: "Request body is larger than the limit of {limit} bytes. Send fewer items per request.",
}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        message = exc.message
        if exc.status == 503:  # a model that is not available: its reason may name files
            from mlapi.serving.security import public_text

            message = public_text(message)
        response, status = error_response(exc.status, message, exc.field)
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="mlapi"'
        return response, status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        template = _HTTP_MESSAGES.get(exc.code or 500)
        if template is None:
            return error_response(exc.code or 500, exc.description or exc.name)
        message = template.format(
            path=request.path,
            method=request.method,
            allowed=", ".join(sorted(getattr(exc, "valid_methods", None) or [])),
            limit=app.config.get("MAX_CONTENT_LENGTH"),
        )
        return error_response(exc.code, message)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        request_id = g.get("request_id", "")
        log.exception(
            "unhandled error in %s %s (request_id=%s)", request.method, request.path, request_id
        )
        message = (
            f"Internal server error. The server log has the details under request id {request_id}."
        )
        return error_response(500, message)
