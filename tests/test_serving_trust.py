"""The trust model: the sidecar's sha256 is an integrity check, not a security boundary, and
ALLOW_PICKLE=0 makes the server refuse pickles (Iris from ONNX only)."""

from __future__ import annotations

import pickle
import shutil

import pytest

from mlapi.artifacts import write_sidecar
from mlapi.errors import MlapiError
from mlapi.serving.settings import ServingSettings


class RunsCodeWhenLoaded:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickling creates the marker file


@pytest.fixture
def hostile_pickle(tmp_path):
    """A modelo.pkl that runs code, with a sidecar that matches it (anyone who can write one
    can write the other)."""
    path = tmp_path / "modelo.pkl"
    path.write_bytes(pickle.dumps(RunsCodeWhenLoaded(tmp_path / "payload-ran")))
    write_sidecar(path, class_names=["a", "b", "c"])
    return path


def test_a_matching_sidecar_does_not_make_a_pickle_safe(make_app, hostile_pickle):
    make_app(modelo_path=hostile_pickle)  # ALLOW_PICKLE defaults to 1, as the seed's server
    assert (hostile_pickle.parent / "payload-ran").exists()  # hence the README's Trust model


def test_allow_pickle_0_never_opens_a_pickle(make_app, hostile_pickle):
    client = make_app(modelo_path=hostile_pickle, allow_pickle=False).test_client()
    assert not (hostile_pickle.parent / "payload-ran").exists()
    ready = client.get("/ready")
    assert ready.status_code == 503
    assert "ALLOW_PICKLE=0 refuses modelo.pkl" in ready.get_json()["error"]["message"]


def test_allow_pickle_0_serves_iris_from_onnx(make_app, iris_model_path, tmp_path):
    for name in ("modelo.onnx", "modelo.onnx.json"):
        shutil.copy(iris_model_path.parent / name, tmp_path / name)  # no modelo.pkl at all
    client = make_app(modelo_path=tmp_path / "modelo.pkl", allow_pickle=False).test_client()
    answer = client.post("/predict", json={"features": [5.1, 3.5, 1.4, 0.2]})
    assert answer.status_code == 200 and answer.get_json()["prediction"] == "setosa"
    iris = next(m for m in client.get("/models").get_json()["models"] if m["name"] == "iris")
    assert iris["backend"] == "onnx"


@pytest.mark.parametrize(("raw", "value"), [("0", False), ("1", True), ("false", False)])
def test_allow_pickle_from_the_environment(raw, value):
    assert ServingSettings.from_env(env={"ALLOW_PICKLE": raw}).allow_pickle is value


def test_allow_pickle_says_what_is_allowed():
    with pytest.raises(MlapiError, match="ALLOW_PICKLE must be 0 or 1, got 'maybe'"):
        ServingSettings.from_env(env={"ALLOW_PICKLE": "maybe"})
