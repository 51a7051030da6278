"""GET /metrics: what it counts in-process, and that it is right across 2 real gunicorn workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from helpers.api import SETOSA, VIRGINICA
from prometheus_client.parser import text_string_to_metric_families

from mlapi.testing import server_env


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """(sample name, labels) -> value, from the text exposition."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels) -> float:
    """Sum of the samples named `name` whose labels include `labels`."""
    return sum(
        v
        for (n, sample_labels), v in samples(text).items()
        if n == name and set(labels.items()) <= sample_labels
    )


def scrape(client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    return response.get_data(as_text=True)


def test_metrics_count_requests_predictions_batches_and_errors(client):
    client.post("/predict", json={"features": SETOSA})
    client.post("/predict", json={"instances": [SETOSA, VIRGINICA, VIRGINICA]})
    client.post("/sentiment", json={"texts": ["Great film.", "Dull."]})
    client.post("/predict", json={"features": [1, 2]})  # 400
    client.get("/no/such/page")  # 404
    text = scrape(client)

    ok = {"endpoint": "/predict", "model": "iris", "method": "POST", "status": "200"}
    assert value(text, "mlapi_requests_total", **ok) == 2
    assert value(text, "mlapi_requests_total", endpoint="/predict", status="400") == 1
    assert value(text, "mlapi_requests_total", endpoint="unmatched", status="404") == 1
    assert value(text, "mlapi_errors_total", status="400") == 1
    assert value(text, "mlapi_errors_total", status="404") == 1
    assert value(text, "mlapi_predictions_total", model="iris", label="setosa") == 2
    assert value(text, "mlapi_predictions_total", model="iris", label="virginica") == 2
    assert value(text, "mlapi_predictions_total", model="sentiment") == 2
    assert value(text, "mlapi_batch_size_count", model="iris") == 2
    assert value(text, "mlapi_batch_size_sum", model="iris") == 4
    assert value(text, "mlapi_request_duration_seconds_count", endpoint="/predict") == 3
    assert value(text, "mlapi_model_loaded", model="iris") == 1
    assert value(text, "mlapi_model_loaded", model="sentiment") == 1
    assert value(text, "mlapi_model_version", model="iris") == 1


def test_route_labels_stay_bounded_for_unknown_model_names(client):
    for name in ("a", "b", "c"):
        client.post(f"/v1/models/{name}:predict", json={"instances": [SETOSA]})
    text = scrape(client)
    rule = "/v1/models/<name>:predict"
    assert value(text, "mlapi_requests_total", endpoint=rule, model="", status="404") == 3
    assert "/v1/models/a:predict" not in text


def test_a_model_that_is_not_loaded_shows_zero(make_app, tmp_path):
    text = scrape(make_app(models_dir=tmp_path).test_client())
    assert value(text, "mlapi_model_loaded", model="sentiment") == 0
    assert value(text, "mlapi_model_loaded", model="iris") == 1


def test_metrics_are_open_like_health_when_an_api_key_is_set(make_app):
    client = make_app(api_key="s3cret").test_client()
    assert client.get("/metrics").status_code == 200
    assert client.post("/predict", json={"features": SETOSA}).status_code == 401


def test_metrics_can_be_turned_off(make_app):
    client = make_app(metrics=False).test_client()
    assert client.get("/metrics").status_code == 404
    assert "/metrics" not in client.get("/openapi.json").get_json()["paths"]


def test_metrics_setting_rejects_other_words():
    from mlapi.errors import MlapiError
    from mlapi.serving.settings import ServingSettings

    assert ServingSettings.from_env(env={"METRICS": "off"}).metrics is False
    with pytest.raises(MlapiError, match="METRICS must be 1 or 0"):
        ServingSettings.from_env(env={"METRICS": "maybe"})


# --- a real gunicorn with 2 workers -----------------------------------------------------------


def hammer(base_url: str, n: int) -> None:
    """n requests, each on a new connection, so that both workers take some."""
    for i in range(n):
        body = {"features": SETOSA if i % 2 else VIRGINICA}
        answer = requests.post(
            f"{base_url}/predict", json=body, headers={"Connection": "close"}, timeout=10
        )
        assert answer.status_code == 200


def counter_files(directory) -> set[str]:
    """One counter file per worker that has counted something (pid in the name)."""
    return {p.name for p in directory.glob("counter_*.db")}


def stale_counter_file(directory) -> None:
    """What an earlier server left: a real counter file that says 1000 /predict requests."""
    code = (
        "from mlapi.serving.metrics import ServingMetrics\n"
        "m = ServingMetrics()\n"
        "m.requests.labels('/predict', 'iris', 'POST', '200').inc(1000)\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    assert list(directory.glob("counter_*.db"))


@pytest.mark.slow
def test_two_workers_report_every_request_once(start_gunicorn, iris_model_path, tmp_path):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    stale_counter_file(metrics_dir)
    env = server_env(
        MODELO_PATH=str(iris_model_path),
        MODELS_DIR=str(tmp_path / "none"),
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    base_url = start_gunicorn(env, "-w", "2")
    n = 0
    deadline = time.monotonic() + 60  # a worker still booting under load answers later
    while n < 40 or len(counter_files(metrics_dir)) < 2:
        assert time.monotonic() < deadline, "the second worker never answered"
        hammer(base_url, 10)
        n += 10

    for _ in range(6):  # whichever worker answers the scrape, the total is the same
        text = requests.get(f"{base_url}/metrics", timeout=10).text
        assert value(text, "mlapi_requests_total", endpoint="/predict", status="200") == n
        assert value(text, "mlapi_predictions_total", model="iris") == n


@pytest.mark.slow
def test_a_dead_worker_keeps_its_counts_and_loses_its_live_gauges(
    start_gunicorn, iris_model_path, tmp_path
):
    metrics_dir = tmp_path / "metrics"
    env = server_env(
        MODELO_PATH=str(iris_model_path),
        MODELS_DIR=str(tmp_path / "none"),
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    base_url = start_gunicorn(env, "-w", "2")
    hammer(base_url, 20)
    master = start_gunicorn.process.pid
    children = Path(f"/proc/{master}/task/{master}/children").read_text()
    victim = int(children.split()[0])
    assert list(metrics_dir.glob(f"gauge_livemin_{victim}.db"))
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while list(metrics_dir.glob(f"gauge_livemin_{victim}.db")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not list(metrics_dir.glob(f"gauge_livemin_{victim}.db")), "child_exit did not run"
    text = requests.get(f"{base_url}/metrics", timeout=10).text
    assert value(text, "mlapi_requests_total", endpoint="/predict", status="200") == 20
    assert value(text, "mlapi_model_loaded", model="iris") == 1


@pytest.mark.slow
def test_without_an_operator_folder_the_server_makes_and_removes_its_own(
    start_gunicorn, iris_model_path, tmp_path
):
    env = server_env(MODELO_PATH=str(iris_model_path), MODELS_DIR=str(tmp_path / "none"))
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env["TMPDIR"] = str(tmp_path)  # where the folder goes when /dev/shm is not writable
    base_url = start_gunicorn(env, "-w", "2")
    hammer(base_url, 30)
    for _ in range(4):
        text = requests.get(f"{base_url}/metrics", timeout=10).text
        assert value(text, "mlapi_requests_total", endpoint="/predict", status="200") == 30
