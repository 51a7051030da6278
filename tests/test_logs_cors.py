"""LOG_FORMAT=json (one JSON object per access and error line) and CORS (off unless allowed)."""

from __future__ import annotations

import json
import logging

import pytest
import requests
from helpers.api import SETOSA

from mlapi.serving.logs import JsonFormatter
from mlapi.testing import server_env


class JsonLines(logging.Handler):
    """Formats each record as it is emitted (inside its request, as a real handler does)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


@pytest.fixture
def json_lines():
    """The JSON lines the mlapi loggers write during the test."""
    logger, handler = logging.getLogger("mlapi"), JsonLines()
    saved = (list(logger.handlers), logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in handler.lines]
    # A JSON app configures the process's mlapi logger (as a server should): undo it here.
    logger.handlers[:], logger.level, logger.propagate = saved


def test_json_access_line_per_request(make_app, json_lines):
    client = make_app(log_format="json").test_client()
    client.post("/predict", json={"features": SETOSA}, headers={"X-Request-ID": "abc-1"})
    client.post("/v2/models/sentiment/infer", json={"inputs": []})
    access = [line for line in json_lines() if line["logger"] == "mlapi.access"]
    assert len(access) == 2
    first, second = access
    assert first["request_id"] == "abc-1"
    assert (first["endpoint"], first["model"], first["status"]) == ("/predict", "iris", 200)
    assert isinstance(first["ms"], float) and first["ms"] >= 0
    assert (second["endpoint"], second["model"], second["status"]) == (
        "/v2/models/<name>/infer",
        "sentiment",
        400,
    )


def test_text_format_writes_no_access_lines_from_the_app(make_app, json_lines):
    make_app().test_client().post("/predict", json={"features": SETOSA})
    assert not [line for line in json_lines() if line["logger"] == "mlapi.access"]


def test_an_error_line_is_one_json_object_with_its_traceback(make_app, json_lines, monkeypatch):
    app = make_app(log_format="json")
    registry = app.extensions["mlapi"].registry

    def broken(rows):
        raise RuntimeError("boom")

    monkeypatch.setattr(registry.slots["iris"].predictor, "predict", broken)
    response = app.test_client().post("/predict", json={"features": SETOSA})
    assert response.status_code == 500
    (error,) = [line for line in json_lines() if line["level"] == "error"]
    assert "RuntimeError: boom" in error["exception"]
    assert error["request_id"] == response.headers["X-Request-ID"]
    assert "\n" not in JsonFormatter().format(logging.makeLogRecord({"msg": "a\nb"}))


def test_log_format_setting_is_checked():
    from mlapi.errors import MlapiError
    from mlapi.serving.settings import ServingSettings

    assert ServingSettings.from_env(env={"LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(MlapiError, match="LOG_FORMAT must be text or json, got 'xml'"):
        ServingSettings.from_env(env={"LOG_FORMAT": "xml"})


@pytest.mark.slow
def test_gunicorn_with_log_format_json_writes_only_json_lines(
    start_gunicorn, iris_model_path, tmp_path
):
    env = server_env(
        MODELO_PATH=str(iris_model_path), MODELS_DIR=str(tmp_path / "none"), LOG_FORMAT="json"
    )
    base_url = start_gunicorn(env, "-w", "2")
    requests.post(f"{base_url}/predict", json={"features": SETOSA}, timeout=10)
    requests.post(f"{base_url}/predict", json={"features": [1]}, timeout=10)
    start_gunicorn.process.terminate()
    start_gunicorn.process.wait(timeout=30)
    text = (tmp_path / "gunicorn-0.log").read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # all JSON
    access = [line for line in lines if line["logger"] == "mlapi.access"]
    assert [a["status"] for a in access if a["endpoint"] == "/predict"] == [200, 400]
    assert any(line["logger"] == "gunicorn.error" for line in lines)  # gunicorn's own, as JSON


# --- CORS ---------------------------------------------------------------------------------------

ORIGIN = "https://dashboard.example"


def test_cors_is_off_by_default(client):
    response = client.post("/predict", json={"features": SETOSA}, headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers


def test_cors_allows_only_listed_origins(make_app):
    client = make_app(cors_origins=f"{ORIGIN}, http://localhost:3000").test_client()
    allowed = client.post("/predict", json={"features": SETOSA}, headers={"Origin": ORIGIN})
    assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Origin" in allowed.headers["Vary"]
    other = client.post(
        "/predict", json={"features": SETOSA}, headers={"Origin": "https://evil.example"}
    )
    assert "Access-Control-Allow-Origin" not in other.headers


def test_cors_preflight_passes_without_the_api_key(make_app):
    client = make_app(cors_origins=ORIGIN, api_key="k").test_client()
    preflight = client.options(
        "/v2/models/iris/infer",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-api-key",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "X-API-Key" in preflight.headers["Access-Control-Allow-Headers"]
    assert client.post("/predict", json={"features": SETOSA}).status_code == 401
