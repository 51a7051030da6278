"""ExperimentConfig, run names and the CLI flags derived from them; end-to-end tiny runs."""

import argparse
import dataclasses

import pytest

from mlapi.training.experiment import (
    ExperimentConfig,
    add_config_arguments,
    config_from_args,
    run_name,
)

SEED_RUN = "imdb_lstm__adam2e-4_clip1.0__bce__vs0.2__bs64__ep10"


def parse(argv):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    return config_from_args(parser.parse_args(argv))


def another_value(field):
    """A valid value different from the field's default."""
    choices = field.metadata.get("choices")
    if choices:
        return next((c for c in choices if c != field.default), None)
    if field.default is None:
        return 500
    if isinstance(field.default, int):
        return field.default + 1
    return field.default / 2


def test_defaults_are_the_seed_recipe_and_name():
    config = ExperimentConfig()
    assert config.run_name == SEED_RUN
    assert (config.vocab_size, config.maxlen, config.embed_dim, config.hidden_size) == (
        20000, 200, 128, 64)  # fmt: skip
    assert (config.lr, config.clipnorm, config.batch_size, config.epochs) == (2e-4, 1.0, 64, 10)
    assert parse([]) == config


def test_other_settings_get_other_names():
    assert run_name(ExperimentConfig(lr=1e-3, epochs=3)) == (
        "imdb_lstm__adam1e-3_clip1.0__bce__vs0.2__bs64__ep3")  # fmt: skip
    assert run_name(ExperimentConfig(clipnorm=0)).startswith("imdb_lstm__adam2e-4_noclip__")
    tiny = ExperimentConfig(vocab_size=200, maxlen=20, limit=300, seed=7)
    assert tiny.run_name == SEED_RUN + "__voc200_len20_n300_seed7"


# Fields with one allowed value so far (arch, optimizer, loss) cannot change yet.
CHANGEABLE = [f for f in dataclasses.fields(ExperimentConfig) if another_value(f) is not None]


@pytest.mark.parametrize("field", CHANGEABLE, ids=lambda f: f.name)
def test_every_setting_changes_the_name_and_has_a_flag(field):
    value = another_value(field)
    config = ExperimentConfig(**{field.name: value})
    assert config.run_name != SEED_RUN
    assert "/" not in config.run_name and " " not in config.run_name
    assert parse(config.cli_args()) == config


def test_names_are_distinct_across_single_changes():
    names = {ExperimentConfig(**{f.name: another_value(f)}).run_name for f in CHANGEABLE}
    assert len(names | {SEED_RUN}) == len(CHANGEABLE) + 1


def test_config_round_trips_through_its_dict_and_rejects_unknown_keys():
    config = ExperimentConfig(limit=300, hidden_size=8)
    assert ExperimentConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown config keys: colour"):
        ExperimentConfig.from_dict({"colour": "blue"})


@pytest.mark.parametrize(
    "bad", [{"arch": "cnn"}, {"val_fraction": 1.0}, {"limit": 1}, {"maxlen": 0}]
)
def test_invalid_settings_are_refused(bad):
    with pytest.raises(ValueError):
        ExperimentConfig(**bad)
