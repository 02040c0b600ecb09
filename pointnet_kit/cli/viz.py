"""``pointnet-kit viz ...`` (pictures of data, predictions and features) and ``pointnet-kit report``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..data.record import RELEASE_POINTS
from ..errors import PointNetKitError

DEFAULT_OUT = Path("viz")
FEATURE_MAPS = ("wins", "norm", "channel")


def _add_common(parser: argparse.ArgumentParser, size: int) -> None:
    look = parser.add_argument_group("output and look")
    look.add_argument("--out", metavar="PATH", help=f"PNG file, or folder for it (default: ./{DEFAULT_OUT}/)")
    look.add_argument("--size", type=int, default=size, metavar="PX", help=f"tile size in pixels (default {size})")
    look.add_argument("--point-size", type=float, metavar="PX", help="point diameter in pixels (default: size/70)")
    look.add_argument("--background", default="white", metavar="COLOR", help="tile background: name or #rrggbb")
    look.add_argument(
        "--up", choices=("x", "y", "z"), help="the shapes' up axis (default: the run's or the data's, else z)"
    )
    look.add_argument("--azimuth", type=float, default=-60.0, metavar="DEG", help="camera angle around the up axis")
    look.add_argument("--elevation", type=float, default=22.0, metavar="DEG", help="camera angle above the horizon")
    look.add_argument("--show", action="store_true", help="open an interactive Open3D window instead of writing a PNG")


NUM_POINTS_HELP = (
    f"points drawn (default: all the data's, or {RELEASE_POINTS} from a mesh); the model always sees as many as it was trained on"
)


def _add_num_points(parser: argparse.ArgumentParser, help: str = NUM_POINTS_HELP) -> None:
    parser.add_argument("--num-points", type=int, metavar="N", help=help)


def _add_model_input(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="checkpoint file (or a run folder holding checkpoint_best.pt)")
    parser.add_argument("file", help="a mesh or point cloud file")
    _add_num_points(parser)
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")


def register(subparsers: argparse._SubParsersAction) -> None:
    viz = subparsers.add_parser(
        "viz",
        help="render clouds, datasets, predictions and features to PNG (or a window with --show)",
        description="Render point clouds, datasets, predictions and PointNet's features with Open3D. "
        "Writes PNGs (headless rendering works without a display); --show opens a window instead.",
    )
    sub = viz.add_subparsers(dest="viz_command", metavar="WHAT", required=True)

    p = sub.add_parser(
        "cloud", help="meshes and point clouds from files", description="Render mesh and point cloud files."
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="mesh or point cloud files")
    _add_num_points(p, "draw N sampled points, even for meshes (default: meshes as meshes, clouds' own points)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    _add_common(p, 320)
    p.set_defaults(func=run_cloud)

    p = sub.add_parser(
        "dataset", help="a labelled grid of samples", description="A grid of dataset samples, class name under each."
    )
    p.add_argument("data", help='dataset root folder, or "default" for the embedded dataset')
    p.add_argument("--split", default="train", help="train or test (default train)")
    p.add_argument("--n", type=int, default=16, help="how many samples (default 16)")
    p.add_argument("--seed", type=int, default=0, help="which samples")
    _add_num_points(p, "points drawn per shape (default: all the data holds)")
    _add_common(p, 224)
    p.set_defaults(func=run_dataset)

    p = sub.add_parser(
        "predictions",
        help="test/validation shapes titled true -> predicted",
        description="A grid of shapes titled 'true -> predicted (p=..)', green when right, red when wrong.",
    )
    p.add_argument("checkpoint", help="checkpoint file or run folder")
    p.add_argument("--data", help="dataset root (default: the one in the checkpoint's config)")
    p.add_argument(
        "--split", choices=("val", "test", "train"), default="val", help="which shapes (default: the validation split)"
    )
    p.add_argument("--n", type=int, default=16, help="how many shapes (default 16)")
    p.add_argument(
        "--wrong-only",
        action="store_true",
        help="only mistakes, most confident first (segmentation: the shapes of lowest IoU first)",
    )
    p.add_argument("--seed", type=int, default=0, help="which shapes")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda... (default auto)")
    p.add_argument("--batch-size", type=int, default=64, help="shapes per forward pass (default 64)")
    _add_num_points(p)
    _add_common(p, 224)
    p.set_defaults(func=run_predictions)

    p = sub.add_parser(
        "features",
        help="per-point heat map of max-pool wins, a layer's norm, or a channel",
        description="Colour each point of FILE by (wins) how many of the global feature's dimensions it wins "
        "in the max pool, (norm) the norm of a layer's per-point features (--layer), or (channel) one "
        "channel (--layer, --channel). Layers are the ones the model reports; PointNet: mlp1.0, mlp1.1 (64-d), "
        "mlp2.0 (64), mlp2.1 (128), mlp2.2 (1024, the max-pooled one). Values are computed on the points the "
        "model sees and drawn on the file's points (each takes the value of its nearest model point).",
    )
    _add_model_input(p)
    p.add_argument(
        "--map", choices=FEATURE_MAPS, help="what to show (default: wins; norm with --layer; channel with --channel)"
    )
    p.add_argument("--layer", help="layer for norm/channel (default: the model's last, mlp2.2 for PointNet)")
    p.add_argument("--channel", type=int, help="channel of --layer to show")
    p.add_argument("--cmap", default=None, help="matplotlib colormap (default: plasma for wins, viridis otherwise)")
    _add_common(p, 420)
    p.set_defaults(func=run_features)

    p = sub.add_parser(
        "critical",
        help="critical point set and upper-bound shape beside the input",
        description="The points that decide PointNet's global feature (critical set: each wins at least one "
        "max-pool dimension) and the grid points that leave it unchanged (upper-bound shape), beside the input.",
    )
    _add_model_input(p)
    p.add_argument(
        "--resolution", type=int, default=32, help="grid points per axis for the upper-bound shape (default 32)"
    )
    _add_common(p, 320)
    p.set_defaults(func=run_critical)

    p = sub.add_parser(
        "transform",
        help="input cloud beside the cloud after the learned input transform",
        description="The input cloud beside the same cloud after the 3x3 input transform (T-Net).",
    )
    _add_model_input(p)
    p.add_argument(
        "--camera",
        choices=("shared", "separate"),
        default="shared",
        help="shared: one camera for both tiles, so the transform's scaling shows (default); "
        "separate: each tile fitted to its cloud",
    )
    _add_common(p, 320)
    p.set_defaults(func=run_transform)

    p = sub.add_parser(
        "parts",
        help="predicted parts of shapes, beside the ground truth when the file has labels",
        description="Colour each point of FILE by the part a segmentation checkpoint predicts (legend: part "
        "names), beside the ground truth and the wrong points when the file has part labels (ShapeNetPart "
        ".pts with ../points_label/*.seg, or v0_normal .txt with a part column). The category comes from "
        "the file's place in a ShapeNetPart tree, or --category.",
    )
    p.add_argument("checkpoint", help="part segmentation checkpoint file or run folder")
    p.add_argument("files", nargs="+", metavar="FILE", help="shape files")
    p.add_argument("--category", help="the shapes' category (default: from the ShapeNetPart tree)")
    _add_num_points(p, "points drawn (default: all the file's); the model sees as many at a time as in training")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    _add_common(p, 320)
    p.set_defaults(func=run_parts)

    p = subparsers.add_parser(
        "report",
        help="training curves, confusion matrix and predictions of a run, as PNGs and report.html",
        description="Write curves.png, confusion.png, predictions.png and a self-contained report.html "
        "for a run folder.",
    )
    p.add_argument("run_dir", help="run folder (config.yaml, metrics.jsonl, checkpoint_best.pt)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: RUN_DIR/report)")
    p.add_argument("--data", help="dataset root for the confusion matrix (default: the run's)")
    p.add_argument("--n", type=int, default=16, help="shapes in the predictions grid (default 16)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda... (default auto)")
    p.set_defaults(func=run_report)


# --- helpers ------------------------------------------------------------------------------------


def _view(args: argparse.Namespace):
    from ..viz.render import View

    return View(up=args.up or "z", azimuth=args.azimuth, elevation=args.elevation)


def _background(name: str) -> tuple[float, float, float]:
    from matplotlib.colors import to_rgb

    try:
        return tuple(float(c) for c in to_rgb(name))
    except ValueError:
        raise PointNetKitError(f"--background: not a colour: {name!r} (use a name like white or #rrggbb)") from None


def _renderer(args: argparse.Namespace):
    from ..viz.render import Renderer

    if not 16 <= args.size <= 2048:
        raise PointNetKitError(f"--size must be between 16 and 2048 pixels, got {args.size}")
    return Renderer(
        args.size, args.size, point_size=args.point_size, background=_background(args.background), view=_view(args)
    )


def output_path(out: str | None, default_name: str) -> Path:
    """``--out`` as a PNG path: a ``.png`` file as given, otherwise a folder for ``default_name``."""
    import pointnet_kit

    path = DEFAULT_OUT / default_name if out is None else Path(out)
    if path.suffix.lower() != ".png":
        path = path / default_name
    package = Path(pointnet_kit.__file__).resolve().parent
    if path.resolve().is_relative_to(package):
        raise PointNetKitError(f"refusing to write {path} inside the installed package; choose another --out")
    return path


def _save(image: Any, out: str | None, name: str) -> Path:
    from ..viz.render import save_png

    path = save_png(image, output_path(out, name))
    print(f"wrote {path} ({image.shape[1]}x{image.shape[0]})")
    return path


def _check_show(args: argparse.Namespace) -> None:
    """Fail before any work when --show cannot open a window."""
    if args.show:
        from ..viz.render import require_display

        require_display()


def _output(panels, args: argparse.Namespace, name: str) -> None:
    """Show ``panels`` in a window (--show) or render them and write the PNG."""
    from ..viz.figures import render_panels, show_panels

    if args.show:
        show_panels(panels, view=_view(args), point_size=args.point_size or 4.0)
        return
    with _renderer(args) as renderer:
        image = render_panels(panels, renderer)
    _save(image, args.out, name)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text).strip("_") or "data"


def _check_num_points(args: argparse.Namespace) -> None:
    if args.num_points is not None and args.num_points < 1:
        raise PointNetKitError(f"--num-points must be at least 1, got {args.num_points}")


def _model_and_points(args: argparse.Namespace):
    """The checkpoint's model (eval mode) and FILE's points: ``(model, spec, drawn (M, 3), seen (N,) indices)``.

    ``drawn`` are the points drawn; the model sees ``drawn[seen]``, as many as it was trained on.
    Sets ``args.up`` from the run's data when not given.
    """
    from ..viz import sources

    _check_show(args)
    _check_num_points(args)
    model, spec, _ = sources.load_run(args.checkpoint)
    if spec.in_channels != 3:
        raise PointNetKitError(
            f"this checkpoint's model takes {spec.in_channels} channels per point ({' '.join(spec.channels)}); "
            "viz features needs an xyz model"
        )
    args.up = args.up or spec.up_axis
    drawn = sources.load_display_points(args.file, args.num_points, seed=args.seed)
    if len(drawn) < spec.num_points:  # draw at least what the model sees
        drawn = sources.load_points(args.file, num_points=spec.num_points, seed=args.seed)
    return model, spec, drawn, sources.model_points(drawn, spec.num_points, seed=args.seed)


# --- commands -----------------------------------------------------------------------------------


def run_cloud(args: argparse.Namespace) -> int:
    from ..viz import sources
    from ..viz.figures import Panels
    from ..viz.render import Cloud, Mesh

    _check_show(args)
    _check_num_points(args)
    scenes, captions = [], []
    for file in args.files:
        mesh = None if args.num_points else sources.load_mesh(file)
        if mesh is not None:
            scenes.append([Mesh(*mesh)])
            captions.append(Path(file).name)
        else:
            points = sources.load_display_points(file, args.num_points, seed=args.seed)
            scenes.append([Cloud(points)])
            captions.append(f"{Path(file).name} ({len(points)} points)")
    name = f"cloud_{_slug(Path(args.files[0]).stem)}.png" if len(args.files) == 1 else "clouds.png"
    _output(Panels(scenes, captions), args, name)
    return 0


def run_dataset(args: argparse.Namespace) -> int:
    from ..viz import sources
    from ..viz.figures import dataset_panels, plural

    _check_show(args)
    _check_num_points(args)
    if args.n < 1:
        raise PointNetKitError(f"--n must be at least 1, got {args.n}")
    dataset = sources.open_dataset(args.data, split=args.split)
    spec = getattr(dataset, "spec", None)
    args.up = args.up or (spec.up_axis if spec is not None else None)
    name = Path(str(args.data)).name or str(args.data)
    points = dataset.points[:, : args.num_points]
    title = (
        f"{name} ({args.split}): {plural(len(dataset), 'shape')}, {plural(dataset.num_classes, 'class')}, "
        f"{plural(points.shape[1], 'point')} each"
    )
    panels = dataset_panels(points, dataset.labels, dataset.class_names, n=args.n, seed=args.seed, title=title)
    _output(panels, args, f"dataset_{_slug(name)}_{args.split}.png")
    return 0


def run_predictions(args: argparse.Namespace) -> int:
    from ..viz import sources
    from ..viz.figures import predictions_panels

    _check_show(args)
    _check_num_points(args)
    if args.n < 1:
        raise PointNetKitError(f"--n must be at least 1, got {args.n}")
    result = sources.predict_split(args.checkpoint, args.data, args.split, args.device, args.batch_size)
    args.up = args.up or result.spec.up_axis
    dataset = result.dataset
    if result.spec.task == "part_segmentation":
        from ..viz.parts import seg_predictions_panels

        panels = seg_predictions_panels(result, args.n, args.wrong_only, args.seed, args.num_points)
        _output(panels, args, f"predictions_{args.split}{'_worst' if args.wrong_only else ''}.png")
        return 0
    panels = predictions_panels(
        result.drawn(args.num_points),
        dataset.labels,
        result.probs,
        dataset.class_names,
        n=args.n,
        wrong_only=args.wrong_only,
        seed=args.seed,
        seen_points=dataset.num_points,
    )
    _output(panels, args, f"predictions_{args.split}{'_wrong' if args.wrong_only else ''}.png")
    return 0


def run_features(args: argparse.Namespace) -> int:
    from ..viz.figures import feature_map, heatmap_panels

    map = args.map or ("channel" if args.channel is not None else "norm" if args.layer else "wins")
    if map == "wins" and (args.layer or args.channel is not None):
        raise PointNetKitError("--map wins uses the global max pool; drop --layer/--channel")
    model, _, drawn, seen = _model_and_points(args)
    result = feature_map(model, drawn[seen], map, args.layer, args.channel)
    cmap = args.cmap or ("plasma" if map == "wins" else "viridis")
    panels = heatmap_panels(
        drawn,
        result.values,
        result.label,
        seen=seen,
        title=f"{Path(args.file).name}: {result.title}",
        cmap=cmap,
        log=map == "wins",
        spread=map != "wins",
        caption=result.caption,
    )
    suffix = {"wins": "wins", "norm": f"norm_{result.layer}", "channel": f"{result.layer}_c{args.channel}"}[map]
    _output(panels, args, f"features_{_slug(Path(args.file).stem)}_{_slug(suffix)}.png")
    return 0


def run_critical(args: argparse.Namespace) -> int:
    import torch

    from ..viz import features as F
    from ..viz.figures import critical_panels

    model, _, drawn, seen = _model_and_points(args)
    points = torch.from_numpy(drawn[seen])
    sets = F.critical_points(model, points)
    upper = F.upper_bound_shape(model, points, resolution=args.resolution).cpu().numpy()
    title = f"{Path(args.file).name}: what the global feature depends on"
    panels = critical_panels(
        drawn,
        seen,
        sets["critical"].cpu().numpy(),
        upper,
        sets["global"].cpu().numpy() if "global" in sets else None,
        title=title,
        grid_points=args.resolution**3,
    )
    _output(panels, args, f"critical_{_slug(Path(args.file).stem)}.png")
    return 0


def run_transform(args: argparse.Namespace) -> int:
    import torch

    from ..viz import features as F
    from ..viz.figures import transform_panels

    model, _, drawn, seen = _model_and_points(args)
    matrix, _ = F.input_transform(model, torch.from_numpy(drawn[seen]))
    matrix = matrix.cpu().double().numpy()
    panels = transform_panels(drawn, drawn @ matrix, matrix, up=args.up, shared_camera=args.camera == "shared")
    _output(panels, args, f"transform_{_slug(Path(args.file).stem)}.png")
    return 0


def run_parts(args: argparse.Namespace) -> int:
    from ..viz import parts as P
    from ..viz import sources
    from ..viz.figures import Panels
    from ..viz.grid import vstack

    _check_show(args)
    _check_num_points(args)
    model, spec, _ = sources.load_run(args.checkpoint)
    if spec.task != "part_segmentation":
        raise PointNetKitError(
            f"{args.checkpoint} is a {spec.task} checkpoint; viz parts needs a part segmentation one"
        )
    args.up = args.up or spec.up_axis
    figures = []
    for file in args.files:
        sample = sources.read_part_file(file, spec)
        category = args.category or sample.category
        if category is None:
            raise PointNetKitError(f"{file}: cannot tell its category from its folder; pass --category NAME")
        parts = P.category_parts(spec, category)
        keep = slice(None)
        if args.num_points and args.num_points < len(sample.points):
            keep = sources.model_points(sample.points, args.num_points, seed=args.seed)
        points = sample.points[keep]
        truth = None if sample.part_labels is None else sample.part_labels[keep]
        logits = sources.predict_dense(model, points, spec.num_points, spec.class_names.index(category), args.seed)
        turned = f", turned from {sample.turned_from}-up to the run's {spec.up_axis}-up" if sample.turned_from else ""
        title = f"{Path(file).name} ({category}{turned})"
        predicted = P.predict_parts(logits, parts)
        figures.append(P.parts_panels(points, predicted, parts, spec.part_names, truth, title, spec.num_points))
    name = f"parts_{_slug(Path(args.files[0]).stem)}.png" if len(args.files) == 1 else "parts.png"
    if args.show:
        scenes = [scene for f in figures for scene in f.scenes]
        captions = [f"{f.title}: {c}" for f in figures for c in f.captions]
        _output(Panels(scenes, captions), args, name)
        return 0
    from ..viz.figures import render_panels

    with _renderer(args) as renderer:
        images = [render_panels(f, renderer) for f in figures]
    _save(vstack(images, gap=16) if len(images) > 1 else images[0], args.out, name)
    return 0


def run_report(args: argparse.Namespace) -> int:
    from ..viz.report import write_report

    path = write_report(args.run_dir, out_dir=args.out, data=args.data, n=args.n, device=args.device)
    print(f"wrote {path}")
    return 0
