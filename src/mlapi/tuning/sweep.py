"""A sweep on Ray Tune: Optuna's TPE picks each trial's settings, ASHA stops trials whose
metric after an epoch is in the worse half of their rung (grace period: 1 epoch).

    result = run_sweep(SweepOptions(space="space.yaml", num_samples=8, out="sweeps/a", ...))
    result = resume_sweep("sweeps/a")          # after Ctrl-C: Tune's restore

Ray: with no address (and no $RAY_ADDRESS) Ray starts in this process and stops at the end;
with one, the trials run on that cluster. A Ray already initialised by the caller (e.g.
with its own runtime_env) is used as it is and left running. The dataset path and the
sweep folder must be reachable at the same paths from every node (a shared filesystem):
trials read --data and write their run folders there; nothing is shipped.

The sweep folder holds `sweep.json` (the options, for --resume), `ray/` (Tune's state),
`trials/<trial_id>/` (each trial's run) and `leaderboard.{md,png,json}`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from mlapi.artifacts import atomic_write_json, utc_now_iso
from mlapi.errors import ArtifactError, ConfigError
from mlapi.tuning.space import load_space
from mlapi.tuning.trial import ERROR, NODE, RECORD, TrialSettings, run_trial

OPTIONS_FILE, TUNE_DIR, TRIALS_DIR = "sweep.json", "ray", "trials"


@dataclass(frozen=True)
class SweepOptions:
    space: str
    num_samples: int
    out: str
    data: str | None = None
    limit: int | None = None
    device: str = "auto"
    precision: str = "fp32"
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None
    address: str | None = None
    seed: int = 0  # the TPE sampler's
    scheduler: str = "asha"  # or "fifo": every trial runs all its epochs
    track: bool = True
    install_best: bool = False
    models_dir: str = "models"

    def command(self) -> str:
        args = ["mlapi", "tune", "--space", self.space, "--num-samples", str(self.num_samples)]
        defaults = SweepOptions(self.space, self.num_samples, self.out)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("space", "num_samples") or value == getattr(defaults, f.name):
                continue
            flag = "--" + f.name.replace("_", "-")
            if f.name == "track":
                args.append("--no-track")
            elif isinstance(value, bool):
                args.append(flag)
            else:
                args += [flag, str(value)]
        return shlex.join(args)


@dataclass(frozen=True)
class SweepResult:
    directory: Path
    entries: list  # LeaderboardEntry, every trial
    leaderboard: dict[str, Path]
    interrupted: bool
    installed: Path | None
    trial_nodes: dict[str, str]  # trial id -> the Ray node it ran on


def run_sweep(options: SweepOptions, *, runtime_env: dict | None = None) -> SweepResult:
    """Check the options, then run the sweep (see the module's docstring)."""
    from mlapi.training.device import resolve_device

    space = load_space(options.space)
    if options.limit is not None:
        space.config({"limit": options.limit})  # a bad --limit is one line, before Ray
        space.base["limit"] = options.limit
    if options.scheduler not in ("asha", "fifo"):
        raise ConfigError(f"--scheduler must be asha or fifo, got {options.scheduler!r}")
    if options.num_samples < 1:
        raise ConfigError(f"--num-samples must be a positive integer, got {options.num_samples}")
    if options.address is None and options.gpus_per_trial == 0:
        resolve_device(options.device, options.precision)  # cuda asked here, none here
    directory = Path(options.out).resolve()
    if (directory / OPTIONS_FILE).exists():
        raise ArtifactError(f"{directory} already holds a sweep: continue it with --resume")
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_json(directory / OPTIONS_FILE, {"options": dataclasses.asdict(options)})
    return _run(options, space, directory, runtime_env, restore=False)


def resume_sweep(directory: str | os.PathLike, *, runtime_env: dict | None = None):
    """Continue an interrupted sweep: finished trials are kept, unfinished ones run again."""
    directory = Path(directory).resolve()
    saved = directory / OPTIONS_FILE
    if not saved.is_file():
        raise ArtifactError(f"--resume {directory}: no sweep there ({OPTIONS_FILE} is missing)")
    stored = json.loads(saved.read_text(encoding="utf-8"))
    options = SweepOptions(**stored["options"])
    space = load_space(options.space)
    if options.limit is not None:
        space.base["limit"] = options.limit
    return _run(options, space, directory, runtime_env, restore=True, run_id=stored.get("run_id"))


def _run(options, space, directory: Path, runtime_env, *, restore: bool, run_id=None):
    import ray

    from mlapi.compare.leaderboard import install_best, write_leaderboard
    from mlapi.compare.runner import LATENCY_REVIEWS, latency_texts
    from mlapi.tracking import Tracker, run_tags
    from mlapi.training.config import ExperimentConfig

    data = None if options.data is None else str(Path(options.data).expanduser().resolve())
    split = ExperimentConfig()
    texts = latency_texts(data, n=LATENCY_REVIEWS, val_fraction=split.val_fraction, seed=split.seed)
    command = options.command()
    tags = run_tags(device=options.device, recipe=options.space, command=command, kind="tune")
    params = {"space": options.space, "num_samples": options.num_samples,
              "metric": space.metric, "mode": space.mode, "base": space.base_flags}  # fmt: skip
    parent = Tracker.start(f"tune {directory.name}", enabled=options.track, tags=tags,
                           params=params, run_id=run_id)  # fmt: skip
    if parent.active:
        stored = json.loads((directory / OPTIONS_FILE).read_text(encoding="utf-8"))
        atomic_write_json(directory / OPTIONS_FILE, stored | {"run_id": parent.run_id})
    settings = TrialSettings(
        space=space,
        data=data,
        trials_dir=str(directory / TRIALS_DIR),
        device=options.device,
        precision=options.precision,
        threads=max(1, int(options.cpus_per_trial)),
        tracking_uri=parent.uri if parent.active else None,
        parent_run_id=parent.run_id,
        latency_texts=texts,
    )
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=options.address,
            runtime_env=copy.deepcopy(runtime_env),  # ray.init writes into it
            include_dashboard=False,
            logging_level="WARNING",
            log_to_driver=True,
        )
    try:
        with parent:
            tuner = _tuner(options, space, settings, directory, restore)
            grid = tuner.fit()
            entries, nodes, interrupted = _entries(grid, space, directory)
            board = (
                write_leaderboard(directory / "leaderboard", entries, command) if entries else {}
            )
            for path in board.values():
                parent.log_artifact(path)
            parent.end_running_children("KILLED")  # trials ASHA stopped
    finally:
        if started_here:
            ray.shutdown()
    installed = None
    if options.install_best and not interrupted:
        installed = install_best(entries, options.models_dir)
    return SweepResult(directory, entries, board, interrupted, installed, nodes)


def _tuner(options, space, settings: TrialSettings, directory: Path, restore: bool):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    resources = {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial}
    trainable = tune.with_resources(tune.with_parameters(run_trial, settings=settings), resources)
    if restore:
        path = directory / TUNE_DIR
        if not tune.Tuner.can_restore(str(path)):
            raise ArtifactError(f"--resume {directory}: Tune saved no state in {path}")
        return tune.Tuner.restore(str(path), trainable, resume_unfinished=True)
    scheduler = None  # fifo
    if options.scheduler == "asha":
        scheduler = ASHAScheduler(time_attr="epoch", max_t=_max_epochs(space) + 1,
                                  grace_period=1, reduction_factor=2)  # fmt: skip
    return tune.Tuner(
        trainable,
        param_space=space.tune_space(),
        tune_config=tune.TuneConfig(
            metric=space.metric,
            mode=space.mode,
            search_alg=OptunaSearch(seed=options.seed),
            scheduler=scheduler,
            num_samples=options.num_samples,
            max_concurrent_trials=options.max_concurrent,
        ),
        run_config=tune.RunConfig(
            name=TUNE_DIR,
            storage_path=str(directory),
            verbose=0,
            callbacks=[_print_trials()],
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
        ),
    )


def _max_epochs(space) -> int:
    kind, args = space.search.get("epochs", (None, None))
    if kind is None:
        return space.config({}).epochs
    return int(max(args) if kind == "choice" else args[1])


def _entries(grid, space, directory: Path) -> tuple[list, dict[str, str], bool]:
    """Every trial's leaderboard entry, from Tune's trial statuses and the trial folders;
    a trial neither finished, stopped nor failed means the sweep was interrupted."""
    from ray.tune import ExperimentAnalysis

    from mlapi.compare.leaderboard import LeaderboardEntry

    entries, nodes, interrupted = [], {}, False
    for trial in ExperimentAnalysis(grid.experiment_path).trials:
        trial_dir = directory / TRIALS_DIR / trial.trial_id
        record = trial_dir / RECORD
        if (trial_dir / NODE).is_file():
            nodes[trial.trial_id] = (trial_dir / NODE).read_text(encoding="utf-8")
        if record.is_file():
            saved = json.loads(record.read_text(encoding="utf-8"))
            entries.append(LeaderboardEntry.from_dict(saved["entry"]))
        elif trial.status == "ERROR":
            entries.append(_unfinished(trial, space, "failed", _error_line(trial_dir)))
        elif trial.status == "TERMINATED":
            epoch = int((trial.last_result or {}).get("epoch", 0))
            entries.append(_unfinished(trial, space, "stopped", f"by ASHA after epoch {epoch}"))
        else:
            interrupted = True
    return entries, nodes, interrupted


def _unfinished(trial, space, status: str, note: str):
    """The entry of a trial that was not tested: its best val accuracy so far, if any."""
    from mlapi.compare.leaderboard import LeaderboardEntry
    from mlapi.models.names import RECURRENT_ARCHS
    from mlapi.training.config import train_command

    sampled = {k: v for k, v in trial.config.items() if k in space.search}
    try:
        config = space.config(sampled)
        name, arch, command = config.run_name, config.arch, train_command(config, None)
        values = config.to_dict()
    except ConfigError:
        name, arch, values = f"trial {trial.trial_id}", str(sampled), None
        command = f"(invalid settings: {sampled})"
    history = trial.metric_analysis.get("val_accuracy", {})
    last = trial.last_result or {}
    return LeaderboardEntry(
        kind="neural",
        name=name,
        arch=arch,
        recurrent=arch in RECURRENT_ARCHS,
        command=command,
        val_accuracy=history.get("max"),
        test_accuracy=None,
        train_val_gap=None,
        wall_seconds=float(last.get("time_total_s", 0.0)),
        parameters=None,
        trainable_parameters=None,
        latency_ms=None,
        created_at=utc_now_iso(),
        status=status,
        note=note,
        epochs_run=last.get("epoch"),
        config=values,
    )


def _error_line(trial_dir: Path) -> str:
    path = trial_dir / ERROR
    if path.is_file():
        lines = path.read_text(encoding="utf-8").strip().splitlines()
        return lines[0][:300] if lines else "failed"
    return "the trial's process failed before it started (see the Ray logs)"


def _print_trials():
    """A Tune callback printing one line per trial that ends."""
    from ray.tune import Callback

    class PrintTrials(Callback):
        def on_trial_complete(self, iteration, trials, trial, **info):
            result = trial.last_result or {}
            epoch, val = result.get("epoch", 0), result.get("val_accuracy", float("nan"))
            print(f"trial {trial.trial_id} ended after epoch {epoch}: val_accuracy {val:.4f}")

        def on_trial_error(self, iteration, trials, trial, **info):
            print(f"trial {trial.trial_id} failed: the sweep goes on", flush=True)

    return PrintTrials()
