"""Shared fixtures: a trained Iris model in a tmp dir, and apps built around it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from mlapi.iris_model import train_and_save
from mlapi.serving import create_app
from mlapi.serving.settings import ServingSettings

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def iris_model_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("iris") / "modelo.pkl"
    train_and_save(path)
    return path


POSITIVE_WORDS = ("great", "wonderful", "brilliant", "moving", "superb", "loved")
NEGATIVE_WORDS = ("awful", "boring", "terrible", "dull", "waste", "hated")
NEUTRAL_WORDS = ("the", "film", "plot", "actor", "scene", "story", "was", "and", "a", "it")


def tiny_reviews(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Short synthetic reviews whose label is carried by a few sentiment words."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    texts = []
    for label in labels:
        cue = POSITIVE_WORDS if label else NEGATIVE_WORDS
        words = list(rng.choice(NEUTRAL_WORDS, size=rng.integers(0, 9)))
        words += list(rng.choice(cue, size=rng.integers(1, 4)))
        rng.shuffle(words)
        texts.append(" ".join(words))
    return texts, labels


@pytest.fixture(scope="session")
def sentiment_models_dir(tmp_path_factory) -> Path:
    """A MODELS_DIR holding a tiny LSTM trained on synthetic reviews and exported to ONNX."""
    from mlapi.export import export_sentiment_model
    from mlapi.models.lstm import LSTMClassifier
    from mlapi.text import Vocabulary
    from mlapi.training.loop import FitConfig, fit

    texts, labels = tiny_reviews(600)
    vocabulary = Vocabulary(num_words=40, maxlen=16).fit(texts)
    x = vocabulary.encode(texts)
    network = LSTMClassifier(
        vocabulary.size, embed_dim=8, hidden_size=8, dropout=0.0, recurrent_dropout=0.0
    )
    config = FitConfig(epochs=12, batch_size=32, learning_rate=0.02, threads=1)
    fit(network, (x, labels), None, config, progress=False)
    models_dir = tmp_path_factory.mktemp("models")
    export_sentiment_model(
        network,
        vocabulary,
        x[:64],
        models_dir,
        run_name="tiny_lstm",
        arch="lstm",
        metrics={},
        versions={},
    )
    return models_dir


@pytest.fixture
def make_app(iris_model_path, sentiment_models_dir):
    """Build an app from explicit settings (never from the caller's environment)."""

    def build(**overrides):
        overrides.setdefault("modelo_path", iris_model_path)
        overrides.setdefault("models_dir", sentiment_models_dir)
        app = create_app(ServingSettings.from_env(env={}, **overrides))
        app.config["TESTING"] = True
        return app

    return build


@pytest.fixture
def client(make_app):
    return make_app().test_client()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_healthy(base_url: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early with code {process.returncode}")
        try:
            if requests.get(f"{base_url}/health", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise RuntimeError(f"server at {base_url} did not become healthy in {timeout}s")


@pytest.fixture
def start_gunicorn(tmp_path):
    """Start real gunicorn from the repo root on a free loopback port; stop it after the test."""
    processes = []

    def start(
        env: dict[str, str], *extra_args: str, cwd: Path = REPO_ROOT, target: str = "app:app"
    ) -> str:
        port = free_port()
        log = open(tmp_path / f"gunicorn-{port}.log", "wb")  # noqa: SIM115 (closed at teardown)
        command = [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", *extra_args]
        command.append(target)
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        processes.append((process, log))
        base_url = f"http://127.0.0.1:{port}"
        wait_until_healthy(base_url, process)
        start.process = process
        return base_url

    yield start
    for process, log in processes:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
