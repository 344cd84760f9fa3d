"""``training.adapt``: adapting a model from polygons on a synthetic raster with drawn shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

CRS = "EPSG:32633"
ORIGIN = (500000.0, 4100000.0)  # top-left corner, 1 m pixels
SIZE = 256
DISCS = [(40, 50, 14), (60, 190, 18), (128, 120, 16), (200, 60, 15), (210, 200, 17),
         (110, 30, 12), (30, 120, 13), (170, 150, 12)]  # (row, col, radius) of the "water"


def _write_raster(path: Path) -> None:
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(0)
    img = rng.integers(90, 150, size=(SIZE, SIZE, 3)).astype(np.uint8)
    img[..., 1] = np.clip(img[..., 1].astype(int) + 30, 0, 255)  # greenish ground
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    for r, c in [(90, 200), (230, 120), (20, 230)]:  # red squares: not water
        img[(abs(yy - r) < 10) & (abs(xx - c) < 10)] = (200, 40, 40)
    for r, c, rad in DISCS:
        img[(yy - r) ** 2 + (xx - c) ** 2 <= rad * rad] = (30, 60, 170)
    with rasterio.open(path, "w", driver="GTiff", width=SIZE, height=SIZE, count=3,
                       dtype="uint8", crs=CRS, transform=from_origin(*ORIGIN, 1.0, 1.0)) as ds:
        ds.write(np.moveaxis(img, -1, 0))


def _disc(r: float, c: float, rad: float):
    from shapely.geometry import Point

    return Point(ORIGIN[0] + c + 0.5, ORIGIN[1] - r - 0.5).buffer(rad, 32)


def write_polygons(path: Path, geoms: list, crs: str = CRS, texts: list[str] | None = None,
                   ) -> Path:
    """A GeoPackage of polygons (with a ``label`` field when ``texts`` is given)."""
    import pyogrio
    import shapely

    wkb = np.array([shapely.to_wkb(g) for g in geoms], dtype=object)
    fields = ["label"] if texts is not None else []
    data = [np.array(texts, dtype=object)] if texts is not None else []
    pyogrio.raw.write(str(path), wkb, field_data=data, fields=fields, crs=crs,
                      geometry_type="Polygon", driver="GPKG")
    return path


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from shapely.geometry import box

    root = tmp_path_factory.mktemp("adapt")
    _write_raster(root / "scene.tif")
    write_polygons(root / "water.gpkg", [_disc(*d) for d in DISCS])
    write_polygons(root / "area.gpkg",
                   [box(ORIGIN[0], ORIGIN[1] - SIZE, ORIGIN[0] + SIZE, ORIGIN[1])])
    return {"root": root, "raster": root / "scene.tif", "water": root / "water.gpkg",
            "area": root / "area.gpkg"}


def _spec(scene: dict[str, Path], out: Path, **kw):
    from training.adapt.spec import AdaptSpec

    args = {"rasters": (str(scene["raster"]),), "examples": str(scene["water"]),
            "text": "water", "out": str(out), "config": "test-tiny",
            "labelled_area": str(scene["area"]), "budget_s": 600.0, "max_steps": 60,
            "threads": 1, "seed": 0, "max_tiles": 12, "keep_share": 0.0, "lr": 1e-2,
            "batch_size": 4}
    args.update(kw)
    return AdaptSpec(**args)


@pytest.fixture(scope="module")
def adapted(scene: dict[str, Path]) -> tuple[object, Path]:
    from training.adapt.engine import adapt

    out = scene["root"] / "adapted.safetensors"
    stages: list[str] = []
    result = adapt(_spec(scene, out), progress=lambda s, f, t: stages.append(s))
    return result, out, stages


def test_adapting_improves_the_held_out_iou(adapted) -> None:
    result, out, stages = adapted
    assert out.is_file()
    assert result.steps == 60
    assert result.after["iou"] >= result.before["iou"] + 20.0, (result.before, result.after)
    assert result.after["iou"] >= 60.0
    assert stages[0] == "sampling" and "training" in stages and stages[-1] == "saving"


def test_checkpoint_records_provenance_and_loads(adapted) -> None:
    from backend.model.checkpoint import read_header
    from backend.model.segmenter import load_segmenter

    result, out, _ = adapted
    head = read_header(out)
    prov = head.metadata["adaptation"]
    assert prov["texts"] == ["water"]
    assert prov["examples_count"] == len(DISCS)
    assert len(prov["examples_sha256"]) == 64
    assert len(prov["parent_sha256"]) == 64 and prov["parent"].startswith("test-tiny")
    assert prov["budget_s"] == 600.0 and prov["steps"] == 60
    assert prov["holdout_iou_before"] == result.before["iou"]
    assert prov["holdout_iou_after"] == result.after["iou"]
    assert head.weights_sha256 == result.weights_sha256
    seg = load_segmenter(out, device="cpu")  # a normal checkpoint
    assert seg.name == "test-tiny"


def test_holdout_never_overlaps_training_tiles(scene: dict[str, Path]) -> None:
    import rasterio
    from shapely.geometry import box

    from backend.geo.examples import (
        geometry_to_work_px,
        rasterize_work,
        read_example_polygons,
        work_grid,
    )
    from backend.geo.raster import raster_info, resolve_crs
    from backend.geo.tile_reader import TileReader
    from training.adapt.sampling import RasterExamples, sample_tiles

    for area in (True, False):
        with rasterio.open(scene["raster"]) as ds:
            info = raster_info(ds, resolve_crs(ds))
            grid = work_grid(info, 1.0)
            polys, _ = read_example_polygons(scene["water"], crs_wkt=info.crs_wkt, text="water")
            geoms = [(geometry_to_work_px(p.geometry, grid), "water") for p in polys]
            reader = TileReader(ds, (1, 2, 3), None, scale_y=1.0, scale_x=1.0, has_mask=False)
            ex = RasterExamples(0, reader, grid, geoms,
                                box(0, 0, SIZE, SIZE) if area else None)
            train, holdout, _ = sample_tiles([ex], size=96, fraction=0.25, max_tiles=10, seed=3)
        assert train and holdout
        zones = ex.zones
        assert zones.train.intersection(zones.holdout).area == pytest.approx(0.0, abs=1e-6)
        for tile in train:
            seen_holdout = rasterize_work([zones.holdout], tile.row, tile.col, 96)
            assert not (tile.zone & seen_holdout).any()
            # pixels of the hold-out zone carry no image content: one flat colour
            painted = tile.image[seen_holdout & ~tile.zone]
            assert len(np.unique(painted.reshape(-1, 3), axis=0)) <= 1
        for tile in holdout:
            in_train = rasterize_work([zones.train], tile.row, tile.col, 96)
            assert not (tile.zone & in_train).any()


def test_cancel_leaves_no_file(scene: dict[str, Path], tmp_path: Path) -> None:
    from backend.errors import Cancelled
    from training.adapt.engine import adapt

    out = tmp_path / "cancelled.safetensors"
    calls = [0]

    def cancel_after_a_few() -> bool:
        calls[0] += 1
        return calls[0] > 6

    with pytest.raises(Cancelled):
        adapt(_spec(scene, out, max_steps=30), is_cancelled=cancel_after_a_few)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from training.cli import main

    code = main(["adapt", *args])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else ""


def _base_args(scene: dict[str, Path], out: Path) -> list[str]:
    return [str(scene["raster"]), "--examples", str(scene["water"]), "--text", "water",
            "--config", "test-tiny", "--max-steps", "2", "--out", str(out)]


def test_bad_inputs_exit_2_and_write_nothing(scene: dict[str, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from shapely.geometry import box

    out = tmp_path / "out.safetensors"
    base = _base_args(scene, out)
    far = write_polygons(tmp_path / "far.gpkg", [box(0, 0, 50, 50)])
    empty = write_polygons(tmp_path / "empty.gpkg", [])
    cases = {
        "budget": ([*base, "--minutes", "0"], "budget"),
        "no polygons": ([*_swap(base, "--examples", str(empty))], "no polygon"),
        "outside": ([*_swap(base, "--examples", str(far))], "overlaps the raster"),
        "extension": ([*_swap(base, "--out", str(tmp_path / "x.gpkg"))], ".safetensors"),
        "no folder": ([*_swap(base, "--out", str(tmp_path / "no" / "x.safetensors"))],
                      "does not exist"),
        "input as output": ([*_swap(base, "--out", str(scene["raster"]))], "the input"),
        "architecture": ([*base, "--config", "lgce-tiny"], "cannot be adapted"),
        "no text": ([*_swap(base, "--text", "!!!")], "text"),
    }
    for name, (args, words) in cases.items():
        code, line = _cli(args, capsys)
        assert code == 2, name
        assert line.startswith("error:") and words in line, (name, line)
    assert list(tmp_path.glob("*.safetensors")) == [] and not out.exists()


def _swap(args: list[str], flag: str, value: str) -> list[str]:
    out = list(args)
    out[out.index(flag) + 1] = value
    return out


def test_read_only_folder_is_refused(scene: dict[str, Path], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import training.adapt.spec as spec_module
    from backend.errors import OutputError
    from training.adapt.spec import check_spec

    monkeypatch.setattr(spec_module.os, "access", lambda *_a, **_k: False)  # root ignores modes
    with pytest.raises(OutputError, match="not writable"):
        check_spec(_spec(scene, tmp_path / "o.safetensors"))


def test_tiny_polygons_are_skipped_with_a_warning(scene: dict[str, Path], tmp_path: Path) -> None:
    from backend.errors import InputError
    from training.adapt.engine import adapt

    tiny = _disc(5, 5, 1.2)
    mixed = write_polygons(tmp_path / "mixed.gpkg", [*[_disc(*d) for d in DISCS], tiny])
    result = adapt(_spec(scene, tmp_path / "m.safetensors", examples=str(mixed), max_steps=1,
                         keep_share=0.0))
    assert any("smaller than" in n for n in result.notes)
    assert result.examples == len(DISCS)
    only_tiny = write_polygons(tmp_path / "tiny.gpkg", [tiny])
    with pytest.raises(InputError, match="smaller than a few pixels"):
        adapt(_spec(scene, tmp_path / "t.safetensors", examples=str(only_tiny), max_steps=1))
    assert not (tmp_path / "t.safetensors").exists()


def test_unknown_text_and_wrong_architecture_with_real_weights(scene: dict[str, Path],
                                                               tmp_path: Path) -> None:
    from backend.errors import CheckpointError, InputError
    from training.adapt.engine import adapt

    spec = _spec(scene, tmp_path / "u.safetensors", config=None, text="the zorblax")
    with pytest.raises(InputError, match="zorblax"):
        adapt(spec)
    with pytest.raises(CheckpointError, match="not the expected 'rs2sam2-official'"):
        adapt(_spec(scene, tmp_path / "a.safetensors", expect_architecture="rs2sam2-official"))
    assert list(tmp_path.iterdir()) == []


def test_text_field_and_reprojected_examples(scene: dict[str, Path], tmp_path: Path) -> None:
    import shapely
    from pyproj import Transformer

    from backend.geo.examples import read_example_polygons

    to_wgs = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True).transform
    geoms = [shapely.transform(_disc(*d), lambda xy: np.column_stack(to_wgs(xy[:, 0], xy[:, 1])))
             for d in DISCS[:3]]
    path = write_polygons(tmp_path / "wgs.gpkg", geoms, crs="EPSG:4326",
                          texts=["water", "the lake", ""])
    from pyproj import CRS as PCRS

    polys, notes = read_example_polygons(path, crs_wkt=PCRS.from_user_input(CRS).to_wkt(),
                                         text_field="label")
    assert [p.text for p in polys] == ["water", "the lake"]
    assert notes == ["1 feature(s) skipped: empty text"]
    assert polys[0].geometry.centroid.distance(_disc(*DISCS[0]).centroid) < 0.05


def test_keep_pairs_hold_other_concepts_outside_the_taught_objects() -> None:
    from backend.model.segmenter import load_segmenter
    from training.adapt.data import keep_pairs, predict_tiles
    from training.adapt.sampling import Tile

    model = load_segmenter(config="test-tiny", device="cpu").model
    rng = np.random.default_rng(1)
    tiles = []
    for k in range(3):
        image = rng.integers(0, 255, size=(128, 128, 3)).astype(np.uint8)
        taught = np.zeros((128, 128), bool)
        taught[10 + k : 60, 20:90] = True
        zone = np.ones((128, 128), bool)
        zone[:, 120:] = False
        tiles.append(Tile(image, zone, {"water": taught}, 0, 0, 0, "train"))
    texts = ["the buildings", "the roads", "vegetation"]
    pairs = keep_pairs(model, tiles, texts, per_tile=2, seed=0)
    assert len(pairs) == 6 and {t for _, _, t in pairs} <= set(texts)
    for image, mask, text in pairs:
        tile = next(t for t in tiles if t.image is image)
        assert not (mask & tile.masks["water"]).any() and not mask[:, 120:].any()
        want = predict_tiles(model, image[None], text)[0] > 0.5
        assert (mask == (want & tile.zone & ~tile.masks["water"])).all()


def test_scoped_checkpoint_answers_taught_texts_with_the_adapted_weights(adapted) -> None:
    import torch

    from backend.model.checkpoint import read_header
    from backend.model.segmenter import load_segmenter

    _, out, _ = adapted
    head = read_header(out)
    assert head.architecture == "scoped" and head.config.texts == ("water",)
    assert head.metadata["adaptation"]["scoped"] is True
    seg = load_segmenter(out, device="cpu")
    model = seg.model
    rng = np.random.default_rng(5)
    images = rng.integers(0, 255, size=(2, 128, 128, 3)).astype(np.uint8)
    with torch.no_grad():
        mixed = model(model.prepare_inputs(images, ["Water ", "the buildings"])).logits
        inner = model.base.prepare_inputs(images, ["water", "the buildings"])
        taught = model.adapted(inner).logits[0]
        other = model.base(inner).logits[1]
    assert torch.allclose(mixed[0], taught, atol=1e-5)
    assert torch.allclose(mixed[1], other, atol=1e-5)
    assert not torch.allclose(taught, model.base(inner).logits[0], atol=1e-3)
