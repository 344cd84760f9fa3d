"""The sections of a training configuration and their checks.

Data, augmentation, optimiser, inference and curriculum; :mod:`training.config` assembles them
into ``TrainConfig`` (and re-exports them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from backend.errors import ConfigError

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
class ClickConfig:
    """Training with simulated clicks (SAM's protocol; :mod:`training.clicks`), mixed into text.

    A batch is a *click batch* with probability ``prob``: the text-only answer is computed as
    usual, then 1..``max_clicks`` clicks are placed one after another, each in the largest
    error region of the answer so far (decoder-only rounds on the same image encoding), and the
    loss is the mean of the text-only answer's loss and the last round's. Off by default.

    Attributes:
        prob: Share of batches trained with clicks (0 = text only).
        max_clicks: The number of clicks of a click batch is uniform in ``1..max_clicks``.
        mask_input_prob: Share of click rounds that also feed the previous answer's
            low-resolution logits back as the mask prompt (SAM's iterative refinement).
    """

    prob: float = 0.0
    max_clicks: int = 3
    mask_input_prob: float = 0.0

    def __post_init__(self) -> None:
        for name in ("prob", "mask_input_prob"):
            v = getattr(self, name)
            _check(0.0 <= v <= 1.0, f"clicks.{name} is a probability in [0, 1], got {v}")
        _check(1 <= self.max_clicks <= 20,
               f"clicks.max_clicks must be in 1..20, got {self.max_clicks}")


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
