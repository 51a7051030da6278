"""ONNX export: parity with PyTorch, dynamic axes, atomic install, verified loading."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from mlapi import export, versions
from mlapi.errors import ArtifactError
from mlapi.models.lstm import LSTMClassifier
from mlapi.serving.sentiment import SentimentPredictor
from mlapi.text import Vocabulary
from mlapi.training.loop import predict_proba

TEXTS = [
    "a wonderful film, truly great acting and a moving story",
    "terrible plot, awful acting, a boring waste of time",
    "great fun <br /> I loved it",
    "boring and bad",
    "",
]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    vocabulary = Vocabulary(num_words=50, maxlen=12).fit(TEXTS * 3)
    network = LSTMClassifier(vocabulary.size, embed_dim=8, hidden_size=4).eval()
    ids = np.random.default_rng(0).integers(0, vocabulary.size, size=(256, 12))
    return network, vocabulary, ids


def install(tiny, models_dir, run_name="run-a"):
    network, vocabulary, ids = tiny
    return export.export_sentiment_model(
        network,
        vocabulary,
        ids,
        models_dir,
        run_name=run_name,
        arch="lstm",
        metrics={"test_accuracy": 0.5},
        versions={"torch": torch.__version__},
    )


def test_onnx_matches_torch_at_any_batch_and_length(tiny, tmp_path):
    network, _, ids = tiny
    path = tmp_path / "m.onnx"
    export.export_onnx(network, path)
    assert export.check_parity(network, path, ids) <= export.PARITY_TOLERANCE
    for batch, length in ((1, 3), (5, 40)):
        x = ids[:batch, :length] if length <= ids.shape[1] else np.tile(ids[:batch], 4)[:, :length]
        got = export.onnx_probabilities(path, x)
        assert got.shape == (batch,) and got.dtype == np.float32
        np.testing.assert_allclose(got, predict_proba(network, x), atol=1e-5)


def test_install_writes_the_contract_directory(tiny, tmp_path):
    result = install(tiny, tmp_path / "models")
    directory = tmp_path / "models" / "sentiment" / "1"  # the first version
    assert result.directory == directory
    assert sorted(p.name for p in directory.iterdir()) == [
        "metadata.json", "model.onnx", "vocabulary.json"]  # fmt: skip
    meta = json.loads((directory / "metadata.json").read_text())
    assert meta["name"] == "sentiment" and meta["run_name"] == "run-a"
    assert meta["labels"] == ["negative", "positive"] and meta["arch"] == "lstm"
    assert set(meta["files"]) == {"model.onnx", "vocabulary.json"}
    assert meta["parity"]["reviews"] == 256 and meta["parity"]["max_abs_diff"] <= 1e-4
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["sentiment"]
    assert sorted(p.name for p in directory.parent.iterdir()) == [".lock", "1"]  # no staging left


def test_predictor_matches_the_torch_network_on_raw_texts(tiny, tmp_path):
    network, vocabulary, _ = tiny
    install(tiny, tmp_path)
    predictor = SentimentPredictor.load(tmp_path / "sentiment" / "1")
    got = predictor.predict_proba(TEXTS)
    np.testing.assert_allclose(got, predict_proba(network, vocabulary.encode(TEXTS)), atol=1e-5)
    labels = [answer["label"] for answer in predictor.predict(TEXTS)]
    assert labels == ["positive" if p >= 0.5 else "negative" for p in got]
    assert predictor.predict_proba([]).shape == (0,)
    with pytest.raises(TypeError):
        predictor.predict_proba("a single string is not a list of texts")


def test_a_failed_parity_check_installs_nothing(tiny, tmp_path, monkeypatch):
    install(tiny, tmp_path, run_name="old")
    before = {p.name: p.read_bytes() for p in (tmp_path / "sentiment" / "1").iterdir()}
    real = export.onnx_probabilities
    monkeypatch.setattr(export, "onnx_probabilities", lambda path, ids: real(path, ids) + 1e-3)
    with pytest.raises(ArtifactError, match="parity"):
        install(tiny, tmp_path, run_name="new")
    assert {p.name: p.read_bytes() for p in (tmp_path / "sentiment" / "1").iterdir()} == before
    assert sorted(p.name for p in (tmp_path / "sentiment").iterdir()) == [".lock", "1"]


def test_an_interrupted_export_keeps_the_old_model(tiny, tmp_path, monkeypatch):
    install(tiny, tmp_path, run_name="old")

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(versions, "_install_locked", interrupt)
    with pytest.raises(KeyboardInterrupt):
        install(tiny, tmp_path, run_name="new")
    assert SentimentPredictor.load(tmp_path / "sentiment" / "1").metadata["run_name"] == "old"
    assert sorted(p.name for p in (tmp_path / "sentiment").iterdir()) == [".lock", "1"]


def test_predictor_refuses_tampered_or_missing_files(tiny, tmp_path):
    install(tiny, tmp_path)
    directory = tmp_path / "sentiment" / "1"
    vocab = directory / "vocabulary.json"
    vocab.write_text(vocab.read_text().replace("great", "grate"))
    with pytest.raises(ArtifactError, match="vocabulary.json does not match"):
        SentimentPredictor.load(directory)
    vocab.unlink()
    with pytest.raises(ArtifactError, match="vocabulary.json is missing"):
        SentimentPredictor.load(directory)
    with pytest.raises(ArtifactError, match="no sentiment model"):
        SentimentPredictor.load(tmp_path / "nowhere")


def test_predictor_loads_without_importing_torch(tiny, tmp_path):
    install(tiny, tmp_path)
    code = (
        "import sys; from mlapi.serving.sentiment import SentimentPredictor;"
        f"p = SentimentPredictor.load({str(tmp_path / 'sentiment' / '1')!r});"
        "print(p.predict_proba(['great film'])[0]);"
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert 0.0 <= float(done.stdout) <= 1.0
