"""Prediction endpoints. Each one: read a JSON object, validate it, predict, answer."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from mlapi.serving import security
from mlapi.serving.errors import ApiError, validation_error
from mlapi.serving.metrics import record_predictions

bp = Blueprint("api", __name__)

IRIS_EXAMPLE = '{"features": [5.1, 3.5, 1.4, 0.2]}'
SENTIMENT_EXAMPLE = '{"text": "A wonderful film."}'
LABEL_KEYS = {"iris": "prediction", "sentiment": "label"}  # the answer's predicted label
V1_EXAMPLES = {
    "iris": '{"instances": [[5.1, 3.5, 1.4, 0.2]]}',
    "sentiment": '{"instances": ["A wonderful film."]}',
}


def serving_state():
    return current_app.extensions["mlapi"]


@bp.before_request
def require_api_key() -> None:
    """When API_KEY is set, every endpoint here needs it (Bearer or X-API-Key)."""
    expected = serving_state().settings.api_key
    if not expected or request.method == "OPTIONS":  # a CORS preflight carries no key
        return
    if not security.key_matches(security.presented_key(), expected):
        raise ApiError(
            401,
            "Missing or wrong API key. Send it as 'Authorization: Bearer <key>' "
            "or 'X-API-Key: <key>'.",
        )


def is_json_mimetype(mimetype: str) -> bool:
    """application/json (any case, any parameters) or any +json suffix."""
    return mimetype == "application/json" or mimetype.endswith("+json")


def read_json_object(example: str, content_type_optional: bool = False) -> dict[str, Any]:
    """The request body as a JSON object, or an ApiError saying what is wrong with it.

    `content_type_optional`: a body sent with no Content-Type at all is read as JSON (the V2
    protocol's clients send none); any other non-JSON Content-Type is still a 415.
    """
    untyped_ok = content_type_optional and not request.content_type
    if not untyped_ok and not is_json_mimetype(request.mimetype):
        got = request.content_type or "no Content-Type"
        raise ApiError(
            415,
            f"Content-Type must be application/json, got {got}. "
            "With curl, add -H 'Content-Type: application/json'.",
        )
    raw = _read_body()
    try:
        body = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ApiError(400, "Request body is not valid UTF-8 text.") from None
    except json.JSONDecodeError as exc:
        raise ApiError(
            400,
            f"Request body is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}). "
            f"Example: {example}",
        ) from None
    except RecursionError:
        raise ApiError(400, "Request body is nested too deeply.") from None
    except ValueError as exc:  # e.g. an integer literal with thousands of digits
        raise ApiError(400, f"Request body has a value JSON parsing refused: {exc}.") from None
    if not isinstance(body, dict):
        raise ApiError(
            400, f"Request body must be a JSON object, got {_json_kind(body)}. Example: {example}"
        )
    return body


def _read_body() -> bytes:
    """The raw body, never more than MAX_CONTENT_LENGTH: 413 before reading when its length is
    announced (Werkzeug), 413 once it exceeds the limit when it is not (chunked)."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    try:
        if request.content_length is not None or not request.environ.get("wsgi.input_terminated"):
            return request.get_data(cache=False)
        # Werkzeug's stream would stop at the limit silently: read the server's one, to limit + 1.
        body = request.environ["wsgi.input"].read(limit + 1)
    except ClientDisconnected:
        raise ApiError(400, "The request body ended before it was complete.") from None
    if len(body) > limit:
        raise RequestEntityTooLarge()
    return body


def validate(model: type[BaseModel], body: dict[str, Any]) -> BaseModel:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise validation_error(exc, list(model.model_fields)) from None


def _json_kind(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


@bp.post("/predict")
def predict_iris():
    payload = validate(serving_state().schemas.iris, read_json_object(IRIS_EXAMPLE))
    return _one_or_many("iris", payload.features, payload.instances)


@bp.post("/sentiment")
def predict_sentiment():
    payload = validate(serving_state().schemas.sentiment, read_json_object(SENTIMENT_EXAMPLE))
    return _one_or_many("sentiment", payload.text, payload.texts)


def _one_or_many(model_name: str, one, many):
    """One answer object for a single input, {"predictions": [...]} for a batch."""
    if one is not None:
        return jsonify(predict(model_name, [one])[0])
    return jsonify(predictions=predict(model_name, many))


def predict(model_name: str, inputs: list, predictor=None) -> list[dict[str, Any]]:
    """The model's answer per input (the served version, or `predictor`), counted in /metrics."""
    predictor = predictor or serving_state().registry.get(model_name)
    answers = predictor.predict(inputs)
    record_predictions(model_name, [answer[LABEL_KEYS[model_name]] for answer in answers])
    return answers


@bp.post("/v1/models/<name>:predict")
def v1_predict(name: str):
    """KServe V1 / TF Serving REST: {"instances": [...]} -> {"predictions": [...]}."""
    state = serving_state()
    request_model = state.schemas.v1.get(name)
    if request_model is None:
        raise ApiError(404, _unknown_model(name))
    payload = validate(request_model, read_json_object(V1_EXAMPLES[name]))
    return jsonify(predictions=predict(name, payload.instances))


@bp.get("/v1/models")
def v1_list_models():
    """Every model this server knows, with whether it is ready (KServe's model list)."""
    slots = serving_state().registry.slots.values()
    return jsonify(models=[_status(slot) for slot in slots])


@bp.get("/v1/models/<name>")
def v1_model_status(name: str):
    slot = serving_state().registry.slots.get(name)
    if slot is None:
        raise ApiError(404, _unknown_model(name))
    return jsonify(_status(slot))


def _status(slot) -> dict[str, Any]:
    refused = {"refused": slot.refused} if slot.refused else {}
    if not slot.loaded:
        problem = security.public_text(slot.problem)
        return {"name": slot.name, "ready": False, "problem": problem, **refused}
    info = slot.predictor.info()
    return {"name": slot.name, "ready": True, "version": slot.version, **info, **refused}


def _unknown_model(name: str) -> str:
    return f"There is no model named '{name}'. Models: {', '.join(V1_EXAMPLES)}."
