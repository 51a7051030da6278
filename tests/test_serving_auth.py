"""Optional API key: prediction endpoints need it when API_KEY is set; /health stays open."""

import pytest
from helpers.api import SETOSA, assert_error, post

KEY = "s3cret-key"
PROTECTED = [
    ("/predict", {"features": SETOSA}),
    ("/sentiment", {"text": "A wonderful film."}),
    ("/v1/models/iris:predict", {"instances": [SETOSA]}),
    ("/v1/models/sentiment:predict", {"instances": ["A wonderful film."]}),
]


@pytest.fixture
def locked(make_app):
    return make_app(api_key=KEY).test_client()


@pytest.mark.parametrize(("path", "body"), PROTECTED)
def test_prediction_endpoints_refuse_without_the_key(locked, path, body):
    response = post(locked, body, path=path)
    assert_error(response, 401, contains="Authorization: Bearer")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("path", "body"), PROTECTED)
@pytest.mark.parametrize(
    "headers",
    [{"Authorization": f"Bearer {KEY}"}, {"authorization": f"bearer {KEY}"}, {"X-API-Key": KEY}],
)
def test_prediction_endpoints_accept_the_key(locked, path, body, headers):
    response = locked.post(path, json=body, headers=headers)
    assert response.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {KEY}"},
        {"Authorization": "Bearer "},
        {"X-API-Key": KEY + "x"},
        {"X-API-Key": ""},
    ],
)
def test_wrong_keys_are_refused(locked, headers):
    response = locked.post("/predict", json={"features": SETOSA}, headers=headers)
    assert_error(response, 401)


def test_key_is_checked_before_the_body(locked):
    response = locked.post("/predict", data="not json", content_type="text/plain")
    assert_error(response, 401)


@pytest.mark.parametrize("path", ["/health", "/ready", "/models", "/openapi.json", "/"])
def test_open_endpoints_stay_open(locked, path):
    assert locked.get(path).status_code == 200


def test_no_key_configured_means_no_check(client):
    assert post(client, {"features": SETOSA}).status_code == 200


def test_page_asks_for_the_key_only_when_one_is_set(locked, client):
    assert 'id="api-key"' in locked.get("/").get_data(as_text=True)
    assert 'id="api-key"' not in client.get("/").get_data(as_text=True)
