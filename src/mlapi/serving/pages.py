"""Everything that is not a prediction: the web page, health, readiness, models, OpenAPI."""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template, request

from mlapi.serving import security
from mlapi.serving.api import serving_state
from mlapi.serving.errors import error_response
from mlapi.serving.openapi import openapi_document
from mlapi.serving.settings import DEFAULT_HOST, DEFAULT_PORT

bp = Blueprint("pages", __name__)


IRIS_FIELDS = (
    ("sepal_length", "Sepal length", 5.1),
    ("sepal_width", "Sepal width", 3.5),
    ("petal_length", "Petal length", 1.4),
    ("petal_width", "Petal width", 0.2),
)


@bp.get("/")
def index():
    state = serving_state()
    return render_template(
        "index.html",
        iris_fields=IRIS_FIELDS,
        max_chars=state.settings.sentiment_max_chars,
        needs_key=bool(state.settings.api_key),
        sentiment=_card(state.registry.slots["sentiment"], _sentiment_text),
        iris=_card(state.registry.slots["iris"], _iris_text),
        origin=_page_origin(state.settings),
        curl_lines=CURL_LINES,
    )


def _card(slot, describe) -> dict:
    """What a model's card shows: a summary when loaded, else why not (its form is disabled)."""
    if slot.loaded:
        return {"ready": True, "summary": describe(slot.predictor.info())}
    return {"ready": False, "summary": f"Not available: {security.public_text(slot.problem)}"}


def _sentiment_text(info: dict) -> str:
    accuracy = info.get("test_accuracy")
    scored = f", test accuracy {accuracy:.3f}" if accuracy is not None else ""
    arch = (info.get("arch") or "model").upper()
    return f"{arch} trained on IMDb reviews ({info['run_name']}{scored})."


def _iris_text(info: dict) -> str:
    return (
        f"RandomForest on the Iris data, hold-out accuracy {info['holdout_accuracy']:.3f}. "
        "Four measurements in centimetres."
    )


_POST = "curl -s -X POST -H 'Content-Type: application/json' "
# (before, after) the server's address in each line; the page's script puts in the address the
# browser used (location.origin), so the Host header is never written into the page.
CURL_LINES = [
    (_POST, "/predict -d '{\"features\": [5.1, 3.5, 1.4, 0.2]}'"),
    (_POST, "/predict -d '{\"instances\": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}'"),
    (_POST, '/sentiment -d \'{"text": "A wonderful, moving film."}\''),
    (_POST, '/v1/models/sentiment:predict -d \'{"instances": ["Great!", "Dull."]}\''),
    ("curl -s ", "/models"),
]


def _page_origin(settings) -> str:
    """The address shown before the script runs: the request's, only when TRUSTED_HOSTS has
    vouched for its Host; otherwise the default one."""
    if settings.trusted_hosts:
        return request.host_url.rstrip("/")
    return f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"


@bp.get("/health")
def health():
    """Liveness: the process answers. Models may still be missing (see /ready)."""
    return jsonify(status="ok")


@bp.get("/ready")
def ready():
    """Readiness: 200 when every model to serve is loaded (see ServingSettings.models_to_serve);
    503 names each one that is not, and why."""
    registry = serving_state().registry
    missing = registry.missing()
    if missing:
        problems = "; ".join(
            f"{name}: {security.public_text(problem)}" for name, problem in missing.items()
        )
        return error_response(503, f"Not ready. {problems}")
    return jsonify(status="ready", models=list(registry.required))


@bp.get("/models")
def models():
    return jsonify(models=[_model_info(slot) for slot in serving_state().registry.slots.values()])


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document(serving_state()))


def _model_info(slot) -> dict:
    refused = {"refused": slot.refused} if slot.refused else {}  # a version not put live
    if not slot.loaded:
        problem = security.public_text(slot.problem)
        return {"name": slot.name, "loaded": False, "problem": problem, **refused}
    info = slot.predictor.info()
    return {"name": slot.name, "loaded": True, "version": slot.version, **info, **refused}
