"""The models a server holds. A model that failed to load keeps its reason, so the
server still starts, the other model keeps serving, and requests for the missing
one get a 503 that says how to fix it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlapi.errors import MlapiError
from mlapi.serving.errors import ApiError

log = logging.getLogger("mlapi.serving")


@dataclass
class ModelSlot:
    name: str
    predictor: Any = None
    problem: str | None = None
    version: str | None = None  # the version served (MODELS_DIR/<name>/<version>/)

    @property
    def loaded(self) -> bool:
        return self.predictor is not None


class ModelRegistry:
    def __init__(self, required: tuple[str, ...] = ()) -> None:
        self.slots: dict[str, ModelSlot] = {}
        self.required = required  # the models that must be loaded for the server to be ready

    def load(self, name: str, loader: Callable[[], Any], version: str | None = "1") -> ModelSlot:
        """Run `loader`; keep its predictor, or the reason it failed (logged once)."""
        try:
            slot = ModelSlot(name, predictor=loader(), version=version)
            log.info("model %s loaded", name)
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
        slot = self.slots.get(name)
        if slot is None:
            raise ApiError(
                404, f"There is no model named '{name}'. Known: {', '.join(self.slots)}."
            )
        if not slot.loaded:
            raise ApiError(503, f"The {name} model is not available: {slot.problem}")
        if version is not None and version != slot.version:
            raise ApiError(
                404, f"The {name} model has no version '{version}'. Served: {slot.version}."
            )
        return slot.predictor
