"""Flask test-client tests of the Iris API: every success and error case of /predict."""

import json
import logging

import pytest
from helpers.api import CLASSES, SETOSA, VIRGINICA, assert_error, post


def test_single_prediction(client):
    response = post(client, {"features": SETOSA})
    assert response.status_code == 200
    answer = response.get_json()
    assert answer["prediction"] == "setosa"
    assert list(answer["probabilities"]) == CLASSES
    assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert max(answer["probabilities"], key=answer["probabilities"].get) == "setosa"


def test_batch_prediction_keeps_order(client):
    response = post(client, {"instances": [SETOSA, VIRGINICA, SETOSA]})
    assert response.status_code == 200
    predictions = response.get_json()["predictions"]
    assert [p["prediction"] for p in predictions] == ["setosa", "virginica", "setosa"]


def test_batch_limit_is_configurable(make_app):
    client = make_app(max_batch=2).test_client()
    assert post(client, {"instances": [SETOSA] * 2}).status_code == 200
    assert_error(
        post(client, {"instances": [SETOSA] * 3}), 400, field="instances", contains="at most 2"
    )


def test_empty_batch_is_rejected(client):
    assert_error(post(client, {"instances": []}), 400, field="instances", contains="at least 1")


@pytest.mark.parametrize(
    ("body", "contains"),
    [
        (b'{"features": [5.1, 3.5', "not valid JSON"),
        (b"", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid UTF-8"),
        (b"[5.1, 3.5, 1.4, 0.2]", "must be a JSON object, got an array"),
        (b'"features"', "must be a JSON object, got a string"),
        (b"42", "must be a JSON object, got a number"),
        (b"null", "must be a JSON object, got null"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_body_that_is_not_a_json_object(client, body, contains):
    assert_error(post(client, body), 400, contains=contains)


@pytest.mark.parametrize(
    ("body", "field", "contains"),
    [
        ({"feature": SETOSA}, "feature", "not an accepted field (accepted: features, instances)"),
        ({"features": "5.1 3.5 1.4 0.2"}, "features", "valid list"),
        (
            {"features": [5.1, 3.5, 1.4]},
            "features",
            "must have exactly 4 numbers (sepal_length, sepal_width, petal_length, petal_width)"
            ", got 3",
        ),
        (
            {"features": [5.1, 3.5, 1.4, 0.2, 1.0]},
            "features",
            "exactly 4 numbers (sepal_length, sepal_width, petal_length, petal_width), got 5",
        ),
        ({"features": [5.1, True, 1.4, 0.2]}, "features[1]", "must be a number"),
        ({"features": [5.1, "3.5", 1.4, 0.2]}, "features[1]", "must be a number"),
        ({"features": [5.1, None, 1.4, 0.2]}, "features[1]", "must be a number"),
        ({"features": [5.1, [3.5], 1.4, 0.2]}, "features[1]", "must be a number"),
        ({"features": [5.1, 3.5, 1.4, 3.5e38]}, "features[3]", "<= 3.402823e+38"),
        ({"features": None}, "features", "valid list"),
        ({"instances": [SETOSA, [1, 2, 3, "x"]]}, "instances[1][3]", "must be a number"),
    ],
)
def test_invalid_features(client, body, field, contains):
    assert_error(post(client, body), 400, field=field, contains=contains)


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_non_finite_numbers_in_raw_json(client, token):
    body = b'{"features": [5.1, ' + token + b", 1.4, 0.2]}"
    assert_error(post(client, body), 400, field="features[1]", contains="finite number")


@pytest.mark.parametrize(
    "body", [{}, {"features": SETOSA, "instances": [SETOSA]}], ids=["neither", "both"]
)
def test_exactly_one_of_features_and_instances(client, body):
    assert_error(post(client, body), 400, contains="exactly one of 'features'")


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=utf-8",
        "Application/JSON",
        "APPLICATION/JSON; CHARSET=UTF-8",
        "application/vnd.mlapi+json",
        "application/merge-patch+json",
    ],
)
def test_json_content_types_are_accepted(client, content_type):
    assert post(client, {"features": SETOSA}, content_type).status_code == 200


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/xml", "text/json", ""],
)
def test_other_content_types_get_415(client, content_type):
    error = assert_error(post(client, {"features": SETOSA}, content_type), 415)
    assert "Content-Type must be application/json" in error["message"]


def test_body_over_the_limit_gets_413_before_parsing(make_app):
    client = make_app(max_body_bytes=64).test_client()
    body = json.dumps({"instances": [SETOSA] * 10})
    assert len(body) > 64
    assert_error(post(client, body), 413, contains="larger than the limit of 64 bytes")
    assert post(client, {"features": SETOSA}).status_code == 200


def test_unknown_path_is_json_404(client):
    assert_error(client.get("/nowhere"), 404, contains="/nowhere")


def test_wrong_method_is_json_405(client):
    error = assert_error(client.get("/predict"), 405, contains="GET is not allowed on /predict")
    assert "POST" in error["message"]


def test_unexpected_error_is_generic_500_with_traceback_only_in_log(make_app, caplog):
    app = make_app()
    predictor = app.extensions["mlapi"].registry.get("iris")

    def explode(rows):
        raise RuntimeError("secret internal detail")

    predictor.predict = explode
    client = app.test_client()
    with caplog.at_level(logging.ERROR, logger="mlapi.serving"):
        response = post(client, {"features": SETOSA})
    error = assert_error(response, 500, contains="request id")
    assert "secret" not in response.get_data(as_text=True)
    assert error["request_id"] in error["message"]
    assert "secret internal detail" in caplog.text
    assert error["request_id"] in caplog.text


def test_no_model_gives_503_saying_how_to_train(make_app, tmp_path):
    client = make_app(modelo_path=tmp_path / "absent.pkl").test_client()
    error = assert_error(post(client, {"features": SETOSA}), 503)
    assert "python train_model.py" in error["message"]
    # Validation still comes first: a bad request is a 400 whatever the model state.
    assert_error(post(client, {"features": [1, 2]}), 400, field="features")


def test_request_id_is_echoed_when_safe_and_replaced_when_not(client):
    response = client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
    response = client.get("/health", headers={"X-Request-ID": "bad id; drop table"})
    assert len(response.headers["X-Request-ID"]) == 32
