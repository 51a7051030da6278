"""mlapi.data.imdb, loading and encoding: reviews with ids, ratings and labels; the seeded,
stratified validation split (mlapi.data.splits); the vocabulary fitted on the training
portion only; the test split encoded on request.

Every test runs in `imdb_sandbox` (tests/conftest.py): its own cache dir, tiny expected
counts, no network.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers.imdb import (
    N_PER_LABEL,
    N_UNSUP,
    cache_files,
    load_tiny,
)
from helpers.reviews import NEGATIVE_WORDS, POSITIVE_WORDS

from mlapi.data import imdb, splits
from mlapi.data.cache import cache_dir
from mlapi.errors import DataError
from mlapi.text import Vocabulary, tokenize

pytestmark = pytest.mark.usefixtures("imdb_sandbox")


# -- load --------------------------------------------------------------------------------------


def test_load_split_reads_ids_ratings_labels_and_text(imdb_tree):
    train = imdb.load_split(imdb_tree, "train")
    assert len(train) == 2 * N_PER_LABEL
    neg, pos = train[:N_PER_LABEL], train[N_PER_LABEL:]
    assert [r.label for r in train] == [0] * N_PER_LABEL + [1] * N_PER_LABEL  # neg first, then pos
    assert [r.id for r in neg] == list(range(N_PER_LABEL))  # numeric order, not 1, 10, 11, ...
    assert all(1 <= r.rating <= 4 for r in neg) and all(r.rating >= 7 for r in pos)
    first_pos = pos[0]
    file = next((imdb_tree / "train" / "pos").glob("0_*.txt"))
    assert first_pos.text == file.read_text() and file.name == f"0_{first_pos.rating}.txt"
    assert any(word in tokenize(first_pos.text) for word in POSITIVE_WORDS)
    assert not any(word in tokenize(first_pos.text) for word in NEGATIVE_WORDS)
    unsup = imdb.load_split(imdb_tree, "unsup")
    assert {(r.label, r.rating) for r in unsup} == {(-1, 0)} and len(unsup) == N_UNSUP
    assert len(imdb.load_split(imdb_tree, "test")) == 2 * N_PER_LABEL


def test_load_split_rejects_unknown_splits_and_missing_folders(imdb_tree):
    with pytest.raises(ValueError, match="split must be one of"):
        imdb.load_split(imdb_tree, "validation")
    for file in (imdb_tree / "test" / "pos").iterdir():
        file.unlink()
    (imdb_tree / "test" / "pos").rmdir()
    with pytest.raises(DataError, match="test/pos/ is missing"):
        imdb.load_split(imdb_tree, "test")


# -- split -------------------------------------------------------------------------------------


def test_validation_split_is_a_stratified_partition():
    labels = np.array([0] * 12_500 + [1] * 12_500)
    train_idx, val_idx = splits.validation_split(labels, 0.2, seed=42)
    assert len(val_idx) == 5_000 and len(train_idx) == 20_000
    assert np.bincount(labels[val_idx]).tolist() == [2_500, 2_500]
    assert sorted(np.concatenate([train_idx, val_idx]).tolist()) == list(range(25_000))
    assert not np.array_equal(val_idx, np.sort(val_idx))  # shuffled, like Keras' imdb arrays


def test_validation_split_is_deterministic_per_seed():
    labels = np.array([0, 1] * 50 + [1] * 30)
    first = splits.validation_split(labels, 0.2, seed=7)
    again = splits.validation_split(labels, 0.2, seed=7)
    other = splits.validation_split(labels, 0.2, seed=8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(np.sort(first[1]), np.sort(other[1]))
    assert np.bincount(labels[first[1]]).tolist() == [10, 16]  # 26 = round(0.2 * 130), 50:80


def test_validation_split_edges():
    labels = np.array([0, 0, 0, 1, 1])
    train_idx, val_idx = splits.validation_split(labels, 0.0, seed=42)
    assert len(val_idx) == 0 and sorted(train_idx) == [0, 1, 2, 3, 4]
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError):
            splits.validation_split(labels, bad, seed=42)


def test_stratified_sample_takes_exactly_n():
    labels = np.array([0] * 70 + [1] * 30)
    sample = splits.stratified_sample(labels, 11, seed=3)
    assert len(sample) == len(set(sample.tolist())) == 11
    assert np.bincount(labels[sample]).tolist() == [8, 3]


# -- encode ------------------------------------------------------------------------------------


def test_load_encoded_shapes_dtypes_and_split(imdb_tree):
    data = load_tiny(imdb_tree)
    n_val = round(0.2 * 2 * N_PER_LABEL)
    assert data.x_train.shape == (2 * N_PER_LABEL - n_val, 30) and data.x_val.shape == (n_val, 30)
    assert data.x_train.dtype == np.int32 and data.x_val.dtype == np.int32
    assert np.bincount(data.y_val).tolist() == [n_val // 2, n_val // 2]
    assert data.vocabulary.size == 50 and data.vocabulary.maxlen == 30
    assert data.x_test is None and data.texts_test is None  # the test split only on request
    assert not data.from_cache
    train = imdb.load_split(imdb_tree, "train")
    assert data.y_train.tolist() == [train[i].label for i in data.train_index]
    assert set(data.train_index.tolist()).isdisjoint(data.val_index.tolist())


def test_vocabulary_is_fitted_on_the_training_portion_only(imdb_tree):
    train = imdb.load_split(imdb_tree, "train")
    data = load_tiny(imdb_tree, num_words=1000, maxlen=30)
    expected = Vocabulary(num_words=1000, maxlen=30).fit([train[i].text for i in data.train_index])
    assert data.vocabulary == expected
    assert (
        data.x_train[0].tolist() == expected.encode([train[data.train_index[0]].text])[0].tolist()
    )


def test_a_word_seen_only_in_validation_or_test_reviews_is_out_of_vocabulary(imdb_tree):
    first = load_tiny(imdb_tree, num_words=1000, maxlen=30, cache=False)
    train = imdb.load_split(imdb_tree, "train")
    val_review = train[first.val_index[0]]
    folder = "pos" if val_review.label else "neg"
    val_file = imdb_tree / "train" / folder / f"{val_review.id}_{val_review.rating}.txt"
    val_file.write_text(val_review.text + " zyzzyvaval")
    test_file = next((imdb_tree / "test" / "neg").iterdir())
    test_file.write_text(test_file.read_text() + " zyzzyvatest")
    data = load_tiny(imdb_tree, num_words=1000, maxlen=30, cache=False)
    assert np.array_equal(data.val_index, first.val_index)
    assert "zyzzyvaval" not in data.vocabulary.word_index
    assert "zyzzyvatest" not in data.vocabulary.word_index
    assert data.x_val[0, -1] == Vocabulary.OOV  # the appended word, 'pre' truncation keeps it


def test_limit_uses_a_stratified_subset(imdb_tree):
    data = load_tiny(imdb_tree, num_words=50, maxlen=10, limit=10)
    assert len(data.x_train) + len(data.x_val) == 10
    assert np.bincount(np.concatenate([data.y_train, data.y_val])).tolist() == [5, 5]
    with pytest.raises(DataError, match="limit must be between 2 and 40"):
        load_tiny(imdb_tree, limit=41)


def test_invalid_settings_fail_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="padding"):
        load_tiny(tmp_path / "does-not-matter", padding="middle")


def test_test_split_is_encoded_with_the_given_vocabulary_and_cached(imdb_tree):
    data = load_tiny(imdb_tree)
    x_test, y_test, texts = imdb.load_encoded_test(imdb_tree, data.vocabulary)
    test = imdb.load_split(imdb_tree, "test")
    assert x_test.shape == (2 * N_PER_LABEL, 30) and x_test.dtype == np.int32
    assert y_test.tolist() == [r.label for r in test]
    assert texts == [r.text for r in test]
    assert x_test.tolist() == data.vocabulary.encode(texts).tolist()
    assert list((cache_dir() / "imdb-encoded").glob("test-*.npz"))
    x2, y2, texts2 = imdb.load_encoded_test(imdb_tree, data.vocabulary)  # from the cache
    assert np.array_equal(x2, x_test) and np.array_equal(y2, y_test) and texts2 == texts
    with_test = data.with_test()
    assert np.array_equal(with_test.x_test, x_test) and with_test.texts_test == texts
    assert data.x_test is None  # with_test returns a copy


def test_encoded_data_from_an_archive(imdb_archive):
    data = load_tiny(imdb_archive, num_words=40, maxlen=20)
    assert data.root.name == "aclImdb" and data.root.is_relative_to(cache_dir())
    assert data.x_train.shape[1] == 20


def test_the_recipe_settings_have_no_default_here(imdb_tree):
    """The recipe's values (50,000 / 300, 0.2, seed 42...) live in the training config only."""
    with pytest.raises(TypeError, match="missing 5 required keyword-only arguments"):
        imdb.load_encoded(imdb_tree, num_words=50)
    with pytest.raises(TypeError, match="takes from 0 to 1 positional argument"):
        imdb.load_encoded(imdb_tree, 50, 30, "pre", "pre", 0.2, 42)
    with pytest.raises(TypeError, match="missing 2 required positional arguments: 'fraction'"):
        splits.validation_split([0, 1])
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'seed'"):
        splits.stratified_sample([0, 1], 1)
    assert cache_files() == []
