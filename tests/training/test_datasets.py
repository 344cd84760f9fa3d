from __future__ import annotations

import pickle

import numpy as np
import pytest
from PIL import Image

from backend.errors import InputError
from training.data.refsegrs import RefSegRSDataset
from training.data.rrsisd import RRSISDDataset, load_refs


class TestRefSegRS:
    def test_reads_lines_images_and_thresholded_masks(self, refsegrs_root):
        ds = RefSegRSDataset(refsegrs_root, "train")
        assert len(ds) == 3
        s = ds[0]
        assert s.sample_id == "17" and s.text == "road along the building"
        assert s.image.dtype == np.uint8 and s.image.shape == (64, 64, 3)
        assert s.mask.dtype == bool and s.mask.shape == (64, 64)
        raw = np.asarray(Image.open(refsegrs_root / "masks" / "17.tif"))
        np.testing.assert_array_equal(s.mask, raw > 50)
        assert not s.mask[40, 40]  # value 40 is below the > 50 threshold
        assert s.mask.sum() == 20 * 28  # rows 3:23, cols 5:33
        # the same id on two lines: two samples, one mask
        assert ds[2].sample_id == "17" and ds[2].text == "the road"
        np.testing.assert_array_equal(ds[2].mask, s.mask)
        assert s.expr_type is None

    def test_splits_are_separate(self, refsegrs_root):
        ids = {sp: {r.sample_id for r in RefSegRSDataset(refsegrs_root, sp).records}
               for sp in ("train", "val", "test")}
        assert ids == {"train": {"17", "18"}, "val": {"21", "22"}, "test": {"30", "31"}}

    def test_sidecar_types_are_attached(self, refsegrs_root):
        rows = ['{"id": 21, "type": "class"}', '{"id": 22, "type": "position"}']
        (refsegrs_root / "refer_val.jsonl").write_text("\n".join(rows) + "\n")
        ds = RefSegRSDataset(refsegrs_root, "val")
        assert [r.expr_type for r in ds.records] == ["class", "position"]
        assert ds[1].expr_type == "position"

    def test_errors(self, refsegrs_root, tmp_path):
        with pytest.raises(InputError, match="does not exist"):
            RefSegRSDataset(tmp_path / "nope", "train")
        with pytest.raises(InputError, match="unknown RefSegRS split"):
            RefSegRSDataset(refsegrs_root, "trainval")
        (refsegrs_root / "output_phrase_val.txt").write_text("abc road\n")
        with pytest.raises(InputError, match="expected '<id> <expression>'"):
            RefSegRSDataset(refsegrs_root, "val")


class TestRRSISD:
    def test_split_semantics_of_refer(self, rrsisd_root):
        # 'test' matches any split containing "test" (test, testA); train/val match exactly
        assert [r.meta["ref_id"] for r in RRSISDDataset(rrsisd_root, "train").records] == [1, 2]
        assert [r.meta["ref_id"] for r in RRSISDDataset(rrsisd_root, "val").records] == [3]
        assert [r.meta["ref_id"] for r in RRSISDDataset(rrsisd_root, "test").records] == [4, 5]

    def test_sample_and_label_sum_equals_one(self, rrsisd_root):
        ds = RRSISDDataset(rrsisd_root, "train")
        s = ds[0]
        assert s.image.shape == (48, 48, 3) and s.image.dtype == np.uint8
        assert s.mask.dtype == bool and s.text == "the vehicle number 1"
        expected = np.zeros((48, 48), bool)
        expected[1:11, 2:14] = True
        np.testing.assert_array_equal(s.mask, expected)
        # ref 2 has two overlapping instances: overlap sums to 2 and is dropped
        m = ds[1].mask
        assert m[2:7, 4:16].all() and not m[7:12, 4:16].any() and m[12:17, 4:16].all()
        assert s.meta["category"] == "ship"

    def test_restricted_unpickler_refuses_code(self, tmp_path):
        class Evil:
            def __reduce__(self):
                return (print, ("pwned",))

        path = tmp_path / "refs(unc).p"
        path.write_bytes(pickle.dumps([{"ref_id": 1, "x": Evil()}]))
        with pytest.raises(InputError, match=r"builtins\.print"):
            load_refs(path)
        path.write_bytes(pickle.dumps([{"ref_id": 1, "s": {1, 2}, "t": (1.5, None)}]))
        assert load_refs(path) == [{"ref_id": 1, "s": {1, 2}, "t": (1.5, None)}]

    def test_missing_root(self, tmp_path):
        with pytest.raises(InputError, match="does not exist"):
            RRSISDDataset(tmp_path / "missing", "train")


def test_eval_view_groups_untyped_samples_by_category(rrsisd_root, refsegrs_root):
    from training.data.datasets import EvalSet, Source, open_dataset

    view = EvalSet(Source("rrsisd", open_dataset("rrsis-d", rrsisd_root, "train")), 32)
    item = view[0]
    assert item["type"] == "category:ship" and item["image"].shape == (32, 32, 3)
    assert item["native_mask"].shape == (48, 48) and item["mask"].shape == (32, 32)
    with pytest.raises(InputError, match="unknown data set 'coco'"):
        open_dataset("coco", refsegrs_root, "val")
