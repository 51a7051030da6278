"""mlapi.data.imdb, verifying and extracting: layout and file counts, a local archive
extracted once into the cache, and broken or hostile archives refused with nothing left behind.

Every test runs in `imdb_sandbox` (tests/conftest.py): its own cache dir, tiny expected
counts, no network.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile

import pytest
from helpers.imdb import (
    N_PER_LABEL,
    N_UNSUP,
    cache_files,
    make_imdb_archive,
    make_imdb_tree,
    unsafe_member,
)

from mlapi.data import fetch, imdb
from mlapi.data.cache import cache_dir
from mlapi.errors import DataError

REAL_COUNTS = dict(imdb.EXPECTED_COUNTS)  # read before any test shrinks them

pytestmark = pytest.mark.usefixtures("imdb_sandbox")


# -- verify ------------------------------------------------------------------------------------


def test_missing_folders_are_named(imdb_tree):
    for folder in ("test/pos", "train/neg"):
        for file in (imdb_tree / folder).iterdir():
            file.unlink()
        (imdb_tree / folder).rmdir()
    with pytest.raises(DataError, match=r"train/neg/ is missing; test/pos/ is missing"):
        imdb.find_dataset(imdb_tree)


def test_wrong_counts_are_named(imdb_tree):
    next((imdb_tree / "train" / "pos").iterdir()).unlink()
    with pytest.raises(
        DataError, match=f"train/pos/ has {N_PER_LABEL - 1} review files, expected {N_PER_LABEL}"
    ):
        imdb.find_dataset(imdb_tree)


def test_unsup_is_checked_only_when_asked(imdb_tree):
    for file in (imdb_tree / "train" / "unsup").iterdir():
        file.unlink()
    (imdb_tree / "train" / "unsup").rmdir()
    assert imdb.find_dataset(imdb_tree) == imdb_tree
    with pytest.raises(DataError, match="train/unsup/ is missing"):
        imdb.find_dataset(imdb_tree, include_unsup=True)


def test_the_real_counts_stay_strict():
    assert REAL_COUNTS == {
        "train/neg": 12_500,
        "train/pos": 12_500,
        "test/neg": 12_500,
        "test/pos": 12_500,
        "train/unsup": 50_000,
    }


def test_files_not_named_like_reviews_are_not_counted(imdb_tree):
    (imdb_tree / "train" / "pos" / ".DS_Store").write_text("junk")
    (imdb_tree / "train" / "pos" / "notes.txt").write_text("junk")
    assert imdb.count_reviews(imdb_tree)["train/pos"] == N_PER_LABEL
    assert len(imdb.load_split(imdb_tree, "train")) == 2 * N_PER_LABEL


# -- extract a local archive -------------------------------------------------------------------


def test_find_an_archive_extracts_it_once_into_the_cache(imdb_archive, monkeypatch):
    root = imdb.find_dataset(imdb_archive)
    key = hashlib.sha256(imdb_archive.read_bytes()).hexdigest()[:16]
    assert root == cache_dir() / "imdb-archives" / key / "aclImdb"
    assert imdb.count_reviews(root)["train/pos"] == N_PER_LABEL
    assert [p.name for p in root.parent.parent.iterdir()] == [key]  # no staging folder left

    def no_second_extraction(*args):
        raise AssertionError("extracted twice")

    monkeypatch.setattr(fetch, "safe_extract", no_second_extraction)
    assert imdb.find_dataset(imdb_archive) == root


def test_a_copy_another_process_installed_meanwhile_is_kept(imdb_archive, monkeypatch):
    key = hashlib.sha256(imdb_archive.read_bytes()).hexdigest()[:16]
    target = cache_dir() / "imdb-archives" / key / "aclImdb"
    extract = fetch.safe_extract

    def extract_while_another_process_finishes_first(imdb_archive, dest, **kwargs):
        make_imdb_tree(target.parent, N_PER_LABEL, N_UNSUP, seed=5)
        (target / "theirs").write_text("installed by the other process")
        extract(imdb_archive, dest, **kwargs)

    monkeypatch.setattr(fetch, "safe_extract", extract_while_another_process_finishes_first)
    assert imdb.find_dataset(imdb_archive) == target
    assert (target / "theirs").is_file()  # not replaced under the other process's feet
    assert [p.name for p in target.parent.parent.iterdir()] == [key]  # our staging is gone


def test_archive_is_extracted_again_when_its_cached_copy_was_damaged(imdb_archive):
    root = imdb.find_dataset(imdb_archive)
    next((root / "test" / "neg").iterdir()).unlink()
    assert imdb.find_dataset(imdb_archive) == root
    assert imdb.count_reviews(root)["test/neg"] == N_PER_LABEL


# -- broken and hostile archives leave nothing behind --------------------------------------------


def test_truncated_archive(tmp_path, imdb_archive):
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(imdb_archive.read_bytes()[: imdb_archive.stat().st_size // 2])
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
    small = make_imdb_archive(tmp_path / "small.tar.gz", N_PER_LABEL - 2, N_UNSUP)
    with pytest.raises(
        DataError, match=f"archive .*small.tar.gz is incomplete: train/neg/ has {N_PER_LABEL - 2}"
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
    hostile = make_imdb_archive(
        tmp_path / "hostile.tar.gz", N_PER_LABEL, N_UNSUP, extra_members=extra
    )
    with pytest.raises(
        DataError, match=f"refusing to extract .*hostile.tar.gz: member .* {message}"
    ):
        imdb.find_dataset(hostile)
    assert cache_files() == []
    assert not outside.exists()


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "device"])
def test_tarfile_data_filter_is_a_second_line(tmp_path, monkeypatch, kind):
    monkeypatch.setattr(fetch, "_check_member", lambda member, imdb_archive: None)  # first line off
    outside = tmp_path / "outside" / "evil.txt"
    extra = [unsafe_member(kind, absolute_target=outside)]
    hostile = make_imdb_archive(tmp_path / "h.tar.gz", N_PER_LABEL, N_UNSUP, extra_members=extra)
    if kind == "absolute":  # the data filter makes the name relative instead of refusing it
        assert imdb.find_dataset(hostile).is_relative_to(cache_dir())
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


def test_interrupted_extraction_leaves_nothing(imdb_archive, monkeypatch):
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
        imdb.find_dataset(imdb_archive)
    assert calls == 30
    assert cache_files() == []


def archive_bytes(path) -> int:
    with tarfile.open(path) as tar:
        return sum(member.size for member in tar)


@pytest.mark.parametrize("cap", ["MAX_MEMBER_BYTES", "MAX_TOTAL_BYTES"])
def test_an_archive_over_the_size_caps_is_refused_and_leaves_nothing(tmp_path, monkeypatch, cap):
    normal_total = archive_bytes(make_imdb_archive(tmp_path / "ok.tar.gz", N_PER_LABEL, N_UNSUP))
    big = tarfile.TarInfo("aclImdb/train/pos/99999_9.txt")
    big.size = 6000
    bomb = make_imdb_archive(tmp_path / "bomb.tar.gz", N_PER_LABEL, N_UNSUP, extra_members=[big])
    limit = {"MAX_MEMBER_BYTES": 5000, "MAX_TOTAL_BYTES": normal_total + 5000}[cap]
    monkeypatch.setattr(fetch, cap, limit)
    message = {
        "MAX_MEMBER_BYTES": "is 6,000 bytes, over the limit of 5,000 per file",
        "MAX_TOTAL_BYTES": f"add up to more than the limit of {limit:,} bytes",
    }[cap]
    with pytest.raises(DataError, match=f"refusing to extract .*bomb.tar.gz: .*{message}"):
        imdb.find_dataset(bomb)
    assert cache_files() == []


def test_the_size_caps_let_a_normal_archive_through(imdb_archive):
    # The real archive: 100,016 members, 138.6 MB in all, the largest 2.45 MB.
    assert fetch.MAX_MEMBER_BYTES > 2_450_000 and fetch.MAX_TOTAL_BYTES > 138_643_288
    assert imdb.find_dataset(imdb_archive).is_relative_to(cache_dir())
