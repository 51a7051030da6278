"""The seed's entry points at the repo root: train_model.py, app.py, test_api.py, gunicorn."""

import os
import subprocess
import sys

import pytest

from mlapi.testing import REPO_ROOT, free_port, wait_until_healthy


def run_script(*args, env=None, cwd=REPO_ROOT):
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_train_model_writes_modelo_pkl_at_modelo_path(tmp_path):
    env = {**os.environ, "MODELO_PATH": str(tmp_path / "modelo.pkl")}
    result = run_script("train_model.py", env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "modelo.pkl").is_file() and (tmp_path / "modelo.onnx").is_file()
    assert "modelo.pkl" in result.stdout


def test_app_py_parses_host_and_port_from_flags_and_env(monkeypatch, iris_model_path):
    monkeypatch.setenv("MODELO_PATH", str(iris_model_path))
    monkeypatch.syspath_prepend(str(REPO_ROOT))
    import app

    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("PORT", "8123")
    from_env = app.parse_args([])
    assert (from_env.host, from_env.port) == ("0.0.0.0", 8123)
    from_flags = app.parse_args(["--host", "127.0.0.2", "--port", "9000"])
    assert (from_flags.host, from_flags.port) == ("127.0.0.2", 9000)


@pytest.mark.parametrize(
    ("args", "port_env", "message"),
    [
        (["--port", "99999"], None, "--port must be an integer from 1 to 65535, got '99999'"),
        (["--port", "web"], None, "--port must be an integer from 1 to 65535, got 'web'"),
        ([], "0", "PORT must be an integer from 1 to 65535, got '0'"),
    ],
)
def test_app_py_refuses_a_bad_port_in_one_line(iris_model_path, args, port_env, message):
    env = {**os.environ, "MODELO_PATH": str(iris_model_path)}
    env.pop("PORT", None)
    if port_env is not None:
        env["PORT"] = port_env
    result = run_script("app.py", *args, env=env)
    assert result.returncode == 1
    assert result.stderr == f"app.py: error: {message}\n"


@pytest.mark.slow
def test_python_app_py_serves_and_test_api_passes(iris_model_path, tmp_path):
    port = free_port()
    env = {**os.environ, "MODELO_PATH": str(iris_model_path), "PORT": str(port)}
    server = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_until_healthy(base_url, server)
        result = run_script("test_api.py", base_url)
        assert result.returncode == 0, result.stdout
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.slow
def test_gunicorn_from_repo_root_passes_test_api(start_gunicorn, iris_model_path):
    env = {**os.environ, "MODELO_PATH": str(iris_model_path)}
    base_url = start_gunicorn(env, "-w", "2")
    result = run_script("test_api.py", base_url)
    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    assert lines[0].startswith("PASS  seed 1")
    assert lines[-1].endswith(" passed, 0 failed")


def test_test_api_reports_an_unreachable_server():
    result = run_script("test_api.py", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 2
    assert "cannot reach" in result.stderr


def test_test_api_fails_when_a_case_fails(make_app, tmp_path, start_gunicorn):
    # A server with no model answers 503 to valid requests: test_api.py must notice.
    env = {**os.environ, "MODELO_PATH": str(tmp_path / "absent.pkl")}
    base_url = start_gunicorn(env, "-w", "1")
    result = run_script("test_api.py", base_url)
    assert result.returncode == 1
    assert "FAIL  seed 1" in result.stdout
