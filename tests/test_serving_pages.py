"""/health, /ready, /models, / and /openapi.json."""

import html
import re

import pytest


def test_health_is_always_ok(make_app, tmp_path):
    for app in (make_app(), make_app(modelo_path=tmp_path / "absent.pkl")):
        response = app.test_client().get("/health")
        assert response.status_code == 200
        assert response.get_json() == {"status": "ok"}


def test_models_describes_the_loaded_iris_model(client, iris_model_path):
    models = {m["name"]: m for m in client.get("/models").get_json()["models"]}
    iris = models["iris"]
    assert iris["loaded"] is True
    assert iris["class_names"] == ["setosa", "versicolor", "virginica"]
    assert iris["feature_names"] == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert 0.8 <= iris["holdout_accuracy"] <= 1.0
    assert len(iris["sha256"]) == 64
    assert iris["created_at"]


def test_models_explains_a_missing_model(make_app, tmp_path):
    client = make_app(modelo_path=tmp_path / "absent.pkl").test_client()
    iris = {m["name"]: m for m in client.get("/models").get_json()["models"]}["iris"]
    assert iris["loaded"] is False
    assert "train_model.py" in iris["problem"]


def test_ready_names_what_is_missing(make_app, tmp_path):
    client = make_app(modelo_path=tmp_path / "absent.pkl").test_client()
    response = client.get("/ready")
    assert response.status_code == 503
    assert "iris" in response.get_json()["error"]["message"]


def test_ready_with_both_models(client):
    assert client.get("/ready").get_json() == {"status": "ready", "models": ["iris", "sentiment"]}


def test_ready_with_iris_alone_when_no_sentiment_model_is_installed(make_app, tmp_path):
    # The first `make run`: Iris trained, no sentiment model. Ready, and /sentiment says why not.
    client = make_app(models_dir=tmp_path / "models").test_client()
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "models": ["iris"]}
    answer = client.post("/sentiment", json={"text": "Fine."})
    assert answer.status_code == 503 and "mlapi train imdb" in answer.get_json()["error"]["message"]


def test_an_empty_sentiment_folder_is_a_model_meant_to_be_served(make_app, tmp_path):
    (tmp_path / "models" / "sentiment").mkdir(parents=True)  # e.g. a volume mounted empty
    response = make_app(models_dir=tmp_path / "models").test_client().get("/ready")
    assert response.status_code == 503
    assert "sentiment: no sentiment model at" in response.get_json()["error"]["message"]


def test_serve_models_requires_each_listed_model(make_app, tmp_path):
    client = make_app(models_dir=tmp_path, serve_models="iris,sentiment").test_client()
    message = client.get("/ready").get_json()["error"]["message"]
    assert message.startswith("Not ready. sentiment: no sentiment model at")
    assert ";" not in message  # Iris is loaded: only the sentiment model is named


def test_serve_models_leaves_out_what_is_not_listed(make_app):
    client = make_app(serve_models="iris").test_client()  # a sentiment model is installed
    assert client.get("/ready").get_json() == {"status": "ready", "models": ["iris"]}
    answer = client.post("/sentiment", json={"text": "Fine."})
    assert answer.status_code == 503
    assert "does not serve it (SERVE_MODELS=iris)" in answer.get_json()["error"]["message"]
    assert client.post("/predict", json={"features": [5.1, 3.5, 1.4, 0.2]}).status_code == 200


def test_index_page_documents_endpoints_with_curl(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = html.unescape(response.get_data(as_text=True))
    for endpoint in (
        "/predict",
        "/sentiment",
        "/v1/models/",
        "/health",
        "/models",
        "/openapi.json",
    ):
        assert endpoint in page
    text = re.sub(r"<[^>]+>", "", page)  # the address sits in a span the script fills in
    post = "curl -s -X POST -H 'Content-Type: application/json' http://127.0.0.1:5000"
    assert f"""{post}/predict -d '{{"features": [5.1, 3.5, 1.4, 0.2]}}'""" in text
    assert f"{post}/sentiment -d" in text


def test_index_page_serves_its_own_assets(client):
    page = client.get("/").get_data(as_text=True)
    assert "https://" not in page and "http://cdn" not in page  # no external CDN
    for asset in ("/static/app.js", "/static/style.css"):
        assert asset in page
        assert client.get(asset).status_code == 200


def test_index_page_says_when_a_model_is_missing(make_app, tmp_path):
    page = make_app(models_dir=tmp_path / "empty").test_client().get("/").get_data(as_text=True)
    assert "Not available" in page and "mlapi train imdb" in page


@pytest.mark.parametrize("missing", ["sentiment", "iris"])
def test_a_missing_model_disables_its_form_and_says_why(make_app, tmp_path, missing):
    overrides = {"models_dir": tmp_path} if missing == "sentiment" else {"modelo_path": tmp_path}
    page = make_app(**overrides).test_client().get("/").get_data(as_text=True)
    other = {"sentiment": "iris", "iris": "sentiment"}[missing]
    status = f'<p id="{missing}-status" class="hint unavailable">Not available: '
    assert status in page
    assert f'<fieldset disabled aria-describedby="{missing}-status">' in page
    assert page.count("<fieldset disabled") == 1  # the other model's form stays enabled
    assert f'<p id="{other}-status" class="hint">' in page


def test_hints_hold_no_markup(make_app, tmp_path):
    # Model messages are plain text: the page shows them as they are, with no backticks.
    client = make_app(modelo_path=tmp_path / "absent.pkl", models_dir=tmp_path).test_client()
    page = html.unescape(client.get("/").get_data(as_text=True))
    for hint in re.findall(r'<p id="\w+-status" class="[^"]*">(.*?)</p>', page):
        assert "`" not in hint and "<" not in hint
    models = client.get("/models").get_json()["models"]
    assert all("`" not in model["problem"] for model in models)


@pytest.mark.parametrize("max_batch", [7, 1000])
def test_openapi_states_the_limits_the_server_enforces(make_app, max_batch):
    document = make_app(max_batch=max_batch).test_client().get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    operation = document["paths"]["/predict"]["post"]
    assert {"200", "400", "413", "415", "500", "503"} <= set(operation["responses"])
    schemas = document["components"]["schemas"]
    request = schemas["IrisPredictRequest"]
    assert request["properties"]["instances"]["maxItems"] == max_batch
    features = request["properties"]["features"]
    assert features["minItems"] == features["maxItems"] == 4
    assert features["items"]["type"] == "number"
    assert request["additionalProperties"] is False
    assert request["oneOf"] == [{"required": ["features"]}, {"required": ["instances"]}]
