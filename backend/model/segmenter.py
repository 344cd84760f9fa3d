"""``load_segmenter`` and :class:`Segmenter`: the model behind contract §2's ``predict``.

Example:
    >>> from backend.model.segmenter import load_segmenter
    >>> seg = load_segmenter(config="test-tiny", device="cpu")   # random init
    >>> prob = seg.predict(image, "the buildings")                # (H, W) float32 in [0, 1]
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, ConfigError, InputError
from .architectures import architecture_of
from .configs import get_model_config
from .devices import resolve_device
from .model_io import MIN_IMAGE_PX
from .precision import (
    apply_precision,
    default_threads,
    precision_context,
    resolve_precision,
    seconds_per_tile_for,
)

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_WEIGHTS",
    "ModelDescription",
    "Segmenter",
    "describe_model",
    "load_segmenter",
    "resolve_device",
]

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "default.safetensors"
"""Bundled default weights (trained by a later issue); ``load_segmenter()`` loads them."""


class Segmenter:
    """Text-prompted segmentation of RGB images (contract §2).

    Attributes:
        name: Model config name (e.g. ``"nano"``).
        checkpoint_sha256: SHA-256 of the loaded weights, ``""`` for random init.
        image_size: Model input size in pixels (a good square tile size).
        gsd_m: Working ground resolution in m/px, or None (use the raster's own).
        device: Device the model runs on, as a string (``"cpu"``, ``"cuda:0"``, ...).
        seconds_per_tile: Measured model time per ``image_size`` tile on this kind of device
            in the chosen precision (:func:`~backend.model.precision.seconds_per_tile_for`),
            None when unknown; runs are planned with it.
        precision: The mode that runs: ``"fp32"``, ``"bf16"`` or ``"int8"``
            (:mod:`backend.model.precision`).
        model: The model (eval mode), of any registered architecture (see
            :mod:`backend.model.architectures` for the interface it provides).
        config: Its config (``ModelConfig`` for RS2-SAM 2).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        checkpoint_sha256: str = "",
        max_batch: int = 8,
        precision: str | None = None,
    ) -> None:
        """Wrap ``model``; ``precision`` None keeps bf16 on CUDA and fp32 elsewhere.

        Raises:
            ConfigError: A precision this device cannot run (``int8`` quantises the model in
                place, once).
        """
        self.model = model.eval()
        self.config: Any = model.config
        self.name = self.config.name
        self.checkpoint_sha256 = checkpoint_sha256
        self.image_size = self.config.image_size
        self.gsd_m = self.config.gsd_m
        dev = model.device
        self.device = str(dev) if dev.type != "cuda" else f"cuda:{dev.index or 0}"
        self.max_batch = max(1, int(max_batch))
        self.gsd_m_by_concept: dict[str, float] = {}
        requested = precision or ("bf16" if dev.type == "cuda" else "fp32")
        self.precision = resolve_precision(requested, dev, self.name)
        apply_precision(self.model, self.precision)
        self.seconds_per_tile = seconds_per_tile_for(self.name, dev.type, self.precision)

    def __repr__(self) -> str:
        sha = self.checkpoint_sha256[:12] or "random init"
        return (
            f"Segmenter({self.name!r}, device={self.device!r}, precision={self.precision!r}, "
            f"weights={sha})"
        )

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        return precision_context(self.precision, self.model.device)

    def gsd_m_for(self, concepts: Sequence[str]) -> float | None:
        """Working resolution for a prompt naming ``concepts`` (lexicon keys, e.g. ``"vehicle"``).

        The finest per-concept resolution the checkpoint stores for them (metadata
        ``inference.gsd_m_by_concept``, measured at training time); :attr:`gsd_m` when none is
        stored for any of them.
        """
        found = [self.gsd_m_by_concept[c] for c in concepts if c in self.gsd_m_by_concept]
        return min(found) if found else self.gsd_m

    def unknown_words(self, text: str) -> list[str]:
        """Words of ``text`` these weights never saw in training (see ``RS2SAM2.unknown_words``).

        Example:
            >>> load_segmenter().unknown_words("the buildings next to the lake")
            ['next', 'lake']
        """
        return self.model.unknown_words(text)

    def predict(self, image: np.ndarray, text: str) -> np.ndarray:
        """Probability that each pixel belongs to what ``text`` describes.

        Args:
            image: ``(H, W, 3)`` uint8 RGB, ``H, W >= 32``.
            text: The referring expression (non-empty).

        Returns:
            ``(H, W)`` float32 in ``[0, 1]``; deterministic for the same inputs and weights.

        Raises:
            InputError: On a bad image or text.
        """
        _check_image(image, batch=False)
        return self.predict_batch(image[None], text)[0]

    def predict_batch(self, images: np.ndarray, text: str) -> np.ndarray:
        """:meth:`predict` for ``N`` images of one size with one text.

        Args:
            images: ``(N, H, W, 3)`` uint8 RGB.
            text: The referring expression, applied to every image.

        Returns:
            ``(N, H, W)`` float32 in ``[0, 1]``, equal (to float tolerance) to calling
            :meth:`predict` on each image.

        Raises:
            InputError: On a bad image batch or text.
        """
        _check_image(images, batch=True)
        text = _check_text(text)
        n, h, w = images.shape[:3]
        out = np.empty((n, h, w), dtype=np.float32)
        with torch.inference_mode(), self._autocast():
            for start in range(0, n, self.max_batch):
                chunk = images[start : start + self.max_batch]
                inputs = self.model.prepare_inputs(chunk, [text] * len(chunk))
                logits = self.model(inputs).logits  # (b, 1, S, S) float32
                logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
                prob = torch.sigmoid(logits.float())[:, 0]
                out[start : start + len(chunk)] = prob.cpu().numpy()
        return out

    def predict_clicks(
        self, image: np.ndarray, text: str, clicks: Sequence[tuple[float, float, bool]]
    ) -> np.ndarray:
        """:meth:`predict` with clicks next to the text (models with a SAM 2 prompt encoder).

        Args:
            image: ``(H, W, 3)`` uint8 RGB.
            text: The referring expression.
            clicks: ``(column, row, positive)`` in the image's pixel coordinates (``(0, 0)``
                is its top-left corner, ``(W, H)`` its bottom-right); positive = "this belongs
                to the answer", negative = "this does not".

        Returns:
            ``(H, W)`` float32 in ``[0, 1]``.

        Raises:
            InputError: On a bad image, text or click, or a model that takes no clicks.
        """
        from .prompts import Prompts

        _check_image(image, batch=False)
        text = _check_text(text)
        if not hasattr(self.model, "decode"):
            raise InputError(f"model {self.name!r} takes no clicks (no SAM 2 prompt encoder); "
                             "use an RS2-SAM 2 checkpoint")
        h, w = image.shape[:2]
        prompts = Prompts.from_pixels([(c, r) for c, r, _ in clicks],
                                      [1 if p else 0 for _, _, p in clicks], image_hw=(h, w))
        with torch.inference_mode(), self._autocast():
            inputs = self.model.prepare_inputs(image[None], [text], prompts)
            logits = self.model(inputs).logits
            logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
            return torch.sigmoid(logits.float())[0, 0].cpu().numpy().astype(np.float32)


def _check_text(text: object) -> str:
    """The cleaned text (:mod:`backend.text.normalize`); a warning when cleaning changed it."""
    from ..text.normalize import checked_text, describe_cleaning

    cleaned = checked_text(text)
    note = describe_cleaning(text)  # type: ignore[arg-type]
    if note:
        logger.warning("%s", note)
    return cleaned


def _check_image(image: object, *, batch: bool) -> None:
    want = "(N, H, W, 3)" if batch else "(H, W, 3)"
    if not isinstance(image, np.ndarray):
        raise InputError(
            f"image must be a numpy array {want} uint8 RGB, got {type(image).__name__}"
        )
    ndim = 4 if batch else 3
    if image.ndim != ndim or image.shape[-1] != 3:
        hint = ""
        if image.ndim == ndim and image.shape[-3] in (1, 3, 4) and image.shape[-1] > 4:
            hint = (
                "; this looks like (bands, H, W) as rasterio's read() returns it: use "
                "np.moveaxis(image, 0, -1)" + ("" if image.shape[-3] == 3 else " and 3 bands")
            )
        elif image.ndim == ndim and image.shape[-1] == 4:
            hint = "; drop the alpha band with image[..., :3]"
        elif image.ndim == ndim - 1:
            hint = "; for a single-band image stack it: np.repeat(image[..., None], 3, -1)"
        raise InputError(f"image must be {want} RGB, got shape {image.shape}{hint}")
    if image.dtype != np.uint8:
        raise InputError(
            f"image must be uint8 (0-255), got {image.dtype}; rescale to 0-255 and use "
            ".astype(np.uint8)"
        )
    h, w = image.shape[-3:-1]
    if min(h, w) < MIN_IMAGE_PX:
        raise InputError(
            f"image must be at least {MIN_IMAGE_PX}x{MIN_IMAGE_PX} px, got {h}x{w}; pad or "
            "use a larger area"
        )


def load_segmenter(
    checkpoint: str | os.PathLike[str] | None = None,
    *,
    config: str | Any | None = None,
    device: str = "auto",
    threads: int | None = None,
    precision: str = "auto",
) -> Segmenter:
    """Load a :class:`Segmenter`.

    Args:
        checkpoint: A ``.safetensors`` file written by ``save_checkpoint``. With
            ``checkpoint=None`` and ``config=None`` the bundled default weights
            (``backend/weights/default.safetensors``) are used.
        config: Registry name or config. Without ``checkpoint`` this builds a **random-init**
            model (tests, benchmarks). With ``checkpoint``, it must name the checkpoint's
            architecture.
        device: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``,
            ``"mps"``.
        threads: ``torch.set_num_threads`` value (process-wide); None uses the physical
            cores on a CPU unless ``OMP_NUM_THREADS`` is set.
        precision: ``"auto"`` (the fastest mode within the fidelity bar here), ``"fp32"``,
            ``"bf16"`` (CUDA, or a CPU with AVX-512 BF16 / AMX) or ``"int8"`` (CPU); see
            :mod:`backend.model.precision`.

    Raises:
        CheckpointError: Missing/corrupt/unsafe checkpoint, or no bundled default weights.
        ConfigError: Unknown config name, one that contradicts the checkpoint, or a precision
            this device cannot run (checked before anything is loaded).
        DeviceError: Unknown or unavailable device.
    """
    dev = resolve_device(device)
    resolve_precision(precision, dev)  # a bad or impossible mode fails before a long load
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ConfigError(f"threads must be a positive int or None, got {threads!r}")
        torch.set_num_threads(threads)
    elif dev.type == "cpu" and default_threads():
        torch.set_num_threads(default_threads())
    cfg = get_model_config(config) if isinstance(config, str) else config
    if cfg is not None and not callable(getattr(cfg, "to_dict", None)):
        raise ConfigError(f"config must be a name or a model config, got {type(config).__name__}")

    if checkpoint is None and cfg is not None:
        logger.warning("building %r with RANDOM weights (no checkpoint given)", cfg.name)
        return Segmenter(architecture_of(cfg).build(cfg, device=dev), precision=precision)
    if checkpoint is None:
        if not DEFAULT_WEIGHTS.is_file():
            raise CheckpointError(
                f"no bundled default weights yet ({DEFAULT_WEIGHTS} is missing); pass "
                "checkpoint=<file.safetensors>, or config=<name> for a random-init model "
                "(tests only)"
            )
        checkpoint = DEFAULT_WEIGHTS

    from .checkpoint import load_checkpoint

    loaded = load_checkpoint(checkpoint, device=dev)
    if cfg is not None and cfg.name != loaded.config.name:
        raise ConfigError(
            f"config {cfg.name!r} does not match the checkpoint's {loaded.config.name!r}; "
            "leave config=None to use the checkpoint's own"
        )
    segmenter = Segmenter(
        loaded.model, checkpoint_sha256=loaded.weights_sha256, precision=precision
    )
    segmenter.gsd_m_by_concept = _concept_gsd(loaded.metadata)
    return segmenter


def _concept_gsd(metadata: Any) -> dict[str, float]:
    """``inference.gsd_m_by_concept`` of checkpoint metadata, keeping only sane values (m/px)."""
    inference = metadata.get("inference") if isinstance(metadata, dict) else None
    table = inference.get("gsd_m_by_concept") if isinstance(inference, dict) else None
    if not isinstance(table, dict):
        return {}
    return {
        str(k): float(v)
        for k, v in table.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and 0.01 <= v <= 1000
    }


@dataclass(frozen=True)
class ModelDescription:
    """What a run needs to know about a model before loading it (to plan the run).

    Attributes:
        name: Config name.
        image_size: Tile size in pixels.
        gsd_m: Working resolution in m/px, or None.
        seconds_per_tile: Measured time per tile on the chosen device and precision, or None.
    """

    name: str
    image_size: int
    gsd_m: float | None
    seconds_per_tile: float | None


def describe_model(
    checkpoint: str | os.PathLike[str] | None = None,
    *,
    config: str | None = None,
    device: str = "auto",
    precision: str = "auto",
) -> ModelDescription:
    """Describe the model :func:`load_segmenter` would load, from the header only (fast).

    Raises:
        CheckpointError, ConfigError, DeviceError: As :func:`load_segmenter` would.
    """
    from .checkpoint import read_header

    dev = resolve_device(device)
    if checkpoint is None and config is not None:
        cfg = get_model_config(config)
    else:
        path = DEFAULT_WEIGHTS if checkpoint is None else checkpoint
        if checkpoint is None and not DEFAULT_WEIGHTS.is_file():
            raise CheckpointError(f"no bundled default weights ({DEFAULT_WEIGHTS} is missing)")
        cfg = read_header(path).config
        if config is not None and config != cfg.name:
            raise ConfigError(
                f"config {config!r} does not match the checkpoint's {cfg.name!r}; "
                "leave config out to use the checkpoint's own"
            )
    return ModelDescription(
        name=cfg.name,
        image_size=int(cfg.image_size),
        gsd_m=cfg.gsd_m,
        seconds_per_tile=seconds_per_tile_for(
            cfg.name, dev.type, resolve_precision(precision, dev, cfg.name)
        ),
    )
