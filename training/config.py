"""Training configuration: a dataclass tree, YAML files in ``training/configs/``, dotlist overrides.

``load_train_config(path, ["optim.lr_new=3e-4", "epochs=5"])`` merges defaults <- YAML <-
overrides through OmegaConf's structured configs, so unknown keys and wrongly typed values are
rejected with the key's full name, and every ``__post_init__`` check runs on the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.errors import ConfigError
from training.config_sections import (  # the sections stay importable from here
    CONFIG_DIR,
    DATASET_FORMATS,
    EVAL_MODES,
    PRECISIONS,
    SCHEDULES,
    AugmentConfig,
    ClickConfig,
    CurriculumStage,
    DataConfig,
    DataSetConfig,
    InferenceConfig,
    OptimConfig,
    _check,
)
from training.losses import LossConfig

__all__ = [
    "CONFIG_DIR", "DATASET_FORMATS", "EVAL_MODES", "PRECISIONS", "SCHEDULES", "AugmentConfig",
    "ClickConfig", "CurriculumStage", "DataConfig", "DataSetConfig", "InferenceConfig",
    "OptimConfig", "TrainConfig", "config_to_yaml", "load_train_config",
]


@dataclass
class TrainConfig:
    """Everything one run needs; saved next to every checkpoint it writes.

    Attributes:
        model: Model registry name (``backend.model.configs.list_models()``).
        model_overrides: ModelConfig fields to replace (e.g. ``{image_size: 320}``).
        init_checkpoint: Our ``.safetensors`` to start from ("" = random init).
        sam2_weights: Official SAM 2 / 2.1 ``.pt`` to initialise the SAM 2 parts.
        clip_weights: open_clip weight file to initialise the CLIP towers.
        pretrained: Local pretrained files by kind, for the model's architecture (RS2-SAM 2:
            ``sam2``, ``clip`` (the two fields above are shorthands); LGCE: ``swin`` (a Swin
            ``.pth``/``.safetensors``), ``bert`` (a folder with BERT-base weights and
            ``vocab.txt``)).
        data: Data sets and loading.
        augment: Augmentations.
        optim: Optimiser and schedule.
        loss: Loss weights and variants.
        inference: Working resolutions stored with the exported weights.
        curriculum: Expression types per epoch range (empty = all types throughout).
        clicks: Simulated clicks mixed into the text training (off by default).
        epochs: Number of epochs.
        batch_size: Samples per process per micro-step.
        grad_accum_steps: Micro-steps per optimiser step (global batch =
            ``batch_size * grad_accum_steps * world_size``).
        max_steps_per_epoch: Cap on optimiser steps per epoch (0 = the full epoch).
        max_steps: Stop once this many optimiser steps are done in total (0 = no limit).
        time_limit_s: Stop once this process has trained this long (seconds; 0 = no limit).
            Either stop writes ``last.pt`` (resumable mid-epoch) and ``final.safetensors``,
            without a validation pass.
        precision: ``auto`` (bf16 autocast on CUDA, fp32 on CPU), ``bf16``, ``fp16``
            (CUDA, with a grad scaler) or ``fp32``.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.
        threads: ``torch.set_num_threads`` per process (0 = leave torch's default).
        seed: Seeds init-independent randomness (shuffling, augmentation, dropout).
        out_dir: Run folder: checkpoints, CSV logs, curves, config.
        resume: ``""`` (fresh run; refuses a non-empty out_dir), ``"auto"`` (resume from
            ``out_dir/last.pt`` when it exists) or a path to a training checkpoint.
        eval_every: Validate every N epochs (and after the last).
        eval_mode: ``paper`` (network resolution) or ``native`` (original size).
        eval_batch_size: Validation batch size per process.
        checkpoint_every: Write ``last.pt`` every N epochs (and after the last one).
        save_every_steps: Also write ``last.pt`` every N optimiser steps (0 = epoch ends only).
        save_at_samples: Also export ``samples_<N>.safetensors`` (no validation metrics) at the
            first step where the samples seen reach each N, e.g. ``[64000]`` to compare runs of
            different batch sizes at equal samples.
        keep_epoch_checkpoints: Keep ``epoch_NNN.pt`` of every epoch besides ``last.pt``.
        log_every: Write a training log row every N optimiser steps.
        progress: Show tqdm bars (main process only).
        find_unused_parameters: DDP option, for models with branches unused in a step.
        export_fp16: Store the exported ``best.safetensors`` / ``final.safetensors`` in fp16.
        stop_at_miou: Stop after an evaluation where every val set reaches this mIoU (x100;
            0 = never stop early).
    """

    model: str = "nano"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    init_checkpoint: str = ""
    sam2_weights: str = ""
    clip_weights: str = ""
    pretrained: dict[str, str] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    curriculum: list[CurriculumStage] = field(default_factory=list)
    clicks: ClickConfig = field(default_factory=ClickConfig)
    epochs: int = 40
    batch_size: int = 1
    grad_accum_steps: int = 1
    max_steps_per_epoch: int = 0
    max_steps: int = 0
    time_limit_s: float = 0.0
    precision: str = "auto"
    device: str = "auto"
    threads: int = 0
    seed: int = 2401
    out_dir: str = "runs/default"
    resume: str = ""
    eval_every: int = 1
    eval_mode: str = "paper"
    eval_batch_size: int = 4
    checkpoint_every: int = 1
    save_every_steps: int = 0
    save_at_samples: list[int] = field(default_factory=list)
    keep_epoch_checkpoints: bool = False
    log_every: int = 10
    progress: bool = True
    find_unused_parameters: bool = False
    export_fp16: bool = False
    stop_at_miou: float = 0.0

    def __post_init__(self) -> None:
        from backend.model.configs import get_model_config
        from training.baselines import is_baseline

        if not is_baseline(self.model):  # training-only baselines (ablations) by name
            get_model_config(self.model)  # ConfigError listing the valid names
        _check(bool(self.data.sets), "data.sets is empty: name at least one data set")
        _check(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        _check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _check(self.grad_accum_steps >= 1,
               f"grad_accum_steps must be >= 1, got {self.grad_accum_steps}")
        _check(self.precision in PRECISIONS,
               f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        _check(self.eval_mode in EVAL_MODES,
               f"eval_mode must be one of {EVAL_MODES}, got {self.eval_mode!r}")
        _check(self.eval_every >= 1, f"eval_every must be >= 1, got {self.eval_every}")
        _check(self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}")
        _check(self.checkpoint_every >= 1,
               f"checkpoint_every must be >= 1, got {self.checkpoint_every}")
        starts = [s.start_epoch for s in self.curriculum]
        _check(starts == sorted(starts), f"curriculum start epochs must increase, got {starts}")
        fractions = [s.start_fraction for s in self.curriculum]
        if any(f is not None for f in fractions):
            _check(all(f is not None and 0 <= f <= 1 for f in fractions),
                   f"curriculum start_fraction must be set on every stage, each in [0, 1], "
                   f"got {fractions}")
            _check(fractions == sorted(fractions),  # type: ignore[type-var]
                   f"curriculum start fractions must increase, got {fractions}")
            _check(self.optim.schedule_time_s > 0,
                   "curriculum start_fraction needs optim.schedule_time_s > 0 (the wall-clock "
                   "budget the fractions refer to)")


def _format_omegaconf_error(err: Exception) -> str:
    key = getattr(err, "full_key", None) or ""
    msg = str(err).splitlines()[0] if str(err) else type(err).__name__
    return f"{msg} (key {key!r})" if key and key not in msg else msg


def load_train_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Defaults, then the YAML file (after its ``base:`` chain), then ``key=value`` overrides.

    Types are checked on every merge.

    Args:
        path: A YAML file (or None for the defaults).
        overrides: Dotlist overrides, e.g. ``["optim.lr_new=1e-3", "epochs=2"]``; list items
            by index (``data.sets.0.root=DIR``); values are parsed as YAML.

    Returns:
        The validated :class:`TrainConfig`.

    Raises:
        ConfigError: Missing file, unknown key, wrong type or an invalid value.
    """
    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    merged = OmegaConf.structured(TrainConfig)
    try:
        if path is not None:
            p = Path(path)
            if not p.is_file():
                known = ", ".join(sorted(f.name for f in CONFIG_DIR.glob("*.yaml")))
                raise ConfigError(
                    f"config file {str(p)!r} not found; the bundled ones are in "
                    f"training/configs/: {known}"
                )
            for layer in _yaml_layers(p):
                merged = OmegaConf.merge(merged, layer)
        bad = [o for o in overrides or [] if "=" not in o]
        if bad:
            raise ConfigError(f"overrides must look like key=value, got {bad}")
        for item in overrides or []:  # one by one: OmegaConf.update understands list indices
            key, value = item.split("=", 1)
            OmegaConf.update(merged, key.strip(), yaml.safe_load(value) if value else "",
                             merge=True)
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise ConfigError(f"bad training config: {_format_omegaconf_error(err)}") from None
    if not isinstance(cfg, TrainConfig):
        raise ConfigError(f"config did not produce a TrainConfig (got {type(cfg).__name__})")
    return cfg


def _yaml_layers(path: Path, seen: tuple[Path, ...] = ()) -> list[Any]:
    """The YAML file's layers, outermost base first.

    A top-level ``base: other.yaml`` (relative to the file's folder) is loaded before the file,
    which then overrides it key by key (lists are replaced whole).

    Raises:
        ConfigError: A missing base file or a cycle of bases.
    """
    from omegaconf import DictConfig, OmegaConf

    path = path.resolve()
    if path in seen:
        chain = " -> ".join(str(s.name) for s in (*seen, path))
        raise ConfigError(f"config bases form a cycle: {chain}; remove one 'base:' line")
    layer = OmegaConf.load(path)
    base = layer.pop("base", None) if isinstance(layer, DictConfig) else None
    if base is None:
        return [layer]
    base_path = path.parent / str(base)
    if not base_path.is_file():
        raise ConfigError(f"{path.name}: base {str(base)!r} not found (looked for "
                          f"{base_path}); give a path relative to {path.parent}")
    return [*_yaml_layers(base_path, (*seen, path)), layer]


def config_to_yaml(cfg: TrainConfig) -> str:
    """The resolved config as YAML (written into every run folder and checkpoint)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
