"""mlapi.data.imdb, finding and downloading: --data, $IMDB_DATA, the cache, else a download
with retries and a checksum; offline, one clear line and nothing left behind.

Every test runs in `imdb_sandbox` (tests/conftest.py): its own cache dir, tiny expected
counts, no network unless a test fakes one.
"""

from __future__ import annotations

import contextlib
import hashlib

import pytest
import requests
from helpers.imdb import (
    N_PER_LABEL,
    N_UNSUP,
    cache_files,
    make_imdb_tree,
    offline,
)

from mlapi.data import fetch, imdb
from mlapi.data.cache import cache_dir
from mlapi.errors import DataError

pytestmark = pytest.mark.usefixtures("imdb_sandbox")


def test_find_a_folder_or_the_folder_holding_it(imdb_tree):
    assert imdb.find_dataset(imdb_tree) == imdb_tree
    assert imdb.find_dataset(imdb_tree.parent) == imdb_tree
    assert imdb.find_dataset(str(imdb_tree)) == imdb_tree
    assert cache_files() == []  # a folder is used in place


def test_order_argument_then_env_then_cache(tmp_path, imdb_tree, monkeypatch):
    other = make_imdb_tree(tmp_path / "other", N_PER_LABEL, N_UNSUP, seed=1)
    monkeypatch.setenv("IMDB_DATA", str(other))
    assert imdb.find_dataset(imdb_tree) == imdb_tree  # the argument wins
    assert imdb.find_dataset() == other  # then $IMDB_DATA
    monkeypatch.setenv("IMDB_DATA", "")
    cached = make_imdb_tree(cache_dir(), N_PER_LABEL, N_UNSUP, seed=2)
    assert cached == cache_dir() / "aclImdb"
    assert imdb.find_dataset(download=False) == cached  # then the cache


def test_env_accepts_an_archive(imdb_archive, monkeypatch):
    monkeypatch.setenv("IMDB_DATA", str(imdb_archive))
    assert imdb.find_dataset().name == "aclImdb"


def test_cache_dir_follows_xdg_else_home(tmp_path, monkeypatch):
    assert cache_dir() == tmp_path / "cache" / "mlapi"
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


# -- download ----------------------------------------------------------------------------------


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


def test_download_verifies_then_extracts_into_the_cache(imdb_archive, monkeypatch):
    payload = imdb_archive.read_bytes()
    monkeypatch.setattr(imdb, "SHA256", hashlib.sha256(payload).hexdigest())
    calls = []
    monkeypatch.setattr(fetch, "_http_stream", serve(payload, calls, failures=1))
    root = imdb.find_dataset()
    assert root == cache_dir() / "aclImdb"
    assert calls == [imdb.URL, imdb.URL]  # one retry
    assert imdb.count_reviews(root)["train/unsup"] == N_UNSUP
    assert [p.name for p in cache_dir().iterdir()] == ["aclImdb"]  # archive and staging removed
    monkeypatch.setattr(fetch, "_http_stream", offline)
    assert imdb.find_dataset(include_unsup=True) == root  # found in the cache, no network


def test_download_with_a_wrong_checksum_is_refused(imdb_archive, monkeypatch):
    monkeypatch.setattr(fetch, "_http_stream", serve(imdb_archive.read_bytes(), []))
    with pytest.raises(
        DataError, match=f"sha256 mismatch: got [0-9a-f]{{64}}, expected {imdb.SHA256}"
    ):
        imdb.find_dataset()
    assert cache_files() == []
    assert not (cache_dir() / "aclImdb").exists()


def test_interrupted_download_leaves_nothing(imdb_archive, monkeypatch):
    monkeypatch.setattr(fetch, "_http_stream", serve(imdb_archive.read_bytes(), [], interrupt=True))
    with pytest.raises(KeyboardInterrupt):
        imdb.find_dataset()
    assert cache_files() == []


def test_a_damaged_cache_is_replaced_by_a_fresh_download(imdb_archive, monkeypatch):
    broken = make_imdb_tree(cache_dir(), N_PER_LABEL - 1, N_UNSUP)
    payload = imdb_archive.read_bytes()
    monkeypatch.setattr(imdb, "SHA256", hashlib.sha256(payload).hexdigest())
    monkeypatch.setattr(fetch, "_http_stream", serve(payload, []))
    assert imdb.find_dataset() == broken
    assert imdb.count_reviews(broken)["train/pos"] == N_PER_LABEL
