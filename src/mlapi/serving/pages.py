"""Everything that is not a prediction: the web page, health, readiness, models, OpenAPI."""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template, request

from mlapi.serving.api import serving_state
from mlapi.serving.errors import error_response
from mlapi.serving.openapi import openapi_document

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    return render_template("index.html", base_url=request.host_url.rstrip("/"))


@bp.get("/health")
def health():
    """Liveness: the process answers. Models may still be missing (see /ready)."""
    return jsonify(status="ok")


@bp.get("/ready")
def ready():
    """Readiness: 200 only when every model is loaded; 503 names what is missing."""
    slots = serving_state().registry.slots.values()
    missing = {slot.name: slot.problem for slot in slots if not slot.loaded}
    if missing:
        problems = "; ".join(f"{name}: {problem}" for name, problem in missing.items())
        return error_response(503, f"Not ready. {problems}")
    return jsonify(status="ready", models=sorted(slot.name for slot in slots))


@bp.get("/models")
def models():
    return jsonify(models=[_model_info(slot) for slot in serving_state().registry.slots.values()])


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document(serving_state()))


def _model_info(slot) -> dict:
    if not slot.loaded:
        return {"name": slot.name, "loaded": False, "problem": slot.problem}
    return {"name": slot.name, "loaded": True, **slot.predictor.info()}
