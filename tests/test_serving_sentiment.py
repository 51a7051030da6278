"""/sentiment and the KServe V1 protocol, through the Flask test client."""

import json
import shutil

import pytest
from helpers.api import SETOSA, VIRGINICA, assert_error
from helpers.api import post as post_to

POSITIVE = "A great and wonderful film, I loved it."
NEGATIVE = "An awful, boring waste of time."


def post(client, path, body, content_type="application/json"):
    return post_to(client, body, content_type, path=path)


def assert_sentiment(answer, label):
    assert answer["label"] == label
    p = answer["score"]
    assert 0.0 <= p <= 1.0
    assert answer["probabilities"]["positive"] == pytest.approx(p)
    assert answer["probabilities"]["negative"] == pytest.approx(1 - p)
    assert (p >= 0.5) == (label == "positive")


def test_one_review(client):
    response = post(client, "/sentiment", {"text": POSITIVE})
    assert response.status_code == 200
    assert_sentiment(response.get_json(), "positive")


def test_batch_of_reviews_keeps_order(client):
    response = post(client, "/sentiment", {"texts": [NEGATIVE, POSITIVE, NEGATIVE]})
    assert response.status_code == 200
    predictions = response.get_json()["predictions"]
    for answer, label in zip(predictions, ["negative", "positive", "negative"], strict=True):
        assert_sentiment(answer, label)


def test_batch_answers_equal_single_answers(client):
    batch = post(client, "/sentiment", {"texts": [POSITIVE, NEGATIVE]}).get_json()["predictions"]
    singles = [post(client, "/sentiment", {"text": t}).get_json() for t in (POSITIVE, NEGATIVE)]
    for a, b in zip(batch, singles, strict=True):
        assert a["label"] == b["label"]
        assert a["score"] == pytest.approx(b["score"], abs=1e-6)


@pytest.mark.parametrize(
    ("body", "field", "contains"),
    [
        ({"text": 42}, "text", "must be a string"),
        ({"text": None}, "text", "must be a string"),
        ({"text": ["a review"]}, "text", "must be a string"),
        ({"text": ""}, "text", "must not be empty or only whitespace"),
        ({"text": " \n\t "}, "text", "must not be empty or only whitespace"),
        ({"texts": ["fine", 3]}, "texts[1]", "must be a string"),
        ({"texts": ["fine", "   "]}, "texts[1]", "must not be empty"),
        ({"texts": []}, "texts", "at least 1"),
        ({"texts": "not a list"}, "texts", "valid list"),
        ({}, None, "exactly one of 'text'"),
        ({"text": "a", "texts": ["b"]}, None, "exactly one of 'text'"),
        ({"review": "a"}, "review", "accepted: text, texts"),
    ],
)
def test_invalid_sentiment_requests(client, body, field, contains):
    assert_error(post(client, "/sentiment", body), 400, field=field, contains=contains)


def test_text_length_limit_is_configurable(make_app):
    client = make_app(sentiment_max_chars=50).test_client()
    assert post(client, "/sentiment", {"text": "x" * 50}).status_code == 200
    assert_error(
        post(client, "/sentiment", {"text": "x" * 51}),
        400,
        field="text",
        contains="at most 50 characters, got 51",
    )


def test_default_text_length_limit_is_20000(client):
    assert post(client, "/sentiment", {"text": "good " * 4000}).status_code == 200
    assert_error(post(client, "/sentiment", {"text": "x" * 20_001}), 400, field="text")


def test_batch_limit_is_configurable(make_app):
    client = make_app(sentiment_max_batch=2).test_client()
    assert post(client, "/sentiment", {"texts": ["good"] * 2}).status_code == 200
    assert_error(
        post(client, "/sentiment", {"texts": ["good"] * 3}),
        400,
        field="texts",
        contains="at most 2 items",
    )


def test_sentiment_needs_json(client):
    assert_error(post(client, "/sentiment", POSITIVE, "text/plain"), 415)
    assert_error(post(client, "/sentiment", b"{oops"), 400, contains="not valid JSON")


def test_no_sentiment_model_gives_503_while_iris_keeps_working(make_app, tmp_path):
    client = make_app(models_dir=tmp_path / "empty").test_client()
    error = assert_error(post(client, "/sentiment", {"text": POSITIVE}), 503)
    assert "mlapi train imdb" in error["message"]
    assert post(client, "/predict", {"features": SETOSA}).status_code == 200


def test_no_iris_model_keeps_sentiment_working(make_app, tmp_path):
    client = make_app(modelo_path=tmp_path / "absent.pkl").test_client()
    assert post(client, "/sentiment", {"text": POSITIVE}).status_code == 200
    assert_error(post(client, "/predict", {"features": SETOSA}), 503)


# KServe V1 / TensorFlow Serving REST protocol.


def test_v1_iris_predict(client):
    response = post(client, "/v1/models/iris:predict", {"instances": [SETOSA, VIRGINICA]})
    assert response.status_code == 200
    assert [p["prediction"] for p in response.get_json()["predictions"]] == ["setosa", "virginica"]


def test_v1_sentiment_predict(client):
    response = post(client, "/v1/models/sentiment:predict", {"instances": [POSITIVE, NEGATIVE]})
    assert response.status_code == 200
    labels = [p["label"] for p in response.get_json()["predictions"]]
    assert labels == ["positive", "negative"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/models/iris:predict", {"instances": [[1, 2, 3]]}, "instances[0]"),
        ("/v1/models/iris:predict", {"instances": [[1, 2, 3, "4"]]}, "instances[0][3]"),
        ("/v1/models/iris:predict", {"instances": []}, "instances"),
        ("/v1/models/iris:predict", {"features": SETOSA}, "instances"),
        ("/v1/models/sentiment:predict", {"instances": ["ok", ""]}, "instances[1]"),
        ("/v1/models/sentiment:predict", {"instances": [1]}, "instances[0]"),
        ("/v1/models/sentiment:predict", {"instances": "a review"}, "instances"),
    ],
)
def test_v1_validation_matches_the_native_endpoints(client, path, body, field):
    assert_error(post(client, path, body), 400, field=field)


def test_v1_batch_limits_follow_the_settings(make_app):
    client = make_app(max_batch=1, sentiment_max_batch=1).test_client()
    assert_error(
        post(client, "/v1/models/iris:predict", {"instances": [SETOSA] * 2}), 400, field="instances"
    )
    assert_error(
        post(client, "/v1/models/sentiment:predict", {"instances": ["a", "b"]}),
        400,
        field="instances",
    )


def test_v1_unknown_model_is_404(client):
    assert_error(
        post(client, "/v1/models/resnet:predict", {"instances": [1]}),
        404,
        contains="no model named 'resnet'",
    )
    assert_error(client.get("/v1/models/resnet"), 404, contains="no model named 'resnet'")


def test_v1_model_status(client, make_app, tmp_path):
    iris = client.get("/v1/models/iris").get_json()
    assert iris["name"] == "iris" and iris["ready"] is True
    assert iris["class_names"] == ["setosa", "versicolor", "virginica"]
    sentiment = client.get("/v1/models/sentiment").get_json()
    assert sentiment["ready"] is True and sentiment["run_name"] == "tiny_lstm"
    missing = make_app(models_dir=tmp_path / "empty").test_client().get("/v1/models/sentiment")
    assert missing.status_code == 200
    assert missing.get_json()["ready"] is False
    assert "mlapi train imdb" in missing.get_json()["problem"]


def test_v1_no_model_is_503(make_app, tmp_path):
    client = make_app(models_dir=tmp_path / "empty").test_client()
    assert_error(post(client, "/v1/models/sentiment:predict", {"instances": ["good"]}), 503)


# One predictor for the API, `mlapi predict` and the comparison of runs.


def test_the_threshold_comes_from_the_model_metadata(sentiment_models_dir, tmp_path):
    from mlapi.serving.sentiment import DEFAULT_THRESHOLD, SentimentPredictor

    default = SentimentPredictor.load(sentiment_models_dir / "sentiment" / "1")
    assert default.threshold == DEFAULT_THRESHOLD == 0.5
    (answer,) = default.predict([POSITIVE])
    assert answer["label"] == "positive" and answer["score"] == default.predict_proba([POSITIVE])[0]

    shutil.copytree(sentiment_models_dir / "sentiment" / "1", tmp_path / "sentiment")
    metadata_file = tmp_path / "sentiment" / "metadata.json"
    metadata = json.loads(metadata_file.read_text())
    metadata["threshold"] = min(1.0, answer["score"] + 1e-3)  # just above this review's score
    metadata_file.write_text(json.dumps(metadata))
    strict = SentimentPredictor.load(tmp_path / "sentiment")
    assert strict.info()["threshold"] == metadata["threshold"]
    assert strict.predict([POSITIVE])[0]["label"] == "negative"
