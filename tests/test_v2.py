"""The Open Inference Protocol (V2): in-process, then with the official tritonclient over a real
2-worker gunicorn (metadata, readiness, inference, errors)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.api import CLASSES, SETOSA, VIRGINICA

from mlapi.testing import server_env


def iris_request(rows, **extra):
    flat = [x for row in rows for x in row]
    tensor = {"name": "input", "datatype": "FP32", "shape": [len(rows), 4], "data": flat}
    return {"inputs": [tensor], **extra}


def sentiment_request(texts):
    return {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}]}


def v2_error(response, status: int, contains: str = "") -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"} and isinstance(body["error"], str)
    assert contains in body["error"]
    return body["error"]


def test_iris_infer_answers_named_typed_outputs(client):
    answer = client.post("/v2/models/iris/infer", json=iris_request([SETOSA, VIRGINICA], id="r1"))
    assert answer.status_code == 200
    body = answer.get_json()
    assert (body["model_name"], body["model_version"], body["id"]) == ("iris", "1", "r1")
    label, probabilities = body["outputs"]
    assert label == {
        "name": "label",
        "datatype": "BYTES",
        "shape": [2],
        "data": ["setosa", "virginica"],
    }
    assert (probabilities["name"], probabilities["datatype"]) == ("probabilities", "FP32")
    assert probabilities["shape"] == [2, 3]
    v1 = client.post("/predict", json={"instances": [SETOSA, VIRGINICA]}).get_json()
    expected = [p["probabilities"][c] for p in v1["predictions"] for c in CLASSES]
    assert probabilities["data"] == pytest.approx(expected)


def test_sentiment_infer_and_requested_outputs(client):
    body = sentiment_request(["A wonderful film.", "Dull and long."])
    body["outputs"] = [{"name": "probabilities"}]
    answer = client.post("/v2/models/sentiment/infer", json=body)
    assert answer.status_code == 200
    (probabilities,) = answer.get_json()["outputs"]
    assert probabilities["name"] == "probabilities" and probabilities["shape"] == [2, 2]
    rows = np.asarray(probabilities["data"]).reshape(2, 2)
    assert np.allclose(rows.sum(axis=1), 1.0, atol=1e-6)


def test_model_metadata_says_what_each_model_takes(client):
    iris = client.get("/v2/models/iris").get_json()
    assert iris["name"] == "iris" and iris["versions"] == ["1"]
    assert iris["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
    assert [o["name"] for o in iris["outputs"]] == ["label", "probabilities"]
    assert iris["outputs"][1]["shape"] == [-1, 3]
    assert iris["parameters"]["labels"] == CLASSES
    sentiment = client.get("/v2/models/sentiment/versions/1").get_json()
    assert sentiment["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]


@pytest.mark.parametrize(
    ("body", "contains"),
    [
        (
            {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": SETOSA}]},
            "inputs[0].name: the iris model takes one FP32 tensor named 'input'",
        ),
        (
            {"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 4], "data": SETOSA}]},
            "inputs[0].datatype: the iris model takes one FP32 tensor",
        ),
        (
            {"inputs": [{"name": "input", "datatype": "FP32", "shape": [4], "data": SETOSA}]},
            "inputs[0].shape: must be [N, 4]",
        ),
        (
            {"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 4], "data": SETOSA}]},
            "data has 4 values; shape [2, 4] needs 8",
        ),
        (iris_request([[1, 2, "x", 4]]), "inputs[0].data[2]: must be a number"),
        (iris_request([[1, 2, 3, 4]], extra=1), "extra: is not an accepted field"),
        ({"inputs": []}, "inputs: must have at least 1 items"),
    ],
)
def test_wrong_name_type_shape_or_data_is_a_400_that_says_which(client, body, contains):
    v2_error(client.post("/v2/models/iris/infer", json=body), 400, contains)


def test_v2_keeps_v1_limits(make_app):
    client = make_app(max_batch=2, sentiment_max_chars=10).test_client()
    v2_error(
        client.post("/v2/models/iris/infer", json=iris_request([SETOSA] * 3)),
        400,
        "1 <= N <= 2",
    )
    v2_error(
        client.post("/v2/models/sentiment/infer", json=sentiment_request(["x" * 11])),
        400,
        "inputs[0].data[0]: must have at most 10 characters",
    )
    v2_error(
        client.post("/v2/models/sentiment/infer", json=sentiment_request(["  "])),
        400,
        "must not be empty or only whitespace",
    )


def test_v2_errors_for_bodies_types_models_and_versions(client):
    v2_error(
        client.post("/v2/models/iris/infer", data="{nope", content_type="application/json"), 400
    )
    v2_error(client.post("/v2/models/iris/infer", data="x", content_type="text/plain"), 415)
    v2_error(client.post("/v2/models/nope/infer", json=iris_request([SETOSA])), 404, "'nope'")
    v2_error(client.get("/v2/models/nope"), 404)
    v2_error(client.get("/v2/models/iris/versions/7"), 404, "no version '7'")
    v2_error(client.get("/v2/models/iris/versions/7/ready"), 404)
    binary = {"Inference-Header-Content-Length": "10"}
    v2_error(
        client.post("/v2/models/iris/infer", data=b"{}", headers=binary), 400, "binary_data=False"
    )


def test_a_body_with_no_content_type_is_read_as_json(client):
    # The V2 clients (tritonclient) send none; V1 still asks for one.
    import json

    answer = client.post("/v2/models/iris/infer", data=json.dumps(iris_request([SETOSA])))
    assert answer.status_code == 200


def test_health_and_readiness(make_app, tmp_path):
    client = make_app().test_client()
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2/models/iris/ready").get_json()["ready"] is True
    assert client.get("/v2").get_json()["name"] == "mlapi"

    missing = make_app(models_dir=tmp_path, serve_models="iris,sentiment").test_client()
    v2_error(missing.get("/v2/health/ready"), 503, "sentiment")
    v2_error(missing.get("/v2/models/sentiment/ready"), 503, "not available")
    v2_error(missing.post("/v2/models/sentiment/infer", json=sentiment_request(["Hi"])), 503)


def test_api_key_guards_models_but_not_health(make_app):
    client = make_app(api_key="k").test_client()
    assert client.get("/v2/health/live").status_code == 200
    v2_error(client.get("/v2/models/iris"), 401)
    v2_error(client.post("/v2/models/iris/infer", json=iris_request([SETOSA])), 401)
    keyed = client.get("/v2/models/iris", headers={"X-API-Key": "k"})
    assert keyed.status_code == 200


def test_v1_models_lists_every_model(make_app, tmp_path):
    models = make_app().test_client().get("/v1/models").get_json()["models"]
    assert [(m["name"], m["ready"], m["version"]) for m in models] == [
        ("iris", True, "1"),
        ("sentiment", True, "1"),
    ]
    partial = make_app(models_dir=tmp_path).test_client().get("/v1/models").get_json()["models"]
    assert partial[1]["name"] == "sentiment" and partial[1]["ready"] is False


def test_openapi_covers_v2_v1_list_and_metrics(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    for model in ("iris", "sentiment"):
        for base in (f"/v2/models/{model}", f"/v2/models/{model}/versions/{{version}}"):
            assert {base, f"{base}/ready", f"{base}/infer"} <= set(paths)
    assert {"/v2", "/v2/health/live", "/v2/health/ready", "/v1/models", "/metrics"} <= set(paths)
    infer = paths["/v2/models/iris/infer"]["post"]
    assert {"200", "400", "404", "413", "415", "503"} <= set(infer["responses"])


# --- the official client against a real 2-worker gunicorn ------------------------------------


@pytest.fixture
def triton(start_gunicorn, iris_model_path, sentiment_models_dir):
    httpclient = pytest.importorskip("tritonclient.http")
    env = server_env(MODELO_PATH=str(iris_model_path), MODELS_DIR=str(sentiment_models_dir))
    base_url = start_gunicorn(env, "-w", "2")
    client = httpclient.InferenceServerClient(base_url.removeprefix("http://"))
    yield httpclient, client
    client.close()


@pytest.mark.slow
def test_tritonclient_health_metadata_and_readiness(triton):
    _, client = triton
    assert client.is_server_live() and client.is_server_ready()
    assert client.get_server_metadata()["name"] == "mlapi"
    for name in ("iris", "sentiment"):
        assert client.is_model_ready(name) and client.is_model_ready(name, "1")
        metadata = client.get_model_metadata(name)
        assert metadata["name"] == name and metadata["versions"] == ["1"]
    assert not client.is_model_ready("iris", "9")


@pytest.mark.slow
def test_tritonclient_infers_iris_and_sentiment(triton):
    httpclient, client = triton
    rows = np.asarray([SETOSA, VIRGINICA], dtype=np.float32)
    tensor = httpclient.InferInput("input", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=False)
    outputs = [
        httpclient.InferRequestedOutput(n, binary_data=False) for n in ("label", "probabilities")
    ]
    result = client.infer("iris", [tensor], outputs=outputs, request_id="7")
    assert [x.decode() if isinstance(x, bytes) else x for x in result.as_numpy("label")] == [
        "setosa",
        "virginica",
    ]
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (2, 3) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-6)
    assert result.get_response()["id"] == "7"

    texts = np.asarray(["A wonderful film.", "Dull."], dtype=object)
    text = httpclient.InferInput("text", [2], "BYTES")
    text.set_data_from_numpy(texts, binary_data=False)
    result = client.infer("sentiment", [text], model_version="1")
    assert result.as_numpy("probabilities").shape == (2, 2)
    assert result.get_response()["model_version"] == "1"


@pytest.mark.slow
def test_tritonclient_sees_protocol_errors(triton):
    httpclient, client = triton
    from tritonclient.utils import InferenceServerException

    wrong = httpclient.InferInput("pixels", [1, 4], "FP32")
    wrong.set_data_from_numpy(np.asarray([SETOSA], dtype=np.float32), binary_data=False)
    with pytest.raises(InferenceServerException, match="named 'input'") as caught:
        client.infer("iris", [wrong])
    assert caught.value.status() == "400"
    binary = httpclient.InferInput("input", [1, 4], "FP32")
    binary.set_data_from_numpy(np.asarray([SETOSA], dtype=np.float32))  # binary by default
    with pytest.raises(InferenceServerException, match="binary_data=False"):
        client.infer("iris", [binary])
    with pytest.raises(InferenceServerException, match="no model named"):
        client.get_model_metadata("resnet")
