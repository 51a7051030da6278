"""Word2Vec on a tiny corpus, the GloVe-format loader, the embedding matrix, and the
cached Word2Vec on IMDb's training + unlabeled reviews (never the validation ones)."""

import gzip
import random
from collections import Counter

import numpy as np
import pytest
from helpers.imdb import make_imdb_tree, tiny_counts
from helpers.reviews import review_text

from mlapi import embeddings
from mlapi.data import imdb
from mlapi.embeddings import (
    Word2VecSettings,
    WordVectors,
    embedding_matrix,
    imdb_word2vec,
    load_glove,
    pretrained_matrix,
    train_word2vec,
)
from mlapi.errors import DataError
from mlapi.text import Vocabulary, tokenize
from mlapi.training.config import ExperimentConfig

SMALL = Word2VecSettings(dim=8, min_count=2, epochs=3)


def corpus(n: int = 60, seed: int = 0) -> list[list[str]]:
    rng = random.Random(seed)
    return [tokenize(review_text(rng.choice([0, 1, -1]), rng)) for _ in range(n)]


def test_word2vec_on_a_tiny_corpus_is_seeded_and_keeps_frequent_words():
    sentences = corpus()
    vectors = train_word2vec(sentences, SMALL)
    assert vectors.vectors.shape == (len(vectors.words), 8)
    assert vectors.vectors.dtype == np.float32 and np.all(np.isfinite(vectors.vectors))
    assert {"the", "movie", "film"} <= set(vectors.words)
    counts = Counter(word for sentence in sentences for word in sentence)
    assert counts[vectors.words[0]] == max(counts.values())  # by falling frequency
    again = train_word2vec(sentences, SMALL)
    np.testing.assert_array_equal(again.vectors, vectors.vectors)  # same seed, same vectors
    other = train_word2vec(sentences, Word2VecSettings(dim=8, min_count=2, epochs=3, seed=1))
    assert not np.array_equal(other.vectors, vectors.vectors)
    with pytest.raises(DataError):
        train_word2vec([], SMALL)


@pytest.mark.parametrize("header", [False, True])
@pytest.mark.parametrize("compressed", [False, True])
def test_glove_text_files_load_with_or_without_header(tmp_path, header, compressed):
    lines = ["good 0.1 0.2 0.3", "bad -0.1 -0.2 -0.3", "film 1 2 3"]
    text = "\n".join((["3 3"] if header else []) + lines) + "\n"
    path = tmp_path / ("vectors.txt.gz" if compressed else "vectors.txt")
    if compressed:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    vectors = load_glove(path)
    assert vectors.words == ["good", "bad", "film"] and vectors.dim == 3
    np.testing.assert_allclose(vectors.vectors[1], [-0.1, -0.2, -0.3])
    assert load_glove(path, keep={"film"}).words == ["film"]


def test_bad_glove_files_raise_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_glove(tmp_path / "missing.txt")
    ragged = tmp_path / "ragged.txt"
    ragged.write_text("a 1 2 3\nb 1 2\n")
    with pytest.raises(DataError, match=r"ragged.txt:2: 2 values"):
        load_glove(ragged)
    words = tmp_path / "words.txt"
    words.write_text("a 1 x 3\n")
    with pytest.raises(DataError, match="not a number"):
        load_glove(words)


def test_embedding_matrix_copies_known_words_and_zeroes_padding():
    vocabulary = Vocabulary(num_words=6, maxlen=4).fit(["good good film bad", "good film"])
    vectors = WordVectors(["film", "good", "unused"], np.arange(9, dtype=np.float32).reshape(3, 3))
    matrix = embedding_matrix(vocabulary, vectors, seed=0)
    assert matrix.shape == (vocabulary.size, 3) and matrix.dtype == np.float32
    assert np.all(matrix[Vocabulary.PAD] == 0)
    np.testing.assert_array_equal(matrix[vocabulary.word_index["good"]], [3, 4, 5])
    np.testing.assert_array_equal(matrix[vocabulary.word_index["film"]], [0, 1, 2])
    unknown = matrix[vocabulary.word_index["bad"]]
    assert np.all(np.abs(unknown) <= 0.05)  # Keras' uniform init for words without a vector
    np.testing.assert_array_equal(embedding_matrix(vocabulary, vectors, seed=0), matrix)


def test_pretrained_matrix_from_a_glove_file_checks_the_dimension(tmp_path):
    vocabulary = Vocabulary(num_words=5, maxlen=4).fit(["good film", "bad film"])
    path = tmp_path / "glove.txt"
    path.write_text("film 1 2\ngood 3 4\n")

    class Encoded:
        pass

    encoded = Encoded()
    encoded.vocabulary = vocabulary
    config = ExperimentConfig(embeddings=str(path), embed_dim=2)
    matrix = pretrained_matrix(config, encoded)
    np.testing.assert_array_equal(matrix[vocabulary.word_index["good"]], [3, 4])
    with pytest.raises(DataError, match="--embed-dim 2"):
        pretrained_matrix(ExperimentConfig(embeddings=str(path), embed_dim=8), encoded)


def test_imdb_word2vec_uses_training_and_unlabeled_reviews_and_caches(tmp_path, monkeypatch):
    root = make_imdb_tree(tmp_path / "data", n_per_label=20, n_unsup=15)
    monkeypatch.setattr(imdb, "EXPECTED_COUNTS", tiny_counts(20, 15))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    reviews = imdb.load_split(root, "train")
    train_index, val_index = imdb.validation_split([r.label for r in reviews], 0.2, 42)
    seen = []
    real_train = embeddings.train_word2vec

    def spy(sentences, settings):
        seen.append(sentences)
        return real_train(sentences, settings)

    monkeypatch.setattr(embeddings, "train_word2vec", spy)
    first = imdb_word2vec(root, train_index, SMALL, progress=False)
    assert len(seen) == 1 and len(seen[0]) == len(train_index) + 15
    val_tokens = [tokenize(reviews[i].text) for i in val_index]
    assert not any(tokens in seen[0] for tokens in val_tokens)  # validation stays unseen

    second = imdb_word2vec(root, train_index, SMALL, progress=False)  # from the cache
    assert len(seen) == 1
    assert second.words == first.words
    np.testing.assert_array_equal(second.vectors, first.vectors)
    imdb_word2vec(root, train_index[:-1], SMALL, progress=False)  # another split: retrained
    assert len(seen) == 2
