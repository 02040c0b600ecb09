"""``pointnet-kit`` command line: one subcommand per capability, each in its own module."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from .. import __version__
from ..errors import PointNetKitError

# Each module defines ``register(subparsers)``, which adds its subcommand(s) with ``func=...``.
COMMAND_MODULES = [
    "pointnet_kit.cli.equivalence",
    "pointnet_kit.cli.data",
    "pointnet_kit.cli.engine",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pointnet-kit",
        description="PointNet point cloud toolkit: train, evaluate, visualize, and see why 1x1 conv == FC.",
    )
    parser.add_argument("--version", action="version", version=f"pointnet-kit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


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
