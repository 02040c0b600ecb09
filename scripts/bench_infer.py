#!/usr/bin/env python
"""Inference throughput of PointNet classification, and Conv1d(k=1) vs batched Linear for the shared MLP.

Prints one JSON object per measurement:

    python scripts/bench_infer.py --device cuda --batch-sizes 1024 --compile

``--vs-reference`` times ``engine.inference.predict_logits`` (the fast path: folded BatchNorm,
micro-batches, chunked last layer + max pool) in float32 and bf16 autocast against the reference
PointNet's evaluation loop (scripts/_reference_pointnet.py), interleaved in this process at 1 and 2
threads, with per-round ratios, argmax agreement and max logit difference of bf16 vs float32, the
fraction of the measured big-matmul throughput each reaches, and the peak memory (RSS) of
inference at ``--memory-batch`` clouds, each measured in a fresh subprocess:

    python scripts/bench_infer.py --vs-reference
"""

from __future__ import annotations

import os

# Set before torch loads libgomp, which reads it once. PASSIVE: a thread that finishes its share of a
# parallel region sleeps instead of spinning. On a shared machine a spinning thread holds the core
# that its preempted sibling needs to finish the same region, so each of the step's ~1000 parallel
# regions waits a scheduler slice: that was the 2-thread slowdown. Override with OMP_WAIT_POLICY=ACTIVE.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import resource
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Callable

import torch

# This checkout first: the installed `pointnet-kit` may point at another copy of the package.
sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from _bench_common import (  # noqa: E402
    apply_malloc, base_parser, device_info, interleave, malloc_mode, matmul_gflops, measure, median_ms, ratio_summary, setup, time_call,
)
from _reference_pointnet import ReferencePointNet, reference_predict  # noqa: E402

from pointnet_kit import create_model  # noqa: E402
from pointnet_kit.engine.inference import autocast_context, cpu_has_native_bf16, inference_model, predict_logits  # noqa: E402
from pointnet_kit.layers import SharedMLP  # noqa: E402


@torch.no_grad()
def bench_model(model_name: str, device: torch.device, batch: int, num_points: int, amp: str, compile_: bool, steps: int, warmup: int) -> dict:
    model = create_model(model_name, num_classes=40, seed=0).to(device).eval()
    run = torch.compile(inference_model(model)) if compile_ else inference_model(model)
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


# --- the interleaved comparison with the reference ----------------------------------------------


def calibrated_pointnet(model_name: str, num_points: int, seed: int = 0) -> torch.nn.Module:
    """A PointNet whose BatchNorm running statistics come from a few training-mode batches (not 0/1)."""
    model = create_model(model_name, num_classes=40, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.train()
        for _ in range(3):
            model(torch.randn(16, num_points, 3, generator=generator))
    return model.eval()


def forward_flops(model: torch.nn.Module, num_points: int) -> int:
    """FLOPs of one cloud's plain eval forward (matmuls and convolutions, as torch counts them)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.randn(1, num_points, 3))
    return counter.get_total_flops()


def kit_steps(model: torch.nn.Module, points: torch.Tensor, batch: int, compile_: bool) -> dict[str, Callable[[], object]]:
    steps: dict[str, Callable[[], object]] = {
        "kit": lambda: predict_logits(model, points, batch_size=batch, amp="off"),
    }
    if points.device.type != "cpu" or cpu_has_native_bf16():
        steps["kit_bf16"] = lambda: predict_logits(model, points, batch_size=batch, amp="bf16")
    if compile_:
        compiled = torch.compile(inference_model(model), dynamic=False)

        @torch.no_grad()
        def run_compiled() -> torch.Tensor:
            return compiled(points)["logits"]

        steps["kit_compile"] = run_compiled
    return steps


def memory_of(variant: str, model_name: str, batch: int, num_points: int) -> dict:
    """Peak RSS of one inference call at ``batch`` clouds, in this (fresh) process."""
    torch.set_num_threads(1)
    points = torch.randn(batch, num_points, 3)
    if variant == "reference":
        model = ReferencePointNet(40).eval()
        run = lambda: reference_predict(model, points, batch)  # noqa: E731
    else:
        model = calibrated_pointnet(model_name, num_points)
        run = lambda: predict_logits(model, points, batch_size=batch, amp="bf16" if variant == "kit_bf16" else "off")  # noqa: E731
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    run()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"variant": variant, "batch": batch, "peak_memory_mb": round(peak, 1), "rss_before_mb": round(before, 1)}


def measure_memory(variant: str, args) -> dict:
    cmd = [sys.executable, __file__, "--memory-of", variant, "--model", args.model, "--num-points", str(args.num_points), "--memory-batch", str(args.memory_batch)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(done.stdout.strip().splitlines()[-1])


def vs_reference(args) -> None:
    model = calibrated_pointnet(args.model, args.num_points)
    reference = ReferencePointNet(40).eval()
    flops_per_cloud = forward_flops(model, args.num_points)
    memory = {v: measure_memory(v, args) for v in args.memory_variants}
    for batch in args.batch_sizes:
        points = torch.randn(batch, args.num_points, 3, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            plain = model(points)["logits"]
        for threads in args.threads_list:
            torch.set_num_threads(threads)
            steps = {"reference": lambda: reference_predict(reference, points, batch)}
            steps.update(kit_steps(model, points, batch, args.compile))
            peak = {"fp32": [matmul_gflops(torch.float32)], "bf16": [matmul_gflops(torch.bfloat16)]}
            times = interleave(steps, args.rounds, args.warmup)
            peak["fp32"].append(matmul_gflops(torch.float32))
            peak["bf16"].append(matmul_gflops(torch.bfloat16))
            for name in steps:
                if name == "reference":
                    continue
                precision = "bf16" if name.endswith("bf16") else "fp32"
                gflops = flops_per_cloud * batch / statistics.median(times[name]) / 1e9
                record = {
                    "bench": "infer_vs_reference",
                    "variant": name,
                    "model": args.model,
                    "threads": threads,
                    "batch": batch,
                    "points": args.num_points,
                    "rounds": args.rounds,
                    "ms_median": median_ms(times[name]),
                    "reference_ms_median": median_ms(times["reference"]),
                    "speedup_vs_reference": ratio_summary(times["reference"], times[name]),
                    "gflops": round(gflops, 1),
                    "matmul_gflops": round(statistics.median(peak[precision]), 1),
                    "fraction_of_matmul_peak": round(gflops / statistics.median(peak[precision]), 3),
                    "max_abs_logit_diff_vs_plain_fp32": None,
                    "peak_memory_mb": memory.get(name, {}).get("peak_memory_mb"),
                    "memory_batch": args.memory_batch,
                    "load_avg_1min": os.getloadavg()[0],
                    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
                    "malloc": malloc_mode(),
                }
                out = steps[name]().float()  # this variant's own logits
                record["max_abs_logit_diff_vs_plain_fp32"] = float((out - plain).abs().max())
                record["argmax_agreement_vs_plain_fp32"] = float((out.argmax(1) == plain.argmax(1)).float().mean())
                print(json.dumps(record), flush=True)
    if "reference" in memory:
        print(json.dumps({"bench": "infer_memory", **memory["reference"]}), flush=True)


def main() -> None:
    parser = base_parser(__doc__, [1024], steps=10, warmup=3)
    parser.add_argument("--mlp-batch", type=int, default=32, help="batch of the shared-MLP comparison")
    parser.add_argument("--skip-mlp", action="store_true", help="skip the Conv1d vs Linear comparison")
    parser.add_argument("--vs-reference", action="store_true", help="interleaved comparison with the reference PointNet (CPU)")
    parser.add_argument("--threads-list", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--memory-batch", type=int, default=1024)
    parser.add_argument(
        "--memory-variants", nargs="*", default=["kit", "kit_bf16"], choices=["kit", "kit_bf16", "reference"],
        help="peak-memory subprocesses (the reference needs ~9 GB at batch 1024: opt in)",
    )
    parser.add_argument("--memory-of", choices=["kit", "kit_bf16", "reference"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    apply_malloc(args)
    if args.memory_of:
        print(json.dumps(memory_of(args.memory_of, args.model, args.memory_batch, args.num_points)))
        return
    if args.vs_reference:
        if args.batch_sizes == [1024]:
            args.batch_sizes = [32, 256]
        args.warmup = min(args.warmup, 1)
        vs_reference(args)
        return
    device = setup(args)
    for batch in args.batch_sizes:
        print(json.dumps(bench_model(args.model, device, batch, args.num_points, args.amp, args.compile, args.steps, args.warmup)), flush=True)
    if not args.skip_mlp:
        print(json.dumps(bench_shared_mlp(device, args.mlp_batch, args.num_points, args.steps, args.warmup)), flush=True)


if __name__ == "__main__":
    main()
