"""`mlapi bundle`: the delivery zip holds the seed's files and runs on its own."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest
import requests

from mlapi.cli import main
from mlapi.delivery import BUNDLE_NAME, build_bundle
from mlapi.errors import ArtifactError
from mlapi.testing import GunicornServer

SEED_FILES = {
    "app.py",
    "modelo.pkl",
    "train_model.py",
    "test_api.py",
    "environment.yml",
    "README.md",
}


def names_in(zip_path) -> set[str]:
    with zipfile.ZipFile(zip_path) as archive:
        return {name.removeprefix(f"{BUNDLE_NAME}/") for name in archive.namelist()}


def read_member(zip_path, name: str) -> bytes:
    with zipfile.ZipFile(zip_path) as archive:
        return archive.read(f"{BUNDLE_NAME}/{name}")


def copy_model(iris_model_path, directory):
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("modelo.pkl", "modelo.pkl.json", "modelo.onnx", "modelo.onnx.json"):
        shutil.copy(iris_model_path.parent / name, directory / name)
    return directory / "modelo.pkl"


def test_bundle_holds_the_seed_files_and_what_they_need(iris_model_path, tmp_path):
    out = tmp_path / "entrega_flask_ml_api.zip"
    summary = build_bundle(out, modelo_path=iris_model_path, models_dir=tmp_path / "no-models")
    names = names_in(out)
    assert names >= SEED_FILES
    assert {"modelo.onnx", "modelo.pkl.json", "modelo.onnx.json", "gunicorn.conf.py"} <= names
    assert {"pyproject.toml", "requirements-serve.txt", "MANIFEST.json"} <= names
    assert {"src/mlapi/serving/app.py", "src/mlapi/serving/templates/index.html"} <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "models/"))]
    assert summary.iris_source == str(iris_model_path) and not summary.sentiment_included
    assert set(summary.files) == names


def test_manifest_lists_every_file_with_its_sha256(iris_model_path, tmp_path):
    out = tmp_path / "bundle.zip"
    build_bundle(out, modelo_path=iris_model_path, models_dir=None)
    manifest = json.loads(read_member(out, "MANIFEST.json"))
    assert set(manifest["files"]) == names_in(out) - {"MANIFEST.json"}
    for name, sha256 in manifest["files"].items():
        assert hashlib.sha256(read_member(out, name)).hexdigest() == sha256, name
    pickle_sidecar = json.loads(read_member(out, "modelo.pkl.json"))
    assert manifest["files"]["modelo.pkl"] == pickle_sidecar["sha256"]


def test_missing_iris_model_is_trained_into_the_bundle_only(tmp_path):
    absent = tmp_path / "models-here" / "modelo.pkl"
    out = tmp_path / "bundle.zip"
    summary = build_bundle(out, modelo_path=absent, models_dir=None)
    assert summary.iris_source == "trained for the bundle"
    assert not absent.parent.exists()  # the caller's directory is left alone
    for artifact in ("modelo.pkl", "modelo.onnx"):
        sidecar = json.loads(read_member(out, f"{artifact}.json"))
        assert hashlib.sha256(read_member(out, artifact)).hexdigest() == sidecar["sha256"]


def test_sentiment_model_is_shipped_when_installed(iris_model_path, sentiment_models_dir, tmp_path):
    out = tmp_path / "bundle.zip"
    summary = build_bundle(out, modelo_path=iris_model_path, models_dir=sentiment_models_dir)
    assert summary.sentiment_included
    names = names_in(out)
    assert {"models/sentiment/model.onnx", "models/sentiment/vocabulary.json"} <= names
    assert "models/sentiment/metadata.json" in names


def test_cli_refuses_a_tampered_model_in_one_line(iris_model_path, tmp_path, capsys):
    modelo = copy_model(iris_model_path, tmp_path / "m")
    with open(modelo.with_suffix(".onnx"), "ab") as f:
        f.write(b"tampered")
    out = tmp_path / "bundle.zip"
    code = main(["bundle", "--out", str(out), "--modelo-path", str(modelo), "--no-sentiment"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("mlapi: error:") and "sha256" in err and err.count("\n") == 1
    assert not out.exists() and not list(tmp_path.glob(".bundle.zip*"))  # nothing half-written


def test_cli_writes_the_zip_and_says_what_is_in_it(iris_model_path, tmp_path, capsys):
    out = tmp_path / "entrega_flask_ml_api.zip"
    code = main(["bundle", "--out", str(out), "--modelo-path", str(iris_model_path)])
    assert code == 0 and zipfile.is_zipfile(out)
    assert f"wrote {out}" in capsys.readouterr().out


def test_source_that_is_not_a_checkout_is_refused(iris_model_path, tmp_path):
    with pytest.raises(ArtifactError, match="app.py is missing"):
        build_bundle(tmp_path / "b.zip", modelo_path=iris_model_path, source=tmp_path)


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--out", "DIR", "--out must be the zip file to write, got"),
        ("--modelo-path", "DIR", "--modelo-path must be the Iris model file, got"),
        ("--models-dir", "FILE", "--models-dir must be a folder (it holds sentiment/), got file"),
        ("--source", "DIR", "--source must be a checkout of this project (with pyproject.toml)"),
    ],
)
def test_bad_flags_give_one_line_naming_the_flag_and_what_is_allowed(
    tmp_path, capsys, flag, value, message
):
    (tmp_path / "DIR").mkdir()
    (tmp_path / "FILE").write_text("not a folder")
    out = tmp_path / "b.zip" if flag != "--out" else tmp_path / "DIR"
    args = ["bundle", "--out", str(out), "--modelo-path", str(tmp_path / "absent.pkl")]
    code = main([*args, flag, str(tmp_path / value)])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.startswith(f"mlapi: error: {message}")
    assert str(tmp_path / value) in captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert not (tmp_path / "b.zip").exists()


@pytest.mark.slow
def test_unzipped_bundle_with_only_its_own_src_serves_and_passes_its_test_api(
    iris_model_path, tmp_path
):
    """Code, models and settings come from the unzipped folder; the interpreter and the
    third-party packages are this venv's (a fresh `pip install .` is not exercised here)."""
    out = tmp_path / "build" / "entrega_flask_ml_api.zip"
    build_bundle(out, modelo_path=iris_model_path, models_dir=None)
    with zipfile.ZipFile(out) as archive:
        archive.extractall(tmp_path / "unzipped")
    bundle = tmp_path / "unzipped" / BUNDLE_NAME
    env = {k: v for k, v in os.environ.items() if k not in ("MODELO_PATH", "MODELS_DIR")}
    env["PYTHONPATH"] = str(bundle / "src")

    which = subprocess.run(
        [sys.executable, "-c", "import mlapi; print(mlapi.__file__)"],
        cwd=bundle,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert which.stdout.strip() == str(bundle / "src" / "mlapi" / "__init__.py")

    # From the bundle's folder, so that its gunicorn.conf.py applies.
    with GunicornServer(env, "-w", "2", cwd=bundle, log_path=tmp_path / "server.log") as server:
        models = requests.get(f"{server.base_url}/models", timeout=10).json()["models"]
        iris = next(model for model in models if model["name"] == "iris")
        bundled_onnx = json.loads((bundle / "modelo.onnx.json").read_text())
        assert (iris["backend"], iris["sha256"]) == ("onnx", bundled_onnx["sha256"])
        result = subprocess.run(
            [sys.executable, "test_api.py", server.base_url],
            cwd=bundle,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].endswith(" passed, 0 failed")
