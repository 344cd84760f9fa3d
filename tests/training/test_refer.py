from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from backend.errors import InputError, OutputError
from training.data.refsegrs import RefSegRSDataset
from training.refer import dubai, nwpu
from training.refer.build import BuildOptions, build_refer
from training.refer.grammar import DUBAI_GRAMMAR, NWPU_GRAMMAR, Query
from training.refer.resolve import Margins, check_expression, resolve
from training.refer.scene import Instance, Scene


def _scene(objs, w=200, h=100):
    """objs: (iid, cls, x0, y0, x1, y1) boxes in px."""
    insts = []
    for iid, cls, x0, y0, x1, y1 in objs:
        m = np.zeros((h, w), bool)
        m[y0:y1, x0:x1] = True
        insts.append(Instance.from_mask(iid, cls, m))
    return Scene(w, h, insts)


class TestChecker:
    def test_catches_ships_nearly_equally_left(self):
        scene = _scene([(1, "ship", 20, 10, 30, 20), (2, "ship", 23, 60, 33, 70),
                        (3, "ship", 150, 40, 160, 50)])
        res = check_expression("the ship on the left", scene, frozenset({1}), NWPU_GRAMMAR)
        assert not res.ok and "too close to call" in res.reason
        # move ship 2 far right: now unambiguous, and only ship 1 is accepted as the target
        scene = _scene([(1, "ship", 20, 10, 30, 20), (2, "ship", 100, 60, 110, 70),
                        (3, "ship", 150, 40, 160, 50)])
        assert check_expression("the ship on the left", scene, frozenset({1}), NWPU_GRAMMAR).ok
        wrong = check_expression("the ship on the left", scene, frozenset({2}), NWPU_GRAMMAR)
        assert not wrong.ok and "refers to [1]" in wrong.reason

    def test_singular_needs_a_unique_object_and_every_reading_must_agree(self):
        two = _scene([(1, "bridge", 10, 10, 30, 30), (2, "bridge", 150, 50, 180, 80)])
        assert not check_expression("the bridge", two, frozenset({1}), NWPU_GRAMMAR).ok
        assert check_expression("the bridges", two, frozenset({1, 2}), NWPU_GRAMMAR).ok
        planes = _scene([(1, "airplane", 10, 10, 30, 30), (2, "airplane", 150, 50, 180, 80)])
        # "aircraft" is singular and plural: the singular reading is ambiguous -> rejected
        res = check_expression("the aircraft", planes, frozenset({1, 2}), NWPU_GRAMMAR)
        assert not res.ok and len(res.readings) == 2
        assert check_expression("the airplanes", planes, frozenset({1, 2}), NWPU_GRAMMAR).ok
        assert not check_expression("the purple ship", planes, frozenset({1}), NWPU_GRAMMAR).ok

    def test_ordinal_size_relation_and_corner_rules(self):
        tanks = [(1, "storage_tank", 10, 10, 20, 20), (2, "storage_tank", 60, 10, 90, 40),
                 (3, "storage_tank", 120, 10, 130, 20), (4, "bridge", 160, 60, 185, 90)]
        s = _scene([*tanks, (5, "storage_tank", 194, 70, 197, 73)])
        g = NWPU_GRAMMAR
        assert check_expression("the second storage tank from the left", s, frozenset({2}), g).ok
        assert check_expression("the largest storage tank", s, frozenset({2}), g).ok
        assert check_expression("the oil tank closest to the bridge", s, frozenset({5}), g).ok
        assert check_expression("the storage tanks to the left of the bridge", s,
                                frozenset({1, 2, 3}), g).ok
        assert check_expression("the storage tank right of the bridge", s, frozenset({5}), g).ok
        # a tank level with the bridge's left edge makes "left of the bridge" ambiguous
        level = _scene([*tanks, (5, "storage_tank", 158, 70, 161, 73)])
        res = check_expression("the storage tanks to the left of the bridge", level,
                               frozenset({1, 2, 3}), g)
        assert not res.ok and "level with" in res.reason
        # corners: tank 1 (centroid u=.075, v=.15) is in the upper left third
        q = Query("corner", "storage_tank", "sg", "upper_left")
        assert resolve(q, s).ids == frozenset({1})
        # similar sizes: "largest" must be rejected
        t = _scene([(1, "vehicle", 10, 10, 20, 20), (2, "vehicle", 100, 10, 111, 20)])
        assert not check_expression("the largest vehicle", t, frozenset({2}), g).ok

    def test_dubai_region_straddling_is_ambiguous(self):
        s = _scene([(1, "water", 10, 10, 40, 40), (2, "water", 90, 50, 120, 80)], w=200)
        # water 2 straddles the vertical midline (x=100): "on the left" is ambiguous
        res = check_expression("water on the left", s, frozenset({1}), DUBAI_GRAMMAR)
        assert not res.ok and "straddles" in res.reason
        s = _scene([(1, "water", 10, 10, 40, 40), (2, "water", 130, 50, 160, 80)], w=200)
        assert check_expression("water on the left", s, frozenset({1}), DUBAI_GRAMMAR).ok
        assert resolve(Query("region", "water", "mass", "left"), s, Margins()).ids == {1}

    def test_every_template_parses_back_to_its_own_query(self):
        for grammar, cls, anchor in ((NWPU_GRAMMAR, "vehicle", "bridge"),
                                     (DUBAI_GRAMMAR, "building", "")):
            for t in grammar.templates:
                q = Query(t.kind, cls if t.number != "mass" else "water", t.number, t.arg,
                          2 if "{ord}" in t.pattern else 0, anchor if "{asg}" in t.pattern else "")
                texts = grammar.render(q)
                assert texts, t
                for text in texts:
                    assert q in grammar.parse(text), (text, grammar.parse(text))


def test_no_colour_words_and_false_colour_tiles_are_flagged(tmp_path):
    """NWPU 369-453 are Vaihingen false-colour / CIR tiles: no phrasing may name a colour."""
    colours = {"red", "green", "blue", "white", "black", "grey", "gray", "yellow", "brown",
               "orange", "purple", "pink", "magenta", "dark", "bright", "colored", "coloured"}
    for grammar, cls, anchor in ((NWPU_GRAMMAR, "vehicle", "bridge"),
                                 (DUBAI_GRAMMAR, "building", "")):
        for t in grammar.templates:
            q = Query(t.kind, cls if t.number != "mass" else "water", t.number, t.arg,
                      2 if "{ord}" in t.pattern else 0, anchor if "{asg}" in t.pattern else "")
            for text in grammar.render(q):
                assert not colours & set(text.split()), text
    (tmp_path / "images").mkdir()
    for name in ("368.jpg", "421.jpg"):
        Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "images" / name)
    flags = {name: nwpu.load_scene(tmp_path, nwpu.NwpuImage(1, name, 30, 20, ()), 64)[1]
             .meta["false_colour"] for name in ("368.jpg", "421.jpg")}
    assert flags == {"368.jpg": False, "421.jpg": True}


def _read(out, split):
    return (out / f"output_phrase_{split}.txt").read_text().splitlines()


class TestBuildNwpu:
    def test_layout_checks_and_reproducibility(self, nwpu_root, tmp_path):
        out = tmp_path / "gen"
        stats = build_refer(BuildOptions("nwpu", nwpu_root, out, seed=0, max_side=128))
        assert stats["train"]["expressions"] > 5 and stats["val"]["expressions"] > 2
        ds = RefSegRSDataset(out, "train")
        assert len(ds) == stats["train"]["expressions"]
        assert {r.expr_type for r in ds.records} >= {"class", "position", "ordinal", "size",
                                                       "relation", "unique"}
        # every line re-checks against the scene rebuilt from the source, and its mask is
        # exactly the union of its targets
        for split in ("train", "val"):
            scenes = {img.file_name: nwpu.load_scene(nwpu_root, img, 128)[1]
                      for img in nwpu.read_split(nwpu_root, split)}
            rows = [json.loads(x) for x in (out / f"refer_{split}.jsonl").read_text().splitlines()]
            for row in rows:
                scene = scenes[row["source_image"]]
                target = frozenset(row["targets"])
                assert check_expression(row["text"], scene, target, NWPU_GRAMMAR).ok, row
                mask = np.asarray(Image.open(out / "masks" / f"{row['id']}.tif")) > 50
                np.testing.assert_array_equal(mask, scene.union_mask(target))
                assert mask.shape == (102, 128)  # 200 x 160 downscaled to longest side 128
        # same seed -> byte-identical phrase files, sidecars and masks; another seed differs
        out2 = tmp_path / "gen2"
        build_refer(BuildOptions("nwpu", nwpu_root, out2, seed=0, max_side=128))
        for name in ("output_phrase_train.txt", "output_phrase_val.txt", "refer_train.jsonl",
                     "stats.json", "masks/1.tif", "images/1.tif"):
            assert (out / name).read_bytes() == (out2 / name).read_bytes(), name
        out3 = tmp_path / "gen3"
        build_refer(BuildOptions("nwpu", nwpu_root, out3, seed=1, max_side=128))
        assert _read(out, "train") != _read(out3, "train")

    def test_val_images_never_in_train_and_ids_disjoint(self, nwpu_root, tmp_path):
        out = tmp_path / "gen"
        build_refer(BuildOptions("nwpu", nwpu_root, out, max_side=128))
        rows = {s: [json.loads(x) for x in (out / f"refer_{s}.jsonl").read_text().splitlines()]
                for s in ("train", "val")}
        assert {r["source_image"] for r in rows["train"]} == {"001.jpg", "002.jpg"}
        assert {r["source_image"] for r in rows["val"]} == {"003.jpg", "004.jpg"}
        assert not {r["id"] for r in rows["train"]} & {r["id"] for r in rows["val"]}
        # the stats report agrees with the sidecars: per type, targets per expression, areas
        stats = json.loads((out / "stats.json").read_text())
        assert "## train" in (out / "stats.md").read_text()
        for split, split_rows in rows.items():
            s = stats[split]
            assert s["expressions"] == len(split_rows)
            assert {t: v["expressions"] for t, v in s["per_type"].items()} == \
                dict(Counter(r["type"] for r in split_rows))
            assert sum(s["targets_per_expression"].values()) == len(split_rows)
            assert s["targets_per_expression"].get("1", 0) == \
                sum(r["n_targets"] == 1 for r in split_rows)
            areas = np.array([r["mask_area_frac"] for r in split_rows])
            assert s["mask_area_frac"]["n"] == len(split_rows)
            assert sum(s["mask_area_frac"]["histogram"].values()) == len(split_rows)
            assert s["mask_area_frac"]["quantiles"]["p50"] == pytest.approx(
                float(np.quantile(areas, 0.5)), abs=1e-5)

    def test_refuses_overlapping_upstream_splits_and_existing_output(self, nwpu_root, tmp_path):
        out = tmp_path / "gen"
        build_refer(BuildOptions("nwpu", nwpu_root, out, max_side=64))
        with pytest.raises(OutputError, match="already exists"):
            build_refer(BuildOptions("nwpu", nwpu_root, out, max_side=64))
        val = json.loads((nwpu_root / "annotations" / "instances_val2017.json").read_text())
        train = json.loads((nwpu_root / "annotations" / "instances_train2017.json").read_text())
        val["images"].append(dict(train["images"][0], id=99))
        (nwpu_root / "annotations" / "instances_val2017.json").write_text(json.dumps(val))
        with pytest.raises(InputError, match="val images also in train"):
            build_refer(BuildOptions("nwpu", nwpu_root, tmp_path / "x", max_side=64))
        assert not (tmp_path / "x").exists()  # no partial output


class TestBuildDubai:
    def test_colours_components_and_tile_split(self, dubai_root, tmp_path):
        rgb = np.asarray(Image.open(dubai_root / "tile_2/masks/image_part_001.png").convert("RGB"))
        cmap = dubai.class_map(rgb)
        assert cmap[0, 0] == -1 and cmap[79, 95] == -1  # black and grey are ignored
        assert dubai.CLASS_ORDER[cmap[40, 46]] == "road"
        comps = dubai.components(cmap, 0.0005)
        for k, name in enumerate(dubai.CLASS_ORDER):
            union = np.zeros(cmap.shape, bool)
            for c in (c for c in comps if c.cls == name):
                union |= c.mask
            np.testing.assert_array_equal(union, cmap == k)  # shapes -> rasterize is exact
        assert len([c for c in comps if c.cls == "building"]) == 2

        out = tmp_path / "dubai_gen"
        build_refer(BuildOptions("dubai", dubai_root, out, crop_px=64, train_stride_px=32,
                                 val_stride_px=64))
        rows = {s: [json.loads(x) for x in (out / f"refer_{s}.jsonl").read_text().splitlines()]
                for s in ("train", "val")}
        assert {r["source_image"].split("/")[0] for r in rows["val"]} == {"tile_7", "tile_8"}
        assert all(r["source_image"].split("/")[0] not in ("tile_7", "tile_8")
                   for r in rows["train"])
        assert {r["type"] for r in rows["train"]} >= {"class", "position"}
        ds = RefSegRSDataset(out, "val")
        s = ds[0]
        assert s.image.shape[:2] == s.mask.shape == (64, 64)
