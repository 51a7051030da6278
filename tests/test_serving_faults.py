"""Faults at serve time: bad model files at start, a predictor that throws, SIGTERM mid-request."""

import json
import os
import shutil
import signal
import threading
import time

import pytest
import requests
from helpers.api import SETOSA, assert_error, post

from mlapi.artifacts import sha256_file, write_sidecar
from mlapi.testing import REPO_ROOT


def copy_iris(iris_model_path, target_dir):
    for name in ("modelo.pkl", "modelo.pkl.json", "modelo.onnx", "modelo.onnx.json"):
        shutil.copy(iris_model_path.parent / name, target_dir / name)
    return target_dir / "modelo.pkl"


def corrupt_but_signed(path):
    """Garbage whose sidecar matches: the integrity check passes, the loader must still cope."""
    sidecar = json.loads((path.parent / f"{path.name}.json").read_text())
    path.write_bytes(b"this is not a model")
    sidecar.pop("sha256")
    sidecar.pop("file")
    write_sidecar(path, **sidecar)


@pytest.mark.parametrize("fault", ["missing", "tampered", "corrupt onnx", "corrupt pickle"])
def test_bad_iris_model_at_start(make_app, iris_model_path, tmp_path, fault):
    modelo = copy_iris(iris_model_path, tmp_path)
    if fault == "missing":
        modelo = tmp_path / "absent.pkl"
    elif fault == "tampered":
        with open(tmp_path / "modelo.onnx", "ab") as f:
            f.write(b"x")
    elif fault == "corrupt onnx":
        corrupt_but_signed(tmp_path / "modelo.onnx")
    else:
        (tmp_path / "modelo.onnx").unlink()
        corrupt_but_signed(modelo)
    client = make_app(modelo_path=modelo).test_client()

    assert client.get("/health").status_code == 200
    ready = client.get("/ready")
    assert_error(ready, 503, contains="iris")
    assert_error(post(client, {"features": SETOSA}), 503)
    assert client.post("/sentiment", json={"text": "A wonderful film."}).status_code == 200


@pytest.mark.parametrize("fault", ["tampered", "corrupt onnx", "missing vocabulary"])
def test_bad_sentiment_model_at_start(make_app, sentiment_models_dir, tmp_path, fault):
    models = tmp_path / "models"
    shutil.copytree(sentiment_models_dir, models)
    model_dir = models / "sentiment" / "1"
    if fault == "tampered":
        with open(model_dir / "vocabulary.json", "a") as f:
            f.write(" ")
    elif fault == "corrupt onnx":
        (model_dir / "model.onnx").write_bytes(b"garbage")
        metadata = json.loads((model_dir / "metadata.json").read_text())
        metadata["files"]["model.onnx"]["sha256"] = sha256_file(model_dir / "model.onnx")
        (model_dir / "metadata.json").write_text(json.dumps(metadata))
    else:
        (model_dir / "vocabulary.json").unlink()
    client = make_app(models_dir=models).test_client()

    assert client.get("/health").status_code == 200
    assert_error(client.get("/ready"), 503, contains="sentiment")
    assert_error(client.post("/sentiment", json={"text": "A wonderful film."}), 503)
    assert post(client, {"features": SETOSA}).status_code == 200


def test_predictor_exception_is_500_and_the_next_request_succeeds(make_app):
    app = make_app()
    iris = app.extensions["mlapi"].registry.get("iris")
    working = iris.predict
    calls = []

    def fail_once(rows):
        calls.append(rows)
        if len(calls) == 1:
            raise MemoryError("simulated")
        return working(rows)

    iris.predict = fail_once
    client = app.test_client()
    assert_error(post(client, {"features": SETOSA}), 500, contains="request id")
    response = post(client, {"features": SETOSA})
    assert response.status_code == 200
    assert response.get_json()["prediction"] == "setosa"


@pytest.mark.slow
def test_sigterm_lets_in_flight_requests_finish(start_gunicorn, iris_model_path, tmp_path):
    started = tmp_path / "request-started"
    env = {
        **os.environ,
        "MODELO_PATH": str(iris_model_path),
        "PYTHONPATH": str(REPO_ROOT / "tests"),
        "SLOW_SECONDS": "2",
        "SLOW_STARTED_FILE": str(started),
    }
    base_url = start_gunicorn(env, "-w", "1", target="slow_wsgi:app")
    master = start_gunicorn.process
    answers = []

    def slow_request():
        answers.append(requests.post(f"{base_url}/predict", json={"features": SETOSA}, timeout=30))

    client = threading.Thread(target=slow_request)
    client.start()
    deadline = time.monotonic() + 30
    while not started.exists():  # until the request is inside the 2 s predictor
        assert time.monotonic() < deadline, "the request never reached the predictor"
        time.sleep(0.01)
    master.send_signal(signal.SIGTERM)
    client.join(timeout=30)
    assert answers and answers[0].status_code == 200
    assert answers[0].json()["prediction"] == "setosa"
    assert master.wait(timeout=30) == 0
