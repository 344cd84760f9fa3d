"""``adapt(spec)``: teach a model the user's imagery from their polygons, in a CPU budget.

Stages (reported through ``progress``): load the base, read and check the examples, sample
tiles with a spatial hold-out, score the base on the hold-out, train for the rest of the
budget, score again, save one normal checkpoint with its provenance. Nothing is written until
the very end (an atomic rename), so an error or a cancel leaves no file.

Example:
    >>> spec = AdaptSpec(rasters=("ortho.tif",), examples="water.gpkg", text="water",
    ...                  out="ortho_water.safetensors", budget_s=300)
    >>> adapt(spec).summary()
    'hold-out IoU 3.1 % -> 71.0 % (water; 1 examples, 610 steps, 300 s)'
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from backend.errors import Cancelled, CheckpointError, InputError
from training.adapt.data import PairSet, keep_pairs, score_tiles, taught_pairs
from training.adapt.loop import ADAPT_AUGMENT, train_for_budget
from training.adapt.policies import trainable_parameters
from training.adapt.report import AdaptResult, examples_sha256, provenance
from training.adapt.sampling import MIN_EXAMPLE_PX, RasterExamples, sample_tiles
from training.adapt.spec import AdaptSpec, ProgressFn, check_output, check_spec
from training.data.datasets import Source, TrainSet

logger = logging.getLogger(__name__)

__all__ = ["adapt", "load_base"]

KEEP_TEXTS_PER_TILE = 2


def load_base(spec: AdaptSpec) -> tuple[nn.Module, str, str, dict[str, Any], str]:
    """``(model, architecture, parent sha256, parent metadata, parent name)`` of the base.

    Raises:
        CheckpointError: Missing, unsafe or corrupt checkpoint, or another architecture than
            ``spec.expect_architecture``.
    """
    from backend.model.architectures import architecture_of
    from backend.model.checkpoint import load_checkpoint, weights_sha256
    from backend.model.configs import get_model_config
    from backend.model.segmenter import DEFAULT_WEIGHTS
    from training.components import resolve_train_device

    device = resolve_train_device(spec.device)
    if spec.config is not None and spec.base is None:
        cfg = get_model_config(spec.config)
        model = architecture_of(cfg).build(cfg, device=device, seed=spec.seed)
        arch, meta, name = architecture_of(cfg).name, {}, f"{cfg.name} (random init)"
        sha = weights_sha256({k: v.cpu() for k, v in model.state_dict().items()})
    else:
        path = Path(spec.base) if spec.base else DEFAULT_WEIGHTS
        if not path.is_file():
            raise CheckpointError(f"base checkpoint {str(path)!r} does not exist; give a "
                                  ".safetensors file or leave --base out for the bundled one")
        ck = load_checkpoint(path, device=device)
        model, meta, sha = ck.model, ck.metadata, ck.weights_sha256
        arch = architecture_of(ck.config).name
        name = "bundled default weights" if spec.base is None else path.name
    if spec.expect_architecture and arch != spec.expect_architecture:
        raise CheckpointError(
            f"the base checkpoint is a {arch!r} model, not the expected "
            f"{spec.expect_architecture!r}; choose a {spec.expect_architecture} checkpoint"
        )
    return model, arch, sha, meta, name


def _interpret_texts(model: nn.Module, texts: list[str]) -> dict[str, tuple[str, tuple[str, ...]]]:
    """User text -> (model text, lexicon concepts); refuses text the base cannot read."""
    from backend.text.lexicon import interpret

    out = {}
    for text in texts:
        try:
            meaning = interpret(text, model.unknown_words)  # type: ignore[operator]
        except InputError as err:
            raise InputError(f"{err} (a text to teach must use words the base model knows; "
                             "adapting teaches what they look like in your imagery)") from None
        out[text] = (meaning.model_text, meaning.concepts)
    return out


def _keep_texts(model: nn.Module, taught: set[str]) -> list[str]:
    """Texts of the concepts the base knows and that are not taught ("the buildings", ...)."""
    from backend.text.lexicon import load_lexicon

    texts = []
    for key, info in load_lexicon().concepts.items():
        text = f"the {info['pl']}"
        if key not in taught and not model.unknown_words(text):  # type: ignore[operator]
            texts.append(text)
    return texts


def _read_examples(spec: AdaptSpec, stack: contextlib.ExitStack, gsd: float | None,
                   mapping: Callable[[str], str], notes: list[str],
                   ) -> tuple[list[RasterExamples], list[tuple[str, bytes]]]:
    """Open every raster and read the examples on it (reprojected, clipped, small ones out)."""
    import shapely
    from shapely.geometry import box

    from backend.geo.examples import (
        geometry_to_work_px,
        read_area,
        read_example_polygons,
        work_grid,
    )
    from backend.geo.radiometry import compute_stretch
    from backend.geo.raster import choose_bands, open_raster, raster_info, resolve_crs
    from backend.geo.tile_reader import TileReader

    out, hashed = [], []
    total = outside = small = 0
    for index, path in enumerate(spec.rasters):
        ds = stack.enter_context(open_raster(path))
        info = raster_info(ds, resolve_crs(ds))
        polys, more = read_example_polygons(
            spec.examples, crs_wkt=info.crs_wkt, layer=spec.layer, text_field=spec.text_field,
            text=spec.text, fids=spec.fids)
        if index == 0:
            notes += more
            total = len(polys)
        grid = work_grid(info, gsd)
        frame = box(0, 0, grid.width, grid.height)
        kept = []
        for p in polys:
            geom = geometry_to_work_px(p.geometry, grid).intersection(frame)
            if geom.is_empty or geom.area <= 0:
                continue
            if geom.area < MIN_EXAMPLE_PX:
                small += 1
                continue
            kept.append((geom, mapping(p.text)))
            hashed.append((p.text, shapely.to_wkb(p.geometry)))
        outside += len(polys) - len(kept)
        if not kept:
            continue
        area = None
        if spec.labelled_area:
            area = geometry_to_work_px(read_area(spec.labelled_area, crs_wkt=info.crs_wkt), grid)
        bands = choose_bands(info, None)
        reader = TileReader(ds, bands, compute_stretch(ds, bands, has_mask=info.has_mask),
                            scale_y=grid.scale_y, scale_x=grid.scale_x, has_mask=info.has_mask)
        out.append(RasterExamples(index, reader, grid, kept, area))
    if small:
        res = "the raster's resolution" if gsd is None else f"{gsd:g} m/px"
        notes.append(f"{small} example(s) smaller than {MIN_EXAMPLE_PX:g} pixels at {res} "
                     "skipped (too small to learn from; draw them larger or use --gsd)")
    if not out:
        where = ", ".join(repr(str(r)) for r in spec.rasters)
        why = ("all are smaller than a few pixels at the working resolution"
               if small and small + 0 >= total else "none overlaps the raster")
        raise InputError(f"no usable example polygon in {spec.examples!r} ({total} read; "
                         f"{why}: {where}); draw the examples on the raster's area")
    return out, hashed


def _say(progress: ProgressFn | None) -> ProgressFn:
    def say(stage: str, fraction: float, text: str) -> None:
        logger.info("%s", text)
        if progress is not None:
            progress(stage, fraction, text)
    return say


def adapt(spec: AdaptSpec, progress: ProgressFn | None = None,
          is_cancelled: Callable[[], bool] | None = None) -> AdaptResult:
    """Adapt the base model to the examples and write the adapted checkpoint.

    Args:
        spec: The inputs (:class:`AdaptSpec`).
        progress: ``progress(stage, fraction, text)`` (stages ``sampling``, ``validating``,
            ``training``, ``saving``).
        is_cancelled: Polled between stages and before every training step.

    Returns:
        The :class:`AdaptResult` (hold-out IoU before and after, provenance).

    Raises:
        InputError, OutputError, CheckpointError, RasterReadError: Bad input (nothing written).
        Cancelled: Cancelled (nothing written).
    """
    t0 = time.perf_counter()
    check_spec(spec)
    say = _say(progress)

    def check_cancel() -> None:
        if is_cancelled is not None and is_cancelled():
            raise Cancelled("adaptation cancelled; no checkpoint was written")

    if spec.threads:
        torch.set_num_threads(spec.threads)
    torch.manual_seed(spec.seed)
    say("sampling", 0.0, "Loading the base model…")
    model, arch, parent_sha, parent_meta, parent_name = load_base(spec)
    trained, params = trainable_parameters(model, arch)
    check_cancel()
    say("sampling", 0.03, "Reading the examples…")
    notes: list[str] = []
    texts = _user_texts(spec)
    meaning = _interpret_texts(model, texts)
    concepts = {c for _, cs in meaning.values() for c in cs}
    gsd = spec.gsd_m or _concept_gsd(model, parent_meta, concepts)
    with contextlib.ExitStack() as stack:
        examples, hashed = _read_examples(spec, stack, gsd, lambda t: meaning[t][0], notes)
        say("sampling", 0.06, f"Sampling tiles at {gsd or 'native'} m/px…")
        train, holdout, more = sample_tiles(
            examples, size=int(model.config.image_size), fraction=spec.holdout_fraction,
            max_tiles=spec.max_tiles, seed=spec.seed)
    notes += more
    if not spec.labelled_area:
        notes.append("no fully labelled area given: background was sampled only away from the "
                     "examples, which is weaker; give --labelled-area where every object is drawn")
    check_cancel()
    t_val = time.perf_counter()
    say("validating", 0.1, f"Scoring the base model on {len(holdout)} hold-out tile(s)…")
    before = score_tiles(model, holdout)
    t_val = time.perf_counter() - t_val
    # a scoped model answers other texts with the parent's weights: nothing to keep
    keeping = spec.keep_share > 0 and not spec.scoped
    keep = keep_pairs(model, train, _keep_texts(model, concepts) if keeping else [],
                      KEEP_TEXTS_PER_TILE, spec.seed)
    taught = taught_pairs(train)
    repeat = 1
    if keep:
        repeat = max(1, round(len(keep) * (1 - spec.keep_share) / (spec.keep_share * len(taught))))
    sources = [Source("taught", PairSet(taught, ["taught"] * len(taught)), repeat)]
    if keep:
        sources.append(Source("keep", PairSet(keep, ["keep"] * len(keep)), 1))
    train_set = TrainSet(sources, int(model.config.image_size), ADAPT_AUGMENT, spec.seed)
    parent = copy.deepcopy(model).eval() if spec.scoped else None
    check_cancel()
    left = spec.budget_s - (time.perf_counter() - t0) - t_val - 2.0
    minutes = max(1, int(np.ceil(max(left, 1.0) / 60)))

    shown = [0]

    def on_step(fraction: float) -> None:
        minute = min(minutes, int(fraction * minutes) + 1)
        text = f"Training: minute {minute} of {minutes}"
        if minute != shown[0]:
            shown[0] = minute
            logger.info("%s", text)
        if progress is not None:
            progress("training", 0.15 + 0.75 * fraction, text)

    loop = train_for_budget(model, params, train_set, budget_s=max(left, 1.0),
                            max_steps=spec.max_steps, batch_size=spec.batch_size, lr=spec.lr,
                            seed=spec.seed, on_step=on_step, is_cancelled=is_cancelled)
    _round_to_fp16(model)
    say("validating", 0.92, "Scoring the adapted model on the hold-out…")
    after = score_tiles(model, holdout)
    check_cancel()
    result = AdaptResult(
        out_path=str(spec.out), weights_sha256="", before=before, after=after, texts=texts,
        model_texts=[meaning[t][0] for t in texts], examples=len(hashed), steps=loop.steps,
        samples=loop.samples, seconds=time.perf_counter() - t0, trained=trained, gsd_m=gsd,
        notes=notes)
    say("saving", 0.97, "Saving the adapted model…")
    meta = provenance(parent_sha256=parent_sha, parent_name=parent_name,
                      parent_metadata=parent_meta, result=result,
                      examples_hash=examples_sha256(hashed), budget_s=spec.budget_s,
                      labelled_area=bool(spec.labelled_area), rasters=spec.rasters,
                      seed=spec.seed, concept_gsd={c: gsd for c in concepts if gsd})
    meta["adaptation"]["scoped"] = spec.scoped
    result.weights_sha256 = _save(_scope(model, parent, arch, result.model_texts), spec, meta)
    say("saving", 1.0, result.summary())
    return result


def _user_texts(spec: AdaptSpec) -> list[str]:
    """The distinct texts of the examples (one --text, or the values of --text-field)."""
    from backend.geo.examples import read_example_polygons

    if spec.text is not None and spec.text.strip():
        return [" ".join(spec.text.split())]
    polys, _ = read_example_polygons(spec.examples, crs_wkt=_any_crs(spec), layer=spec.layer,
                                     text_field=spec.text_field, fids=spec.fids)
    return sorted({p.text for p in polys})


def _any_crs(spec: AdaptSpec) -> str:
    from backend.geo.raster import open_raster, resolve_crs

    with open_raster(spec.rasters[0]) as ds:
        return resolve_crs(ds).to_wkt()  # type: ignore[no-any-return]


def _concept_gsd(model: nn.Module, meta: dict[str, Any], concepts: set[str]) -> float | None:
    """The base's working resolution for the taught concepts (finest), else its own."""
    table = (meta.get("inference") or {}).get("gsd_m_by_concept") or {}
    found = [float(table[c]) for c in concepts if c in table]
    if found:
        return min(found)
    gsd = getattr(model.config, "gsd_m", None)
    return float(gsd) if gsd else None


def _scope(model: nn.Module, parent: nn.Module | None, arch: str,
           texts: list[str]) -> nn.Module:
    """The model to save: the adapted one, or (scoped) both with the taught texts."""
    if parent is None:
        return model
    from backend.model.scoped import ScopedConfig, ScopedModel

    _round_to_fp16(parent)
    return ScopedModel(ScopedConfig(arch, model.config, tuple(texts)), parent, model)


@torch.no_grad()
def _round_to_fp16(model: nn.Module) -> None:
    """Round the weights to float16 in place: the file stores float16, scores match the file."""
    for t in [*model.parameters(), *model.buffers()]:
        if t.is_floating_point():
            t.copy_(t.half().float())


def _save(model: nn.Module, spec: AdaptSpec, meta: dict[str, Any]) -> str:
    """Write the checkpoint atomically (float16; never-seen token rows pruned as shipped)."""
    from backend.model.checkpoint import save_checkpoint

    out = check_output(spec.out, [*spec.rasters, spec.examples], overwrite=spec.overwrite)
    keep_rows = {}
    for name, param in model.named_parameters():
        if name.endswith("token_embedding.weight") and param.dim() == 2:
            nonzero = (param.detach() != 0).any(dim=1)
            if not bool(nonzero.all()):
                keep_rows[name] = torch.nonzero(nonzero)[:, 0]
    half = copy.deepcopy(model).half()
    return save_checkpoint(half, out, metadata=meta, keep_rows=keep_rows)
