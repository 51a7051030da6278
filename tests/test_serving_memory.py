"""Memory stays bounded per worker: a character budget per sentiment request, one large request
at a time per worker, and freed memory given back. The RSS bounds themselves are measured by
`python benchmarks/hostile_clients.py --memory`; these tests check the mechanisms."""

from __future__ import annotations

import json
import threading

import pytest
from helpers.api import SETOSA, assert_error

from mlapi.serving import limits
from mlapi.serving.sentiment import SHRINK_ARENA_ABOVE_TEXTS, SentimentPredictor

ARENA_SHRINKAGE = "memory.enable_memory_arena_shrinkage"


@pytest.mark.parametrize(
    ("path", "key"), [("/sentiment", "texts"), ("/v1/models/sentiment:predict", "instances")]
)
def test_a_batch_over_the_character_budget_is_refused(make_app, path, key):
    client = make_app(sentiment_max_total_chars=100).test_client()
    over = client.post(path, json={key: ["a" * 60, "b" * 41]})
    assert_error(over, 400, contains="add up to 101 characters, more than the 100 allowed")
    assert client.post(path, json={key: ["a" * 60, "b" * 40]}).status_code == 200


def test_v2_infer_has_the_same_character_budget(make_app):
    client = make_app(sentiment_max_total_chars=100).test_client()

    def infer(texts):
        tensor = {"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}
        return client.post("/v2/models/sentiment/infer", json={"inputs": [tensor]})

    over = infer(["a" * 60, "b" * 41])
    assert over.status_code == 400
    assert "add up to 101 characters, more than the 100 allowed" in over.get_json()["error"]
    assert infer(["a" * 60, "b" * 40]).status_code == 200


def test_the_default_budget_allows_a_full_batch_of_typical_reviews(client):
    review = "A moving, well acted film with a score I still hum. " * 22  # ~1,150 characters
    answer = client.post("/sentiment", json={"texts": [review] * 256})
    assert answer.status_code == 200 and len(answer.get_json()["predictions"]) == 256


def large_body(n: int = 5000) -> bytes:
    body = json.dumps({"texts": ["A fine film."] * n}).encode()
    assert len(body) > limits.LARGE_BODY_BYTES
    return body


@pytest.fixture
def blocking_sentiment(make_app, monkeypatch):
    """An app whose sentiment model blocks inside predict until `release` is set."""
    app = make_app(max_concurrent_large=1, sentiment_max_batch=5000)
    inside, release = threading.Event(), threading.Event()
    predictor = app.extensions["mlapi"].registry.get("sentiment")
    real_predict = predictor.predict

    def predict(texts):
        inside.set()
        assert release.wait(30)
        return real_predict(texts)

    monkeypatch.setattr(predictor, "predict", predict)
    monkeypatch.setattr(limits, "QUEUE_WAIT_S", 0)  # a waiting request gives up at once
    return app, inside, release


def test_a_worker_runs_one_large_request_at_a_time_and_small_ones_freely(blocking_sentiment):
    app, inside, release = blocking_sentiment
    client = app.test_client()
    first = {}
    thread = threading.Thread(
        target=lambda: first.update(r=client.post("/sentiment", data=large_body(),
                                                  content_type="application/json"))
    )  # fmt: skip
    thread.start()
    assert inside.wait(30)  # the first large request holds the worker's one turn
    try:
        second = client.post("/sentiment", data=large_body(), content_type="application/json")
        assert_error(second, 503, contains="busy with other large requests")
        assert client.post("/predict", json={"features": SETOSA}).status_code == 200
    finally:
        release.set()
        thread.join(30)
    assert first["r"].status_code == 200
    again = client.post("/sentiment", data=large_body(), content_type="application/json")
    assert again.status_code == 200  # the turn was given back


def test_freed_memory_is_given_back_after_a_large_request_only(make_app, monkeypatch):
    client = make_app(sentiment_max_batch=5000).test_client()
    calls = []
    monkeypatch.setattr(limits, "release_free_memory", lambda: calls.append(1))
    client.post("/sentiment", json={"text": "A fine film."})
    assert calls == []
    answer = client.post("/sentiment", data=large_body(), content_type="application/json")
    assert answer.status_code == 200 and calls == [1]


def test_large_batches_give_onnx_runtimes_arena_back(sentiment_models_dir, monkeypatch):
    predictor = SentimentPredictor.load(sentiment_models_dir / "sentiment" / "1")
    seen = []
    real_run = predictor.session.run

    def run(outputs, feeds, run_options=None):
        seen.append(run_options and run_options.get_run_config_entry(ARENA_SHRINKAGE))
        return real_run(outputs, feeds, run_options)

    monkeypatch.setattr(predictor, "session", type("S", (), {"run": staticmethod(run)})())
    predictor.predict(["Fine."] * SHRINK_ARENA_ABOVE_TEXTS)
    predictor.predict(["Fine."] * (SHRINK_ARENA_ABOVE_TEXTS + 1))
    assert seen == [None, "cpu:0"]
