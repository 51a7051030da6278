"""Shared fixtures: a trained Iris model and a tiny sentiment model in tmp dirs, apps built
around them, real gunicorn servers. Plain helpers live in tests/helpers/."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.imdb import (
    N_PER_LABEL,
    N_UNSUP,
    make_imdb_archive,
    make_imdb_tree,
    offline,
    use_tiny_counts,
)
from helpers.reviews import tiny_reviews

from mlapi.iris_model import train_and_save
from mlapi.serving import create_app
from mlapi.serving.settings import ServingSettings
from mlapi.testing import GunicornServer


@pytest.fixture(autouse=True, scope="session")
def mlflow_store_in_tmp(tmp_path_factory):
    """Training commands track runs in MLflow: tests keep that store out of the repo (session
    scope, so that module-scoped fixtures that train see it too)."""
    store = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
        yield


@pytest.fixture(scope="session")
def iris_model_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("iris") / "modelo.pkl"
    train_and_save(path)
    return path


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


@pytest.fixture
def imdb_sandbox(tmp_path, monkeypatch):
    """For mlapi.data tests: own cache dir, no $IMDB_DATA, tiny expected counts
    (N_PER_LABEL, N_UNSUP), no retry waits, no network."""
    from mlapi.data import fetch

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("IMDB_DATA", raising=False)
    monkeypatch.delenv("MLAPI_ENCODED_CACHE_MB", raising=False)
    use_tiny_counts(monkeypatch, N_PER_LABEL, N_UNSUP)
    monkeypatch.setattr(fetch, "RETRY_DELAYS", (0.0, 0.0))
    monkeypatch.setattr(fetch, "_http_stream", offline)


@pytest.fixture
def imdb_tree(tmp_path) -> Path:
    """A tiny aclImdb folder (N_PER_LABEL reviews per label and split, N_UNSUP unlabeled)."""
    return make_imdb_tree(tmp_path / "data", N_PER_LABEL, N_UNSUP)


@pytest.fixture
def imdb_archive(tmp_path) -> Path:
    """The same tiny dataset as a .tar.gz."""
    return make_imdb_archive(tmp_path / "aclImdb_v1.tar.gz", N_PER_LABEL, N_UNSUP)
