"""The server never imports torch, ray or mlflow, and it answers exactly what `mlapi predict`
prints."""

import json
import os
import subprocess
import sys

import pytest

from mlapi.testing import REPO_ROOT

REVIEWS = ["A great and wonderful film, I loved it.", "An awful, boring waste of time."]

SERVE_AND_LIST_MODULES = """
import json, sys
sys.path.insert(0, {repo!r})
import app  # the repo's app.py, as gunicorn imports it
client = app.app.test_client()
answers = [
    client.post("/predict", json={{"features": [5.1, 3.5, 1.4, 0.2]}}).status_code,
    client.post("/sentiment", json={{"texts": {reviews!r}}}).get_json(),
]
training_side = ("torch", "ray", "mlflow", "optuna")
imported = sorted(m for m in sys.modules if m.split(".")[0] in training_side)
print(json.dumps({{"answers": answers, "training_modules": imported}}))
"""


def run_python(code: str, env: dict) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def serving_env(iris_model_path, sentiment_models_dir):
    return {
        **os.environ,
        "MODELO_PATH": str(iris_model_path),
        "MODELS_DIR": str(sentiment_models_dir),
    }


def test_serving_process_never_imports_torch_ray_or_mlflow(serving_env):
    code = SERVE_AND_LIST_MODULES.format(repo=str(REPO_ROOT), reviews=REVIEWS)
    report = json.loads(run_python(code, serving_env).splitlines()[-1])
    iris_status, sentiment = report["answers"]
    assert iris_status == 200
    assert [p["label"] for p in sentiment["predictions"]] == ["positive", "negative"]
    assert report["training_modules"] == []


def test_served_prediction_equals_mlapi_predict(serving_env, client, sentiment_models_dir):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlapi",
            "predict",
            *REVIEWS,
            "--models-dir",
            str(sentiment_models_dir),
        ],
        env=serving_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    printed = [line.split("\t") for line in result.stdout.strip().splitlines()]
    served = client.post("/sentiment", json={"texts": REVIEWS}).get_json()["predictions"]
    assert len(printed) == len(served) == len(REVIEWS)
    for (label, probability, _), answer in zip(printed, served, strict=True):
        assert label == answer["label"]
        assert float(probability) == pytest.approx(answer["score"], abs=5e-5)
