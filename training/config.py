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
from training.losses import LossConfig

DATASET_FORMATS = ("refsegrs", "rrsisd", "synthetic", "packed")
SCHEDULES = ("constant", "step", "cosine", "linear", "poly")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
EVAL_MODES = ("paper", "native")
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


@dataclass
class DataSetConfig:
    """One data set in the mix.

    Attributes:
        format: ``refsegrs`` (also every generated set), ``rrsisd``, ``synthetic`` or
            ``packed`` (a generated set's shards, ``python -m training pack``).
        root: Data folder (relative paths are relative to the working directory).
        tag: Name in logs and metrics; default: the folder name (or the format).
        train_split: Split used for training ("" = not trained on).
        val_split: Split used for validation ("" = not validated on).
        repeat: Integer oversampling factor of this set in the training mix.
        max_train_samples: Keep only the first N training samples (0 = all).
        max_val_samples: Validate on a fixed seeded subset of N samples (0 = all).
        types: Train only on these expression types (empty = all; untyped samples are kept).
        val_types: Validate only on these expression types (empty = all), e.g. ``[class]``
            for a recipe probe that trains class-level expressions only.
        synthetic_samples: Size of a synthetic split.
        synthetic_size_px: Image side of synthetic samples.
    """

    format: str = "refsegrs"
    root: str = ""
    tag: str = ""
    train_split: str = "train"
    val_split: str = "val"
    repeat: int = 1
    max_train_samples: int = 0
    max_val_samples: int = 0
    types: list[str] = field(default_factory=list)
    val_types: list[str] = field(default_factory=list)
    synthetic_samples: int = 32
    synthetic_size_px: int = 96

    def __post_init__(self) -> None:
        _check(self.format in DATASET_FORMATS,
               f"data set format must be one of {DATASET_FORMATS}, got {self.format!r}")
        _check(self.format == "synthetic" or bool(self.root),
               f"data set of format {self.format!r} needs a root folder (data.sets.N.root=DIR)")
        _check(self.repeat >= 1, f"repeat must be >= 1, got {self.repeat}")
        if not self.tag:
            self.tag = Path(self.root).name if self.root else self.format


@dataclass
class DataConfig:
    """The training / validation data.

    Attributes:
        sets: Data sets (trained on their ``train_split``, validated on their ``val_split``).
        num_workers: DataLoader workers per process (0 = load in the training process).
        prefetch_factor: Batches each worker prepares ahead (with ``num_workers > 0``); every
            batch in flight sits in shared memory (``/dev/shm``).
        pin_memory: Page-locked host batches (faster copies to a GPU).
        image_size: Network input side in px; 0 = the model config's ``image_size``.
    """

    sets: list[DataSetConfig] = field(default_factory=list)
    num_workers: int = 0
    prefetch_factor: int = 2
    pin_memory: bool = False
    image_size: int = 0

    def __post_init__(self) -> None:
        _check(self.num_workers >= 0, f"data.num_workers must be >= 0, got {self.num_workers}")
        _check(self.prefetch_factor >= 1,
               f"data.prefetch_factor must be >= 1, got {self.prefetch_factor}")


@dataclass
class AugmentConfig:
    """Augmentations that keep the expression true (see :mod:`training.data.transforms`).

    Attributes:
        hflip: Probability of a horizontal flip; left/right words are swapped in the text.
        vflip: Probability of a vertical flip; top/bottom, upper/lower, above/below swapped.
        scale_crop: Probability of a random scale-crop, only for expressions without spatial,
            ordinal, size or relational words, keeping at least ``crop_keep`` of the target.
        crop_scale: Smallest crop side as a fraction of the image side.
        crop_keep: Share of the target pixels a crop must keep.
        zoom: Probability of a log-uniform zoom by a factor in ``zoom_range`` (crop-safe texts
            only, like ``scale_crop``): > 1 crops a ``1/z`` window, < 1 shrinks the image onto
            a mean-colour canvas. Covers imagery of other ground resolutions.
        zoom_range: ``[min, max]`` zoom factor (``[0.5, 2.0]``: half to twice the trained size).
        lowres: Probability of a down-and-up resampling by a factor in ``[1, lowres_max]``
            (coarse imagery upsampled to the working resolution).
        lowres_max: Largest down-sampling factor of ``lowres``.
        brightness: Max relative brightness change (0 = off).
        contrast: Max relative contrast change (0 = off).
        colour: Probability of the colour jitter below (gamma for every text; saturation, hue
            and channel gains only for texts without colour words).
        gamma: Gamma in ``[1 / (1 + gamma), 1 + gamma]`` (log-uniform; 0 = off).
        saturation: Max relative saturation change (0 = off).
        hue_deg: Max hue rotation in degrees (0 = off).
        channel_gain: Max relative gain per RGB channel, i.e. white balance (0 = off).
        cutout_fraction: Share of training samples (fixed subset, seeded) that get black boxes
            (the paper's RRSIS-D recipe: 0.2).
        cutout_boxes: Range of the number of boxes.
        cutout_box_frac: Box side as a fraction of the image side (32 / 800 in the paper).
    """

    hflip: float = 0.0
    vflip: float = 0.0
    scale_crop: float = 0.0
    crop_scale: float = 0.6
    crop_keep: float = 0.7
    zoom: float = 0.0
    zoom_range: list[float] = field(default_factory=lambda: [0.5, 2.0])
    lowres: float = 0.0
    lowres_max: float = 2.0
    brightness: float = 0.0
    contrast: float = 0.0
    colour: float = 0.0
    gamma: float = 0.0
    saturation: float = 0.0
    hue_deg: float = 0.0
    channel_gain: float = 0.0
    cutout_fraction: float = 0.0
    cutout_boxes: list[int] = field(default_factory=lambda: [20, 60])
    cutout_box_frac: float = 0.04

    def __post_init__(self) -> None:
        for name in ("hflip", "vflip", "scale_crop", "zoom", "lowres", "colour",
                     "cutout_fraction"):
            v = getattr(self, name)
            _check(0.0 <= v <= 1.0, f"augment.{name} is a probability in [0, 1], got {v}")
        _check(0.1 <= self.crop_scale <= 1.0,
               f"augment.crop_scale must be in [0.1, 1], got {self.crop_scale}")
        zr = self.zoom_range
        _check(len(zr) == 2 and 0.1 <= zr[0] <= zr[1] <= 10.0,
               f"augment.zoom_range must be [min, max] with 0.1 <= min <= max <= 10, got {zr}")
        _check(1.0 <= self.lowres_max <= 8.0,
               f"augment.lowres_max must be in [1, 8], got {self.lowres_max}")
        _check(0.0 <= self.hue_deg <= 180.0,
               f"augment.hue_deg must be in [0, 180] degrees, got {self.hue_deg}")
        for name in ("brightness", "contrast", "saturation", "channel_gain"):
            v = getattr(self, name)
            _check(0.0 <= v < 1.0, f"augment.{name} is a relative change in [0, 1), got {v}")
        _check(0.0 <= self.gamma <= 2.0, f"augment.gamma must be in [0, 2], got {self.gamma}")
        _check(len(self.cutout_boxes) == 2 and 0 <= self.cutout_boxes[0] <= self.cutout_boxes[1],
               f"augment.cutout_boxes must be [min, max], got {self.cutout_boxes}")


@dataclass
class OptimConfig:
    """AdamW with two learning-rate groups and a schedule.

    Attributes:
        lr_base: LR of the ``base`` group (pretrained parts; 5e-5 in the paper).
        lr_new: LR of the ``new`` group (adapters, MPG, fusion; 1e-4 in the paper).
        weight_decay: AdamW weight decay (0.01).
        betas: AdamW betas.
        eps: AdamW epsilon.
        grad_clip_norm: Clip the global grad norm to this (0 = off; the paper does not clip).
        schedule: ``constant`` (paper), ``step`` (x ``gamma`` at each of ``step_epochs``),
            ``cosine`` or ``linear`` decay to ``min_lr_ratio`` over the run, or ``poly``:
            ``(1 - t) ** poly_power`` per optimiser step (the LAVT / LGCE recipe, to 0).
        warmup_steps: Linear warm-up optimiser steps (0 = none).
        step_epochs: Epoch indices (0-based) where a ``step`` schedule multiplies by ``gamma``.
        gamma: Step factor.
        min_lr_ratio: Final LR / initial LR for cosine and linear.
        total_steps: Optimiser steps the cosine / linear decay spans (0 = ``epochs`` x the
            steps of the first epoch, which is wrong when epochs differ in length, e.g. with a
            curriculum and no ``max_steps_per_epoch``).
        schedule_time_s: When > 0, the decay's progress is the larger of the step fraction and
            the fraction of this many seconds of this process's training, so a run whose speed
            is not known in advance (a lent GPU) still ends its decay by then. Not bit-exact
            on resume (wall-clock dependent).
        poly_power: Exponent of the ``poly`` schedule (0.9 in LAVT / LGCE).
    """

    lr_base: float = 5e-5
    lr_new: float = 1e-4
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    grad_clip_norm: float = 0.0
    schedule: str = "constant"
    warmup_steps: int = 0
    step_epochs: list[int] = field(default_factory=list)
    gamma: float = 0.1
    min_lr_ratio: float = 0.0
    total_steps: int = 0
    schedule_time_s: float = 0.0
    poly_power: float = 0.9

    def __post_init__(self) -> None:
        _check(self.total_steps >= 0, f"optim.total_steps must be >= 0, got {self.total_steps}")
        _check(self.schedule_time_s >= 0,
               f"optim.schedule_time_s must be >= 0, got {self.schedule_time_s}")
        _check(self.schedule in SCHEDULES,
               f"optim.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        _check(self.lr_base >= 0 and self.lr_new >= 0, "learning rates must be >= 0")
        _check(len(self.betas) == 2, f"optim.betas needs 2 values, got {self.betas}")


@dataclass
class InferenceConfig:
    """How the exported weights should be run; stored in every exported checkpoint.

    The metadata key ``inference`` of ``best.safetensors`` / ``final.safetensors`` holds
    ``{"gsd_m": ..., "gsd_m_by_concept": {...}}``.

    Attributes:
        gsd_m: Working resolution (m/px) for concepts without an entry below; written into the
            stored model config's ``gsd_m`` too (0 = keep the model config's).
        gsd_m_by_concept: Working resolution per trained concept, keyed by the generated sets'
            class names (``target_class`` in ``refer_*.jsonl``: ``vehicle``, ``airplane``,
            ``tennis_court``, ``water``, ...); ``tools/concept_gsd.py`` measures them.
    """

    gsd_m: float = 0.0
    gsd_m_by_concept: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(self.gsd_m >= 0, f"inference.gsd_m must be >= 0 (0 = the model's), got {self.gsd_m}")
        bad = {k: v for k, v in self.gsd_m_by_concept.items() if not v > 0}
        _check(not bad, f"inference.gsd_m_by_concept values must be > 0 m/px, got {bad}")


@dataclass
class CurriculumStage:
    """From ``start_epoch`` on, train only on these expression types (empty = all).

    Attributes:
        start_epoch: First epoch (0-based) of the stage.
        start_fraction: When set, the stage starts instead with the first epoch that begins
            once this share (0-1) of ``optim.schedule_time_s`` has been trained, so that runs
            of different speed spend the same share of a wall-clock budget in each stage. The
            epoch it began with is kept in the training state (a resumed run keeps it). Either
            every stage sets it or none does.
        types: Expression types of the stage (empty = all).
    """

    start_epoch: int = 0
    types: list[str] = field(default_factory=list)
    start_fraction: float | None = None


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
    """Defaults, then the YAML file, then ``key=value`` overrides; types checked on every merge.

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
            merged = OmegaConf.merge(merged, OmegaConf.load(p))
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


def config_to_yaml(cfg: TrainConfig) -> str:
    """The resolved config as YAML (written into every run folder and checkpoint)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
