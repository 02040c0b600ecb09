#!/usr/bin/env python
"""Training throughput of PointNet classification: one JSON object per configuration on stdout.

Measures full training steps as the engine runs them (batched on-device augmentation, forward,
loss with the regularizer, backward, Adam step) on random clouds already on the device.

    python scripts/bench_train.py --device cuda --batch-sizes 32 256 --compile
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_common import base_parser, measure, setup  # noqa: E402

from pointnet_kit import create_model  # noqa: E402
from pointnet_kit.data.transforms import build_batch_transforms  # noqa: E402
from pointnet_kit.engine.config import config_from_dict  # noqa: E402
from pointnet_kit.engine.trainer import autocast_context, classification_loss  # noqa: E402


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

    settings = {"model": model_name, "amp": amp, "compile": compile_, "batch": batch, "points": num_points, "steps": steps, "warmup": warmup}
    return measure("train", step, device, settings)


def main() -> None:
    parser = base_parser(__doc__, [32], steps=20, warmup=5)
    args = parser.parse_args()
    device = setup(args)
    for batch in args.batch_sizes:
        print(json.dumps(bench(args.model, device, batch, args.num_points, args.amp, args.compile, args.steps, args.warmup)), flush=True)


if __name__ == "__main__":
    main()
