"""Hostile input, generated: no request body yields a 500, an HTML page, or an undocumented answer.

Two generators: schemathesis drives every operation of /openapi.json in-process (valid and
invalid data, checked against the documented responses), and hypothesis throws arbitrary JSON
and bytes at every POST endpoint. Then the nasty cases by hand: huge, deeply nested, not UTF-8,
NaN/Infinity.
"""

import io
import json

import pytest
import schemathesis
from helpers.api import SETOSA
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from mlapi.serving.schemas import ErrorResponse

POST_ENDPOINTS = [
    "/predict",
    "/sentiment",
    "/v1/models/iris:predict",
    "/v1/models/sentiment:predict",
]
FAST = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=6)
        | st.dictionaries(
            st.sampled_from(["features", "instances", "text", "texts", "x"]) | st.text(max_size=8),
            children,
            max_size=4,
        )
    ),
    max_leaves=25,
)


def assert_documented(response):
    """JSON always; 200 or a client error in the shared error shape; never a 5xx."""
    assert response.status_code < 500, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    if response.status_code >= 400:
        error = ErrorResponse.model_validate(response.get_json()).error
        assert error.status == response.status_code
        assert error.message


@pytest.fixture(scope="module")
def hostile_client(iris_model_path, sentiment_models_dir):
    from mlapi.serving import create_app
    from mlapi.serving.settings import ServingSettings

    settings_ = ServingSettings.from_env(
        env={}, modelo_path=iris_model_path, models_dir=sentiment_models_dir
    )
    return create_app(settings_).test_client()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_schemathesis_every_operation(make_app, mode):
    schema = schemathesis.openapi.from_wsgi("/openapi.json", make_app())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and operation.method.upper() == "GET":
            continue  # GET operations take no input to make invalid

        @given(case=operation.as_strategy(generation_mode=mode))
        @FAST
        def check(case):
            case.call_and_validate()

        check()


@pytest.mark.parametrize("path", POST_ENDPOINTS)
@given(body=json_values)
@FAST
def test_arbitrary_json_bodies(hostile_client, path, body):
    data = json.dumps(body, allow_nan=True)
    response = hostile_client.post(path, data=data, content_type="application/json")
    assert_documented(response)
    assert response.status_code in (200, 400)


@pytest.mark.parametrize("path", POST_ENDPOINTS)
@given(data=st.binary(max_size=200))
@FAST
def test_arbitrary_bytes(hostile_client, path, data):
    response = hostile_client.post(path, data=data, content_type="application/json")
    assert_documented(response)
    assert response.status_code in (200, 400)


@pytest.mark.parametrize("path", POST_ENDPOINTS)
@given(content_type=st.text(max_size=30).filter(lambda t: "\n" not in t and "\r" not in t))
@FAST
def test_arbitrary_content_types(hostile_client, path, content_type):
    response = hostile_client.post(
        path, data=json.dumps({"features": SETOSA}), headers={"Content-Type": content_type}
    )
    assert_documented(response)


HAND_MADE = {
    "deeply nested arrays": b"[" * 50_000 + b"]" * 50_000,
    "deeply nested objects": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "not UTF-8": b'{"text": "\xff\xfe caf\xe9"}',
    "UTF-16 with BOM": '{"text": "good"}'.encode("utf-16"),
    "lone surrogate escape": b'{"text": "\\ud800 great"}',
    "NaN": b'{"features": [NaN, 1, 2, 3]}',
    "Infinity": b'{"instances": [[Infinity, 1, 2, 3]]}',
    "-Infinity": b'{"features": [-Infinity, 1, 2, 3]}',
    "huge exponent": b'{"features": [1e999999, 1, 2, 3]}',
    "huge integer": b'{"features": [' + b"9" * 5000 + b", 1, 2, 3]}",
    "null bytes": b'{"text": "\x00\x00"}',
    "duplicate keys": b'{"features": [1,2,3,4], "features": "x"}',
    "trailing garbage": b'{"features": [1,2,3,4]} xyz',
    "empty body": b"",
    "whitespace body": b"   \n ",
    "many instances": json.dumps({"instances": [SETOSA] * 5000}).encode(),
    "huge string in text": json.dumps({"text": "a" * 900_000}).encode(),
}


@pytest.mark.parametrize("path", POST_ENDPOINTS)
@pytest.mark.parametrize("name", list(HAND_MADE))
def test_hand_made_hostile_bodies(hostile_client, path, name):
    response = hostile_client.post(path, data=HAND_MADE[name], content_type="application/json")
    assert_documented(response)
    assert response.status_code in (200, 400)


@pytest.mark.parametrize("path", POST_ENDPOINTS)
def test_body_over_the_limit_is_413(hostile_client, path):
    response = hostile_client.post(
        path, data=b" " * (1 << 20) + b"{}", content_type="application/json"
    )
    assert_documented(response)
    assert response.status_code == 413


def post_chunked(client, path, body: bytes):
    """A body without Content-Length, as a chunked request reaches the app."""
    return client.post(
        path,
        input_stream=io.BytesIO(body),
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )


@pytest.mark.parametrize(
    "body",
    [
        b"[" + b"1," * (1 << 20) + b"1]",
        json.dumps({"features": SETOSA}).encode() + b" " * (1 << 20) + b"garbage",
    ],
    ids=["2MiB", "valid-object-then-more"],
)
def test_a_chunked_body_over_the_limit_is_413_never_parsed(hostile_client, body):
    # The worker refuses these before the app (tests/test_gunicorn_slow_clients.py); this is
    # the app's own guard, for `python app.py` and any other server.
    response = post_chunked(hostile_client, "/predict", body)
    assert_documented(response)
    assert response.status_code == 413


def test_a_chunked_body_within_the_limit_is_read(hostile_client):
    response = post_chunked(hostile_client, "/predict", json.dumps({"features": SETOSA}).encode())
    assert response.status_code == 200


MAX_ERROR_BYTES = 4096
BIG_ERRORS = {
    "60,000 unknown keys": json.dumps({f"k{i}": 1 for i in range(60_000)}).encode(),
    "one 500,000-character key": json.dumps({"k" * 500_000: 1}).encode(),
    "20,000 bad instances": json.dumps({"instances": [["x"] * 4] * 5000}).encode(),
    "deeply nested field path": json.dumps({"instances": [[[[[1]]]]] * 9}).encode(),
}


@pytest.mark.parametrize("path", POST_ENDPOINTS)
@pytest.mark.parametrize("name", [*BIG_ERRORS, *HAND_MADE])
def test_every_error_answer_stays_small(hostile_client, path, name):
    data = BIG_ERRORS.get(name, HAND_MADE.get(name))
    response = hostile_client.post(path, data=data, content_type="application/json")
    assert_documented(response)
    assert len(response.get_data()) <= MAX_ERROR_BYTES


def test_a_validation_error_lists_a_few_problems_and_counts_the_rest(hostile_client):
    body = {f"k{i}": 1 for i in range(60_000)}
    error = hostile_client.post("/predict", json=body).get_json()["error"]
    assert error["message"].count("is not an accepted field") == 3
    assert error["message"].endswith("; and 59,997 more problems")


def test_a_404_for_a_long_path_stays_small(hostile_client):
    response = hostile_client.get("/" + "a" * 8000)
    assert response.status_code == 404 and len(response.get_data()) <= MAX_ERROR_BYTES
