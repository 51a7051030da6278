"""The Open Inference Protocol (V2), as KServe, Triton and MLServer speak it, beside V1.

    GET  /v2                                  server metadata
    GET  /v2/health/live, /v2/health/ready    liveness, readiness (open, like /health)
    GET  /v2/models/{name}[/versions/{v}]     model metadata: its input and output tensors
    GET  /v2/models/{name}[/versions/{v}]/ready
    POST /v2/models/{name}[/versions/{v}]/infer

Iris takes one FP32 tensor `input` of shape [N, 4]; sentiment one BYTES tensor `text` of shape
[N]. Both answer `label` (BYTES [N]) and `probabilities` (FP32 [N, classes], columns in the
order of the metadata's `parameters.labels`). Tensor data is JSON, flat in row-major order (the
binary tensor extension is not supported). Requests are checked by pydantic models built from
the same limits as V1 (they are also the OpenAPI schemas), and errors use the protocol's
`{"error": "..."}` with the messages V1 gives.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from flask import Blueprint, Flask, current_app, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mlapi import __version__
from mlapi.serving import schemas
from mlapi.serving.api import predict, read_json_object, require_api_key, serving_state, validate
from mlapi.serving.errors import ApiError

bp = Blueprint("v2", __name__, url_prefix="/v2")
EXTENSION = "mlapi_v2"
BINARY_HEADER = "Inference-Header-Content-Length"
INFER_EXAMPLES = {
    "iris": '{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], '
    '"data": [5.1, 3.5, 1.4, 0.2]}]}',
    "sentiment": '{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], '
    '"data": ["A wonderful film."]}]}',
}
OUTPUT_NAMES = ("label", "probabilities")
Parameters = dict[str, str | int | float | bool]


class TensorSpec(BaseModel):
    name: str
    datatype: str
    shape: list[int]  # -1: any size


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    parameters: dict[str, list[str]]


class V2Error(BaseModel):
    error: str


class OutputTensor(BaseModel):
    name: str
    datatype: Literal["BYTES", "FP32"]
    shape: list[int]
    data: list[str] | list[float]


class InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[OutputTensor]


class RequestedOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Literal["label", "probabilities"]
    parameters: Parameters | None = None


def _is_integral(value) -> bool:
    return type(value) in (int, float) and float(value).is_integer()


def _exactly(expected: str, what: str):
    """A before-validator whose message says what the model takes."""

    def check(value):
        if value != expected:
            raise ValueError(f"{what}, got {value!r}")
        return value

    return check


def _tensor_model(
    model: str,
    tensor: str,
    dtype: str,
    item,
    width: int | None,
    max_n: int,
    max_total_chars: int | None = None,
):
    """The one input tensor `model` takes: its name, type and shape, checked against its data
    (and, for texts, their characters together, as V1 checks them)."""
    shape_text = f"[N, {width}]" if width else "[N]"
    takes = f"the {model} model takes one {dtype} tensor named '{tensor}' of shape {shape_text}"
    row = [Literal[width]] if width else []
    values_per_row = width or 1

    class Tensor(BaseModel):
        model_config = ConfigDict(extra="forbid", title=f"V2{model.title()}InputTensor")

        name: Literal[tensor]
        datatype: Literal[dtype]
        shape: tuple[Annotated[int, Field(ge=1, le=max_n)], *row]
        data: Annotated[
            list[item], Field(min_length=values_per_row, max_length=max_n * values_per_row)
        ]
        parameters: Parameters | None = None

        _name = field_validator("name", mode="before")(_exactly(tensor, takes))
        _type = field_validator("datatype", mode="before")(_exactly(dtype, takes))

        @field_validator("shape", mode="before")
        @classmethod
        def _shape(cls, shape):
            rank_ok = isinstance(shape, list) and len(shape) == (2 if width else 1)
            # JSON numbers: 2.0 is the integer 2 (as JSON Schema says); booleans are not.
            ints = rank_ok and all(_is_integral(d) for d in shape)
            if not ints or not 1 <= shape[0] <= max_n or (width and shape[1] != width):
                raise ValueError(f"must be {shape_text} with 1 <= N <= {max_n}; {takes}")
            return [int(d) for d in shape]

        @field_validator("parameters")
        @classmethod
        def _json_data_only(cls, parameters):
            if parameters and "binary_data_size" in parameters:
                raise ValueError(BINARY_UNSUPPORTED)
            return parameters

        @model_validator(mode="after")
        def _data_fills_shape(self):
            needed = self.shape[0] * values_per_row
            if len(self.data) != needed:
                raise ValueError(
                    f"data has {len(self.data)} values; shape {list(self.shape)} needs {needed} "
                    "(flat, row-major)"
                )
            if max_total_chars is not None:
                schemas.check_total_chars(self.data, max_total_chars)
            return self

    # Named at creation, so that each model's tensor is its own OpenAPI component.
    return type(f"V2{model.title()}InputTensor", (Tensor,), {"__module__": __name__})


BINARY_UNSUPPORTED = (
    "binary tensor data is not supported: send the data as JSON "
    "(tritonclient: set_data_from_numpy(..., binary_data=False))"
)


def infer_request_model(model: str, tensor_model) -> type[BaseModel]:
    class InferRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", title=f"V2{model.title()}InferRequest")

        id: Annotated[str, Field(max_length=256)] | None = None
        parameters: Parameters | None = None
        inputs: Annotated[list[tensor_model], Field(min_length=1, max_length=1)]
        outputs: Annotated[list[RequestedOutput], Field(min_length=1, max_length=2)] | None = None

    InferRequest.__name__ = InferRequest.__qualname__ = f"V2{model.title()}InferRequest"
    return InferRequest


def request_models(settings) -> dict[str, type[BaseModel]]:
    """Model name -> its V2 infer request, with the limits of V1 (batch, text length)."""
    text = schemas.sentiment_text_type(settings.sentiment_max_chars)
    iris = _tensor_model("iris", "input", "FP32", schemas.FiniteFloat32, 4, settings.max_batch)
    sentiment = _tensor_model(
        "sentiment",
        "text",
        "BYTES",
        text,
        None,
        settings.sentiment_max_batch,
        settings.sentiment_max_total_chars,
    )
    return {
        "iris": infer_request_model("iris", iris),
        "sentiment": infer_request_model("sentiment", sentiment),
    }


def init_app(app: Flask, settings) -> None:
    app.extensions[EXTENSION] = request_models(settings)
    app.register_blueprint(bp)
    app.after_request(_v2_error_shape)


@bp.before_request
def _key_for_models() -> None:
    """The API key (when set) guards everything here but the health endpoints."""
    if not request.path.startswith("/v2/health/"):
        require_api_key()


def _v2_error_shape(response):
    """Errors under /v2 in the protocol's {"error": "message"} (the same message as V1)."""
    if not request.path.startswith("/v2") or response.status_code < 400 or not response.is_json:
        return response
    error = (response.get_json(silent=True) or {}).get("error")
    if isinstance(error, dict):
        response.set_data(json.dumps({"error": error.get("message", "")}))
    return response


@bp.get("")
def server_metadata():
    return jsonify(name="mlapi", version=__version__, extensions=[])


@bp.get("/health/live")
def live():
    return jsonify(live=True)


@bp.get("/health/ready")
def ready():
    missing = serving_state().registry.missing()
    if missing:
        problems = "; ".join(f"{name}: {problem}" for name, problem in missing.items())
        raise ApiError(503, f"Not ready. {problems}")
    return jsonify(ready=True)


@bp.get("/models/<name>")
@bp.get("/models/<name>/versions/<version>")
def model_metadata(name: str, version: str | None = None):
    served, predictor = _model(name, version)
    return jsonify(metadata(name, served, predictor).model_dump())


@bp.get("/models/<name>/ready")
@bp.get("/models/<name>/versions/<version>/ready")
def model_ready(name: str, version: str | None = None):
    served, _ = _model(name, version)
    return jsonify(name=name, version=served, ready=True)


@bp.post("/models/<name>/infer")
@bp.post("/models/<name>/versions/<version>/infer")
def infer(name: str, version: str | None = None):
    request_model = current_app.extensions[EXTENSION].get(name)
    if request_model is None:
        raise ApiError(404, _unknown(name))
    if BINARY_HEADER in request.headers:
        raise ApiError(400, BINARY_UNSUPPORTED)
    body = read_json_object(INFER_EXAMPLES[name], content_type_optional=True)
    payload = validate(request_model, body)
    served, predictor = _model(name, version)
    answers = predict(name, _rows(payload.inputs[0]), predictor=predictor)
    outputs = _outputs(name, predictor, answers)
    if payload.outputs is not None:
        wanted = {output.name for output in payload.outputs}
        outputs = [output for output in outputs if output.name in wanted]
    response = InferResponse(model_name=name, model_version=served, id=payload.id, outputs=outputs)
    return jsonify(response.model_dump(exclude_none=True))


def _rows(tensor) -> list:
    """The tensor's flat, row-major data as the predictor's inputs (one per row)."""
    if len(tensor.shape) == 1:
        return list(tensor.data)
    width = tensor.shape[1]
    return [tensor.data[i : i + width] for i in range(0, len(tensor.data), width)]


def _model(name: str, version: str | None):
    """The version and predictor of `name` (`version`, when given), or a 404/503 ApiError."""
    registry = serving_state().registry
    if name not in registry.slots:
        raise ApiError(404, _unknown(name))
    return registry.lookup(name, version)


def _unknown(name: str) -> str:
    return f"There is no model named '{name}'. Models: {', '.join(INFER_EXAMPLES)}."


def labels_of(name: str, predictor) -> list[str]:
    return list(predictor.class_names if name == "iris" else predictor.labels)


def metadata(name: str, version: str, predictor) -> ModelMetadata:
    labels = labels_of(name, predictor)
    if name == "iris":
        inputs = [TensorSpec(name="input", datatype="FP32", shape=[-1, 4])]
    else:
        inputs = [TensorSpec(name="text", datatype="BYTES", shape=[-1])]
    return ModelMetadata(
        name=name,
        versions=[version],
        platform="onnxruntime" if getattr(predictor, "backend", "onnx") == "onnx" else "sklearn",
        inputs=inputs,
        outputs=[
            TensorSpec(name="label", datatype="BYTES", shape=[-1]),
            TensorSpec(name="probabilities", datatype="FP32", shape=[-1, len(labels)]),
        ],
        parameters={"labels": labels},
    )


def _outputs(name: str, predictor, answers: list[dict[str, Any]]) -> list[OutputTensor]:
    labels = labels_of(name, predictor)
    label_key = "prediction" if name == "iris" else "label"
    probabilities = [answer["probabilities"][label] for answer in answers for label in labels]
    n = len(answers)
    return [
        OutputTensor(
            name="label", datatype="BYTES", shape=[n], data=[a[label_key] for a in answers]
        ),
        OutputTensor(
            name="probabilities", datatype="FP32", shape=[n, len(labels)], data=probabilities
        ),
    ]
