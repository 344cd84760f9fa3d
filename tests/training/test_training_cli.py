"""``python -m training``: the eval JSON line of the contract and exit status 2 on user errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO, SMOKE

from training.cli import main
from training.metrics import METRIC_KEYS


def test_eval_cli_prints_the_contract_json_line(smoke_run, refsegrs_root):
    ckpt = smoke_run / "best.safetensors"
    proc = subprocess.run(
        [sys.executable, "-m", "training", "eval", "--checkpoint", str(ckpt), "--dataset",
         "refsegrs", "--root", str(refsegrs_root), "--split", "val"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = proc.stdout.strip().splitlines()[-1]
    result = json.loads(line)
    assert list(result) == list(METRIC_KEYS)
    assert result["n"] == 2 and all(0 <= result[k] <= 100 for k in METRIC_KEYS if k != "n")
    # in-process with --by-type: same numbers, plus a breakdown; the .pt training checkpoint
    # of the same weights scores the same
    from training.cli import _parser, cmd_eval

    args = _parser().parse_args(["eval", "--checkpoint", str(smoke_run / "final.safetensors"),
                                 "--dataset", "refsegrs", "--root", str(refsegrs_root),
                                 "--split", "val", "--by-type"])
    (refsegrs_root / "refer_val.jsonl").write_text('{"id": 21, "type": "class"}\n'
                                                   '{"id": 22, "type": "position"}\n')
    by_type = cmd_eval(args)
    assert set(by_type["by_type"]) == {"class", "position"}
    assert by_type["by_type"]["class"]["n"] == 1
    args.checkpoint, args.by_type = str(smoke_run / "last.pt"), False
    assert cmd_eval(args) == {k: by_type[k] for k in METRIC_KEYS}


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "--config", "missing.yaml"], "config file 'missing.yaml' not found"),
    (["train", "--config", str(SMOKE), "optim.lrr=1"], "optim.lrr"),
    (["train", "--config", str(SMOKE), "data.sets.0.format=refsegrs",
      "data.sets.0.root=/no/such/dir"], "data root '/no/such/dir' does not exist"),
    (["eval", "--checkpoint", "/no/ck.safetensors", "--dataset", "refsegrs", "--root", "/x",
      "--split", "val"], "does not exist"),
    (["build-refer", "--source", "nwpu", "--root", "/no/such", "--out", "/tmp/x"],
     "does not exist"),
])
def test_user_errors_exit_2_with_one_line(argv, message, capsys, tmp_path):
    if argv[0] == "train":
        argv = [*argv, f"out_dir={tmp_path / 'run'}"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_eval_unknown_dataset_and_no_traceback(refsegrs_root, smoke_run):
    proc = subprocess.run(
        [sys.executable, "-m", "training", "eval", "--checkpoint",
         str(smoke_run / "best.safetensors"), "--dataset", "coco", "--root",
         str(refsegrs_root), "--split", "val"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "unknown data set 'coco'" in proc.stderr and "Traceback" not in proc.stderr
