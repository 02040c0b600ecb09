"""``pointnet-kit train | eval | predict | export``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ..errors import PointNetKitError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a classifier (default: the embedded dataset, a couple of minutes on CPU)",
        description="Train a PointNet classifier. With no arguments: the default model on the embedded dataset. "
        "Overrides are dotted key=value pairs, e.g. train.epochs=50 data.root=/data/modelnet40_ply_hdf5_2048. "
        "Multi-GPU / multi-node: torchrun --nproc-per-node K -m pointnet_kit train ...",
    )
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. optim.lr=0.002")
    p.add_argument("--config", "-c", help="YAML config (configs/*.yaml); defaults to the built-in default job")
    p.add_argument("--out", "-o", help="run directory (default: runs/<config>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its checkpoint_last.pt")
    p.set_defaults(func=run_train)

    p = subparsers.add_parser(
        "eval",
        help="evaluate a checkpoint: OA, mean class accuracy, per-class accuracy, confusion matrix",
        description="Evaluate a checkpoint on the validation split of its run (default) or on a test split.",
    )
    p.add_argument("checkpoint", help="checkpoint file or run directory (uses checkpoint_best.pt)")
    p.add_argument("--data", help="dataset root (default: the one the checkpoint was trained on)")
    p.add_argument("--split", default="val", choices=["val", "test", "train"], help="default: val")
    p.add_argument("--votes", type=int, default=1, help="average logits over N augmented copies (default 1)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", metavar="PATH", help="also write the full result as JSON ('-' for stdout only)")
    p.set_defaults(func=run_eval)

    p = subparsers.add_parser(
        "predict",
        help="classify mesh / point cloud files",
        description="Classify meshes (.off .obj .ply .stl) or point clouds (.ply .pcd .xyz .npy .npz .txt).",
    )
    p.add_argument("checkpoint")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--topk", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0, help="seed of the surface sampling")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run_predict)

    p = subparsers.add_parser(
        "export",
        help="export a checkpoint to ONNX or TorchScript (checked against PyTorch)",
        description="Export the model of a checkpoint; the exported model takes points (B, N, C) for any B and N "
        "and returns logits. Its outputs are checked against PyTorch on random input.",
    )
    p.add_argument("checkpoint")
    p.add_argument("--format", required=True, choices=["onnx", "torchscript"])
    p.add_argument("--out", required=True, help="output file (.onnx / .pt)")
    p.set_defaults(func=run_export)


def run_train(args: argparse.Namespace) -> int:
    from ..engine.config import load_config
    from ..engine.trainer import config_for_resume, train

    if args.resume:
        run_dir = Path(args.resume)
        if args.out and Path(args.out) != run_dir:
            raise PointNetKitError("--resume continues in its own run directory; drop --out")
        if args.config:
            raise PointNetKitError("--resume uses the run's saved config; pass changes as key=value overrides")
        if not (run_dir / "checkpoint_last.pt").is_file():
            raise PointNetKitError(f"nothing to resume: {run_dir / 'checkpoint_last.pt'} does not exist")
        config = config_for_resume(run_dir, args.overrides)
        out = run_dir
    else:
        config = load_config(args.config, args.overrides)
        name = Path(args.config).stem if args.config else "default"
        out = Path(args.out) if args.out else Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        if (out / "checkpoint_last.pt").exists():
            raise PointNetKitError(f"{out} already holds a run; use --resume {out} or another --out")
    summary = train(config, out, resume=out if args.resume else None)
    if int(os.environ.get("RANK", "0")) == 0:
        best, final = summary["best"], summary["final"]
        print(
            f"\ndone in {summary['wall_time_s']:.0f}s on {summary['device']}: "
            f"best val OA {best['val_oa']:.4f} / mAcc {best['val_macc']:.4f} at epoch {best['epoch']}, "
            f"final val OA {final['val_oa']:.4f} / mAcc {final['val_macc']:.4f} "
            f"(validation split: {summary['splits']['val']['source']}); "
            f"{summary['train_shapes_per_s']:.0f} train shapes/s\nrun directory: {out}"
        )
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from ..engine.evaluate import evaluate_checkpoint

    result = evaluate_checkpoint(args.checkpoint, args.data, args.split, args.votes, args.batch_size, args.device)
    if args.json == "-":
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['model']} (epoch {result['epoch']}) on {result['data']}, split {result['split']}: {result['split_note']}")
    print(f"shapes {result['num_shapes']}, votes {result['votes']}")
    print(f"overall accuracy     {result['oa']:.4f}")
    print(f"mean class accuracy  {result['macc']:.4f}")
    width = max(len(n) for n in result["per_class"])
    print("\nper class:")
    for name, entry in result["per_class"].items():
        acc = "  n/a " if entry["acc"] is None else f"{entry['acc']:.4f}"
        print(f"  {name:<{width}}  {acc}  ({entry['support']} shapes)")
    if len(result["per_class"]) <= 20:
        print("\nconfusion matrix (rows: true, columns: predicted):")
        names = list(result["per_class"])
        for name, row in zip(names, result["confusion"]):
            print(f"  {name:<{width}} " + " ".join(f"{v:>4}" for v in row))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from ..engine.evaluate import predict_files

    missing = [f for f in args.files if not Path(f).is_file()]
    if missing:
        raise PointNetKitError(f"file not found: {missing[0]}")
    results = predict_files(args.checkpoint, args.files, args.topk, args.device, args.seed)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
        return 0
    for result in results:
        guesses = ", ".join(f"{p['class']} {p['prob']:.3f}" for p in result["predictions"])
        print(f"{result['file']}: {guesses}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from ..engine.export import export_checkpoint

    result = export_checkpoint(args.checkpoint, args.out, args.format)
    checked = ", ".join(f"{b}x{n}" for b, n in result["checked"])
    print(f"wrote {result['path']} ({result['format']}); max |diff| vs PyTorch {result['max_abs_diff']:.2e} on random batches {checked} (B x N)")
    return 0
