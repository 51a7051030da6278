"""The models a server holds. A model that failed to load keeps its reason, so the
server still starts, the other model keeps serving, and requests for the missing
one get a 503 that says how to fix it.

Versions (`mlapi.versions`): each worker serves one version per model (the pinned one, else
the newest) and a watcher thread in the worker polls the models folder. A new served version
is loaded and verified completely (every sha256) before one reference is swapped, so requests
see the old version or the new one, never a gap; a version that fails is refused, logged and
reported, and the old one keeps serving. Older versions asked for by number
(`/v2/models/{name}/versions/{v}/...`) are loaded on first use and kept, at most
`keep_versions` per model (least recently used dropped first).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlapi import versions
from mlapi.errors import MlapiError
from mlapi.serving.errors import ApiError

log = logging.getLogger("mlapi.serving")


@dataclass
class ModelSlot:
    name: str
    predictor: Any = None
    problem: str | None = None
    version: str | None = None  # the version served (MODELS_DIR/<name>/<version>/)
    refused: dict[str, str] | None = None  # the last version refused: {"version", "problem"}

    @property
    def loaded(self) -> bool:
        return self.predictor is not None


@dataclass(frozen=True)
class VersionSource:
    """Where a model's versions live: `<models_dir>/<name>/<n>/` (and a legacy flat layout)."""

    models_dir: Path
    name: str
    legacy_iris: Path | None = None

    def served(self) -> int | None:
        return versions.served(self.models_dir, self.name, self.legacy_iris)

    def path(self, version: int | None) -> Path:
        """What the loader reads for `version` (a path that does not exist if there is none)."""
        found = versions.versions(self.models_dir, self.name, self.legacy_iris)
        if version in found:
            return versions.artifact(self.name, found[version])
        if version is None and self.legacy_iris is not None:
            return self.legacy_iris  # nothing installed: the loader names the seed's file
        return versions.artifact(self.name, self.models_dir / self.name / str(version or ""))

    def known(self) -> list[int]:
        return list(versions.versions(self.models_dir, self.name, self.legacy_iris))


class ModelRegistry:
    def __init__(self, required: tuple[str, ...] = (), keep_versions: int = 2) -> None:
        self.slots: dict[str, ModelSlot] = {}
        self.required = required  # the models that must be loaded for the server to be ready
        self.sources: dict[str, tuple[VersionSource, Callable[[Path], Any]]] = {}
        self.keep_versions = keep_versions  # older versions kept loaded per model
        self._others: dict[str, OrderedDict[str, Any]] = {}
        self._others_lock = threading.Lock()
        self._watcher_pid: int | None = None
        # Called after a swap or a refusal: (name, version, "loaded" | "refused").
        self.on_change: Callable[[str, str, str], None] | None = None

    def load(self, name: str, loader: Callable[[], Any], version: str | None = "1") -> ModelSlot:
        """Run `loader`; keep its predictor, or the reason it failed (logged once)."""
        try:
            slot = ModelSlot(name, predictor=loader(), version=version)
            log.info("model %s loaded (version %s)", name, version)
        except MlapiError as exc:
            slot = ModelSlot(name, problem=str(exc))
            # A model the server need not serve (none installed) is news, not a warning.
            level = logging.WARNING if name in self.required else logging.INFO
            log.log(level, "model %s not loaded: %s", name, exc)
        except Exception as exc:  # a corrupt file can fail in many ways inside a library
            slot = ModelSlot(name, problem=f"could not load the {name} model: {exc}")
            log.exception("model %s failed to load", name)
        self.slots[name] = slot
        return slot

    def load_versions(
        self, name: str, source: VersionSource, loader: Callable[[Path], Any]
    ) -> ModelSlot:
        """Load the served version of a versioned model, and watch it from now on.

        If it fails (a broken newest version at start, e.g. after a restart), it is refused and
        the newest older version that loads is served instead, as a live swap would do.
        """
        self.sources[name] = (source, loader)
        version = source.served()
        label = None if version is None else str(version)
        slot = self.load(name, lambda: loader(source.path(version)), version=label)
        if slot.loaded or label is None:
            return slot
        refused = {"version": label, "problem": slot.problem}
        for older in sorted((v for v in source.known() if v < version), reverse=True):
            fallback = self.load(name, lambda v=older: loader(source.path(v)), version=str(older))
            if fallback.loaded:
                slot = fallback
                break
        slot.refused = refused  # not retried by the watcher: an installed version never changes
        self.slots[name] = slot
        return slot

    def skip(self, name: str, reason: str) -> ModelSlot:
        """A model deliberately not loaded: requests for it get a 503 with `reason`."""
        self.slots[name] = ModelSlot(name, problem=reason)
        return self.slots[name]

    def missing(self) -> dict[str, str]:
        """Required model -> why it is not loaded; empty when the server is ready."""
        return {
            name: self.slots[name].problem if name in self.slots else "not loaded"
            for name in self.required
            if name not in self.slots or not self.slots[name].loaded
        }

    def get(self, name: str, version: str | None = None) -> Any:
        """The predictor (of `version`, default the served one), or an ApiError saying why not."""
        return self.lookup(name, version)[1]

    def lookup(self, name: str, version: str | None = None) -> tuple[str, Any]:
        """(version, predictor) from one read of the slot, so the two always agree."""
        slot = self.slots.get(name)
        if slot is None:
            raise ApiError(
                404, f"There is no model named '{name}'. Known: {', '.join(self.slots)}."
            )
        if slot.loaded and version in (None, slot.version):
            return slot.version, slot.predictor
        if version is None or name not in self.sources:
            if not slot.loaded:
                raise ApiError(503, f"The {name} model is not available: {slot.problem}")
            raise ApiError(
                404, f"The {name} model has no version '{version}'. Served: {slot.version}."
            )
        return version, self._other_version(name, version)

    def _other_version(self, name: str, version: str) -> Any:
        """A version other than the served one: loaded (verified) on first use, then kept."""
        source, loader = self.sources[name]
        known = source.known()
        if not version.isdigit() or int(version) not in known:
            have = ", ".join(map(str, known)) or "none"
            raise ApiError(404, f"The {name} model has no version '{version}'. Versions: {have}.")
        with self._others_lock:
            loaded = self._others.setdefault(name, OrderedDict())
            if version in loaded:
                loaded.move_to_end(version)
                return loaded[version]
            try:
                predictor = loader(source.path(int(version)))
            except Exception as exc:
                raise ApiError(503, f"Version {version} of the {name} model: {exc}") from None
            loaded[version] = predictor
            while len(loaded) > self.keep_versions:
                loaded.popitem(last=False)
            return predictor

    def refresh(self) -> None:
        """Swap in each model's served version if it changed (the watcher calls this)."""
        for name, (source, loader) in self.sources.items():
            version = source.served()
            slot = self.slots[name]
            label = None if version is None else str(version)
            if label is None or label == slot.version:
                continue
            if slot.refused is not None and slot.refused["version"] == label:
                continue  # installed versions never change: refused once is refused
            self._swap(slot, label, loader, source.path(version))

    def _swap(self, slot: ModelSlot, version: str, loader: Callable[[Path], Any], path: Path):
        name = slot.name
        try:
            predictor = loader(path)  # verifies every file's sha256 before anything is live
        except Exception as exc:
            problem = str(exc) if isinstance(exc, MlapiError) else f"{type(exc).__name__}: {exc}"
            log.error(
                "model %s version %s refused (version %s keeps serving): %s",
                name,
                version,
                slot.version,
                problem,
            )
            self.slots[name] = dataclasses.replace(
                slot, refused={"version": version, "problem": problem}
            )
            self._notify(name, version, "refused")
            return
        self.slots[name] = ModelSlot(name, predictor=predictor, version=version)  # the swap
        with self._others_lock:
            self._others.get(name, {}).pop(version, None)
        log.info("model %s version %s is live (was %s)", name, version, slot.version)
        self._notify(name, version, "loaded")

    def _notify(self, name: str, version: str, outcome: str) -> None:
        if self.on_change is not None:
            self.on_change(name, version, outcome)

    def watch(self, interval: float) -> None:
        """Start this process's watcher thread (once per process: safe to call after a fork)."""
        if interval <= 0 or not self.sources or self._watcher_pid == os.getpid():
            return
        self._watcher_pid = os.getpid()
        threading.Thread(
            target=_watch, args=(weakref.ref(self), interval), name="mlapi-models", daemon=True
        ).start()


def _watch(registry_ref: weakref.ref, interval: float) -> None:
    """Poll until the registry is gone (an app dropped by a test ends its watcher)."""
    while True:
        time.sleep(interval)
        registry = registry_ref()
        if registry is None:
            return
        try:
            registry.refresh()
        except Exception:  # the watcher must outlive a surprise; the old versions keep serving
            log.exception("model watcher: refresh failed")
        del registry
