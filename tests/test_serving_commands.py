"""`mlapi serve`: what it says before serving, what it trains (Iris only), and its flag errors."""

from __future__ import annotations

import os
import shutil

import pytest

from mlapi.cli import main
from mlapi.data import imdb
from mlapi.serving import commands
from mlapi.serving.settings import ServingSettings


class Exec(Exception):
    """Raised in place of os.execv: the command that would have replaced the process."""


@pytest.fixture
def no_exec(monkeypatch):
    def execv(path, argv):
        raise Exec(argv)

    monkeypatch.setattr(commands.os, "execv", execv)
    for name in ("HOST", "PORT", "MODELO_PATH", "MODELS_DIR", "SERVE_MODELS"):
        monkeypatch.setenv(name, "")  # so that monkeypatch restores what `serve` sets
        monkeypatch.delenv(name)


@pytest.fixture
def no_imdb(monkeypatch):
    """Any look for the IMDb data (and so any download or sentiment training) fails the test."""

    def find_dataset(*args, **kwargs):
        raise AssertionError("mlapi serve looked for the IMDb data")

    monkeypatch.setattr(imdb, "find_dataset", find_dataset)


def serve(*args: str) -> list[str]:
    with pytest.raises(Exec) as exec_info:
        main(["serve", *args])
    return exec_info.value.args[0]


def test_train_missing_trains_iris_only_and_says_so_first(no_exec, no_imdb, tmp_path, capsys):
    modelo, models = tmp_path / "modelo.pkl", tmp_path / "models"
    argv = serve("--train-missing", "--modelo-path", str(modelo), "--models-dir", str(models))

    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"No Iris model at {modelo}: training it now")
    assert modelo.is_file() and modelo.with_suffix(".onnx").is_file()
    assert not models.exists()  # no sentiment model trained, nothing downloaded
    sentiment_line = next(line for line in out if line.startswith("Sentiment model:"))
    assert "serving Iris only" in sentiment_line
    assert f"train imdb --data PATH --models-dir {models}" in sentiment_line
    assert out[-1] == "Serving on http://127.0.0.1:5000/ with gunicorn (Ctrl-C to stop)"
    assert argv[argv.index("--bind") + 1] == "127.0.0.1:5000"
    assert os.environ["MODELO_PATH"] == str(modelo)  # what the workers will load


def test_without_modelo_path_train_missing_adds_iris_version_1_once(
    no_exec, no_imdb, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)  # no seed ./modelo.pkl here
    models = tmp_path / "models"
    serve("--train-missing", "--models-dir", str(models))
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"No Iris model at {models / 'iris'}: training it now (--train-missing) ..."
    assert f"Iris model: {models / 'iris' / '1' / 'modelo.pkl'}" in out
    serve("--train-missing", "--models-dir", str(models))  # served now: not trained again
    assert f"Iris model: {models / 'iris' / '1' / 'modelo.pkl'}" in capsys.readouterr().out
    assert not (models / "iris" / "2").exists() and not (tmp_path / "modelo.pkl").exists()


def test_an_installed_sentiment_model_is_served_and_not_retrained(
    no_exec, no_imdb, iris_model_path, sentiment_models_dir, capsys
):
    argv = serve(
        "--train-missing",
        "--modelo-path",
        str(iris_model_path),
        "--models-dir",
        str(sentiment_models_dir),
        "--port",
        "8123",
        "--workers",
        "3",
    )
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [
        f"Iris model: {iris_model_path}",
        f"Sentiment model: {sentiment_models_dir / 'sentiment'}",
    ]
    assert argv[argv.index("--bind") + 1] == "127.0.0.1:8123"
    assert argv[argv.index("--workers") + 1] == "3"


def test_without_train_missing_a_missing_iris_model_is_named_not_trained(no_exec, tmp_path, capsys):
    modelo = tmp_path / "modelo.pkl"
    serve("--modelo-path", str(modelo), "--models-dir", str(tmp_path))
    out = capsys.readouterr().out
    assert not modelo.exists()
    assert f"Iris model: none at {modelo}" in out and f"train iris --out {modelo}" in out


def test_the_plan_follows_serve_models(tmp_path):
    settings = ServingSettings.from_env(env={}, models_dir=tmp_path, serve_models="iris,sentiment")
    plan = commands.serving_plan(settings)
    assert plan[1] == f"Sentiment model: {tmp_path / 'sentiment'}"


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--port", "70000"], {}, "--port must be an integer from 1 to 65535, got '70000'"),
        (["--port", "0"], {}, "--port must be an integer from 1 to 65535, got '0'"),
        (["--port", "http"], {}, "--port must be an integer from 1 to 65535, got 'http'"),
        ([], {"PORT": "eighty"}, "PORT must be an integer from 1 to 65535, got 'eighty'"),
        (["--workers", "0"], {}, "--workers must be an integer of at least 1, got '0'"),
        (["--workers", "two"], {}, "--workers must be an integer of at least 1, got 'two'"),
        (["--host", ""], {}, "--host must be a host name or address, got ''"),
        (["--models-dir", "FILE"], {}, "--models-dir must be a folder (it holds sentiment/)"),
        (["--modelo-path", "DIR"], {}, "--modelo-path must be a model file, got"),
        ([], {"SERVE_MODELS": "iris,bert"}, "SERVE_MODELS must be a comma-separated list of"),
        ([], {"MAX_BATCH": "many"}, "MAX_BATCH must be an integer, got 'many'"),
        ([], {"WEB_CONCURRENCY": "abc"}, "WEB_CONCURRENCY must be a positive integer, got 'abc'"),
        ([], {"GUNICORN_THREADS": "0"}, "GUNICORN_THREADS must be a positive integer, got '0'"),
        ([], {"LOG_FORMAT": "xml"}, "LOG_FORMAT must be text or json, got 'xml'"),
    ],
)
def test_bad_flags_give_one_line_naming_the_flag_and_what_is_allowed(
    no_exec, monkeypatch, tmp_path, capsys, args, env, message
):
    (tmp_path / "FILE").write_text("not a folder")
    (tmp_path / "DIR").mkdir()
    monkeypatch.chdir(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["serve", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.err.startswith(f"mlapi: error: {message}")


def test_mlapi_command_is_the_path_that_runs_it(monkeypatch, tmp_path):
    venv_mlapi = tmp_path / ".venv" / "bin" / "mlapi"
    venv_mlapi.parent.mkdir(parents=True)
    venv_mlapi.write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(commands.sys, "argv", [str(venv_mlapi), "serve"])
    monkeypatch.setenv("PATH", "/nonexistent")
    assert commands.mlapi_command() == ".venv/bin/mlapi"  # not on PATH: the path to type
    monkeypatch.setenv("PATH", str(venv_mlapi.parent))
    venv_mlapi.chmod(0o755)
    assert shutil.which("mlapi") and commands.mlapi_command() == "mlapi"
