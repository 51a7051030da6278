"""TF-IDF + logistic regression and NBSVM: features, C chosen on val only, same split as
the neural runs."""

import numpy as np
import pytest
from helpers.imdb import make_imdb_tree, tiny_counts
from helpers.reviews import tiny_reviews
from scipy import sparse

from mlapi import baselines
from mlapi.data import imdb
from mlapi.text import tokenize


def test_analyzer_adds_bigrams_to_the_shared_tokens():
    assert baselines.unigrams_and_bigrams("Great<br />film!") == ["great", "film", "great film"]
    assert baselines.unigrams_and_bigrams(["a", "b"]) == ["a", "b", "a b"]  # pre-tokenized


def test_nb_features_scale_by_the_log_count_ratio():
    x = sparse.csr_matrix(np.array([[1, 0, 1], [1, 0, 0], [0, 1, 1], [0, 1, 0]]))
    y = np.array([1, 1, 0, 0])
    nb = baselines.NBFeatures(alpha=1.0).fit(x, y)
    p = 1 + np.array([2, 0, 1])
    q = 1 + np.array([0, 2, 1])
    np.testing.assert_allclose(nb.ratio_, np.log((p / p.sum()) / (q / q.sum())))
    np.testing.assert_allclose(nb.transform(x).toarray(), x.toarray() * nb.ratio_)


@pytest.mark.parametrize("name", baselines.BASELINES)
def test_each_baseline_learns_and_picks_c_on_validation(name):
    train_texts, y_train = tiny_reviews(200, seed=1)
    val_texts, y_val = tiny_reviews(80, seed=2)
    fit = baselines.fit_baseline(name, (train_texts, y_train), (val_texts, y_val), (0.01, 1.0))
    assert set(fit.val_accuracy_by_c) == {0.01, 1.0}
    assert fit.val_accuracy == max(fit.val_accuracy_by_c.values())
    assert fit.val_accuracy_by_c[fit.c] == fit.val_accuracy
    assert fit.val_accuracy > 0.9
    probabilities = baselines.predict_proba(fit.pipeline, ["a superb film, loved it"])
    assert probabilities.shape == (1,) and probabilities[0] > 0.5  # raw text works
    assert baselines.parameter_count(fit.pipeline) == fit.pipeline[-1].coef_.size + 1
    with pytest.raises(ValueError, match="baseline must be one of"):
        baselines.make_pipeline("svm", 1.0)


def test_baselines_use_the_neural_runs_split(tmp_path, monkeypatch):
    root = make_imdb_tree(tmp_path / "data", n_per_label=30, n_unsup=0)
    monkeypatch.setattr(imdb, "EXPECTED_COUNTS", tiny_counts(30))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    splits = baselines.load_splits(root, val_fraction=0.2, seed=7)
    encoded = imdb.load_encoded(
        root, num_words=100, maxlen=10, padding="pre", truncating="pre", val_fraction=0.2, seed=7
    )
    reviews = imdb.load_split(root, "train")
    assert splits.val_texts == [reviews[i].text for i in encoded.val_index]
    assert splits.train[0] == [tokenize(reviews[i].text) for i in encoded.train_index]
    np.testing.assert_array_equal(splits.val[1], encoded.y_val)
    assert len(splits.test[1]) == 60

    metrics, pipeline = baselines.run_baseline("nbsvm", splits)
    assert metrics["n_train"] == 48 and metrics["n_val"] == 12 and metrics["n_test"] == 60
    assert metrics["train_val_gap"] == pytest.approx(
        metrics["train_accuracy"] - metrics["val_accuracy"]
    )
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert metrics["parameters"] == baselines.parameter_count(pipeline)
