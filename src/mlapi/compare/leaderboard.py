"""The leaderboard: one `LeaderboardEntry` per model, ranked by validation accuracy only,
written as Markdown, a bar chart (reporting.plot_leaderboard) and JSON.

A sweep's trials are entries too: `status` "finished" (tested), "stopped" (ended early by
the scheduler: its best val accuracy so far, never tested) or "failed" (`note` says why).
Only finished entries are selected, installed and drawn in the chart."""

from __future__ import annotations

import dataclasses
import os
import platform
import shutil
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from mlapi.artifacts import atomic_write_json, atomic_write_text, utc_now_iso
from mlapi.errors import DataError


@dataclass(frozen=True)
class LeaderboardEntry:
    """One model on the leaderboard: a trained configuration or a classic baseline."""

    kind: str  # "neural" or "baseline"
    name: str  # the run name, or the baseline's name
    arch: str
    recurrent: bool
    command: str  # reproduces this entry alone
    val_accuracy: float | None  # the selection criterion (neural: the tested checkpoint's)
    test_accuracy: float | None  # None: not tested (a stopped or failed trial)
    train_val_gap: float | None
    wall_seconds: float
    parameters: int | None
    trainable_parameters: int | None
    latency_ms: float | None  # median single-review predict, as served
    created_at: str
    status: str = "finished"  # or "stopped", "failed" (sweep trials)
    note: str | None = None  # why a trial stopped or failed
    seconds_per_epoch: float | None = None  # neural only
    epochs_run: int | None = None
    checkpoint_epoch: int | None = None
    config: dict[str, Any] | None = None
    parity_max_abs_diff: float | None = None
    model_dir: str | None = None
    description: str | None = None  # baselines only
    fit_seconds: float | None = None
    c: float | None = None
    val_accuracy_by_c: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LeaderboardEntry:
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in values.items() if k in known})
        except TypeError as exc:
            raise DataError(f"not a leaderboard record ({exc}): run without --reuse") from None

    @property
    def label(self) -> str:
        """A chart label: the architecture and the settings that tell runs apart."""
        config = self.config
        if self.kind == "baseline" or not config:
            return self.name
        parts = [config["arch"]]
        if config.get("pooling", "auto") != "auto":
            parts.append(config["pooling"])
        if config.get("embeddings", "none") != "none":
            parts.append(Path(config["embeddings"]).name)
        parts += [f"len{config['maxlen']}", f"h{config['hidden_size']}"]
        return " ".join(parts)


def rank(entries: list[LeaderboardEntry]) -> list[LeaderboardEntry]:
    """Finished entries first, best validation accuracy first (test accuracy never decides);
    then stopped trials by their val accuracy so far; failed ones last."""
    order = {"finished": 0, "stopped": 1, "failed": 2}
    return sorted(
        entries,
        key=lambda e: (order[e.status], -(e.val_accuracy or 0.0), e.name),
    )


def _number(value: float | int | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def render_markdown(entries: list[LeaderboardEntry], command: str, notes: str = "") -> str:
    ranked = rank(entries)
    lines = [
        "# IMDb leaderboard",
        "",
        f"Reproduce: `{command}`",
        "",
        "Sorted by validation accuracy (the only selection criterion); the test split is "
        "read once per model. Gap = train − val accuracy at the last epoch (baselines: of "
        "the chosen C). Wall = the whole run (data, training, test, export; baselines: "
        "features + every C). Latency = median single-review predict, through ONNX Runtime "
        "as served (baselines: scikit-learn). With --reuse, configurations whose record is "
        "already in --out are read back instead of trained again.",
        "",
        "| # | model | val acc | test acc | gap | s/epoch | wall s | params | latency ms |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for i, e in enumerate(ranked, start=1):
        name = f"`{e.name}`" + (" (selected)" if i == 1 and e.status == "finished" else "")
        if e.status != "finished":
            name += f" ({e.status}{': ' + e.note if e.note else ''})"
        lines.append(
            f"| {i} | {name} | {_number(e.val_accuracy, '.4f')} | "
            f"{_number(e.test_accuracy, '.4f')} | {_number(e.train_val_gap, '+.4f')} | "
            f"{_number(e.seconds_per_epoch, '.0f')} | {e.wall_seconds:.0f} | "
            f"{_number(e.parameters, ',')} | {_number(e.latency_ms, '.2f')} |"
        )
    if notes:
        lines += ["", notes]
    lines += ["", "Commands of the single runs:", ""]
    lines += [f"- `{e.name}`: `{e.command}`" for e in ranked]
    return "\n".join(lines) + "\n"


def write_leaderboard(
    prefix: str | os.PathLike, entries: list[LeaderboardEntry], command: str, notes: str = ""
) -> dict[str, Path]:
    """`<prefix>.md`, `<prefix>.png`, `<prefix>.json`, each written atomically."""
    from mlapi.reporting import plot_leaderboard

    if not entries:
        raise DataError("nothing to compare: give --config, --run or --baselines")
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    paths = {kind: prefix.with_name(f"{prefix.name}.{kind}") for kind in ("md", "png", "json")}
    ranked = rank(entries)
    tested = [e for e in ranked if e.status == "finished"]
    atomic_write_json(
        paths["json"],
        {
            "command": command,
            "created_at": utc_now_iso(),
            "selected_by_val_accuracy": tested[0].name if tested else None,
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "notes": notes,
            "entries": [e.to_dict() for e in ranked],
        },
    )
    best_last = tested[::-1]  # the chart's top row is the best
    if best_last:
        plot_leaderboard(
            paths["png"],
            [e.label for e in best_last],
            [e.val_accuracy for e in best_last],
            [e.test_accuracy for e in best_last],
        )
    atomic_write_text(paths["md"], render_markdown(entries, command, notes))
    return paths


def install_best(entries: list[LeaderboardEntry], models_dir: str | os.PathLike) -> Path:
    """Install the exported model with the best val accuracy as a new sentiment version."""
    from mlapi.versions import new_version

    neural = rank([e for e in entries if e.kind == "neural" and e.status == "finished"])
    if not neural:
        raise DataError("--install-best needs at least one neural configuration that finished")
    with new_version(Path(models_dir), "sentiment") as install:
        shutil.copytree(Path(neural[0].model_dir), install.staging, dirs_exist_ok=True)
    return install.installed
