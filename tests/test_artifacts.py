"""Atomic writes: a failure part-way (disk full, Ctrl-C) leaves the old file and no temp file."""

import errno
import json
from pathlib import Path

import pytest

from mlapi.artifacts import (
    atomic_write_bytes,
    read_sidecar,
    replace_directory,
    sha256_file,
    write_sidecar,
)
from mlapi.cli import main


def fail_half_way(monkeypatch, error):
    real = Path.write_bytes

    def write_bytes(self, data):
        real(self, data[: len(data) // 2])  # the disk fills up half-way through
        raise error

    monkeypatch.setattr(Path, "write_bytes", write_bytes)


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left"), KeyboardInterrupt()])
def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch, error):
    target = tmp_path / "model.bin"
    target.write_bytes(b"old contents")
    fail_half_way(monkeypatch, error)
    with pytest.raises(type(error)):
        atomic_write_bytes(target, b"new contents, much longer than the old")
    monkeypatch.undo()
    assert target.read_bytes() == b"old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]


def test_files_get_normal_permissions(tmp_path):
    atomic_write_bytes(tmp_path / "a", b"x")
    assert (tmp_path / "a").stat().st_mode & 0o044  # readable by others, unlike mkstemp's 0600


def test_sidecar_records_the_sha256(tmp_path):
    artifact = tmp_path / "m.onnx"
    artifact.write_bytes(b"model")
    write_sidecar(artifact, name="m")
    meta = read_sidecar(artifact)
    assert meta["sha256"] == sha256_file(artifact)
    assert meta["file"] == "m.onnx" and meta["name"] == "m" and meta["created_at"]
    assert json.loads((tmp_path / "m.onnx.json").read_text()) == meta


def test_replace_directory_swaps_whole_folders(tmp_path):
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "old").write_text("old")
    (tmp_path / "staging").mkdir()
    (tmp_path / "staging" / "new").write_text("new")
    replace_directory(tmp_path / "staging", tmp_path / "target")
    assert [p.name for p in (tmp_path / "target").iterdir()] == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]


def test_train_iris_on_a_full_disk_fails_in_one_line_and_writes_nothing(
    tmp_path, monkeypatch, capsys
):
    fail_half_way(monkeypatch, OSError(errno.ENOSPC, "No space left on device", "modelo.onnx"))
    assert main(["train", "iris", "--out", str(tmp_path / "modelo.pkl")]) == 1
    error = capsys.readouterr().err.strip()
    assert error == (
        "mlapi: error: No space left on device (modelo.onnx); nothing was half-written"
    )
    assert list(tmp_path.iterdir()) == []
