#!/usr/bin/env python
"""Training throughput of PointNet classification: one JSON object per configuration on stdout.

Measures full training steps as the engine runs them (batched on-device augmentation, forward,
loss with the regularizer, backward, Adam step) on random clouds already on the device.

    python scripts/bench_train.py --device cuda --batch-sizes 32 256 --compile
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_common import device_info, peak_memory_mb, time_call  # noqa: E402

from pointnet_kit import create_model  # noqa: E402
from pointnet_kit.data.transforms import build_batch_transforms  # noqa: E402
from pointnet_kit.engine.config import config_from_dict  # noqa: E402
from pointnet_kit.engine.trainer import autocast_context, classification_loss  # noqa: E402
from pointnet_kit.utils import resolve_device  # noqa: E402


def bench(model_name: str, device: torch.device, batch: int, num_points: int, amp: str, compile_: bool, steps: int, warmup: int) -> dict:
    config = config_from_dict({})
    model = create_model(model_name, num_classes=40, seed=0).to(device).train()
    step_model = torch.compile(model) if compile_ else model
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    augment = build_batch_transforms(config.train.augmentations)
    generator = torch.Generator(device).manual_seed(0)
    dataset = torch.randn(max(batch * 4, 1024), num_points, 3, device=device)
    labels = torch.randint(0, 40, (len(dataset),), device=device)

    def step() -> None:
        idx = torch.randint(0, len(dataset), (batch,), device=device, generator=generator)
        points = augment(dataset[idx], generator=generator)
        with autocast_context(device, amp):
            loss = classification_loss(step_model(points), labels[idx], config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = time_call(step, device, steps, warmup)
    resolved_amp = ("bf16" if device.type == "cuda" else "off") if amp == "auto" else amp
    return {
        "bench": "train",
        "model": model_name,
        **device_info(device),
        "dtype": "bf16 autocast" if resolved_amp == "bf16" else ("fp16 autocast" if resolved_amp == "fp16" else "float32"),
        "compile": compile_,
        "batch": batch,
        "points": num_points,
        "shapes_per_s": round(batch / seconds, 1),
        "ms_per_step": round(seconds * 1000, 3),
        "peak_memory_mb": round(peak_memory_mb(device), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="pointnet")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32])
    parser.add_argument("--num-points", type=int, default=1024)
    parser.add_argument("--amp", default="auto", choices=["auto", "bf16", "fp16", "off"])
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    for batch in args.batch_sizes:
        print(json.dumps(bench(args.model, device, batch, args.num_points, args.amp, args.compile, args.steps, args.warmup)), flush=True)


if __name__ == "__main__":
    main()
