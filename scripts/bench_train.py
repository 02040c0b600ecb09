#!/usr/bin/env python
"""Training throughput of PointNet classification: one JSON object per configuration on stdout.

Measures full training steps as the engine runs them (batched on-device augmentation, forward,
loss with the regularizer, backward, Adam step, the epoch's metric sums) on random clouds already on
the device.

    python scripts/bench_train.py --device cuda --batch-sizes 32 256 --compile

``--vs-reference`` times pointnet-kit against a plain-PyTorch PointNet written the way the popular
ports write it (scripts/_reference_pointnet.py: fxia22 and yanx27 styles, with their data loading
and NumPy augmentation), interleaved in this process, at 1 and 2 threads, and prints per variant and
thread count ``speedup_vs_reference`` (per-round ratios: median, min, max):

    python scripts/bench_train.py --vs-reference
    python scripts/bench_train.py --vs-reference --variants kit kit_plain kit_bf16 kit_compile
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
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

# This checkout first: the installed `pointnet-kit` may point at another copy of the package.
sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from _bench_common import apply_malloc, base_parser, interleave, malloc_mode, measure, median_ms, ratio_summary, setup  # noqa: E402
from _reference_pointnet import STYLES, reference_train_step  # noqa: E402

from pointnet_kit import create_model  # noqa: E402
from pointnet_kit.data.transforms import build_batch_transforms  # noqa: E402
from pointnet_kit.engine.config import augmentation_specs, config_from_dict  # noqa: E402
from pointnet_kit.engine.inference import autocast_context  # noqa: E402
from pointnet_kit.layers import SharedMLP, orthogonality_loss  # noqa: E402

# What each kit variant changes from the engine's step: amp, compile, plain max pool, fused Adam.
KIT_VARIANTS = {
    "kit": {},
    "kit_bf16": {"amp": "bf16"},
    "kit_compile": {"compile_": True},
    "kit_plain": {"plain": True},  # the code path before SharedMLP.max_pool: full features, then amax
    "kit_fused_adam": {"fused_adam": True},  # Adam(fused=True): one kernel per parameter, not ~10 ops
    "kit_bf16_fused_adam": {"amp": "bf16", "fused_adam": True},
}


def use_plain_pool(model: torch.nn.Module) -> None:
    """Make every SharedMLP of ``model`` pool the way the code did before the fast path."""
    for module in model.modules():
        if isinstance(module, SharedMLP):
            module.max_pool = lambda x, m=module: m(x).amax(dim=2)  # type: ignore[method-assign]


def training_loss(out: dict, target: torch.Tensor, config) -> torch.Tensor:
    """The engine's classification loss: cross entropy + the model's own (already weighted) losses."""
    loss = F.cross_entropy(out["logits"].float(), target, label_smoothing=config.train.label_smoothing)
    if "losses" in out:  # models on the PointModel contract
        return loss + sum(out["losses"].values())
    return loss + config.train.feature_transform_weight * orthogonality_loss(out["feature_transform"].float())


def kit_train_step(
    model_name: str, device: torch.device, dataset: torch.Tensor, labels: torch.Tensor, batch: int,
    amp: str = "off", compile_: bool = False, plain: bool = False, fused_adam: bool = False, seed: int = 0,
) -> Callable[[], None]:
    """One training step as ``Trainer.train_epoch`` runs it, on ``dataset (M, N, 3)`` already on ``device``."""
    config = config_from_dict({})
    model = create_model(model_name, num_classes=40, seed=seed).to(device).train()
    if plain:
        use_plain_pool(model)
    step_model = torch.compile(model) if compile_ else model
    fused = {"fused": True} if fused_adam else {}
    optimizer = torch.optim.Adam(model.parameters(), lr=config.optim.lr, weight_decay=config.optim.weight_decay, **fused)
    augment = build_batch_transforms(augmentation_specs(config))
    generator = torch.Generator(device).manual_seed(seed)
    sums = torch.zeros(3, device=device, dtype=torch.float64)

    def step() -> None:
        nonlocal sums
        idx = torch.randperm(len(dataset), device=device, generator=generator)[:batch]
        points = augment(dataset[idx], generator=generator)
        target = labels[idx]
        with autocast_context(device, amp):
            out = step_model(points)
            loss = training_loss(out, target, config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        n = target.shape[0]
        correct = (out["logits"].argmax(1) == target).sum().double()
        sums += torch.stack([loss.detach().double() * n, correct, torch.tensor(float(n), device=device, dtype=torch.float64)])

    return step


def random_clouds(count: int, num_points: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` random clouds in the unit sphere ``(count, N, 3)`` float32 and labels ``(count,)``."""
    rng = np.random.default_rng(seed)
    clouds = rng.standard_normal((count, num_points, 3)).astype(np.float32)
    clouds /= np.linalg.norm(clouds, axis=2).max(axis=1)[:, None, None]
    return clouds, rng.integers(0, 40, count)


def memory_of(variant: str, model_name: str, batch: int, num_points: int) -> dict:
    """Peak RSS of two training steps of ``variant`` (a kit variant or ``ref_<style>``), in this (fresh) process."""
    torch.set_num_threads(1)
    clouds, labels = random_clouds(4 * batch, num_points)
    if variant.startswith("ref_"):
        step, _ = reference_train_step(variant[4:], clouds, labels, batch)
    else:
        step = kit_train_step(model_name, torch.device("cpu"), torch.from_numpy(clouds), torch.from_numpy(labels), batch, **KIT_VARIANTS[variant])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    step()
    step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"variant": variant, "batch": batch, "peak_memory_mb": round(peak, 1), "rss_before_mb": round(before, 1)}


def measure_memory(variant: str, batch: int, args) -> dict:
    cmd = [sys.executable, __file__, "--memory-of", variant, "--model", args.model, "--num-points", str(args.num_points), "--batch-sizes", str(batch)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(done.stdout.strip().splitlines()[-1])


def vs_reference(args) -> None:
    device = torch.device("cpu")  # the ports' pipelines are CPU NumPy; so is this comparison
    clouds, labels = random_clouds(max(4 * max(args.batch_sizes), 256), args.num_points)
    for batch in args.batch_sizes:
        names = [*args.variants, *(f"ref_{style}" for style in args.references)]
        memory = {name: measure_memory(name, batch, args)["peak_memory_mb"] for name in names}
        for threads in args.threads_list:
            torch.set_num_threads(threads)
            steps: dict[str, Callable[[], object]] = {}
            for name in args.variants:
                steps[name] = kit_train_step(
                    args.model, device, torch.from_numpy(clouds), torch.from_numpy(labels), batch, **KIT_VARIANTS[name]
                )
            for style in args.references:
                steps[f"ref_{style}"], _ = reference_train_step(style, clouds, labels, batch)
            times = interleave(steps, args.rounds, args.warmup)
            ref_ms = {style: median_ms(times[f"ref_{style}"]) for style in args.references}
            for name in args.variants:
                per_ref = {style: ratio_summary(times[f"ref_{style}"], times[name]) for style in args.references}
                print(json.dumps({
                    "bench": "train_vs_reference",
                    "variant": name,
                    "model": args.model,
                    "threads": threads,
                    "batch": batch,
                    "points": args.num_points,
                    "rounds": args.rounds,
                    "ms_median": median_ms(times[name]),
                    "reference_ms_median": ref_ms,
                    # The headline: against the faster of the references (the harder one to beat).
                    "speedup_vs_reference": min(per_ref.values(), key=lambda r: r["median"]),
                    "speedup_vs_reference_by_port": per_ref,
                    "peak_memory_mb": memory[name],  # peak RSS of the process, training steps only (subprocess)
                    "reference_peak_memory_mb": {style: memory[f"ref_{style}"] for style in args.references},
                    "load_avg_1min": os.getloadavg()[0],
                    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
                    "malloc": malloc_mode(),
                    "torch": str(torch.__version__),
                }), flush=True)


def bench(model_name: str, device: torch.device, batch: int, num_points: int, amp: str, compile_: bool, steps: int, warmup: int) -> dict:
    dataset = torch.randn(max(batch * 4, 1024), num_points, 3, device=device)
    labels = torch.randint(0, 40, (len(dataset),), device=device)
    step = kit_train_step(model_name, device, dataset, labels, batch, amp=amp, compile_=compile_)
    settings = {"model": model_name, "amp": amp, "compile": compile_, "batch": batch, "points": num_points, "steps": steps, "warmup": warmup}
    return measure("train", step, device, settings)


def main() -> None:
    parser = base_parser(__doc__, [32], steps=20, warmup=5)
    parser.add_argument("--vs-reference", action="store_true", help="interleaved comparison with the reference PointNet (CPU)")
    parser.add_argument("--variants", nargs="+", default=["kit"], choices=list(KIT_VARIANTS))
    parser.add_argument("--references", nargs="+", default=list(STYLES), choices=list(STYLES))
    parser.add_argument("--threads-list", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)
    args = parser.parse_args()
    apply_malloc(args)
    if args.memory_of:
        print(json.dumps(memory_of(args.memory_of, args.model, args.batch_sizes[0], args.num_points)))
        return
    if args.vs_reference:
        args.warmup = min(args.warmup, 1)
        vs_reference(args)
        return
    device = setup(args)
    for batch in args.batch_sizes:
        print(json.dumps(bench(args.model, device, batch, args.num_points, args.amp, args.compile, args.steps, args.warmup)), flush=True)


if __name__ == "__main__":
    main()
