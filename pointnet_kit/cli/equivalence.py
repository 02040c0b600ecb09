"""``pointnet-kit equivalence``: check that 1x1 convolution == fully connected, print a table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import PointNetKitError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "equivalence",
        help="show numerically that a 1x1 convolution is a fully connected layer",
        description=(
            "Run each claim (Conv1d(k=1) == per-point Linear, Conv2d(1x1) == per-pixel Linear, "
            "FC on a flattened image == full-size conv == 1x1 conv, class maps == FC head, PointNet's "
            "order invariance, PointNet++ set abstraction == per-pair Linear with max ignoring neighbour order, "
            "DGCNN EdgeConv == per-edge Linear, 1x1 bottleneck counts) forward and backward in float32 and float64, "
            "and print the differences, parameter counts and times. Exits 1 if a claim fails."
        ),
    )
    parser.add_argument(
        "--device", default="auto", help="cpu, cuda, cuda:N or auto (default: cuda when available, else cpu)"
    )
    parser.add_argument(
        "--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed for weights, inputs and permutations (default: 0)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return equivalence(device=args.device, json_path=args.json, seed=args.seed)


def equivalence(device: str = "auto", json_path: Path | None = None, seed: int = 0) -> int:
    """Print the claims table; write JSON if asked. Returns the exit status: 0 if all hold, else 1."""
    import torch  # here, not at the top: `pointnet-kit --help` must not import torch

    from ..equivalence import format_table, results_to_dict, run_all
    from ..utils import resolve_device

    resolved = resolve_device(device)
    dtypes = (torch.float32, torch.float64)
    if resolved.type == "mps":  # MPS has no float64
        dtypes = (torch.float32,)
        print("note: MPS has no float64; checking float32 only")
    results = run_all(resolved, dtypes=dtypes, seed=seed)
    print(f"pointnet-kit equivalence on {resolved} (seed {seed}, torch {torch.__version__})\n")
    print(format_table(results))
    if json_path is not None:
        try:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(
                json.dumps(results_to_dict(results, device=str(resolved), seed=seed), indent=2) + "\n"
            )
        except OSError as exc:
            raise PointNetKitError(f"cannot write {json_path}: {exc.strerror or exc}") from exc
        print(f"\nwrote {json_path}")
    return 0 if all(r.passed for r in results) else 1
