"""Which model to run, and a process-wide cache of loaded segmenters.

A run names its model with a :class:`ModelChoice`:

* the bundled default weights (``checkpoint=None``, the normal case),
* a ``.safetensors`` checkpoint file chosen by the user,
* developer-only choices that need no weights: a random-init registry config (``"test-tiny"``)
  or a stand-in segmenter (``"standin:red"``). They produce meaningless masks, so the dock only
  offers them when developer models are switched on (``rs2sam/dev_models`` or
  ``RS2SAM_DEV_MODELS=1``), the Processing algorithm only takes them through a hidden parameter,
  and their result layers are labelled "random weights" / "stand-in".

Loading weights is the slow part of a first query, so loaded segmenters are cached per
(choice, device): the second query with the same model does not reload.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._backend import backend_module, bundled_checkpoint, get_backend
from .i18n import tr

STANDIN_PREFIX = "standin:"


@dataclass(frozen=True)
class ModelChoice:
    """Plain-data description of the model for one run (safe to hand to a worker thread).

    Attributes:
        checkpoint: Path of a checkpoint file; None = bundled default weights (when both
            ``config`` and ``standin`` are None).
        config: Registry name for a random-init model (developer/test use).
        standin: Stand-in spec such as ``"red"``, ``"constant:0.8"``, ``"sleep:0.5:64"``
            (seconds per tile, tile size).
    """

    checkpoint: str | None = None
    config: str | None = None
    standin: str | None = None

    @property
    def is_developer_choice(self) -> bool:
        """True for random-init configs and stand-ins (results are not meaningful)."""
        return self.config is not None or self.standin is not None

    @property
    def label(self) -> str:
        """Short text for layer names, messages and logs."""
        if self.standin is not None:
            return tr("stand-in {name}").format(name=self.standin)
        if self.config is not None:
            return tr("{name}, random weights").format(name=self.config)
        if self.checkpoint is not None:
            return Path(self.checkpoint).name
        return tr("bundled weights")


def parse_model_choice(checkpoint: str | None, model_config: str | None = None) -> ModelChoice:
    """Build a :class:`ModelChoice` from the dock/algorithm inputs.

    Args:
        checkpoint: Checkpoint path; empty or None = bundled default weights.
        model_config: Developer choice: ``""`` (none), a registry name such as ``"test-tiny"``
            (also accepted as ``"config:test-tiny"``), or ``"standin:<spec>"``. Takes precedence
            over ``checkpoint``.

    Returns:
        The choice.
    """
    spec = (model_config or "").strip()
    if spec.startswith(STANDIN_PREFIX):
        return ModelChoice(standin=spec[len(STANDIN_PREFIX) :].strip() or "red")
    if spec:
        return ModelChoice(config=spec.removeprefix("config:").strip())
    path = (checkpoint or "").strip()
    return ModelChoice(checkpoint=path or None)


def choice_problem(choice: ModelChoice) -> str | None:
    """Main-thread validation before a run: a user-readable problem, or None when fine."""
    if choice.standin is not None:
        kind = choice.standin.split(":", 1)[0]
        if kind not in ("red", "click-red", "constant", "sleep"):
            return tr(
                "Unknown stand-in {spec!r}; use standin:red, standin:constant:0.8 or "
                "standin:sleep:2."
            ).format(spec=choice.standin)
        return None
    if choice.config is not None:
        return None  # the registry validates the name and lists the valid ones
    if choice.checkpoint is not None:
        path = Path(choice.checkpoint)
        if not path.is_file():
            return tr(
                "Checkpoint file not found: {path}. Choose an existing .safetensors file, "
                "or clear the field to use the bundled weights."
            ).format(path=path)
        return None
    if bundled_checkpoint() is None:
        return tr(
            "This build of the plugin has no bundled weights "
            "(backend/weights/default.safetensors). Choose a .safetensors checkpoint file "
            "in the Model box."
        )
    return None


def _make_standin(spec: str) -> Any:
    """Stand-in segmenters from ``backend.standins`` (pipeline owner): red, constant, sleep."""
    standins = backend_module("standins")
    kind, _, arg = spec.partition(":")
    if kind == "red":
        return standins.RedSegmenter()
    if kind == "click-red":  # red, and takes clicks (the Refine tool's tests)
        return standins.ClickRedSegmenter()
    if kind == "constant":
        return standins.ConstantSegmenter(float(arg) if arg else 1.0)
    if kind == "sleep":  # sleep:<seconds per tile>[:<tile px>]
        seconds, _, size = arg.partition(":")
        return standins.SleepSegmenter(
            float(seconds) if seconds else 1.0, image_size=int(size) if size else 256
        )
    raise backend_module("errors").ConfigError(
        tr("unknown stand-in {spec!r}; use red, constant:<value> or sleep:<seconds>").format(
            spec=spec
        )
    )


class SegmenterCache:
    """Thread-safe cache of loaded segmenters keyed by (model choice, device, precision).

    The GUI task and the Processing algorithm share one instance (:data:`CACHE`), so a model
    loaded once stays loaded for the QGIS session (or until :meth:`clear`).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple[ModelChoice, str, str], Any] = {}

    def get(
        self, choice: ModelChoice, device: str, threads: int | None, precision: str = "auto"
    ) -> tuple[Any, float]:
        """Return a segmenter, loading it on a miss.

        Args:
            choice: Which model.
            device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` | ``mps``.
            threads: Torch CPU threads (applied on every call: the setting is process-wide).
            precision: ``auto`` | ``fp32`` | ``bf16`` | ``int8`` (made once, at load).

        Returns:
            ``(segmenter, load_seconds)``; ``load_seconds`` is 0.0 on a cache hit.

        Raises:
            backend.errors.Rs2SamError: the checkpoint, config or device is invalid.
        """
        key = (choice, device, precision)
        with self._lock:  # one load at a time; a second caller waits and then hits the cache
            segmenter = self._items.get(key)
            load_seconds = 0.0
            if segmenter is None:
                start = time.perf_counter()
                if choice.standin is not None:
                    segmenter = _make_standin(choice.standin)
                else:
                    segmenter = get_backend().load_segmenter(
                        choice.checkpoint,
                        config=choice.config,
                        device=device,
                        threads=threads,
                        precision=precision,
                    )
                load_seconds = time.perf_counter() - start
                self._items[key] = segmenter
        set_torch_threads(threads)
        return segmenter, load_seconds

    def contains(self, choice: ModelChoice, device: str, precision: str = "auto") -> bool:
        """True when this model is loaded already (the next :meth:`get` is a cache hit)."""
        with self._lock:
            return (choice, device, precision) in self._items

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        """Drop every loaded model (frees memory; the next query reloads)."""
        with self._lock:
            self._items.clear()


def set_torch_threads(threads: int | None) -> None:
    """Apply the thread setting if torch is already loaded (never imports torch itself)."""
    import sys

    torch = sys.modules.get("torch")
    if threads and torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(int(threads))


CACHE = SegmenterCache()
"""The plugin-wide cache (dock and Processing algorithm)."""
