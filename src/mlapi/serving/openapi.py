"""The OpenAPI 3.1 document, generated from the same pydantic models that validate requests."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from mlapi import __version__
from mlapi.serving import schemas

REF = "#/components/schemas/{model}"
ERROR_STATUSES = {
    "400": "Invalid input: the message says what and where (field)",
    "401": "Missing or wrong API key (only when API_KEY is set)",
    "408": "The request body stopped arriving (gunicorn's body read timeout)",
    "413": "Request body over the size limit",
    "415": "Content-Type is not JSON",
    "500": "Unexpected error; the message carries a request id",
    "503": "The model is not loaded; the message says how to train it",
}


def openapi_document(state) -> dict[str, Any]:
    components: dict[str, Any] = {}
    ref = _register(components)
    error = ref(schemas.ErrorResponse)
    paths = {
        "/predict": {
            "post": _operation(
                "Classify one Iris flower (`features`) or a batch (`instances`)",
                request=ref(state.schemas.iris),
                ok={"oneOf": [ref(schemas.IrisPrediction), ref(schemas.IrisBatchPrediction)]},
                error=error,
            )
        },
        "/sentiment": {
            "post": _operation(
                "Sentiment of one review (`text`) or a batch (`texts`)",
                request=ref(state.schemas.sentiment),
                ok={
                    "oneOf": [
                        ref(schemas.SentimentPrediction),
                        ref(schemas.SentimentBatchPrediction),
                    ]
                },
                error=error,
            )
        },
        "/v1/models/iris:predict": {
            "post": _operation(
                "KServe V1 protocol for the Iris model",
                request=ref(state.schemas.v1["iris"]),
                ok=ref(schemas.V1IrisResponse),
                error=error,
            )
        },
        "/v1/models/sentiment:predict": {
            "post": _operation(
                "KServe V1 protocol for the sentiment model",
                request=ref(state.schemas.v1["sentiment"]),
                ok=ref(schemas.V1SentimentResponse),
                error=error,
            )
        },
        "/v1/models/iris": {"get": _simple("Iris model status", ref(schemas.V1ModelStatus))},
        "/v1/models/sentiment": {
            "get": _simple("Sentiment model status", ref(schemas.V1ModelStatus))
        },
        "/health": {"get": _simple("Liveness", ref(schemas.Health))},
        "/ready": {"get": _simple("Readiness: every model to serve is loaded", None, error=error)},
        "/models": {"get": _simple("What is loaded", ref(schemas.ModelsResponse))},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "mlapi", "version": __version__},
        "paths": paths,
        "components": {"schemas": components},
    }


def _register(components: dict[str, Any]):
    """A function that adds a model's schema to `components` and returns a $ref to it."""

    def ref(model: type[BaseModel]) -> dict[str, str]:
        schema = model.model_json_schema(ref_template=REF)
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
        return {"$ref": REF.format(model=model.__name__)}

    return ref


def _json(schema: dict | None) -> dict:
    return {"application/json": {"schema": schema or {"type": "object"}}}


def _operation(summary: str, request: dict, ok: dict, error: dict) -> dict:
    responses = {"200": {"description": "Prediction", "content": _json(ok)}}
    for status, description in ERROR_STATUSES.items():
        responses[status] = {"description": description, "content": _json(error)}
    return {
        "summary": summary,
        "requestBody": {"required": True, "content": _json(request)},
        "responses": responses,
    }


def _simple(summary: str, ok: dict | None, error: dict | None = None) -> dict:
    responses = {"200": {"description": "OK", "content": _json(ok)}}
    if error:
        responses["503"] = {"description": "Not ready", "content": _json(error)}
    return {"summary": summary, "responses": responses}
