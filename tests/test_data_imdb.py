"""mlapi.data.imdb on tiny aclImdb fixtures: find, verify, extract, download, load, split, encode.

The real archive (../shared/data/aclImdb_v1.tar.gz or $IMDB_DATA) is read by the
integration tests at the end, which skip when it is absent.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import requests
from imdb_fixtures import (
    NEGATIVE_WORDS,
    POSITIVE_WORDS,
    make_imdb_archive,
    make_imdb_tree,
    unsafe_member,
    use_tiny_counts,
)

from mlapi.cli import main
from mlapi.data import fetch, imdb
from mlapi.errors import DataError
from mlapi.text import Vocabulary, tokenize

N = 20  # reviews per label per split in the tiny fixtures
N_UNSUP = 5
REAL_COUNTS = dict(imdb.EXPECTED_COUNTS)  # read before any test shrinks them


@pytest.fixture(autouse=True)
def isolated(request, tmp_path, monkeypatch):
    """Own cache dir, no $IMDB_DATA, tiny expected counts, no retry waits, no network."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("IMDB_DATA", raising=False)
    if "real_root" not in request.fixturenames:
        use_tiny_counts(monkeypatch, N, N_UNSUP)
    monkeypatch.setattr(fetch, "RETRY_DELAYS", (0.0, 0.0))
    monkeypatch.setattr(fetch, "_http_stream", _offline)


@contextlib.contextmanager
def _offline(url, timeout):
    raise requests.ConnectionError(f"Failed to resolve host for {url}")
    yield  # pragma: no cover


def cache() -> Path:
    return imdb.cache_dir()


def cache_files() -> list[Path]:
    """Every file or non-empty folder under the cache: what a failure must not leave behind."""
    if not cache().exists():
        return []
    return [p for p in cache().rglob("*") if p.is_file() or any(p.iterdir())]


@pytest.fixture
def tree(tmp_path) -> Path:
    return make_imdb_tree(tmp_path / "data", N, N_UNSUP)


@pytest.fixture
def archive(tmp_path) -> Path:
    return make_imdb_archive(tmp_path / "aclImdb_v1.tar.gz", N, N_UNSUP)


# -- 1. find -------------------------------------------------------------------------------------


def test_find_a_folder_or_the_folder_holding_it(tree):
    assert imdb.find_dataset(tree) == tree
    assert imdb.find_dataset(tree.parent) == tree
    assert imdb.find_dataset(str(tree)) == tree
    assert cache_files() == []  # a folder is used in place


def test_find_an_archive_extracts_it_once_into_the_cache(archive, monkeypatch):
    root = imdb.find_dataset(archive)
    key = hashlib.sha256(archive.read_bytes()).hexdigest()[:16]
    assert root == cache() / "imdb-archives" / key / "aclImdb"
    assert imdb.count_reviews(root)["train/pos"] == N
    assert [p.name for p in root.parent.parent.iterdir()] == [key]  # no staging folder left

    def no_second_extraction(*args):
        raise AssertionError("extracted twice")

    monkeypatch.setattr(fetch, "safe_extract", no_second_extraction)
    assert imdb.find_dataset(archive) == root


def test_a_copy_another_process_installed_meanwhile_is_kept(archive, monkeypatch):
    key = hashlib.sha256(archive.read_bytes()).hexdigest()[:16]
    target = cache() / "imdb-archives" / key / "aclImdb"
    extract = fetch.safe_extract

    def extract_while_another_process_finishes_first(archive, dest, **kwargs):
        make_imdb_tree(target.parent, N, N_UNSUP, seed=5)
        (target / "theirs").write_text("installed by the other process")
        extract(archive, dest, **kwargs)

    monkeypatch.setattr(fetch, "safe_extract", extract_while_another_process_finishes_first)
    assert imdb.find_dataset(archive) == target
    assert (target / "theirs").is_file()  # not replaced under the other process's feet
    assert [p.name for p in target.parent.parent.iterdir()] == [key]  # our staging is gone


def test_archive_is_extracted_again_when_its_cached_copy_was_damaged(archive):
    root = imdb.find_dataset(archive)
    next((root / "test" / "neg").iterdir()).unlink()
    assert imdb.find_dataset(archive) == root
    assert imdb.count_reviews(root)["test/neg"] == N


def test_order_argument_then_env_then_cache(tmp_path, tree, monkeypatch):
    other = make_imdb_tree(tmp_path / "other", N, N_UNSUP, seed=1)
    monkeypatch.setenv("IMDB_DATA", str(other))
    assert imdb.find_dataset(tree) == tree  # the argument wins
    assert imdb.find_dataset() == other  # then $IMDB_DATA
    monkeypatch.setenv("IMDB_DATA", "")
    cached = make_imdb_tree(cache(), N, N_UNSUP, seed=2)
    assert cached == cache() / "aclImdb"
    assert imdb.find_dataset(download=False) == cached  # then the cache


def test_env_accepts_an_archive(archive, monkeypatch):
    monkeypatch.setenv("IMDB_DATA", str(archive))
    assert imdb.find_dataset().name == "aclImdb"


def test_cache_dir_follows_xdg_else_home(tmp_path, monkeypatch):
    assert cache() == tmp_path / "cache" / "mlapi"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert imdb.cache_dir() == tmp_path / "home" / ".cache" / "mlapi"


def test_missing_path_names_it_and_the_ways_to_point_at_a_copy(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="not found at .*nope.*--data PATH or set IMDB_DATA"):
        imdb.find_dataset(tmp_path / "nope")
    monkeypatch.setenv("IMDB_DATA", str(tmp_path / "gone"))
    with pytest.raises(DataError, match="IMDB_DATA=.*gone: no such file or folder"):
        imdb.find_dataset()


def test_nothing_found_and_no_download_allowed():
    with pytest.raises(DataError, match="not found: no --data, no IMDB_DATA, nothing in"):
        imdb.find_dataset(download=False)


def test_a_file_that_is_not_an_archive_is_refused(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(DataError, match="expected an aclImdb folder or a .tar.gz archive"):
        imdb.find_dataset(notes)


# -- 2. verify -----------------------------------------------------------------------------------


def test_missing_folders_are_named(tree):
    for folder in ("test/pos", "train/neg"):
        for file in (tree / folder).iterdir():
            file.unlink()
        (tree / folder).rmdir()
    with pytest.raises(DataError, match=r"train/neg/ is missing; test/pos/ is missing"):
        imdb.find_dataset(tree)


def test_wrong_counts_are_named(tree):
    next((tree / "train" / "pos").iterdir()).unlink()
    with pytest.raises(DataError, match=f"train/pos/ has {N - 1} review files, expected {N}"):
        imdb.find_dataset(tree)


def test_unsup_is_checked_only_when_asked(tree):
    for file in (tree / "train" / "unsup").iterdir():
        file.unlink()
    (tree / "train" / "unsup").rmdir()
    assert imdb.find_dataset(tree) == tree
    with pytest.raises(DataError, match="train/unsup/ is missing"):
        imdb.find_dataset(tree, include_unsup=True)


def test_the_real_counts_stay_strict():
    assert REAL_COUNTS == {
        "train/neg": 12_500,
        "train/pos": 12_500,
        "test/neg": 12_500,
        "test/pos": 12_500,
        "train/unsup": 50_000,
    }


def test_files_not_named_like_reviews_are_not_counted(tree):
    (tree / "train" / "pos" / ".DS_Store").write_text("junk")
    (tree / "train" / "pos" / "notes.txt").write_text("junk")
    assert imdb.count_reviews(tree)["train/pos"] == N
    assert len(imdb.load_split(tree, "train")) == 2 * N


# -- 3. extract: broken and hostile archives leave nothing behind --------------------------------


def test_truncated_archive(tmp_path, archive):
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataError, match="not a readable tar archive .corrupt or truncated"):
        imdb.find_dataset(truncated)
    assert cache_files() == []


def test_garbage_archive(tmp_path):
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(DataError, match="not a readable tar archive"):
        imdb.find_dataset(garbage)
    assert cache_files() == []


def test_archive_without_enough_reviews(tmp_path):
    small = make_imdb_archive(tmp_path / "small.tar.gz", N - 2, N_UNSUP)
    with pytest.raises(
        DataError, match=f"archive .*small.tar.gz is incomplete: train/neg/ has {N - 2}"
    ):
        imdb.find_dataset(small)
    assert cache_files() == []


def test_archive_without_an_aclimdb_folder(tmp_path):
    other = tmp_path / "other.tar.gz"
    with tarfile.open(other, "w:gz") as tar:
        info = tarfile.TarInfo("reviews/train/pos/0_9.txt")
        tar.addfile(info)
    with pytest.raises(DataError, match="has no aclImdb/ folder"):
        imdb.find_dataset(other)
    assert cache_files() == []


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("absolute", "has an absolute path"),
        ("dotdot", "climbs out of the target folder"),
        ("symlink", "is a link"),
        ("hardlink", "is a link"),
        ("device", "is a device or other special file"),
    ],
)
def test_unsafe_members_are_refused(tmp_path, kind, message):
    outside = tmp_path / "outside" / "evil.txt"
    extra = [unsafe_member(kind, absolute_target=outside)]
    hostile = make_imdb_archive(tmp_path / "hostile.tar.gz", N, N_UNSUP, extra_members=extra)
    with pytest.raises(
        DataError, match=f"refusing to extract .*hostile.tar.gz: member .* {message}"
    ):
        imdb.find_dataset(hostile)
    assert cache_files() == []
    assert not outside.exists()


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "device"])
def test_tarfile_data_filter_is_a_second_line(tmp_path, monkeypatch, kind):
    monkeypatch.setattr(fetch, "_check_member", lambda member, archive: None)  # first line off
    outside = tmp_path / "outside" / "evil.txt"
    extra = [unsafe_member(kind, absolute_target=outside)]
    hostile = make_imdb_archive(tmp_path / "h.tar.gz", N, N_UNSUP, extra_members=extra)
    if kind == "absolute":  # the data filter makes the name relative instead of refusing it
        assert imdb.find_dataset(hostile).is_relative_to(cache())
    else:
        with pytest.raises(DataError, match="refusing to extract"):
            imdb.find_dataset(hostile)
        assert cache_files() == []
    assert not outside.exists()


def test_safe_extract_refuses_before_writing_anything_of_a_hostile_first_member(tmp_path):
    hostile = tmp_path / "first.tar.gz"
    with tarfile.open(hostile, "w:gz") as tar:
        tar.addfile(unsafe_member("dotdot"), io.BytesIO(b"evil"))
    dest = tmp_path / "out" / "deep"
    with pytest.raises(DataError, match="climbs out"):
        fetch.safe_extract(hostile, dest)
    assert list(dest.rglob("*")) == []
    assert not (tmp_path / "out" / "mlapi-evil.txt").exists()  # where '../..' would land


def test_interrupted_extraction_leaves_nothing(archive, monkeypatch):
    calls = 0
    write_member = fetch._write_member

    def interrupt_midway(*args):
        nonlocal calls
        calls += 1
        if calls == 30:
            raise KeyboardInterrupt
        write_member(*args)

    monkeypatch.setattr(fetch, "_write_member", interrupt_midway)
    with pytest.raises(KeyboardInterrupt):
        imdb.find_dataset(archive)
    assert calls == 30
    assert cache_files() == []


# -- 3b. download --------------------------------------------------------------------------------


def serve(payload: bytes, calls: list[str], failures: int = 0, interrupt: bool = False):
    """A fake _http_stream: fails `failures` times, then streams `payload` in chunks."""

    @contextlib.contextmanager
    def http_stream(url, timeout):
        calls.append(url)
        if len(calls) <= failures:
            raise requests.ConnectTimeout("timed out")

        def chunks():
            half = len(payload) // 2
            yield payload[:half]
            if interrupt:
                raise KeyboardInterrupt
            yield payload[half:]

        yield len(payload), chunks()

    return http_stream


def test_offline_download_gives_one_clear_message_and_leaves_nothing(monkeypatch):
    calls = []

    @contextlib.contextmanager
    def offline(url, timeout):
        calls.append(url)
        raise requests.ConnectionError("Network is unreachable")
        yield  # pragma: no cover

    monkeypatch.setattr(fetch, "_http_stream", offline)
    with pytest.raises(DataError) as caught:
        imdb.find_dataset()
    message = str(caught.value)
    assert imdb.URL in message
    assert "--data PATH" in message and "IMDB_DATA=PATH" in message
    assert "Network is unreachable" in message and "after 3 attempts" in message
    assert "\n" not in message
    assert calls == [imdb.URL] * 3
    assert cache_files() == []


def test_offline_message_keeps_the_cause_and_drops_urllib3_noise(monkeypatch):
    noisy = (
        "HTTPSConnectionPool(host='ai.stanford.edu', port=443): Max retries exceeded with url: "
        '/~amaas/data/sentiment/aclImdb_v1.tar.gz (Caused by NameResolutionError("HTTPSConnection'
        "(host='ai.stanford.edu', port=443): Failed to resolve 'ai.stanford.edu' ([Errno -2] Name "
        'or service not known)"))'
    )

    @contextlib.contextmanager
    def unresolvable(url, timeout):
        raise requests.ConnectionError(noisy)
        yield  # pragma: no cover

    monkeypatch.setattr(fetch, "_http_stream", unresolvable)
    with pytest.raises(DataError) as caught:
        imdb.find_dataset()
    assert "ConnectionError: [Errno -2] Name or service not known (after 3" in str(caught.value)
    assert "HTTPSConnectionPool" not in str(caught.value)


def test_download_verifies_then_extracts_into_the_cache(archive, monkeypatch):
    payload = archive.read_bytes()
    monkeypatch.setattr(imdb, "SHA256", hashlib.sha256(payload).hexdigest())
    calls = []
    monkeypatch.setattr(fetch, "_http_stream", serve(payload, calls, failures=1))
    root = imdb.find_dataset()
    assert root == cache() / "aclImdb"
    assert calls == [imdb.URL, imdb.URL]  # one retry
    assert imdb.count_reviews(root)["train/unsup"] == N_UNSUP
    assert [p.name for p in cache().iterdir()] == ["aclImdb"]  # archive and staging removed
    monkeypatch.setattr(fetch, "_http_stream", _offline)
    assert imdb.find_dataset(include_unsup=True) == root  # found in the cache, no network


def test_download_with_a_wrong_checksum_is_refused(archive, monkeypatch):
    monkeypatch.setattr(fetch, "_http_stream", serve(archive.read_bytes(), []))
    with pytest.raises(
        DataError, match=f"sha256 mismatch: got [0-9a-f]{{64}}, expected {imdb.SHA256}"
    ):
        imdb.find_dataset()
    assert cache_files() == []
    assert not (cache() / "aclImdb").exists()


def test_interrupted_download_leaves_nothing(archive, monkeypatch):
    monkeypatch.setattr(fetch, "_http_stream", serve(archive.read_bytes(), [], interrupt=True))
    with pytest.raises(KeyboardInterrupt):
        imdb.find_dataset()
    assert cache_files() == []


def test_a_damaged_cache_is_replaced_by_a_fresh_download(archive, monkeypatch):
    broken = make_imdb_tree(cache(), N - 1, N_UNSUP)
    payload = archive.read_bytes()
    monkeypatch.setattr(imdb, "SHA256", hashlib.sha256(payload).hexdigest())
    monkeypatch.setattr(fetch, "_http_stream", serve(payload, []))
    assert imdb.find_dataset() == broken
    assert imdb.count_reviews(broken)["train/pos"] == N


# -- 4. load -------------------------------------------------------------------------------------


def test_load_split_reads_ids_ratings_labels_and_text(tree):
    train = imdb.load_split(tree, "train")
    assert len(train) == 2 * N
    assert [r.label for r in train] == [0] * N + [1] * N  # neg first, then pos
    assert [r.id for r in train[:N]] == list(range(N))  # numeric order, not 1, 10, 11, ...
    assert all(1 <= r.rating <= 4 for r in train[:N]) and all(r.rating >= 7 for r in train[N:])
    first_pos = train[N]
    file = next((tree / "train" / "pos").glob("0_*.txt"))
    assert first_pos.text == file.read_text() and file.name == f"0_{first_pos.rating}.txt"
    assert any(word in tokenize(first_pos.text) for word in POSITIVE_WORDS)
    assert not any(word in tokenize(first_pos.text) for word in NEGATIVE_WORDS)
    unsup = imdb.load_split(tree, "unsup")
    assert {(r.label, r.rating) for r in unsup} == {(-1, 0)} and len(unsup) == N_UNSUP
    assert len(imdb.load_split(tree, "test")) == 2 * N


def test_load_split_rejects_unknown_splits_and_missing_folders(tree):
    with pytest.raises(ValueError, match="split must be one of"):
        imdb.load_split(tree, "validation")
    for file in (tree / "test" / "pos").iterdir():
        file.unlink()
    (tree / "test" / "pos").rmdir()
    with pytest.raises(DataError, match="test/pos/ is missing"):
        imdb.load_split(tree, "test")


# -- 5. split ------------------------------------------------------------------------------------


def test_validation_split_is_a_stratified_partition():
    labels = np.array([0] * 12_500 + [1] * 12_500)
    train_idx, val_idx = imdb.validation_split(labels, 0.2, seed=42)
    assert len(val_idx) == 5_000 and len(train_idx) == 20_000
    assert np.bincount(labels[val_idx]).tolist() == [2_500, 2_500]
    assert sorted(np.concatenate([train_idx, val_idx]).tolist()) == list(range(25_000))
    assert not np.array_equal(val_idx, np.sort(val_idx))  # shuffled, like Keras' imdb arrays


def test_validation_split_is_deterministic_per_seed():
    labels = np.array([0, 1] * 50 + [1] * 30)
    first = imdb.validation_split(labels, 0.2, seed=7)
    again = imdb.validation_split(labels, 0.2, seed=7)
    other = imdb.validation_split(labels, 0.2, seed=8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(np.sort(first[1]), np.sort(other[1]))
    assert np.bincount(labels[first[1]]).tolist() == [10, 16]  # 26 = round(0.2 * 130), 50:80


def test_validation_split_edges():
    labels = np.array([0, 0, 0, 1, 1])
    train_idx, val_idx = imdb.validation_split(labels, 0.0)
    assert len(val_idx) == 0 and sorted(train_idx) == [0, 1, 2, 3, 4]
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError):
            imdb.validation_split(labels, bad)


def test_stratified_sample_takes_exactly_n():
    labels = np.array([0] * 70 + [1] * 30)
    sample = imdb.stratified_sample(labels, 11, seed=3)
    assert len(sample) == len(set(sample.tolist())) == 11
    assert np.bincount(labels[sample]).tolist() == [8, 3]


# -- 6/7. encode and cache -----------------------------------------------------------------------


def test_load_encoded_shapes_dtypes_and_split(tree):
    data = imdb.load_encoded(tree, num_words=50, maxlen=30)
    n_val = round(0.2 * 2 * N)
    assert data.x_train.shape == (2 * N - n_val, 30) and data.x_val.shape == (n_val, 30)
    assert data.x_train.dtype == np.int32 and data.x_val.dtype == np.int32
    assert np.bincount(data.y_val).tolist() == [n_val // 2, n_val // 2]
    assert data.vocabulary.size == 50 and data.vocabulary.maxlen == 30
    assert data.x_test is None and data.texts_test is None  # the test split only on request
    assert not data.from_cache
    train = imdb.load_split(tree, "train")
    assert data.y_train.tolist() == [train[i].label for i in data.train_index]
    assert set(data.train_index.tolist()).isdisjoint(data.val_index.tolist())


def test_vocabulary_is_fitted_on_the_training_portion_only(tree):
    train = imdb.load_split(tree, "train")
    data = imdb.load_encoded(tree, num_words=1000, maxlen=30)
    expected = Vocabulary(num_words=1000, maxlen=30).fit([train[i].text for i in data.train_index])
    assert data.vocabulary == expected
    assert (
        data.x_train[0].tolist() == expected.encode([train[data.train_index[0]].text])[0].tolist()
    )


def test_a_word_seen_only_in_validation_or_test_reviews_is_out_of_vocabulary(tree):
    first = imdb.load_encoded(tree, num_words=1000, maxlen=30, cache=False)
    train = imdb.load_split(tree, "train")
    val_review = train[first.val_index[0]]
    folder = "pos" if val_review.label else "neg"
    val_file = tree / "train" / folder / f"{val_review.id}_{val_review.rating}.txt"
    val_file.write_text(val_review.text + " zyzzyvaval")
    test_file = next((tree / "test" / "neg").iterdir())
    test_file.write_text(test_file.read_text() + " zyzzyvatest")
    data = imdb.load_encoded(tree, num_words=1000, maxlen=30, cache=False)
    assert np.array_equal(data.val_index, first.val_index)
    assert "zyzzyvaval" not in data.vocabulary.word_index
    assert "zyzzyvatest" not in data.vocabulary.word_index
    assert data.x_val[0, -1] == Vocabulary.OOV  # the appended word, 'pre' truncation keeps it


def test_limit_uses_a_stratified_subset(tree):
    data = imdb.load_encoded(tree, num_words=50, maxlen=10, limit=10)
    assert len(data.x_train) + len(data.x_val) == 10
    assert np.bincount(np.concatenate([data.y_train, data.y_val])).tolist() == [5, 5]
    with pytest.raises(DataError, match="limit must be between 2 and 40"):
        imdb.load_encoded(tree, limit=41)


def test_second_call_is_served_from_the_cache(tree):
    first = imdb.load_encoded(tree, num_words=50, maxlen=30)
    second = imdb.load_encoded(tree, num_words=50, maxlen=30)
    assert second.from_cache and not first.from_cache
    for name in ("x_train", "y_train", "x_val", "y_val", "train_index", "val_index"):
        assert np.array_equal(getattr(first, name), getattr(second, name)), name
    assert second.x_train.dtype == np.int32
    assert second.vocabulary == first.vocabulary
    cached = list((cache() / "imdb-encoded").glob("train-*.npz"))
    assert len(cached) == 1 and cached[0].with_name(cached[0].name + ".json").is_file()


def test_cache_is_keyed_on_settings_and_on_the_files(tree):
    imdb.load_encoded(tree, num_words=50, maxlen=30)
    assert not imdb.load_encoded(tree, num_words=50, maxlen=31).from_cache
    assert not imdb.load_encoded(tree, num_words=50, maxlen=30, seed=1).from_cache
    assert imdb.load_encoded(tree, num_words=50, maxlen=30).from_cache
    file = next((tree / "train" / "pos").iterdir())
    file.write_text(file.read_text() + " changed")
    assert not imdb.load_encoded(tree, num_words=50, maxlen=30).from_cache


def test_an_unreadable_cache_file_is_rebuilt(tree):
    first = imdb.load_encoded(tree, num_words=50, maxlen=30)
    (cached,) = (cache() / "imdb-encoded").glob("train-*.npz")
    cached.write_bytes(b"not a zip file")
    again = imdb.load_encoded(tree, num_words=50, maxlen=30)
    assert not again.from_cache and np.array_equal(again.x_train, first.x_train)
    assert imdb.load_encoded(tree, num_words=50, maxlen=30).from_cache


def test_cache_false_writes_nothing(tree):
    imdb.load_encoded(tree, num_words=50, maxlen=30, cache=False)
    assert cache_files() == []


def test_invalid_settings_fail_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="padding"):
        imdb.load_encoded(tmp_path / "does-not-matter", padding="middle")


def test_test_split_is_encoded_with_the_given_vocabulary_and_cached(tree):
    data = imdb.load_encoded(tree, num_words=50, maxlen=30)
    x_test, y_test, texts = imdb.load_encoded_test(tree, data.vocabulary)
    test = imdb.load_split(tree, "test")
    assert x_test.shape == (2 * N, 30) and x_test.dtype == np.int32
    assert y_test.tolist() == [r.label for r in test]
    assert texts == [r.text for r in test]
    assert x_test.tolist() == data.vocabulary.encode(texts).tolist()
    assert list((cache() / "imdb-encoded").glob("test-*.npz"))
    x2, y2, texts2 = imdb.load_encoded_test(tree, data.vocabulary)  # from the cache
    assert np.array_equal(x2, x_test) and np.array_equal(y2, y_test) and texts2 == texts
    with_test = data.with_test()
    assert np.array_equal(with_test.x_test, x_test) and with_test.texts_test == texts
    assert data.x_test is None  # with_test returns a copy


def test_encoded_data_from_an_archive(archive):
    data = imdb.load_encoded(archive, num_words=40, maxlen=20)
    assert data.root.name == "aclImdb" and data.root.is_relative_to(cache())
    assert data.x_train.shape[1] == 20


# -- CLI -----------------------------------------------------------------------------------------


def test_cli_prints_counts_and_token_lengths(tree, capsys):
    assert main(["data", "imdb", "--data", str(tree)]) == 0
    out = capsys.readouterr().out
    assert f"IMDb dataset: {tree}" in out
    rows: dict[str, list[str]] = {}
    for line in filter(str.strip, out.splitlines()):
        rows.setdefault(line.split()[0], line.split()[1:])  # first table: counts
    assert rows["train"][:4] == [str(N), str(N), "-", str(2 * N)]
    assert rows["test"][:4] == [str(N), str(N), "-", str(2 * N)]
    assert rows["unsup"][:4] == ["-", "-", str(N_UNSUP), str(N_UNSUP)]
    assert "tokens per review" in out and "p50" in out


def test_cli_describes_unsup_only_when_present_and_then_strictly(tree, capsys):
    files = sorted((tree / "train" / "unsup").iterdir())
    files[0].unlink()
    assert main(["data", "imdb", "--data", str(tree)]) == 2
    assert f"train/unsup/ has {N_UNSUP - 1} review files" in capsys.readouterr().err
    for file in files[1:]:
        file.unlink()
    (tree / "train" / "unsup").rmdir()
    assert main(["data", "imdb", "--data", str(tree)]) == 0
    out = capsys.readouterr().out
    assert "train " in out and "unsup " not in out


def test_cli_json_summary_matches_the_reviews(tree, capsys):
    assert main(["data", "imdb", "--data", str(tree), "--json", "--maxlen", "20"]) == 0
    summary = json.loads(capsys.readouterr().out)
    lengths = [len(tokenize(r.text)) for r in imdb.load_split(tree, "train")]
    train = summary["splits"]["train"]
    assert train["counts"] == {"neg": N, "pos": N} and train["tokens"]["max"] == max(lengths)
    assert train["longer_than_maxlen"] == round(sum(n > 20 for n in lengths) / len(lengths), 4)


def test_cli_user_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert main(["data", "imdb", "--data", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mlapi: error: IMDb data not found at") and "\n" not in err


def test_cli_offline_without_data(capsys):
    assert main(["data", "imdb"]) == 2
    err = capsys.readouterr().err
    assert imdb.URL in err and "IMDB_DATA" in err
    assert cache_files() == []


# -- the real dataset ----------------------------------------------------------------------------

REAL_ARCHIVE = Path(
    os.environ.get("IMDB_DATA")
    or Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "aclImdb_v1.tar.gz"
)


@pytest.fixture(scope="module")
def real_root():
    """The real dataset, through the real cache ($XDG_CACHE_HOME/mlapi or ~/.cache/mlapi).

    On purpose not a tmp dir: extracting its 100,000 files takes ~40 s and deleting them
    minutes on this disk, so they are extracted once per machine into the same place
    `mlapi train imdb --data <archive>` uses, and reused by every later run.
    """
    if not REAL_ARCHIVE.exists():
        pytest.skip(f"the real IMDb data is not here ({REAL_ARCHIVE}); set IMDB_DATA to run this")
    return imdb.find_dataset(REAL_ARCHIVE, include_unsup=True)


@pytest.mark.slow
def test_real_dataset_counts_and_first_review(real_root):
    root = real_root
    assert imdb.count_reviews(root) == REAL_COUNTS
    train = imdb.load_split(root, "train")
    assert len(train) == 25_000
    first_pos = next(r for r in train if r.label == 1)
    assert (first_pos.id, first_pos.rating) == (0, 9)
    assert first_pos.text.startswith("Bromwell High is a cartoon comedy.")
    assert (train[0].id, train[0].label) == (0, 0)
    assert all(r.rating <= 4 for r in train if r.label == 0)
    assert all(r.rating >= 7 for r in train if r.label == 1)


@pytest.mark.slow
def test_real_dataset_cli(real_root, capsys):
    assert imdb.EXPECTED_COUNTS == REAL_COUNTS
    assert main(["data", "imdb", "--data", str(real_root)]) == 0
    out = capsys.readouterr().out
    assert "train    12,500   12,500          -   25,000" in out
    assert "test     12,500   12,500          -   25,000" in out
    assert "unsup         -        -     50,000   50,000" in out
