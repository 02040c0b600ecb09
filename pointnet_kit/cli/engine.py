"""``pointnet-kit train | eval | predict | export``."""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import time
from pathlib import Path

from ..errors import PointNetKitError
from ..utils import atomic_write_text
from .guide import next_steps, tensorboard_missing


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model (default: a classifier on the embedded dataset, a couple of minutes on CPU)",
        description="Train a model for its data's task (classification, part segmentation). With no arguments: "
        "the default classifier on the embedded dataset; configs/parts_default.yaml: part segmentation. "
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
        help="evaluate a checkpoint: OA / mean class accuracy (classification), instance / category mIoU (parts)",
        description="Evaluate a checkpoint on the validation split of its run (default) or on a test split. "
        "Classification: OA, mean class accuracy, per class, confusion matrix. Part segmentation: instance and "
        "category mIoU (ShapeNetPart style), point accuracy, per-category and per-part IoU.",
    )
    p.add_argument("checkpoint", help="checkpoint file or run directory (uses checkpoint_best.pt)")
    p.add_argument("--data", help="dataset root (default: the one the checkpoint was trained on)")
    p.add_argument("--split", default="val", choices=["val", "test", "train"], help="default: val")
    p.add_argument("--votes", type=int, default=1, help="average logits over N augmented copies (default 1)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", default=None, choices=["auto", "off", "bf16", "fp16"],
                   help="inference precision (default: the run's runtime.amp; auto is bf16 on CUDA, float32 elsewhere)")
    p.add_argument("--json", action="store_true", help="print the full result as JSON instead of tables")
    p.add_argument("--json-out", metavar="PATH", help="also write the full result as JSON to PATH")
    p.set_defaults(func=run_eval)

    p = subparsers.add_parser(
        "predict",
        help="classify files, or label their points with parts (segmentation checkpoints)",
        description="Predict on meshes (.off .obj .ply .stl) or point clouds (.ply .pcd .xyz .npy .npz .txt), "
        "sampled and normalized as in training: the top classes, or for a part segmentation checkpoint the "
        "part of every sampled point.",
    )
    p.add_argument("checkpoint")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--topk", type=int, default=3, help="classification: classes to show")
    p.add_argument("--category", help="segmentation: the shape category (restricts parts to it; required by "
                   "models that take the category)")
    p.add_argument("--out", metavar="FILE", help="segmentation, one input file: write 'x y z part' lines of the "
                   "sampled, normalized points")
    p.add_argument("--votes", type=int, default=1, help="average over N rotations about the run's up axis")
    p.add_argument("--amp", default=None, choices=["auto", "off", "bf16", "fp16"],
                   help="inference precision (default: the run's runtime.amp; auto is bf16 on CUDA, float32 elsewhere)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0, help="seed of the surface sampling")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run_predict)

    p = subparsers.add_parser(
        "export",
        help="export a checkpoint to ONNX or torch.export .pt2 (checked against PyTorch)",
        description="Export the model of a checkpoint with its class names, number of points, up axis and "
        "normalisation embedded; the exported model takes points (B, N, C) and returns logits. Its outputs are "
        "checked against PyTorch on random input. 'pointnet-kit predict model.onnx FILE' runs it.",
    )
    p.add_argument("checkpoint", help="checkpoint file or run directory (uses checkpoint_best.pt)")
    p.add_argument("--format", default=None, choices=["pt2", "onnx"],
                   help="pt2 (torch.export) or onnx; default: from --out's suffix")
    p.add_argument("--out", required=True, help="output file (.pt2 / .onnx)")
    p.set_defaults(func=run_export)


def run_train(args: argparse.Namespace) -> int:
    from ..engine.config import load_config
    from ..engine.trainer import config_for_resume, train
    from ..utils import exclusive_dir

    if args.resume:
        run_dir = Path(args.resume)
        if args.out and Path(args.out) != run_dir:
            raise PointNetKitError("--resume continues in its own run directory; drop --out")
        if args.config:
            raise PointNetKitError("--resume uses the run's saved config; pass changes as key=value overrides")
        if not run_dir.is_dir():
            raise PointNetKitError(f"nothing to resume: {run_dir} is not a run directory")
        config = config_for_resume(run_dir, args.overrides)
        out = run_dir
    else:
        config = load_config(args.config, args.overrides)
        name = Path(args.config).stem if args.config else "default"
        if args.out:
            out = Path(args.out)  # the trainer refuses a folder holding a run or a user's files
        else:
            out = Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
            if int(os.environ.get("RANK", "0")) == 0:  # only the main process writes
                out = exclusive_dir(out, unique=True)  # two runs started in the same second get two folders
    main_process = int(os.environ.get("RANK", "0")) == 0
    if config.runtime.tensorboard and main_process:
        tensorboard_missing()
    summary = train(config, out, resume=out if args.resume else None)
    if main_process:
        best, final = summary["best"], summary["final"]
        show = lambda record: " / ".join(f"{m} {record[f'val_{m}']:.4f}" for m in summary["metric_names"])  # noqa: E731
        print(
            f"\ndone in {summary['wall_time_s']:.0f}s on {summary['device']}: "
            f"best val {show(best)} at epoch {best['epoch']}, final val {show(final)} "
            f"(validation split: {summary['splits']['val']['source']}); "
            f"{summary['train_shapes_per_s']:.0f} train shapes/s\nrun directory: {out}"
        )
        print(next_steps(out, tensorboard=config.runtime.tensorboard, task=summary.get("task", "classification")))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from ..engine.evaluate import evaluate_checkpoint
    from ..utils import atomic_write_text

    if args.json_out:
        _check_writable(Path(args.json_out))  # before minutes of evaluation, not after
    result = evaluate_checkpoint(
        args.checkpoint, args.data, args.split, args.votes, args.batch_size, args.device, amp=args.amp
    )
    if args.json_out:
        atomic_write_text(args.json_out, json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['model']} (epoch {result['epoch']}) on {result['data']}, split {result['split']}: {result['split_note']}")
    print(f"shapes {result['num_shapes']}, votes {result['votes']}")
    labels = {"oa": "overall accuracy", "macc": "mean class accuracy", "instance_miou": "instance mIoU",
              "category_miou": "category mIoU", "point_acc": "point accuracy"}
    for metric in result["metric_names"]:
        print(f"{labels.get(metric, metric):<21}{result[metric]:.4f}")
    tables = [("per_class", "acc", "per class", "support"), ("per_category", "miou", "per category (mIoU)", "shapes"),
              ("per_part", "iou", "per part (IoU over the shapes of its category)", "shapes")]
    for key, value, title, count in tables:
        if not result.get(key):
            continue
        width = max(len(n) for n in result[key])
        print(f"\n{title}:")
        for name, entry in result[key].items():
            shown = "  n/a " if entry[value] is None else f"{entry[value]:.4f}"
            print(f"  {name:<{width}}  {shown}  ({entry[count]} shapes)")
    if "confusion" in result and len(result["confusion"]) <= 20:
        names = list(result["per_class"])
        width = max(len(n) for n in names)
        print("\nconfusion matrix (rows: true, columns: predicted):")
        for name, row in zip(names, result["confusion"]):
            print(f"  {name:<{width}} " + " ".join(f"{v:>4}" for v in row))
    if args.json_out:
        print(f"\nwrote {args.json_out}")
    return 0


def _check_writable(path: Path) -> None:
    """Raise an OSError naming ``path`` when its folder is missing or not writable."""
    folder = path.parent
    if not folder.is_dir():
        code = errno.ENOTDIR if any(p.is_file() for p in (folder, *folder.parents)) else errno.ENOENT
        raise OSError(code, os.strerror(code), str(path))
    if not os.access(folder, os.W_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))


def run_predict(args: argparse.Namespace) -> int:
    from ..engine.evaluate import predict_files
    from ..engine.export import is_exported, predict_exported

    missing = [f for f in args.files if not Path(f).is_file()]
    if missing:
        raise PointNetKitError(f"file not found: {missing[0]}")
    if args.out and len(args.files) != 1:
        raise PointNetKitError(f"--out writes one file's points: give one input file, not {len(args.files)}")
    if is_exported(args.checkpoint):
        if args.category or args.out:
            raise PointNetKitError("--category and --out need a checkpoint; an exported file classifies shapes")
        results = predict_exported(args.checkpoint, args.files, args.topk, args.seed, args.votes)
    else:
        results = predict_files(
            args.checkpoint, args.files, args.topk, args.device, args.seed, args.category, args.votes, amp=args.amp
        )
    per_point = "parts" in results[0]
    if args.out:
        if not per_point:
            raise PointNetKitError("--out writes per-point parts: this checkpoint is a classifier")
        _write_parts(Path(args.out), results[0]["points"], results[0]["parts"])
    if args.json:
        shown = [{k: v.tolist() if hasattr(v, "tolist") else v for k, v in r.items()} for r in results]
        json.dump(shown, sys.stdout, indent=2)
        print()
        return 0
    for result in results:
        if per_point:
            counts = ", ".join(f"{name} {n}" for name, n in result["counts"].items())
            category = f" [{result['category']}]" if result["category"] else ""
            print(f"{result['file']}{category}: {len(result['parts'])} points: {counts}")
        else:
            guesses = ", ".join(f"{p['class']} {p['prob']:.3f}" for p in result["predictions"])
            print(f"{result['file']}: {guesses}")
    if args.out:
        print(f"wrote {args.out} (x y z part per line; points sampled and normalized as the model saw them)")
    return 0


def _write_parts(path: Path, points, parts) -> None:
    """``x y z part`` text, one point per line."""
    from ..utils import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{x:.6f} {y:.6f} {z:.6f} {int(p)}" for (x, y, z), p in zip(points.tolist(), parts.tolist())]
    atomic_write_text(path, "\n".join(lines) + "\n")


def run_export(args: argparse.Namespace) -> int:
    from ..engine.export import export_checkpoint

    result = export_checkpoint(args.checkpoint, args.out, args.format)
    checked = ", ".join(f"{b}x{n}" for b, n in result["checked"])
    print(f"wrote {result['path']} ({result['format']}); max |diff| vs PyTorch {result['max_abs_diff']:.2e} ({result['max_rel_diff']:.1e} relative) on random batches {checked} (B x N)")
    return 0
