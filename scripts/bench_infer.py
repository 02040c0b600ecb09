#!/usr/bin/env python
"""Inference throughput of PointNet classification, and Conv1d(k=1) vs batched Linear for the shared MLP.

Prints one JSON object per measurement:

    python scripts/bench_infer.py --device cuda --batch-sizes 1024 --compile
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

# This checkout first: the installed `pointnet-kit` may point at another copy of the package.
sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from _bench_common import base_parser, device_info, measure, setup, time_call  # noqa: E402

from pointnet_kit import create_model  # noqa: E402
from pointnet_kit.engine.trainer import autocast_context  # noqa: E402
from pointnet_kit.layers import SharedMLP  # noqa: E402


@torch.no_grad()
def bench_model(model_name: str, device: torch.device, batch: int, num_points: int, amp: str, compile_: bool, steps: int, warmup: int) -> dict:
    model = create_model(model_name, num_classes=40, seed=0).to(device).eval()
    run = torch.compile(model) if compile_ else model
    points = torch.randn(batch, num_points, 3, device=device)

    def step() -> None:
        with autocast_context(device, amp):
            run(points)

    settings = {"model": model_name, "amp": amp, "compile": compile_, "batch": batch, "points": num_points, "steps": steps, "warmup": warmup}
    return measure("infer", step, device, settings)


def bench_shared_mlp(device: torch.device, batch: int, num_points: int, steps: int, warmup: int) -> dict:
    """PointNet's shared MLP layers (3-64-64 and 64-64-128-1024), Conv1d(k=1) vs batched Linear, forward+backward."""
    result = {"bench": "shared_mlp_conv1d_vs_linear", **device_info(device), "batch": batch, "points": num_points, "dtype": "float32"}
    for channels in ([3, 64, 64], [64, 64, 128, 1024]):
        conv = SharedMLP(channels).to(device)
        linear = conv.converted("linear")
        x_cn = torch.randn(batch, channels[0], num_points, device=device)
        x_nc = x_cn.transpose(1, 2).contiguous()
        timings = {}
        for name, layer, x in (("conv1d", conv, x_cn), ("linear", linear, x_nc)):
            timings[name] = time_call(lambda: layer(x).sum().backward(), device, steps, warmup)
        key = "-".join(map(str, channels))
        result[f"{key}_conv1d_ms"] = round(timings["conv1d"] * 1000, 3)
        result[f"{key}_linear_ms"] = round(timings["linear"] * 1000, 3)
        result[f"{key}_conv1d_over_linear"] = round(timings["conv1d"] / timings["linear"], 3)
    return result


def main() -> None:
    parser = base_parser(__doc__, [1024], steps=10, warmup=3)
    parser.add_argument("--mlp-batch", type=int, default=32, help="batch of the shared-MLP comparison")
    parser.add_argument("--skip-mlp", action="store_true", help="skip the Conv1d vs Linear comparison")
    args = parser.parse_args()
    device = setup(args)
    for batch in args.batch_sizes:
        print(json.dumps(bench_model(args.model, device, batch, args.num_points, args.amp, args.compile, args.steps, args.warmup)), flush=True)
    if not args.skip_mlp:
        print(json.dumps(bench_shared_mlp(device, args.mlp_batch, args.num_points, args.steps, args.warmup)), flush=True)


if __name__ == "__main__":
    main()
