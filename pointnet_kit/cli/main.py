"""``pointnet-kit`` command line: one subcommand per capability, each in its own module."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from .. import __version__  # the package __init__ is lazy: no torch here
from ..errors import PointNetKitError
from .guide import HelpFormatter, finish_parser

# Each module defines ``register(subparsers)``, which adds its subcommand(s) with ``func=...``.
# They import torch/numpy/open3d inside their functions only, so --help and --version stay fast.
COMMAND_MODULES = [
    "pointnet_kit.cli.equivalence",
    "pointnet_kit.cli.data",
    "pointnet_kit.cli.engine",
    "pointnet_kit.cli.viz",
    "pointnet_kit.cli.config",
    "pointnet_kit.cli.completion",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pointnet-kit",
        description="PointNet point cloud toolkit: train, evaluate, visualize, and see why 1x1 conv == FC.",
        formatter_class=HelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"pointnet-kit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return finish_parser(parser)  # every subparser: no prefix abbreviations, defaults shown


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.func(args)
    except PointNetKitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
