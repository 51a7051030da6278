"""Every architecture trains a step on tiny data and exports to ONNX with parity; pooling
ignores padding; the pieces behind --pooling, --num-layers, --recurrent-dropout behave."""

import json

import numpy as np
import pytest
import torch
from helpers.imdb import make_imdb_tree, tiny_counts

from mlapi import export
from mlapi.cli import main
from mlapi.data import imdb
from mlapi.models.cnn import CNNClassifier
from mlapi.models.lstm import LSTMClassifier
from mlapi.models.names import ARCHS
from mlapi.models.pooling import padding_mask, pool
from mlapi.models.recurrent import RecurrentClassifier
from mlapi.models.registry import build_network, count_parameters
from mlapi.models.transformer import TransformerClassifier
from mlapi.serving.sentiment import SentimentPredictor
from mlapi.training.config import ExperimentConfig
from mlapi.training.loop import FitConfig, fit, predict_proba
from mlapi.versions import served_artifact

VOCAB, MAXLEN = 40, 16
ONE_EPOCH = FitConfig(batch_size=32, epochs=1, learning_rate=2e-4, clipnorm=1.0, seed=42)


def tiny_config(**changes) -> ExperimentConfig:
    values = dict(vocab_size=VOCAB, maxlen=MAXLEN, embed_dim=8, hidden_size=6, heads=2)
    return ExperimentConfig(**(values | changes))


def tiny_data(n: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pre-padded ids whose label is whether token 2 or token 3 dominates."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = np.zeros((n, MAXLEN), dtype=np.int64)
    for row, label in enumerate(y):
        length = rng.integers(4, MAXLEN + 1)
        tokens = rng.integers(4, VOCAB, length)
        tokens[rng.random(length) < 0.4] = 3 if label else 2
        x[row, MAXLEN - length :] = tokens
    return x, y


CASES = [(arch, "auto") for arch in ARCHS] + [("bigru", "maxmean"), ("transformer", "max")]


@pytest.mark.parametrize("arch, pooling", CASES)
def test_each_arch_trains_a_step_and_exports_with_parity(arch, pooling, tmp_path):
    torch.manual_seed(0)
    config = tiny_config(arch=arch, pooling=pooling, num_layers=2 if arch == "bigru" else 1)
    network = build_network(config, VOCAB)
    before = {k: v.clone() for k, v in network.state_dict().items()}
    x, y = tiny_data()
    history = fit(network, (x, y), (x, y), ONE_EPOCH, progress=False)
    assert np.isfinite(history.metric("loss")[0])
    changed = [k for k, v in network.state_dict().items() if not torch.equal(v, before[k])]
    assert "embedding.weight" in changed and any(k.startswith("head") for k in changed)

    path = tmp_path / "model.onnx"
    export.export_onnx(network, path)
    assert export.check_parity(network, path, x) <= export.PARITY_TOLERANCE  # also a shorter seq
    single = x[:1, -5:]  # one review, 5 tokens: both axes are dynamic
    np.testing.assert_allclose(
        export.onnx_probabilities(path, single), predict_proba(network, single), atol=1e-5
    )


def test_registry_picks_the_seed_lstm_only_for_its_recipe():
    assert isinstance(build_network(tiny_config(), VOCAB), LSTMClassifier)
    assert isinstance(build_network(tiny_config(pooling="last"), VOCAB), LSTMClassifier)
    fused = build_network(tiny_config(pooling="max"), VOCAB)
    assert isinstance(fused, RecurrentClassifier) and isinstance(fused.rnn, torch.nn.LSTM)
    bigru = build_network(tiny_config(arch="bigru", num_layers=2), VOCAB)
    assert isinstance(bigru.rnn, torch.nn.GRU) and bigru.rnn.bidirectional
    assert bigru.rnn.num_layers == 2
    assert isinstance(build_network(tiny_config(arch="cnn"), VOCAB), CNNClassifier)
    transformer = build_network(tiny_config(arch="transformer"), VOCAB)
    assert isinstance(transformer, TransformerClassifier)
    assert transformer.position.num_embeddings == MAXLEN
    assert count_parameters(transformer)["total"] == sum(
        p.numel() for p in transformer.parameters()
    )


@pytest.mark.parametrize("mode", ["max", "mean", "maxmean"])
def test_pooling_ignores_padded_positions(mode):
    outputs = torch.randn(2, 5, 3)
    ids = torch.tensor([[0, 0, 7, 8, 9], [0, 0, 0, 0, 0]])
    mask = padding_mask(ids)
    pooled = pool(outputs, mask, mode)
    noisy = outputs.clone()
    noisy[:, :2] = 1e3  # padding positions: must not matter
    torch.testing.assert_close(pool(noisy, mask, mode), pooled)
    real = outputs[0, 2:]
    expected = {"max": real.amax(0), "mean": real.mean(0)}
    expected["maxmean"] = torch.cat([expected["max"], expected["mean"]])
    torch.testing.assert_close(pooled[0], expected[mode])
    assert torch.all(pooled[1] == 0)  # an empty review pools to zeros


def test_cnn_and_transformer_ignore_extra_leading_padding():
    """With masked pooling (and masked attention), more padding changes nothing for the
    CNN (when the padding embedding is zero, as pretrained matrices make it) and for the
    Transformer (checked with its padding at the end, so positions stay the same)."""
    torch.manual_seed(0)
    x = torch.tensor([[0, 0, 5, 6, 7, 8]])
    cnn = CNNClassifier(VOCAB, embed_dim=8, hidden_size=4, pooling="max").eval()
    with torch.no_grad():
        cnn.embedding.weight[0] = 0.0
    longer = torch.tensor([[0, 0, 0, 0, 0, 5, 6, 7, 8]])
    torch.testing.assert_close(cnn(x), cnn(longer))
    transformer = TransformerClassifier(
        VOCAB, maxlen=12, embed_dim=8, hidden_size=8, heads=2, pooling="mean"
    ).eval()
    post = torch.tensor([[5, 6, 7, 8, 0, 0]])
    torch.testing.assert_close(transformer(post), transformer(post[:, :4]))


def test_weight_drop_is_random_in_training_only_and_keeps_the_weights():
    torch.manual_seed(0)
    network = RecurrentClassifier(
        VOCAB, cell="gru", embed_dim=8, hidden_size=6, pooling="mean",
        dropout=0.0, recurrent_dropout=0.5,
    )  # fmt: skip
    x = torch.as_tensor(tiny_data(4)[0])
    weights = network.rnn.weight_hh_l0.detach().clone()
    network.train()
    assert not torch.equal(network(x), network(x))
    assert torch.equal(network.rnn.weight_hh_l0, weights)
    network.eval()
    torch.testing.assert_close(network(x), network(x))


def test_pretrained_embeddings_initialise_and_frozen_ones_stay(tmp_path):
    matrix = np.random.default_rng(0).normal(size=(VOCAB, 8)).astype(np.float32)
    matrix[0] = 0.0  # padding
    for arch in ("gru", "lstm"):
        frozen = build_network(
            tiny_config(arch=arch, embeddings="word2vec", embeddings_mode="frozen"), VOCAB, matrix
        )
        np.testing.assert_array_equal(frozen.embedding.weight.detach().numpy(), matrix)
        x, y = tiny_data()
        fit(frozen, (x, y), None, ONE_EPOCH, progress=False)
        np.testing.assert_array_equal(frozen.embedding.weight.detach().numpy(), matrix)
    tuned = build_network(tiny_config(arch="gru", embeddings="word2vec"), VOCAB, matrix)
    fit(tuned, tiny_data(), None, ONE_EPOCH, progress=False)
    assert not np.array_equal(tuned.embedding.weight.detach().numpy(), matrix)
    with pytest.raises(ValueError, match="pretrained embeddings"):
        build_network(tiny_config(arch="gru", embeddings="word2vec"), VOCAB, matrix[:, :4])


def test_new_settings_name_the_run_and_round_trip_as_flags():
    config = ExperimentConfig(
        arch="bigru", pooling="maxmean", num_layers=2, embeddings="/data/glove.6B.100d.txt",
        embeddings_mode="frozen",
    )  # fmt: skip
    name = config.run_name
    assert name.startswith("imdb_bigru__")
    assert "poolmaxmean" in name and "layers2" in name and "preglove.6B.100d" in name
    assert "trainfrozen" in name and "/" not in name
    assert ExperimentConfig(embeddings="word2vec").run_name.endswith("__preword2vec")
    import argparse

    from mlapi.errors import ConfigError
    from mlapi.training.config import add_config_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    assert config_from_args(parser.parse_args(config.cli_args())) == config
    with pytest.raises(ConfigError, match="--pooling must be one of auto, last, .*'median'"):
        config_from_args(parser.parse_args(["--pooling", "median"]))
    with pytest.raises(ConfigError, match=r"--heads must be a divisor of --embed-dim \(10\)"):
        ExperimentConfig(arch="transformer", embed_dim=10, heads=4)


@pytest.fixture()
def tiny_imdb_with_unsup(tmp_path, monkeypatch):
    root = make_imdb_tree(tmp_path / "data", n_per_label=40, n_unsup=30)
    monkeypatch.setattr(imdb, "EXPECTED_COUNTS", tiny_counts(40, 30))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("IMDB_DATA", raising=False)
    return root


def test_train_a_gru_with_word2vec_then_serve_it(tiny_imdb_with_unsup, tmp_path):
    """`mlapi train imdb --arch gru --embeddings word2vec` installs a model that the
    server's predictor loads with no code change."""
    config = ExperimentConfig(
        arch="gru", pooling="maxmean", embeddings="word2vec", vocab_size=100, maxlen=24,
        embed_dim=8, hidden_size=6, epochs=2, batch_size=16, lr=1e-2, recurrent_dropout=0.0,
    )  # fmt: skip
    models = tmp_path / "models"
    argv = ["train", "imdb", "--data", str(tiny_imdb_with_unsup), "--out", str(tmp_path / "out")]
    assert main([*argv, "--models-dir", str(models), "--quiet", *config.cli_args()]) == 0
    predictor = SentimentPredictor.load(served_artifact(models, "sentiment"))
    assert predictor.metadata["arch"] == "gru"
    assert predictor.metadata["run_name"] == config.run_name
    probabilities = predictor.predict_proba(["a great wonderful film", "awful and boring"])
    assert probabilities.shape == (2,) and np.all((probabilities >= 0) & (probabilities <= 1))
    report = (tmp_path / "out" / f"{config.run_name}_report.md").read_text()
    assert "GRU(6)" in report and "maxmean pooling" in report and "word2vec" in report
    saved = json.loads((tmp_path / "out" / f"{config.run_name}_config.json").read_text())
    assert ExperimentConfig.from_dict(saved["config"]) == config
