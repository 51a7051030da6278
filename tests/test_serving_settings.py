"""Serving settings: defaults, environment variables, typed overrides, clear errors."""

from pathlib import Path

import pytest

from mlapi.errors import MlapiError
from mlapi.serving.settings import ServingSettings


def test_defaults():
    settings = ServingSettings.from_env(env={})
    assert settings.modelo_path == Path("modelo.pkl")
    assert settings.models_dir == Path("models")
    assert (settings.max_body_bytes, settings.max_batch) == (1 << 20, 1000)
    assert (settings.sentiment_max_batch, settings.sentiment_max_chars) == (256, 20_000)
    assert settings.api_key is None


def test_environment_then_overrides():
    env = {"MODELO_PATH": "/m/modelo.pkl", "MAX_BATCH": "7", "API_KEY": "k", "MODELS_DIR": ""}
    settings = ServingSettings.from_env(env=env, max_batch=9, models_dir="/srv/models")
    assert settings.modelo_path == Path("/m/modelo.pkl")
    assert settings.max_batch == 9  # an explicit override beats the environment
    assert settings.models_dir == Path("/srv/models")  # strings become paths
    assert settings.api_key == "k"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MAX_BATCH": "many"}, "MAX_BATCH must be an integer, got 'many'"),
        ({"MAX_BODY_BYTES": "0"}, "MAX_BODY_BYTES must be a positive integer"),
        ({"SENTIMENT_MAX_CHARS": "-5"}, "SENTIMENT_MAX_CHARS must be a positive integer"),
    ],
)
def test_bad_values_say_which_variable(env, message):
    with pytest.raises(MlapiError, match=message):
        ServingSettings.from_env(env=env)
