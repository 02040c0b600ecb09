#!/usr/bin/env python
"""Data-layer benchmark; prints one JSON object.

- ``hdf5_load``: seconds to load every shape of ``<data>/modelnet40_ply_hdf5_1024`` into memory;
- ``prepare``: OFF meshes -> points (``<data>/meshes``), shapes/s on one core and with all workers;
- ``embedded``: seconds to generate the embedded dataset (fresh cache) and to load it back;
- ``augment``: batched augmentation throughput (clouds/s) on a (B, N, 3) batch.

    python scripts/bench_data.py [--data ../shared/data] [--device cpu] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from pointnet_kit.data import build_batch_transforms, make_default_dataset, open_dataset
from pointnet_kit.data.prepare import prepare_off

DEFAULT_DATA = Path(os.environ.get("POINTNET_KIT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
AUGMENT = [{"name": n} for n in ("rotate_z", "scale", "shift", "jitter", "dropout", "shuffle")]


def best_of(repeat: int, fn) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def bench_hdf5(data: Path, repeat: int, device: torch.device) -> dict:
    root = data / "modelnet40_ply_hdf5_1024"
    if not root.is_dir():
        return {"skipped": f"{root} not found"}
    seconds, ds = best_of(repeat, lambda: open_dataset(root, num_points=1024))
    to_device, _ = best_of(repeat, lambda: ds.as_tensors(device))
    return {
        "folder": str(root),
        "shapes": len(ds),
        "classes": ds.num_classes,
        "megabytes": round(ds.points.nbytes / 2**20, 1),
        "load_seconds": round(seconds, 3),
        f"as_tensors_{device.type}_seconds": round(to_device, 3),
    }


def bench_prepare(data: Path, repeat: int) -> dict:
    src = data / "meshes"
    if not src.is_dir():
        return {"skipped": f"{src} not found"}
    out: dict = {"folder": str(src), "num_points": 2048}
    with tempfile.TemporaryDirectory() as tmp:
        prepare_off(src, Path(tmp) / "warm", num_points=2048, workers=1, progress=False)  # imports, caches
        for workers in (1, os.cpu_count() or 1):
            seconds, report = best_of(repeat, lambda: prepare_off(src, Path(tmp) / f"w{workers}", num_points=2048, normals=True, workers=workers, progress=False))
            out[f"workers_{workers}"] = {"shapes": report["meshes"], "seconds": round(seconds, 3), "shapes_per_second": round(report["meshes"] / seconds, 2)}
    out["shapes_per_second_per_core"] = out["workers_1"]["shapes_per_second"]
    return out


def bench_embedded(repeat: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        train = make_default_dataset("train", num_points=1024, cache_dir=tmp)
        generate = time.perf_counter() - start
        load, test = best_of(repeat, lambda: make_default_dataset("test", num_points=1024, cache_dir=tmp))
    return {"classes": train.num_classes, "train": len(train), "test": len(test), "generate_seconds": round(generate, 2), "load_seconds": round(load, 3)}


def bench_augment(device: torch.device, repeat: int, batch: int = 32, points: int = 1024) -> dict:
    aug = build_batch_transforms(AUGMENT)
    x = torch.randn(batch, points, 3, device=device)
    g = torch.Generator(device=device).manual_seed(0)

    def run():
        for _ in range(20):
            y = aug(x, generator=g)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return y

    out = {"device": device.type, "batch": [batch, points, 3], "pipeline": [a["name"] for a in AUGMENT]}
    default_threads = torch.get_num_threads()
    # on a busy CPU, several threads on these small element-wise kernels mostly wait for each other
    for threads in sorted({1, default_threads}) if device.type == "cpu" else [default_threads]:
        torch.set_num_threads(threads)
        run()
        seconds, _ = best_of(repeat, run)
        out[f"clouds_per_second_{threads}_threads"] = round(20 * batch / seconds)
    torch.set_num_threads(default_threads)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    result = {
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": platform.python_version(), "torch": torch.__version__},
        "hdf5_load": bench_hdf5(args.data, args.repeat, device),
        "prepare": bench_prepare(args.data, args.repeat),
        "embedded": bench_embedded(args.repeat),
        "augment": bench_augment(device, args.repeat),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
