"""``pointnet-kit data {download,prepare,info}``: get ModelNet, turn meshes into points, check a folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..data.record import RELEASE_POINTS
from ..errors import DataError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data", help="download, prepare and inspect datasets",
        description="Get ModelNet (download), turn OFF meshes into points (prepare), check a dataset folder (info).",
    )
    commands = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    p = commands.add_parser(
        "download",
        help="download ModelNet40/10 (resumable, checksum-verified)",
        description="Download and extract ModelNet. Offline or on a dead link it says how to place the files by hand.",
    )
    p.add_argument("name", choices=["modelnet40", "modelnet10"])
    p.add_argument("--root", type=Path, default=None, help="where to extract it (default: data/<name> for off, data for hdf5)")
    p.add_argument("--format", dest="fmt", choices=["off", "hdf5"], default="off",
                   help="off: Princeton's meshes (default); hdf5: the modelnet40_ply_hdf5_2048 release")
    p.add_argument("--url", default=None, help="a mirror to use instead of the official URL")
    p.add_argument("--md5", default=None, help="expected md5 of the archive (default: the official one where known; 'none' skips the check)")
    p.add_argument("--keep-zip", action="store_true", help="keep the archive after extracting it")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the server (default 30)")
    p.set_defaults(func=run_download)

    p = commands.add_parser(
        "prepare",
        help="sample OFF meshes into an HDF5 dataset",
        description="Sample every OFF mesh under SRC into HDF5 files in the modelnet40_ply_hdf5_2048 layout. "
        "Classes and splits come from <class>/train|test/*.off, or, for flat folders, from the file name "
        "(airplane_0001.off -> airplane) with every mesh in --split. Broken meshes are skipped and listed "
        "in OUT/prepare_report.json.",
    )
    p.add_argument("src", type=Path, help="folder of .off meshes")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--num-points", type=int, default=RELEASE_POINTS, help=f"points per shape (default {RELEASE_POINTS}, as the releases)")
    p.add_argument("--normals", action="store_true", help="also store the surface normal of each point")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--split", default="train", help="split of meshes not under a train/ or test/ folder (default train)")
    p.add_argument("--fps", type=int, default=1, metavar="K",
                   help="sample K x num-points and keep num-points by farthest point sampling (default 1: off)")
    p.set_defaults(func=run_prepare)

    p = commands.add_parser("info", help="what a dataset folder holds",
                            description="Format, task, splits, shapes per split and class, points per shape, normals, "
                            "parts per shape (segmentation) and duplicate shapes. DIR 'default' / 'default_parts' "
                            "describes an embedded dataset.")
    p.add_argument("dir", help="dataset folder (any registered format), or 'default' / 'default_parts'")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--near-duplicates", action="store_true",
                   help="also group clouds that are one surface sampled twice (loads every split; minutes on ModelNet40)")
    p.set_defaults(func=run_info)


def run_download(args: argparse.Namespace) -> int:
    from ..data.download import download_dataset

    folder = download_dataset(args.name, root=args.root, fmt=args.fmt, url=args.url, md5=args.md5,
                              keep_archive=args.keep_zip, timeout=args.timeout)
    print(f"{args.name} ({args.fmt}) is in {folder}")
    if args.fmt == "off":
        print(f"next: pointnet-kit data prepare {folder} --out {folder.parent / (args.name + '_hdf5')} "
              "(or train on it directly: it is prepared into a cache on first use)")
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    from ..data.prepare import REPORT_NAME, prepare_off

    if args.num_points < 1 or args.fps < 1 or (args.workers is not None and args.workers < 1):
        raise DataError("--num-points, --fps and --workers must be >= 1")
    report = prepare_off(args.src, args.out, num_points=args.num_points, normals=args.normals, workers=args.workers,
                         seed=args.seed, default_split=args.split, oversample=args.fps)
    splits = ", ".join(f"{k} {v}" for k, v in report["splits"].items())
    print(
        f"prepared {report['prepared']} of {report['meshes']} meshes into {args.out} ({splits}; "
        f"{len(report['classes'])} class{'es' if len(report['classes']) != 1 else ''}) in {report['seconds']:.1f} s: {report['shapes_per_second']} shapes/s "
        f"with {report['workers']} worker(s)"
    )
    for item in report["skipped"]:
        print(f"skipped {item['file']}: {item['error']}")
    print(f"report: {args.out / REPORT_NAME}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from ..data.registry import describe, format_info

    info = describe(args.dir, near_duplicates=args.near_duplicates)
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0
