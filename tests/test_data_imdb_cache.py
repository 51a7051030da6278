"""mlapi.data.cache: encoded arrays cached and keyed on settings and files, the least
recently used evicted beyond a budget, staging folders of dead processes removed.

Every test runs in `imdb_sandbox` (tests/conftest.py): its own cache dir under tmp_path,
never the real ~/.cache.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers.imdb import N_PER_LABEL, cache_files, load_tiny

from mlapi.data import cache, fetch, imdb
from mlapi.data.cache import cache_dir
from mlapi.errors import DataError

pytestmark = pytest.mark.usefixtures("imdb_sandbox")


# -- encoded arrays, cached ---------------------------------------------------------------------


def test_second_call_is_served_from_the_cache(imdb_tree):
    first = load_tiny(imdb_tree)
    second = load_tiny(imdb_tree)
    assert second.from_cache and not first.from_cache
    for name in ("x_train", "y_train", "x_val", "y_val", "train_index", "val_index"):
        assert np.array_equal(getattr(first, name), getattr(second, name)), name
    assert second.x_train.dtype == np.int32
    assert second.vocabulary == first.vocabulary
    cached = list((cache_dir() / "imdb-encoded").glob("train-*.npz"))
    assert len(cached) == 1 and cached[0].with_name(cached[0].name + ".json").is_file()


def test_cache_is_keyed_on_settings_and_on_the_files(imdb_tree):
    load_tiny(imdb_tree)
    assert not load_tiny(imdb_tree, maxlen=31).from_cache
    assert not load_tiny(imdb_tree, seed=1).from_cache
    assert load_tiny(imdb_tree).from_cache
    file = next((imdb_tree / "train" / "pos").iterdir())
    file.write_text(file.read_text() + " changed")
    assert not load_tiny(imdb_tree).from_cache


def test_an_unreadable_cache_file_is_rebuilt(imdb_tree):
    first = load_tiny(imdb_tree)
    (cached,) = (cache_dir() / "imdb-encoded").glob("train-*.npz")
    cached.write_bytes(b"not a zip file")
    again = load_tiny(imdb_tree)
    assert not again.from_cache and np.array_equal(again.x_train, first.x_train)
    assert load_tiny(imdb_tree).from_cache


def test_cache_false_writes_nothing(imdb_tree):
    load_tiny(imdb_tree, cache=False)
    assert cache_files() == []


# -- encoded arrays, evicted: least recently used first, within $MLAPI_ENCODED_CACHE_MB ----------

MB = 2**20
DAY = 86400.0


def fake_encoded(folder: Path, name: str, size: int, days_ago: float, now: float) -> Path:
    """A cache file of `size` bytes (+ a small sidecar), last used `days_ago` days before now."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(b"\0" * size)
    Path(f"{path}.json").write_text("{}")
    os.utime(path, (now - days_ago * DAY, now - days_ago * DAY))
    return path


def test_the_least_recently_used_files_beyond_the_budget_are_evicted(caplog):
    folder, now = cache_dir() / "imdb-encoded", time.time()
    oldest, old, recent, newest = (
        fake_encoded(folder, f"{kind}-{i:020x}.npz", MB, days_ago=4 - i, now=now)
        for i, kind in enumerate(["train", "test", "train", "test"])
    )
    other = folder / "notes.txt"  # not an encoded file: never touched
    other.write_text("mine")
    os.utime(other, (0, 0))
    with caplog.at_level(logging.INFO, logger="mlapi.data.cache"):
        evicted = cache.evict_encoded(folder, keep=[newest], budget=int(2.5 * MB), now=now)
    assert sorted(evicted) == sorted([oldest, old])
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [recent.name, f"{recent.name}.json", newest.name, f"{newest.name}.json", "notes.txt"]
    )
    assert f"evicted {old.name} from the encoded cache (1 MB, last used 3.0 days ago" in caplog.text


def test_a_file_that_does_not_fit_takes_every_older_one_with_it():
    folder, now = cache_dir() / "imdb-encoded", time.time()
    small_old = fake_encoded(folder, f"train-{1:020x}.npz", MB // 4, days_ago=3, now=now)
    big = fake_encoded(folder, f"train-{2:020x}.npz", 2 * MB, days_ago=2, now=now)
    kept = fake_encoded(folder, f"train-{3:020x}.npz", MB, days_ago=1, now=now)
    evicted = cache.evict_encoded(folder, keep=[], budget=int(1.5 * MB), now=now)
    assert sorted(evicted) == sorted([small_old, big])  # small_old would fit, but it is older
    assert kept.is_file()


def test_the_file_in_use_is_never_evicted_whatever_the_budget():
    folder, now = cache_dir() / "imdb-encoded", time.time()
    in_use = fake_encoded(folder, f"train-{1:020x}.npz", MB, days_ago=9, now=now)  # the oldest
    other = fake_encoded(folder, f"test-{2:020x}.npz", MB, days_ago=1, now=now)
    assert cache.evict_encoded(folder, keep=[in_use], budget=0, now=now) == [other]
    assert in_use.is_file() and Path(f"{in_use}.json").is_file()


def test_a_budget_of_zero_keeps_only_the_arrays_just_written(imdb_tree, monkeypatch):
    monkeypatch.setenv("MLAPI_ENCODED_CACHE_MB", "0")
    load_tiny(imdb_tree)
    (first,) = (cache_dir() / "imdb-encoded").glob("train-*.npz")
    data = load_tiny(imdb_tree, maxlen=31)
    (second,) = (cache_dir() / "imdb-encoded").glob("train-*.npz")
    assert second != first and not Path(f"{first}.json").exists()
    assert load_tiny(imdb_tree, maxlen=31).from_cache  # the one written stays usable
    test_arrays = imdb.load_encoded_test(imdb_tree, data.vocabulary)
    assert [p.name.split("-")[0] for p in (cache_dir() / "imdb-encoded").glob("*.npz")] == [
        "test"
    ]  # the test split's arrays, just written, evicted the training ones
    assert len(test_arrays[0]) == 2 * N_PER_LABEL


def test_a_read_marks_the_file_as_just_used(imdb_tree):
    load_tiny(imdb_tree)
    (path,) = (cache_dir() / "imdb-encoded").glob("train-*.npz")
    os.utime(path, (1_000_000_000, 1_000_000_000))
    assert load_tiny(imdb_tree).from_cache
    assert path.stat().st_mtime > time.time() - DAY


def test_the_default_budget_is_2_gb_and_a_bad_one_fails_before_any_work(imdb_tree, monkeypatch):
    assert cache.encoded_budget_bytes() == 2048 * MB
    monkeypatch.setenv("MLAPI_ENCODED_CACHE_MB", "512")
    assert cache.encoded_budget_bytes() == 512 * MB
    for bad in ("lots", "-1", "1.5", "2GB"):
        monkeypatch.setenv("MLAPI_ENCODED_CACHE_MB", bad)
        with pytest.raises(DataError) as caught:
            load_tiny(imdb_tree)
        assert str(caught.value) == (
            f"MLAPI_ENCODED_CACHE_MB must be a whole number of megabytes (0 or more), got {bad!r}"
        )
    assert cache_files() == []


def test_temp_files_of_killed_writes_are_removed_once_a_day_old():
    folder, now = cache_dir() / "imdb-encoded", time.time()
    folder.mkdir(parents=True)
    stale = folder / f".train-{1:020x}.npz.abc123_x.tmp"
    fresh = folder / f".train-{2:020x}.npz.json.def456.tmp"  # may be being written right now
    for path, days_ago in ((stale, 2), (fresh, 0.5)):
        path.write_bytes(b"partial")
        os.utime(path, (now - days_ago * DAY, now - days_ago * DAY))
    cache.evict_encoded(folder, keep=[], budget=0, now=now)
    assert not stale.exists() and fresh.exists()


# -- staging folders of dead processes ----------------------------------------------------------


def dead_pid() -> int:
    """The pid of a process that has exited (reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def live_pid():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    yield child.pid
    child.kill()
    child.wait()


def partial(parent: Path, name: str, owner: dict | None, days_ago: float = 0) -> Path:
    folder = parent / f".partial-{name}"
    (folder / "extracted" / "aclImdb").mkdir(parents=True)
    if owner is not None:
        (folder / "owner.json").write_text(json.dumps(owner))
    stamp = time.time() - days_ago * DAY
    os.utime(folder, (stamp, stamp))
    return folder


def test_only_staging_folders_without_a_live_owner_are_removed(tmp_path, live_pid):
    host = cache.this_host()
    dead = partial(tmp_path, "dead", {"pid": dead_pid(), "host": host})
    live = partial(tmp_path, "live", {"pid": live_pid, "host": host}, days_ago=30)
    mine = partial(tmp_path, "mine", {"pid": os.getpid(), "host": host}, days_ago=30)
    unowned_old = partial(tmp_path, "unowned-old", None, days_ago=2)
    unowned_young = partial(tmp_path, "unowned-young", None)  # its owner may be writing it
    elsewhere_old = partial(tmp_path, "elsewhere-old", {"pid": 1, "host": "other"}, days_ago=2)
    elsewhere_young = partial(tmp_path, "elsewhere-young", {"pid": dead_pid(), "host": "other"})
    (tmp_path / "aclImdb").mkdir()
    removed = cache.remove_dead_partials(tmp_path)
    assert sorted(removed) == sorted([dead, unowned_old, elsewhere_old])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (live, mine, unowned_young, elsewhere_young, tmp_path / "aclImdb")
    )


def test_staging_records_its_owner_and_clears_dead_staging_first(imdb_archive, monkeypatch):
    parent = cache_dir() / "imdb-archives"
    dead = partial(parent, "dead", {"pid": dead_pid(), "host": cache.this_host()})
    extract = fetch.safe_extract
    owners = []

    def extract_and_look(archive, dest):
        owners.append(json.loads((dest.parent / "owner.json").read_text()))
        assert dest.parent.name.startswith(f".partial-{os.getpid()}-")
        assert not dead.exists()
        extract(archive, dest)

    monkeypatch.setattr(fetch, "safe_extract", extract_and_look)
    root = imdb.find_dataset(imdb_archive)
    assert owners == [{"pid": os.getpid(), "host": cache.this_host()}]
    assert [p.name for p in parent.iterdir()] == [root.parent.name]


KILLED_MIDWAY = """
import json, sys, time
from pathlib import Path
from mlapi.data import fetch, imdb

archive, marker, counts = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
imdb.EXPECTED_COUNTS = counts
write_member = fetch._write_member

def write_then_hang(*args):
    write_member(*args)
    marker.touch()
    time.sleep(300)  # killed here

fetch._write_member = write_then_hang
imdb.find_dataset(archive)
"""


def test_a_killed_extraction_is_cleaned_by_the_next_one(tmp_path, imdb_archive):
    marker = tmp_path / "writing"
    counts = json.dumps(imdb.EXPECTED_COUNTS)
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_MIDWAY, str(imdb_archive), str(marker), counts]
    )
    try:
        while not marker.exists():
            assert child.poll() is None, "the extraction ended before it could be killed"
            time.sleep(0.05)
    finally:
        child.kill()
        child.wait()
    parent = cache_dir() / "imdb-archives"
    (left,) = parent.iterdir()
    assert left.name.startswith(f".partial-{child.pid}-")  # what a killed extraction leaves
    root = imdb.find_dataset(imdb_archive)
    assert [p.name for p in parent.iterdir()] == [root.parent.name]


def test_a_cache_that_refuses_deletion_is_still_read(imdb_tree, monkeypatch, caplog):
    first = load_tiny(imdb_tree)
    load_tiny(imdb_tree, seed=1)
    folder = cache_dir() / "imdb-encoded"
    unlink = Path.unlink

    def read_only(path, missing_ok=False):  # as in a read-only folder (chmod fails as root)
        if path.parent == folder:
            raise PermissionError(13, "Permission denied", str(path))
        unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", read_only)
    monkeypatch.setenv("MLAPI_ENCODED_CACHE_MB", "0")
    again = load_tiny(imdb_tree)
    assert again.from_cache and np.array_equal(again.x_train, first.x_train)
    assert len(list(folder.glob("train-*.npz"))) == 2
    assert "could not evict" in caplog.text
