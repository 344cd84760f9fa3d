"""Precision modes of a loaded model: ``fp32``, ``bf16``, ``int8`` and ``auto``.

* ``fp32``: the reference; every other mode is tested against it (mask IoU >= 0.98 and the
  same decision on >= 99 % of pixels, ``tests/backend/model/test_precision.py``).
* ``bf16``: bfloat16 autocast. On CUDA always; on a CPU only when it has AVX-512 BF16 or AMX
  (``torch.cpu.get_capabilities()``): without them torch computes bf16 matrix products in a
  slow fallback (0.5 GFLOP/s against 138 in fp32 on the AVX2 reference VM), so it is refused.
* ``int8``: dynamic quantisation of ``nn.Linear`` layers, made once at load: int8 weights
  with one scale per output channel, activations quantised per call (7-bit on AVX2: fbgemm's
  ``reduce_range``); CPU only. Which layers is the model's own choice, measured per part: a
  model with an ``int8_layers()`` method names them (the published layout: the MLPs of Hiera's
  stages 3 and 4 only, :mod:`backend.model.official.parts`); otherwise the encoders' Linear
  layers under :data:`INT8_PREFIXES` (our architectures). Adapters, heads, mask decoder,
  convolutions, attention products and norms stay float32 everywhere.
* ``auto``: CUDA -> ``bf16``; CPU with AVX-512 BF16 or AMX -> ``bf16``; other CPUs -> ``int8``
  for the configs whose measured evidence passes (:data:`INT8_MEASURED`: faster than fp32
  by >= :data:`MIN_INT8_SPEEDUP` in an interleaved run and within the fidelity bar at the
  bench tile), else ``fp32``; MPS -> ``fp32``.

Example:
    >>> mode = resolve_precision("auto", torch.device("cpu"), "official-large")
    >>> apply_precision(model, mode)          # int8: quantises the Linear layers in place
    >>> with precision_context(mode, torch.device("cpu")):
    ...     logits = model(inputs).logits
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

from ..errors import ConfigError

__all__ = [
    "INT8_HELPS",
    "INT8_MEASURED",
    "INT8_PREFIXES",
    "MEASURED_SECONDS_PER_TILE",
    "PRECISIONS",
    "CpuSupport",
    "Int8Evidence",
    "apply_precision",
    "cpu_support",
    "default_threads",
    "int8_layer_names",
    "precision_context",
    "resolve_precision",
    "seconds_per_tile_for",
]

PRECISIONS = ("auto", "fp32", "bf16", "int8")
"""Names a caller may pass (API ``precision=``, CLI ``--precision``, dock, Processing)."""

INT8_PREFIXES = ("union.", "image_encoder.trunk.")
"""Module-name prefixes whose ``nn.Linear`` layers ``int8`` quantises in a model without an
``int8_layers()`` method; names containing :data:`INT8_SKIP` are kept."""
INT8_SKIP = ("Adapter",)

IOU_BAR, AGREE_BAR = 0.98, 0.99
"""The fidelity bar of every mode against fp32: mask IoU and same-decision pixel fraction."""
MIN_INT8_SPEEDUP = 1.05
"""Least fp32/int8 time ratio for ``auto`` to prefer int8 (below it, fp32's exact answers)."""


@dataclass(frozen=True)
class Int8Evidence:
    """What ``make bench`` measured for a config's ``int8`` on the AVX2 reference VM.

    Attributes:
        speedup: Median fp32 seconds per tile / median int8 seconds, tiles interleaved in
            one process (``bench/cpu_pair.py``).
        iou: Mask IoU of int8 against fp32 at the bench tile (worst input).
        agree: Fraction of pixels with the same decision (worst input).
    """

    speedup: float
    iou: float
    agree: float

    @property
    def helps(self) -> bool:
        """Faster by at least :data:`MIN_INT8_SPEEDUP` and within the fidelity bar."""
        return self.speedup >= MIN_INT8_SPEEDUP and self.iou >= IOU_BAR and self.agree >= AGREE_BAR


INT8_MEASURED: dict[str, Int8Evidence] = {
    "large": Int8Evidence(speedup=1.50, iou=0.993, agree=0.9942),
    "official-large": Int8Evidence(speedup=1.15, iou=0.9877, agree=0.9993),
}
"""Measured evidence per config (docs/benchmarks.md, "CPU precision modes"). ``large``: separate
processes, 2026-12-07. ``official-large``: the stage-3/4-MLP recipe, 2026-12-08, quiet cores
(the earlier all-encoder recipe was 1.23x but IoU 0.955). The small models are left out: they
gain little absolute time and run ``fp32``."""

INT8_HELPS = frozenset(name for name, ev in INT8_MEASURED.items() if ev.helps)
"""Configs for which ``auto`` picks ``int8`` on a CPU without bf16."""


MEASURED_SECONDS_PER_TILE: dict[tuple[str, str, str], float] = {
    ("official-large", "cpu", "fp32"): 17.1,
    ("official-large", "cpu", "int8"): 14.9,
    ("large", "cpu", "int8"): 11.0,
}
"""Model seconds per ``image_size`` tile by ``(config, device type, mode)`` on the 2-core
reference VM (docs/benchmarks.md, "CPU precision modes"): ``official-large`` fp32 measured on
idle cores (issue 32); the int8 entries are the idle fp32 time divided by the int8 speed-up
measured with fp32 and int8 interleaved in one process (``bench/cpu_pair.py``: 1.15x for
``official-large``'s stage-3/4-MLP recipe, 1.50x for ``large``). Other keys fall back to
``NOMINAL_SECONDS_PER_TILE`` (fp32 on a CPU, bf16 on CUDA)."""


def seconds_per_tile_for(config_name: str, device_type: str, mode: str) -> float | None:
    """The planner's time per tile for a model run in ``mode`` (None when never measured)."""
    from .configs import NOMINAL_SECONDS_PER_TILE

    measured = MEASURED_SECONDS_PER_TILE.get((config_name, device_type, mode))
    if measured is not None:
        return measured
    nominal_mode = "bf16" if device_type == "cuda" else "fp32"
    if mode != nominal_mode:
        return None
    return NOMINAL_SECONDS_PER_TILE.get((config_name, device_type))


@dataclass(frozen=True)
class CpuSupport:
    """What this CPU offers for low precision (from ``torch.cpu.get_capabilities()``).

    Attributes:
        capability: torch's vector ISA level (``"AVX2"``, ``"AVX512"``, ...).
        bf16: AVX-512 BF16 or AMX-BF16: bf16 matrix products run natively.
        int8: A quantised engine (fbgemm/x86/onednn) is available for dynamic int8.
        vnni: AVX-512 VNNI or AVX-VNNI (int8 dot products in one instruction).
        physical_cores: Physical cores (0 when unknown).
    """

    capability: str
    bf16: bool
    int8: bool
    vnni: bool
    physical_cores: int

    def describe(self) -> str:
        """One line for logs and reports."""
        flags = [n for n, on in (("bf16", self.bf16), ("vnni", self.vnni)) if on]
        return f"{self.capability}, {self.physical_cores} physical cores" + (
            f", {'/'.join(flags)}" if flags else ", no native bf16"
        )


@lru_cache(maxsize=1)
def cpu_support() -> CpuSupport:
    """Query this CPU once (torch's own capability query)."""
    caps: dict[str, object] = {}
    with contextlib.suppress(AttributeError, RuntimeError):
        caps = dict(torch.cpu.get_capabilities())
    engines = set(torch.backends.quantized.supported_engines)
    return CpuSupport(
        capability=str(torch.backends.cpu.get_cpu_capability()),
        bf16=bool(caps.get("avx512_bf16") or caps.get("amx_bf16")),
        int8=bool(engines & {"x86", "fbgemm", "onednn"}),
        vnni=bool(caps.get("avx512_vnni") or caps.get("avx_vnni")),
        physical_cores=int(caps.get("num_physical_cores") or 0),  # type: ignore[call-overload]
    )


def default_threads() -> int | None:
    """Threads for CPU inference: the physical cores, unless ``OMP_NUM_THREADS`` is set.

    Returns:
        The count to pass to ``torch.set_num_threads``, or None to leave torch's choice
        (an explicit ``OMP_NUM_THREADS`` wins, as does an unknown core count).
    """
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    return cpu_support().physical_cores or None


def resolve_precision(precision: str, device: torch.device, config_name: str = "") -> str:
    """Turn a requested mode into the one that will run.

    Args:
        precision: One of :data:`PRECISIONS`.
        device: Where the model runs.
        config_name: The model's config name (``auto`` on a CPU without bf16 picks ``int8``
            for :data:`INT8_HELPS` only: measured faster and within the bar).

    Returns:
        ``"fp32"``, ``"bf16"`` or ``"int8"``.

    Raises:
        ConfigError: Unknown name, or a mode this device cannot run (bf16 on a CPU without
            AVX-512 BF16 / AMX, int8 off the CPU).
    """
    if not isinstance(precision, str) or precision.strip().lower() not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    mode = precision.strip().lower()
    cpu = device.type == "cpu"
    if mode == "auto":
        if device.type == "cuda":
            return "bf16"
        if not cpu:
            return "fp32"
        support = cpu_support()
        if support.bf16:
            return "bf16"
        return "int8" if support.int8 and config_name in INT8_HELPS else "fp32"
    if mode == "bf16" and cpu and not cpu_support().bf16:
        raise ConfigError(
            f"precision 'bf16' needs a CPU with AVX-512 BF16 or AMX; this one has "
            f"{cpu_support().capability} without them (bf16 would be far slower than fp32): "
            "use precision 'int8', 'fp32' or 'auto'"
        )
    if mode == "bf16" and device.type == "mps":
        raise ConfigError("precision 'bf16' is for CUDA and CPUs with bf16; use 'fp32' on mps")
    if mode == "int8" and not cpu:
        raise ConfigError(
            f"precision 'int8' runs on the CPU only, not on {device.type}; use 'bf16' or 'auto'"
        )
    if mode == "int8" and not cpu_support().int8:
        raise ConfigError("precision 'int8' needs torch's quantised CPU engine; use 'fp32'")
    return mode


def apply_precision(model: nn.Module, mode: str) -> nn.Module:
    """Prepare ``model`` once for ``mode`` (only ``int8`` changes the model).

    ``int8`` replaces the ``nn.Linear`` layers of :func:`int8_layer_names` in place by
    dynamically quantised ones (int8 weights, per-output-channel scales, float32 bias); their
    float32 weights are freed.

    Args:
        model: An eval-mode model on the CPU.
        mode: A resolved mode (:func:`resolve_precision`).

    Returns:
        The same model object.
    """
    if mode != "int8":
        return model
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():  # the eager API's notice pointing to torchao (measured slower)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        quantize_dynamic(
            model,
            {name: per_channel_dynamic_qconfig for name in int8_layer_names(model)},
            dtype=torch.qint8,
            inplace=True,
        )
    return model


def int8_layer_names(model: nn.Module) -> list[str]:
    """Qualified names of the ``nn.Linear`` layers ``int8`` quantises in ``model``.

    A model's own ``int8_layers()`` wins (its measured per-part choice); otherwise every
    exact ``nn.Linear`` under :data:`INT8_PREFIXES` whose name has none of :data:`INT8_SKIP`.
    """
    chooser = getattr(model, "int8_layers", None)
    if callable(chooser):
        return list(chooser())
    return [
        name
        for name, module in model.named_modules()
        # exact type: nn.MultiheadAttention's out_proj (a Linear subclass) must stay float
        if type(module) is nn.Linear
        and name.startswith(INT8_PREFIXES)
        and not any(s in name for s in INT8_SKIP)
    ]


def precision_context(mode: str, device: torch.device) -> contextlib.AbstractContextManager[object]:
    """The autocast context of a mode for a forward pass (a no-op for fp32 and int8)."""
    if mode == "bf16" and device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
