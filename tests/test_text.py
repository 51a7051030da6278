"""mlapi.text: cleaning, tokenizing, the vocabulary and Keras-style padding."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlapi.errors import ArtifactError
from mlapi.text import TOKENIZER_VERSION, Vocabulary, clean_text, tokenize

# -- cleaning and tokenizing ------------------------------------------------------------------


def test_clean_text_strips_markup_unescapes_and_lowercases():
    raw = (
        "Great FILM.<br /><br />I <i>loved</i> it &amp; the <a href='x'>cast</a> &quot;rocks&quot;"
    )
    assert clean_text(raw) == 'great film.  i  loved  it & the  cast  "rocks"'


def test_clean_text_keeps_text_that_only_looks_like_markup():
    assert clean_text("I <3 it, a < b > c") == "i <3 it, a < b > c"


def test_tokenize_words_contractions_digits_unicode():
    text = "It's NOT the 2nd-best film... don't miss Amélie!<br />10/10 _under_ score"
    assert tokenize(text) == [
        "it's", "not", "the", "2nd", "best", "film", "don't", "miss", "amélie",
        "10", "10", "under", "score",
    ]  # fmt: skip


def test_tokenize_drops_punctuation_and_outer_quotes():
    assert tokenize("'Quoted' -- \"words\"?! ...") == ["quoted", "words"]
    assert tokenize("") == []
    assert tokenize("<br /><br />") == []


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_tokenize_is_stable_on_its_own_output(text):
    tokens = tokenize(text)
    assert tokenize(" ".join(tokens)) == tokens
    assert all(token == token.lower() and token.strip() == token and token for token in tokens)


# -- the vocabulary ------------------------------------------------------------------------------

CORPUS = ["b a c a", "a b d", "a e"]  # counts: a 4, b 2, c 1, d 1, e 1


def test_fit_ranks_by_frequency_then_alphabet_after_the_two_reserved_ids():
    vocabulary = Vocabulary(num_words=5, maxlen=4).fit(CORPUS)
    assert vocabulary.word_index == {"a": 2, "b": 3, "c": 4}
    assert (Vocabulary.PAD, Vocabulary.OOV) == (0, 1)


def test_num_words_counts_the_whole_id_space_like_keras():
    vocabulary = Vocabulary(num_words=4, maxlen=10).fit(CORPUS)
    assert vocabulary.size == 4  # ids 0..3: pad, OOV, a, b
    encoded = vocabulary.encode(["a b c d e z"])
    assert encoded.max() < vocabulary.size
    assert encoded.tolist() == [[0] * 4 + [2, 3, 1, 1, 1, 1]]


def test_size_is_smaller_when_the_text_has_fewer_words():
    vocabulary = Vocabulary(num_words=100, maxlen=4).fit(CORPUS)
    assert vocabulary.size == 5 + 2


def test_fit_sees_cleaned_text():
    vocabulary = Vocabulary(num_words=10, maxlen=4).fit(["Good<br />GOOD &amp; good"])
    assert vocabulary.word_index == {"good": 2}


@pytest.mark.parametrize(
    ("padding", "truncating", "expected"),
    [
        ("pre", "pre", [[0, 0, 2, 3], [4, 2, 1, 2]]),
        ("post", "pre", [[2, 3, 0, 0], [4, 2, 1, 2]]),
        ("pre", "post", [[0, 0, 2, 3], [2, 3, 4, 2]]),
        ("post", "post", [[2, 3, 0, 0], [2, 3, 4, 2]]),
    ],
)
def test_padding_and_truncating_follow_keras_pad_sequences(padding, truncating, expected):
    vocabulary = Vocabulary(num_words=10, maxlen=4, padding=padding, truncating=truncating)
    vocabulary.fit(["a a a b b c"])  # a=2, b=3, c=4
    encoded = vocabulary.encode(["a b", "a b c a zzz a"])
    assert encoded.dtype == np.int32
    assert encoded.tolist() == expected


def test_truncate_keeps_what_encoding_keeps_and_fit_counts_matches_fit():
    pre = Vocabulary(num_words=10, maxlen=2).fit_counts({"b": 2, "a": 2, "c": 5})
    assert pre.word_index == {"c": 2, "a": 3, "b": 4}
    post = Vocabulary(num_words=10, maxlen=2, truncating="post").fit(["c c c c c a a b b"])
    assert post == Vocabulary(num_words=10, maxlen=2, truncating="post").fit_counts(
        {"b": 2, "a": 2, "c": 5}
    )
    words = ["w", "x", "y", "z"]
    assert pre.truncate(words) == ["y", "z"] and post.truncate(words) == ["w", "x"]
    assert pre.truncate(words, maxlen=3) == ["x", "y", "z"]
    assert pre.encode_tokens([pre.truncate(words)]).tolist() == pre.encode_tokens([words]).tolist()


def test_encode_empty_inputs():
    vocabulary = Vocabulary(num_words=10, maxlen=3).fit(CORPUS)
    assert vocabulary.encode(["", "!!!"]).tolist() == [[0, 0, 0], [0, 0, 0]]
    assert vocabulary.encode([]).shape == (0, 3)


def test_encode_maxlen_override_and_encode_tokens_agree():
    vocabulary = Vocabulary(num_words=10, maxlen=3).fit(CORPUS)
    texts = ["A b, c d e!", "a"]
    wide = vocabulary.encode(texts, maxlen=6)
    assert wide.shape == (2, 6)
    assert (
        wide.tolist() == vocabulary.encode_tokens([tokenize(t) for t in texts], maxlen=6).tolist()
    )
    assert wide[:, -3:].tolist() == vocabulary.encode(texts).tolist()


def test_encode_rejects_a_single_string():
    vocabulary = Vocabulary(num_words=10, maxlen=4).fit(CORPUS)
    with pytest.raises(TypeError, match="single string"):
        vocabulary.encode("a b c")
    with pytest.raises(TypeError, match="single string"):
        Vocabulary(num_words=10, maxlen=4).fit("a b c")


def test_unfitted_vocabulary_says_so():
    with pytest.raises(RuntimeError, match="not fitted"):
        Vocabulary(num_words=10, maxlen=4).encode(["a"])
    assert "unfitted" in repr(Vocabulary(num_words=10, maxlen=4))


@pytest.mark.parametrize(
    "kwargs",
    [{"num_words": 2}, {"maxlen": 0}, {"padding": "middle"}, {"truncating": "both"}],
)
def test_invalid_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        Vocabulary(**{"num_words": 10, "maxlen": 4, **kwargs})


def test_size_and_length_have_no_default_and_are_named():
    """The recipe's 50,000 / 300 live in the training config only, never here."""
    for missing in ({"num_words": 10}, {"maxlen": 4}):
        with pytest.raises(TypeError, match="missing 1 required keyword-only argument"):
            Vocabulary(**missing)
    with pytest.raises(TypeError, match="positional"):
        Vocabulary(10, 4)


@settings(max_examples=100, deadline=None)
@given(
    texts=st.lists(st.text(max_size=80), max_size=8),
    num_words=st.integers(3, 30),
    maxlen=st.integers(1, 12),
    padding=st.sampled_from(["pre", "post"]),
    truncating=st.sampled_from(["pre", "post"]),
)
def test_encode_shape_dtype_and_range(texts, num_words, maxlen, padding, truncating):
    vocabulary = Vocabulary(
        num_words=num_words, maxlen=maxlen, padding=padding, truncating=truncating
    ).fit(texts + ["x y z"])
    encoded = vocabulary.encode(texts)
    assert encoded.shape == (len(texts), maxlen)
    assert encoded.dtype == np.int32
    assert encoded.min(initial=0) >= 0
    assert encoded.max(initial=0) < vocabulary.size <= num_words
    for row, text in zip(encoded, texts, strict=True):  # every kept token is non-zero
        assert np.count_nonzero(row) == min(len(tokenize(text)), maxlen)


# -- saving and loading -------------------------------------------------------------------------


def test_save_load_round_trip_keeps_settings_and_ids(tmp_path):
    vocabulary = Vocabulary(num_words=6, maxlen=7, padding="post", truncating="post").fit(CORPUS)
    path = tmp_path / "vocabulary.json"
    vocabulary.save(path)
    saved = json.loads(path.read_text())
    assert saved["num_words"] == 6 and saved["maxlen"] == 7
    assert saved["padding"] == "post" and saved["truncating"] == "post"
    assert saved["tokenizer_version"] == TOKENIZER_VERSION
    assert saved["word_index"] == {"a": 2, "b": 3, "c": 4, "d": 5}
    loaded = Vocabulary.load(path)
    assert loaded == vocabulary
    texts = ["e d c b a", "zzz a"]
    assert loaded.encode(texts).tolist() == vocabulary.encode(texts).tolist()
    assert [p.name for p in tmp_path.iterdir()] == ["vocabulary.json"]  # no temp file left


def _saved(tmp_path, **changes):
    data = Vocabulary(num_words=6, maxlen=4).fit(CORPUS).to_dict() | changes
    path = tmp_path / "vocabulary.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format": "something else"}, "not an mlapi vocabulary"),
        ({"tokenizer_version": TOKENIZER_VERSION + 1}, "tokenizer version"),
        ({"padding": "sideways"}, "settings are invalid"),
        ({"word_index": {"a": 2, "b": 9}}, "ids 2..size-1"),
        ({"word_index": {w: i + 2 for i, w in enumerate("abcdefgh")}}, "ids 2..size-1"),
        ({"word_index": {"a": "2", "b": 3}}, "ids 2..size-1"),
        ({"word_index": ["a", "b"]}, "ids 2..size-1"),
    ],
)
def test_load_refuses_a_broken_vocabulary(tmp_path, changes, message):
    with pytest.raises(ArtifactError, match=message):
        Vocabulary.load(_saved(tmp_path, **changes))


def test_load_missing_or_unreadable_file(tmp_path):
    with pytest.raises(ArtifactError, match="not found"):
        Vocabulary.load(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ArtifactError, match="cannot read"):
        Vocabulary.load(bad)


def test_text_module_never_imports_torch():
    code = "import sys, mlapi.text, mlapi.data.imdb; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
