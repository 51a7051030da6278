"""Shared fixtures: a trained Iris model in a tmp dir, and apps built around it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlapi.iris_model import train_and_save
from mlapi.serving import create_app
from mlapi.serving.settings import ServingSettings
from mlapi.testing import GunicornServer


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
    config = FitConfig(
        epochs=12, batch_size=32, learning_rate=0.02, clipnorm=1.0, seed=42, threads=1
    )
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


@pytest.fixture
def start_gunicorn(tmp_path):
    """Start real gunicorn from the repo root on a free loopback port; stop it after the test."""
    servers = []

    def start(env: dict[str, str], *extra_args: str, target: str = "app:app") -> str:
        log_path = tmp_path / f"gunicorn-{len(servers)}.log"
        server = GunicornServer(env, *extra_args, target=target, log_path=log_path)
        servers.append(server)
        start.process = server.process
        return server.base_url

    yield start
    for server in servers:
        server.stop()
