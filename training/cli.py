r"""``python -m training {train,eval,export,build-refer,pack,adapt}`` (contract §3).

Exit status 0 on success and 2 on a user error (bad config, unknown key, missing data, bad
checkpoint), with one line on stderr naming the bad value and the fix, and no traceback.

Examples::

    python -m training train --config training/configs/nano_cpu.yaml epochs=2 optim.lr_new=3e-4
    torchrun --standalone --nproc_per_node=2 -m training train --config ... threads=1
    python -m training eval --checkpoint runs/nano/best.safetensors --dataset refsegrs \\
        --root data_gen/nwpu --split val --by-type
    python -m training export --checkpoint runs/nano/last.pt --out nano.safetensors
    python -m training build-refer --source nwpu --root ../shared/data/nwpu_vhr10 \\
        --out data_gen/nwpu --seed 0
    python -m training pack --root data_gen/nwpu --out data_gen/packed/nwpu
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from backend.errors import Rs2SamError

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model from a YAML config")
    t.add_argument("--config", required=True, help="YAML file (training/configs/*.yaml)")
    t.add_argument("overrides", nargs="*", help="key=value overrides, e.g. optim.lr_new=3e-4")

    e = sub.add_parser("eval", help="score a checkpoint; prints one JSON line (values x100)")
    e.add_argument("--checkpoint", required=True, help=".safetensors (inference) or .pt (run)")
    e.add_argument("--dataset", required=True,
                   help="refsegrs (also generated sets) | rrsisd | packed (their shards)")
    e.add_argument("--root", required=True, help="data set folder")
    e.add_argument("--split", required=True, choices=("train", "val", "test"))
    e.add_argument("--by-type", action="store_true", help="add per-expression-type metrics")
    e.add_argument("--mode", default="paper", choices=("paper", "native"),
                   help="paper: network resolution (GT nearest-resized); native: original size")
    e.add_argument("--batch-size", type=int, default=4)
    e.add_argument("--device", default="auto")
    e.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp16", "fp32"))
    e.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    e.add_argument("--max-samples", type=int, default=0, help="fixed seeded subset (0 = all)")
    e.add_argument("--seed", type=int, default=2401,
                   help="seed of the --max-samples subset (a run's seed picks the same subset)")
    e.add_argument("--types", default="",
                   help="score only these expression types, e.g. class or position,ordinal")
    e.add_argument("--clicks", default="",
                   help="click curve: mIoU after each number of simulated clicks, e.g. 0,1,3,5 "
                        "(and NoC@85); models with a SAM 2 prompt encoder")
    e.add_argument("--noc-max", type=int, default=20,
                   help="most clicks when counting the clicks to 85 %% IoU (0 = skip NoC)")
    e.add_argument("--mask-input", action="store_true",
                   help="with --clicks: feed each answer's logits back as the mask prompt")

    x = sub.add_parser("export", help="training checkpoint (.pt) -> inference .safetensors")
    x.add_argument("--checkpoint", required=True, help="last.pt / epoch_NNN.pt of a run")
    x.add_argument("--out", required=True, help="output .safetensors")
    x.add_argument("--fp16", action="store_true", help="store the weights in float16")
    x.add_argument("--overwrite", action="store_true")

    b = sub.add_parser("build-refer", help="generate a referring set in the RefSegRS layout")
    b.add_argument("--source", required=True, choices=("nwpu", "dubai"))
    b.add_argument("--root", required=True, help="../shared/data/nwpu_vhr10 or .../dubai_...")
    b.add_argument("--out", required=True, help="output folder (must not exist)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--max-side", type=int, default=512, help="NWPU working size (longest side)")
    b.add_argument("--crop-px", type=int, default=512, help="Dubai crop size")
    b.add_argument("--train-stride", type=int, default=256, help="Dubai train crop stride")
    b.add_argument("--val-stride", type=int, default=512, help="Dubai val crop stride")
    b.add_argument("--phrasings", type=int, default=2, help="texts per target (train)")
    b.add_argument("--val-phrasings", type=int, default=1, help="texts per target (val)")
    b.add_argument("--limit-images", type=int, default=None, help="first N images per split")
    b.add_argument("--overwrite", action="store_true")

    k = sub.add_parser("pack", help="a RefSegRS-layout set -> packed shards (training.data.packed)")
    k.add_argument("--root", required=True, help="the set's folder, e.g. data_gen/nwpu")
    k.add_argument("--out", required=True, help="output folder, e.g. data_gen/packed/nwpu")
    k.add_argument("--train-max-side", type=int, default=384,
                   help="longest side of the stored train images (px)")
    k.add_argument("--eval-size", type=int, default=256,
                   help="side of the stored val / test images and masks (the network input)")
    k.add_argument("--quality", type=int, default=80, help="WebP quality of the train images")
    k.add_argument("--eval-quality", type=int, default=95,
                   help="WebP quality of the val / test images")
    k.add_argument("--overwrite", action="store_true")

    from training.adapt.cli import add_adapt_parser

    add_adapt_parser(sub)
    return p


def _load_eval_model(path: Path, device: Any) -> tuple[Any, dict[str, Any]]:
    from backend.errors import CheckpointError
    from training.baselines import is_baseline, load_baseline

    if path.suffix == ".safetensors":
        from backend.model.checkpoint import load_checkpoint
        from training.baselines import is_baseline_file

        if is_baseline_file(path):
            return load_baseline(path).to(device), {}
        ck = load_checkpoint(path, device=device)
        return ck.model, {"weights_sha256": ck.weights_sha256}
    if path.suffix == ".pt":
        from backend.model.architectures import DEFAULT_ARCHITECTURE, get_architecture
        from training.checkpoints import load_training_checkpoint

        ck = load_training_checkpoint(path)
        if is_baseline(ck["model_config"]):
            model = load_baseline(path, ck["model"], ck["model_config"])
            return model.to(device).eval(), {}
        arch = get_architecture(ck.get("architecture", DEFAULT_ARCHITECTURE))
        model = arch.build(arch.config_from_dict(ck["model_config"]), device="cpu", seed=None)
        model.load_state_dict(ck["model"])
        return model.to(device).eval(), {}
    raise CheckpointError(f"checkpoint {str(path)!r} must be a .safetensors or a training .pt file")


def cmd_eval(args: argparse.Namespace) -> dict[str, Any]:
    """Evaluate and return the JSON-ready result."""
    import torch

    from backend.errors import InputError
    from training.components import resolve_train_device
    from training.data.datasets import EvalSet, Source, open_dataset, subset_indices
    from training.dist import cleanup, init_distributed
    from training.evaluation import evaluate
    from training.metrics import round_metrics

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {args.batch_size}")
    ckpt = Path(args.checkpoint)
    if not ckpt.is_file():
        raise InputError(f"--checkpoint {str(ckpt)!r} does not exist")
    ds = open_dataset(args.dataset, args.root, args.split)
    if args.mode == "native" and getattr(ds, "paper_only", False):
        raise InputError(f"{args.root!r} is a packed {args.split} split: its masks are stored "
                         "at the network size only; use --mode paper or the folder layout")
    device = resolve_train_device(args.device)
    info = init_distributed(device.type)
    try:
        model, _ = _load_eval_model(ckpt, device)
        pool = list(range(len(ds)))
        if args.types:
            keep = {t.strip() for t in args.types.split(",") if t.strip()}
            pool = [i for i in pool if ds.records[i].expr_type in keep]
            if not pool:
                raise InputError(f"--types {args.types!r}: no {args.split} sample has these types")
        eval_set = EvalSet(Source(Path(args.root).name or args.dataset, ds), model.image_size,
                           [pool[k] for k in subset_indices(len(pool), args.max_samples,
                                                            args.seed)])
        if args.clicks:
            return _click_curve(args, model, eval_set, device)
        metrics = evaluate(model, eval_set, args.mode, device, args.precision, args.batch_size,
                           info)
    finally:
        cleanup()
    result: dict[str, Any] = dict(round_metrics(metrics["all"]))
    if args.by_type:
        result["by_type"] = {k: round_metrics(v) for k, v in metrics.items() if k != "all"}
    return result


def _click_curve(args: argparse.Namespace, model: Any, eval_set: Any, device: Any
                 ) -> dict[str, Any]:
    """``eval --clicks``: the text-only metrics at the top level, then the click curve."""
    from training.click_eval import evaluate_clicks, parse_clicks

    ks = sorted({0, *parse_clicks(args.clicks)})
    curve = evaluate_clicks(model, eval_set, ks, mode=args.mode, device=device,
                            precision=args.precision, batch_size=args.batch_size,
                            noc_max=args.noc_max, mask_input=args.mask_input)
    return {**curve["clicks"]["0"]["all"], **curve, "mask_input": bool(args.mask_input)}


def cmd_export(args: argparse.Namespace) -> str:
    """Export a training checkpoint; returns the weights' sha256."""
    from backend.outputs import check_output_file
    from training.checkpoints import TrainState, export_inference, load_training_checkpoint
    from training.config import load_train_config

    out = check_output_file(args.out, inputs=[args.checkpoint], suffixes=(".safetensors",),
                            overwrite=args.overwrite)
    ck = load_training_checkpoint(Path(args.checkpoint))
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
        fh.write(ck["train_config"])
    cfg = load_train_config(fh.name, [f"export_fp16={bool(args.fp16)}"])
    Path(fh.name).unlink()
    model, _ = _load_eval_model(Path(args.checkpoint), "cpu")
    return export_inference(model, out, cfg, TrainState(**ck["state"]), {})


def cmd_build_refer(args: argparse.Namespace) -> dict[str, Any]:
    """Build a generated set; returns its stats."""
    from training.refer.build import BuildOptions, build_refer

    opts = BuildOptions(
        source=args.source, root=Path(args.root), out=Path(args.out), seed=args.seed,
        max_side=args.max_side, crop_px=args.crop_px, train_stride_px=args.train_stride,
        val_stride_px=args.val_stride, phrasings=args.phrasings,
        val_phrasings=args.val_phrasings, limit_images=args.limit_images,
        overwrite=args.overwrite)
    return build_refer(opts)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("training", "backend"):  # open_clip logs chatty INFO lines on the root logger
        logging.getLogger(name).setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        if args.command == "train":
            from training.config import load_train_config
            from training.loop import fit

            result = fit(load_train_config(args.config, args.overrides))
            if result.get("metrics") and os.environ.get("RANK", "0") == "0":
                logger.info("done: best score %.2f at epoch %s (%s)", result["best_score"],
                            result["best_epoch"], result["out_dir"])
        elif args.command == "eval":
            print(json.dumps(cmd_eval(args)))
        elif args.command == "export":
            print(f"wrote {args.out} (weights sha256 {cmd_export(args)})")
        elif args.command == "adapt":
            from training.adapt.cli import cmd_adapt

            cmd_adapt(args)
        elif args.command == "pack":
            from training.data.packed import pack_refsegrs

            info = pack_refsegrs(args.root, args.out, train_max_side=args.train_max_side,
                                 eval_size=args.eval_size, quality=args.quality,
                                 eval_quality=args.eval_quality,
                                 overwrite=args.overwrite)
            print(f"wrote {args.out}: {info['bytes'] / 1e6:.1f} MB; "
                  + ", ".join(f"{s} {d['lines']} lines / {d['images']} images"
                              for s, d in info["splits"].items()))
        else:
            stats = cmd_build_refer(args)
            for split in ("train", "val"):
                s = stats[split]
                print(f"{split}: {s['images']} scenes, {s['expressions']} expressions, "
                      f"{s['targets']} targets; "
                      + ", ".join(f"{t} {d['expressions']}" for t, d in s["per_type"].items()))
            print(f"wrote {args.out} (see stats.md)")
    except Rs2SamError as err:
        print(f"error: {err}".splitlines()[0] if "\n" not in str(err) else f"error: {err}",
              file=sys.stderr)
        return 2
    return 0
