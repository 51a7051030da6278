"""The OpenAPI 3.1 document, generated from the same pydantic models that validate requests."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from mlapi import __version__
from mlapi.serving import schemas, v2

REF = "#/components/schemas/{model}"
ERROR_STATUSES = {
    "400": "Invalid input: the message says what and where (field)",
    "401": "Missing or wrong API key (only when API_KEY is set)",
    "408": "The request did not arrive in time (the server's header and body deadlines)",
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
        "/v1/models": {"get": _simple("Every model and whether it is ready", ref(V1ModelList))},
        **_v2_paths(state, ref),
    }
    if state.settings.metrics:
        paths["/metrics"] = {"get": _metrics_operation()}
    return {
        "openapi": "3.1.0",
        "info": {"title": "mlapi", "version": __version__},
        "paths": paths,
        "components": {"schemas": components},
    }


class V1ModelList(BaseModel):
    models: list[schemas.V1ModelStatus]


V2_ERROR_STATUSES = {"404": "No such model or version", **ERROR_STATUSES}
VERSION_PARAMETER = {
    "name": "version",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
    "description": "A model version (MODELS_DIR/<name>/<version>/)",
}


def _v2_paths(state, ref) -> dict[str, Any]:
    """The Open Inference Protocol (V2): per model, with and without a version."""
    error = ref(v2.V2Error)
    paths = {
        "/v2": {"get": _simple("V2 server metadata", {"type": "object"})},
        "/v2/health/live": {"get": _simple("V2 liveness", {"type": "object"})},
        "/v2/health/ready": {"get": _simple("V2 readiness", {"type": "object"}, error=error)},
    }
    for name, request_model in v2.request_models(state.settings).items():
        for base in (f"/v2/models/{name}", f"/v2/models/{name}/versions/{{version}}"):
            params = [VERSION_PARAMETER] if "{version}" in base else []
            paths[base] = {
                "get": _v2_get(f"V2 metadata of the {name} model", ref(v2.ModelMetadata), error)
                | _with(params)
            }
            paths[f"{base}/ready"] = {
                "get": _v2_get(f"Is the {name} model ready (V2)", {"type": "object"}, error)
                | _with(params)
            }
            infer = _operation(
                f"V2 inference with the {name} model",
                request=ref(request_model),
                ok=ref(v2.InferResponse),
                error=error,
                statuses=V2_ERROR_STATUSES,
            )
            paths[f"{base}/infer"] = {"post": infer | _with(params)}
    return paths


def _with(parameters: list[dict]) -> dict:
    return {"parameters": parameters} if parameters else {}


def _v2_get(summary: str, ok: dict, error: dict) -> dict:
    operation = _simple(summary, ok, error=error)
    operation["responses"]["404"] = {
        "description": "No such model or version",
        "content": _json(error),
    }
    if "401" not in operation["responses"]:
        operation["responses"]["401"] = {
            "description": ERROR_STATUSES["401"],
            "content": _json(error),
        }
    return operation


def _metrics_operation() -> dict:
    return {
        "summary": "Prometheus metrics (text exposition format), open like /health",
        "responses": {
            "200": {
                "description": "Every worker's metrics",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
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


def _operation(
    summary: str, request: dict, ok: dict, error: dict, statuses: dict = ERROR_STATUSES
) -> dict:
    responses = {"200": {"description": "Prediction", "content": _json(ok)}}
    for status, description in statuses.items():
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
