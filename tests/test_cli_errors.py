"""Every flag of every command, given a bad value, gives one line and a non-zero exit.

The walk covers the whole parser: a new flag fails `test_every_flag_has_a_bad_value_case`
until it gets a case here (or a reason in FREE_TEXT why no value of it is wrong).
"""

from __future__ import annotations

import argparse
import dataclasses
import os

import pytest

from mlapi.cli import build_parser, main
from mlapi.training.config import ExperimentConfig

MISSING = "/nonexistent/mlapi-test"

# What each command needs besides the flag under test; the rest of the line is valid.
BASE_ARGS = {
    ("evaluate",): ["some_run"],
    ("predict",): ["a review"],
    ("compare",): ["--baselines", "nbsvm", "--data", MISSING],
    ("tune",): ["--space", "space.yaml"],  # written by the sandbox
    ("models", "pin"): ["iris", "1"],
    ("models", "unpin"): ["iris"],
    ("models", "prune"): ["iris"],
}

# Flags whose value is any text: no value is out of range (a path that will be written).
FREE_TEXT = {
    ("train", "imdb", "--out"): "the run folder to create",
    ("train", "imdb", "--models-dir"): "the folder to install into",
    ("evaluate", "--out"): "where runs are; a missing one is reported as a missing run",
    ("serve", "--modelo-path"): "a missing model is served as not ready, by design",
    ("serve", "--models-dir"): "a missing sentiment model is served as absent, by design",
    ("compare", "--out"): "the run folder to create",
    ("compare", "--leaderboard"): "the file stem to write",
    ("compare", "--models-dir"): "the folder --install-best installs into",
    ("bundle", "--out"): "the zip to write",
    ("tune", "--out"): "the sweep folder to create",
    ("tune", "--models-dir"): "the folder --install-best installs into",
    ("tune", "--address"): "a Ray address is checked when Ray connects to it",
}

BAD_VALUES = {
    ("data", "imdb", "--data"): [MISSING],
    ("data", "imdb", "--maxlen"): ["abc", "-7", "0"],
    ("train", "iris", "--out"): ["/"],  # a folder: nothing is written
    ("train", "imdb", "--data"): [MISSING],
    ("evaluate", "--data"): [MISSING],
    ("predict", "--models-dir"): [MISSING],
    ("serve", "--host"): [""],
    ("serve", "--port"): ["abc", "0", "70000"],
    ("serve", "--workers"): ["abc", "0"],
    ("bundle", "--modelo-path"): ["/"],  # a folder; a missing model is trained into the zip
    ("bundle", "--models-dir"): ["/dev/null"],  # not a folder
    ("bundle", "--source"): [MISSING],
    ("compare", "--config"): [MISSING + ".yaml"],
    ("compare", "--run"): ["--arch nope", "--lr -1"],
    ("compare", "--baselines"): ["nope"],
    ("compare", "--data"): [MISSING],
    ("compare", "--device"): ["nope"],
    ("compare", "--precision"): ["fp8"],
    ("evaluate", "--device"): ["nope"],
    ("train", "imdb", "--device"): ["nope"],
    ("train", "imdb", "--precision"): ["fp8"],
    ("tune", "--space"): [MISSING + ".yaml"],
    ("tune", "--num-samples"): ["abc", "0"],
    ("tune", "--cpus-per-trial"): ["0", "-1"],
    ("tune", "--gpus-per-trial"): ["-1"],
    ("tune", "--max-concurrent"): ["0"],
    ("tune", "--limit"): ["-1"],
    ("tune", "--seed"): ["abc"],
    ("tune", "--scheduler"): ["nope"],
    ("tune", "--resume"): [MISSING],
    ("tune", "--data"): [MISSING],
    ("tune", "--device"): ["nope"],
    ("tune", "--precision"): ["fp8"],
    ("models", "list", "--models-dir"): ["/dev/null"],  # a missing folder lists none installed
    ("models", "pin", "--models-dir"): [MISSING, "/dev/null"],
    ("models", "unpin", "--models-dir"): [MISSING, "/dev/null"],
    ("models", "prune", "--models-dir"): [MISSING, "/dev/null"],
    ("models", "prune", "--keep"): ["abc", "0", "-1"],
    ("models", "migrate", "--models-dir"): ["/dev/null"],  # a missing folder has nothing to move
}


def _config_bad_values() -> dict[tuple[str, ...], list[str]]:
    """Each ExperimentConfig flag of `mlapi train imdb`: wrong type, out of range, unknown name."""
    cases = {}
    for field in dataclasses.fields(ExperimentConfig):
        flag = "--" + field.name.replace("_", "-")
        if field.name == "embeddings":
            values = [MISSING + "/vectors.txt"]
        elif field.metadata.get("choices"):
            values = ["nope"]
        elif isinstance(field.default, float):
            values = ["abc", "-7", "nan"]
        else:  # int, or int | None (limit)
            values = ["abc", "-7"]
        cases[("train", "imdb", flag)] = values
    return cases


ALL_BAD_VALUES = {**_config_bad_values(), **BAD_VALUES}


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path + flag, action) for every option that takes a value."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, (*path, name))
        elif action.option_strings and action.nargs != 0 and not _is_info(action):
            yield (*path, action.option_strings[-1]), action


def _is_info(action: argparse.Action) -> bool:
    return isinstance(action, argparse._HelpAction | argparse._VersionAction)


def _cases() -> list:
    return [
        pytest.param(key, value, id=f"{' '.join(key)}={value!r}")
        for key, values in ALL_BAD_VALUES.items()
        for value in values
    ]


def test_every_flag_has_a_bad_value_case():
    flags = {key for key, _ in _walk(build_parser())}
    assert flags - set(ALL_BAD_VALUES) - set(FREE_TEXT) == set()
    assert set(ALL_BAD_VALUES) | set(FREE_TEXT) <= flags  # no stale entries


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """No real data, cache or server: an accepted bad value fails the test, not the machine."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "space.yaml").write_text(
        'base: "--epochs 1"\nmetric: val_accuracy\nmode: max\n'
        "search:\n  lr: {loguniform: [1.0e-4, 3.0e-3]}\n"
    )
    monkeypatch.setenv("IMDB_DATA", MISSING)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def no_server(*args):
        raise AssertionError(f"a bad value was accepted and the server started: {args}")

    monkeypatch.setattr(os, "execv", no_server)


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own errors
        return exc.code


@pytest.mark.parametrize(("key", "value"), _cases())
def test_a_bad_value_is_one_line_naming_the_flag_or_value(sandbox, capsys, key, value):
    *command, flag = key
    argv = [*command, *BASE_ARGS.get(tuple(command), []), f"{flag}={value}"]
    code = _run(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code not in (0, None), f"{argv} was accepted"
    assert "Traceback" not in err
    assert len(lines) == 1, err
    named = flag in lines[0] or (value and value in lines[0])
    assert named, f"the error does not name {flag} or {value!r}: {lines[0]}"


@pytest.mark.parametrize(
    "argv",
    [["train", "imdb", "--lr"], ["serve", "--no-such-flag", "1"], ["train", "nope"], []],
    ids=["missing value", "unknown flag", "unknown model", "no command"],
)
def test_a_usage_error_is_one_line_too(sandbox, capsys, argv):
    code = _run(argv)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2
    assert len(lines) == 1 and "error:" in lines[0] and "--help" in lines[0], lines
