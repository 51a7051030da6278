"""Model versions: layout and migration, trainers that add versions, pin/unpin/prune, older
versions over V2, live swaps (in-process and on a real 2-worker gunicorn under load), and a
broken new version refused while the old one keeps serving."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from mlapi import versions
from mlapi.cli import main
from mlapi.iris_model import train_new_version
from mlapi.serving import create_app
from mlapi.serving.settings import ServingSettings
from mlapi.testing import REPO_ROOT, GunicornServer, server_env

IRIS_FILES = versions.IRIS_FILES
ROW = {"features": [5.1, 3.5, 1.4, 0.2]}


def add_iris_version(models: Path, iris_model_path: Path) -> Path:
    """Install the session's Iris model as the next version (the trainer's own install path)."""
    with versions.new_version(models, "iris") as install:
        for name in IRIS_FILES:
            shutil.copy(iris_model_path.parent / name, install.staging / name)
    return install.installed


def break_version(folder: Path, fault: str) -> None:
    if fault == "bad checksum":
        with open(folder / "modelo.onnx", "ab") as f:
            f.write(b"\0")
    else:  # a missing file: the ONNX sidecar
        (folder / "modelo.onnx.json").unlink()


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """cwd is an empty folder (no seed ./modelo.pkl) and MODELO_PATH / MODELS_DIR are unset."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MODELO_PATH", raising=False)
    monkeypatch.delenv("MODELS_DIR", raising=False)
    return tmp_path


def versioned_app(models: Path, **overrides):
    settings = ServingSettings(models_dir=models, model_poll_seconds=0, **overrides)
    return create_app(settings)


# --- layout, migration, trainers -------------------------------------------------------------


def test_the_flat_sentiment_folder_is_version_1_until_migrate_moves_it(
    sentiment_models_dir, in_tmp, capsys
):
    models = in_tmp / "models"
    shutil.copytree(sentiment_models_dir / "sentiment" / "1", models / "sentiment")  # old layout
    flat = digest(models / "sentiment")
    assert versions.versions(models, "sentiment") == {1: models / "sentiment"}
    slot = versioned_app(models).extensions["mlapi"].registry.slots["sentiment"]
    assert slot.loaded and slot.version == "1"

    assert main(["models", "migrate", "sentiment", "--models-dir", str(models)]) == 0
    assert "old layout is now version 1" in capsys.readouterr().out
    assert digest(models / "sentiment" / "1") == flat
    assert sorted(p.name for p in (models / "sentiment").iterdir()) == [".lock", "1"]
    client = versioned_app(models).test_client()
    assert client.post("/sentiment", json={"text": "great"}).status_code == 200
    assert main(["models", "migrate", "--models-dir", str(models)]) == 0  # nothing left to move
    assert "sentiment: nothing to migrate" in capsys.readouterr().out


def test_the_iris_trainer_adds_versions_and_moves_the_seed_modelo_pkl_first(
    iris_model_path, in_tmp, monkeypatch
):
    for name in IRIS_FILES:  # a seed-style ./modelo.pkl from before versions
        shutil.copy(iris_model_path.parent / name, in_tmp / name)
    seed = digest(in_tmp)
    monkeypatch.setenv("MODELS_DIR", str(in_tmp / "models"))
    assert main(["train", "iris"]) == 0
    iris = in_tmp / "models" / "iris"
    assert digest(iris / "1") == seed  # the seed's model, moved whole
    assert not (in_tmp / "modelo.pkl").exists()
    first_two = {v: digest(iris / str(v)) for v in (1, 2)}
    path, _ = train_new_version(in_tmp / "models")
    assert path == iris / "3" / "modelo.pkl"
    assert {v: digest(iris / str(v)) for v in (1, 2)} == first_two  # never overwritten
    assert sorted(p.name for p in iris.iterdir()) == [".lock", "1", "2", "3"]  # no staging left


def test_python_train_model_py_still_works_with_and_without_modelo_path(in_tmp):
    script = [sys.executable, str(REPO_ROOT / "train_model.py")]
    env = server_env(MODELS_DIR=str(in_tmp / "models"))
    env.pop("MODELO_PATH", None)
    result = subprocess.run(script, cwd=in_tmp, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "installed Iris version 1" in result.stdout
    assert (in_tmp / "models" / "iris" / "1" / "modelo.onnx").is_file()
    explicit = in_tmp / "mine" / "modelo.pkl"
    env["MODELO_PATH"] = str(explicit)  # an explicit file keeps meaning this Iris file
    result = subprocess.run(script, cwd=in_tmp, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert explicit.is_file() and not (in_tmp / "models" / "iris" / "2").exists()
    slot = create_app(ServingSettings(modelo_path=explicit, models_dir=in_tmp / "models"))
    assert slot.extensions["mlapi"].registry.sources.keys() == {"sentiment"}  # Iris: that file


def test_the_sentiment_export_adds_a_version_and_never_overwrites(sentiment_models_dir, tmp_path):
    from mlapi.export import export_sentiment_model
    from mlapi.models.lstm import LSTMClassifier
    from mlapi.text import Vocabulary

    models = tmp_path / "models"
    shutil.copytree(sentiment_models_dir, models)
    before = digest(models / "sentiment" / "1")
    vocabulary = Vocabulary(num_words=20, maxlen=8).fit(["a good film", "a bad film"])
    network = LSTMClassifier(vocabulary.size, embed_dim=4, hidden_size=4, dropout=0.0)
    ids = vocabulary.encode(["a good film", "a bad film"])
    result = export_sentiment_model(
        network, vocabulary, ids, models, run_name="second", arch="lstm", metrics={}, versions={}
    )
    assert result.directory == models / "sentiment" / "2"
    assert digest(models / "sentiment" / "1") == before
    assert versions.served(models, "sentiment") == 2


# --- which version is served: newest, pin, unpin, prune -------------------------------------


def test_newest_is_served_pin_unpin_and_prune_spare_the_pinned_one(iris_model_path, in_tmp, capsys):
    models = in_tmp / "models"
    for _ in range(4):
        add_iris_version(models, iris_model_path)
    app = versioned_app(models)
    registry, client = app.extensions["mlapi"].registry, app.test_client()
    assert client.get("/v1/models/iris").get_json()["version"] == "4"

    flag = ["--models-dir", str(models)]
    assert main(["models", "pin", "iris", "2", *flag]) == 0
    registry.refresh()  # what each worker's watcher does every MODEL_POLL_SECONDS
    assert client.get("/v1/models/iris").get_json()["version"] == "2"
    assert 'mlapi_model_version{model="iris"} 2.0' in client.get("/metrics").text

    assert main(["models", "prune", "iris", "--keep", "1", *flag]) == 0
    assert "deleted 1, 3; kept 2, 4" in capsys.readouterr().out
    assert sorted(versions.versions(models, "iris")) == [2, 4]
    assert main(["models", "list", "iris", *flag]) == 0
    listed = capsys.readouterr().out
    assert re.search(r"iris\s+2\s+served,pinned\s+ok", listed), listed
    assert re.search(r"iris\s+4\s+ok", listed), listed

    assert main(["models", "unpin", "iris", *flag]) == 0
    registry.refresh()
    assert client.get("/models").get_json()["models"][0]["version"] == "4"
    assert main(["models", "prune", "iris", "--keep", "1", *flag]) == 0
    assert sorted(versions.versions(models, "iris")) == [4]  # the served one stays


def test_an_older_version_answers_over_v2_and_few_are_kept_loaded(iris_model_path, in_tmp):
    models = in_tmp / "models"
    for _ in range(3):
        add_iris_version(models, iris_model_path)
    app = versioned_app(models, keep_versions=1)
    client, registry = app.test_client(), app.extensions["mlapi"].registry
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [1] * 4}]}
    answer = client.post("/v2/models/iris/versions/1/infer", json=body)
    assert answer.status_code == 200 and answer.get_json()["model_version"] == "1"
    assert client.post("/v2/models/iris/infer", json=body).get_json()["model_version"] == "3"
    assert client.get("/v2/models/iris/versions/2").get_json()["versions"] == ["2"]
    assert client.get("/v2/models/iris/versions/2/ready").get_json()["ready"] is True
    assert list(registry._others["iris"]) == ["2"]  # version 1 dropped: keep_versions=1
    missing = client.post("/v2/models/iris/versions/9/infer", json=body)
    assert missing.status_code == 404 and "Versions: 1, 2, 3" in missing.get_json()["error"]
    assert client.get("/v2/models/iris/versions/abc").status_code == 404


@pytest.mark.parametrize("fault", ["bad checksum", "missing file"])
def test_a_broken_new_version_is_refused_and_the_old_one_keeps_serving(
    iris_model_path, in_tmp, fault
):
    models = in_tmp / "models"
    add_iris_version(models, iris_model_path)
    app = versioned_app(models)
    client, registry = app.test_client(), app.extensions["mlapi"].registry
    break_version(add_iris_version(models, iris_model_path), fault)
    registry.refresh()
    registry.refresh()  # refused once is refused: not retried, not counted again
    status = client.get("/v1/models/iris").get_json()
    assert status["ready"] is True and status["version"] == "1"
    assert status["refused"]["version"] == "2"
    expected = "does not match" if fault == "bad checksum" else "missing or unreadable"
    assert expected in status["refused"]["problem"]
    assert client.get("/models").get_json()["models"][0]["refused"]["version"] == "2"
    assert client.post("/predict", json=ROW).status_code == 200
    text = client.get("/metrics").text
    assert 'mlapi_model_reloads_total{model="iris",outcome="refused"} 1.0' in text
    assert 'mlapi_model_version{model="iris"} 1.0' in text

    add_iris_version(models, iris_model_path)  # a good version 3 after the broken 2
    registry.refresh()
    assert client.get("/v1/models/iris").get_json()["version"] == "3"


def test_a_broken_newest_version_at_start_is_refused_and_the_older_one_served(
    iris_model_path, in_tmp
):
    models = in_tmp / "models"
    add_iris_version(models, iris_model_path)
    break_version(add_iris_version(models, iris_model_path), "bad checksum")
    client = versioned_app(models).test_client()
    status = client.get("/v1/models/iris").get_json()
    assert status["version"] == "1" and status["refused"]["version"] == "2"
    assert client.post("/predict", json=ROW).status_code == 200
    assert 'mlapi_model_reloads_total{model="iris",outcome="refused"} 1.0' in (
        client.get("/metrics").text
    )


def test_a_first_sentiment_version_is_picked_up_without_a_restart(
    iris_model_path, sentiment_models_dir, in_tmp
):
    models = in_tmp / "models"
    add_iris_version(models, iris_model_path)
    app = versioned_app(models)
    client, registry = app.test_client(), app.extensions["mlapi"].registry
    assert client.post("/sentiment", json={"text": "great"}).status_code == 503
    shutil.copytree(sentiment_models_dir / "sentiment" / "1", models / "sentiment" / "1")
    registry.refresh()
    answer = client.post("/sentiment", json={"text": "great"})
    assert answer.status_code == 200, answer.get_json()
    assert client.get("/v1/models/sentiment").get_json()["version"] == "1"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["models", "pin", "iris", "7"], "no version 7 (versions: 1)"),
        (["models", "pin", "iris", "abc"], "a version is a positive integer, got 'abc'"),
        (["models", "pin", "iris", "0"], "a version is a positive integer, got '0'"),
        (["models", "pin", "nope", "1"], "invalid choice: 'nope'"),
        (["models", "prune", "nope"], "invalid choice: 'nope'"),
    ],
)
def test_bad_names_and_versions_are_one_line(iris_model_path, in_tmp, capsys, argv, expected):
    models = in_tmp / "models"
    add_iris_version(models, iris_model_path)
    try:
        code = main([*argv, "--models-dir", str(models)])
    except SystemExit as exc:
        code = exc.code
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and expected in lines[0], lines


# --- live swap on a real 2-worker gunicorn, under load ----------------------------------------


def worker_versions(base_url: str) -> dict[str, float]:
    """pid -> the Iris version that live worker serves (mlapi_worker_model_version)."""
    text = requests.get(f"{base_url}/metrics", timeout=10).text
    pattern = r'mlapi_worker_model_version\{model="iris",pid="(\d+)"\} ([0-9.]+)'
    return {pid: float(v) for pid, v in re.findall(pattern, text)}


def wait_for(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Load:
    """Requests to /predict and V2 infer, one after another, from a thread; every status kept."""

    def __init__(self, base_url: str) -> None:
        self.base_url, self.statuses, self.versions = base_url, [], set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [1] * 4}]}
        with requests.Session() as session:
            while not self._stop.is_set():
                r = session.post(f"{self.base_url}/predict", json=ROW, timeout=30)
                self.statuses.append(r.status_code)
                r = session.post(f"{self.base_url}/v2/models/iris/infer", json=body, timeout=30)
                self.statuses.append(r.status_code)
                if r.status_code == 200:
                    self.versions.add(r.json()["model_version"])

    def stop(self) -> list[int]:
        self._stop.set()
        self._thread.join(timeout=60)
        return self.statuses


def test_new_pinned_and_broken_versions_on_two_workers_under_load(iris_model_path, tmp_path):
    models = tmp_path / "models"
    add_iris_version(models, iris_model_path)
    env = server_env(MODELS_DIR=str(models), MODEL_POLL_SECONDS="0.2", SERVE_MODELS="iris")
    env.pop("MODELO_PATH", None)
    config = ["-c", str(REPO_ROOT / "gunicorn.conf.py"), "-w", "2"]
    with GunicornServer(env, *config, cwd=tmp_path, target="mlapi.serving.wsgi:app") as server:
        pids = {str(pid) for pid in server.worker_pids()}
        wait_for(lambda: worker_versions(server.base_url) == dict.fromkeys(pids, 1.0), "v1")
        load = Load(server.base_url)
        try:
            add_iris_version(models, iris_model_path)  # a new version: live without a restart
            wait_for(lambda: worker_versions(server.base_url) == dict.fromkeys(pids, 2.0), "v2")
            versions.pin(models, "iris", 1)  # a pin goes live the same way
            wait_for(lambda: worker_versions(server.base_url) == dict.fromkeys(pids, 1.0), "pin")
            versions.unpin(models, "iris")
            wait_for(lambda: worker_versions(server.base_url) == dict.fromkeys(pids, 2.0), "2")
            break_version(add_iris_version(models, iris_model_path), "bad checksum")
            refused = 'mlapi_model_reloads_total{model="iris",outcome="refused"} 2.0'
            wait_for(lambda: refused in requests.get(f"{server.base_url}/metrics").text, "no")
            wait_for(lambda: len(load.statuses) > 50, "some load after the refusal")
        finally:
            statuses = load.stop()
        assert worker_versions(server.base_url) == dict.fromkeys(pids, 2.0)  # still version 2
        assert {str(pid) for pid in server.worker_pids()} == pids  # no worker restarted
        assert len(statuses) > 50 and set(statuses) == {200}, sorted(set(statuses))
        assert {"1", "2"} <= load.versions
        status = requests.get(f"{server.base_url}/v1/models/iris", timeout=10).json()
        assert status["version"] == "2" and status["refused"]["version"] == "3"
        assert json.loads(requests.get(f"{server.base_url}/ready", timeout=10).text)
